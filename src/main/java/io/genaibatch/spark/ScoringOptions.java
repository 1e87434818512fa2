package io.genaibatch.spark;

import io.genaibatch.engine.Batching;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.RowLimits;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * How rows are scored, as the driver settled it and the tasks receive it: which columns, batch
 * size, search options. Immutable. What each field means, its default and its range are declared
 * once in {@link Settings}; {@link #from} is the one place these fields are read from settings.
 *
 * @param promptColumn the column with the prompt text (the signature's {@code prompt})
 * @param messagesColumn the column with chat messages (array of role/content structs)
 * @param idColumn the column that identifies a row, for resume; may be null
 * @param batchSize prompts per native generation call
 * @param search search options after precedence was applied
 * @param chat score the messages column with the chat template, emitting chat_completion
 * @param lookaheadRows rows a task reads ahead and sorts by prompt length before cutting them into
 *     batches (at least {@code batchSize} are read either way)
 * @param partitions {@link Settings#PARTITIONS_AUTO}, {@link Settings#PARTITIONS_INPUT} or a
 *     positive number of partitions
 * @param batching fixed batch sizes, or sizes chosen by measured cost up to {@code batchSize}
 * @param stop the job's stop strings; empty for none
 * @param n the job's completions per row
 * @param responseFormat the job's response format, checked on the driver; null for none
 * @param columns the columns named for a row's own options, by option (absent where none is named); in
 *     chat mode a column named like the llm/v1/chat field is used when none is named (see {@link RowOptions})
 * @param parseResponse add {@code response_parsed}, the answer parsed under {@code responseFormat}
 * @param kvCacheMb most key/value cache a task holds for continuous batching, MiB
 * @param prefixCacheMb most key/value cache of prompt prefixes an executor keeps, MiB; 0 for no reuse
 * @param limits what one row may ask for
 */
public record ScoringOptions(String promptColumn, String messagesColumn, String idColumn, int batchSize,
    SearchOptions search, boolean chat, int lookaheadRows, int partitions, Batching batching, List<String> stop,
    int n, ResponseFormat responseFormat, Map<RowOption, String> columns, boolean parseResponse, int kvCacheMb,
    int prefixCacheMb, RowLimits limits) implements Serializable {

  /**
   * The options {@code values} settle on.
   *
   * @param chatModel whether the model's signature is the llm/v1/chat shape, which turns chat on
   * @throws IllegalArgumentException for a response format that cannot be read or is not valid,
   *     naming where it came from
   */
  public static ScoringOptions from(SettingValues values, boolean chatModel) {
    List<String> stop = values.get(Settings.STOP);
    EnumMap<RowOption, String> columns = new EnumMap<>(RowOption.class);
    for (RowOption o : RowOption.values()) {
      if (values.get(o.column()) != null) {
        columns.put(o, values.get(o.column()));
      }
    }
    return new ScoringOptions(values.get(Settings.PROMPT_COLUMN), values.get(Settings.MESSAGES_COLUMN),
        values.get(Settings.ID_COLUMN), values.get(Settings.BATCH_SIZE), values.search(),
        values.get(Settings.CHAT) || chatModel, values.get(Settings.LOOKAHEAD_ROWS), values.get(Settings.PARTITIONS),
        values.get(Settings.BATCHING), stop == null ? List.of() : stop, values.get(Settings.N),
        responseFormat(values.get(Settings.RESPONSE_FORMAT), Settings.RESPONSE_FORMAT.key() + " (from "
            + values.source(Settings.RESPONSE_FORMAT) + ")"), columns, values.get(Settings.PARSE_RESPONSE),
        values.get(Settings.KV_CACHE_MB), values.get(Settings.PREFIX_CACHE_MB), limits(values));
  }

  private static RowLimits limits(SettingValues values) {
    return new RowLimits(values.get(Settings.MAX_ROW_TOKENS), values.get(Settings.MAX_STOP_STRINGS),
        values.get(Settings.MAX_STOP_CHARS), values.get(Settings.MAX_FORMAT_CHARS),
        values.get(Settings.MAX_FORMAT_DEPTH));
  }

  /**
   * Reads a response format as users give it: inline, or {@code @path} to a file holding it.
   *
   * @return null for null text, or {@code text} / {@code {"type":"text"}} (no constraint)
   * @throws IllegalArgumentException naming {@code where} when the file cannot be read or the format
   *     is not valid
   */
  public static ResponseFormat responseFormat(String text, String where) {
    if (text == null || ResponseFormat.isPlainText(text)) {
      return null;
    }
    String body = text;
    String from = where;
    if (text.startsWith("@")) {
      Path file = Paths.get(text.substring(1));
      try {
        body = Files.readString(file, StandardCharsets.UTF_8);
      } catch (IOException e) {
        throw new IllegalArgumentException("Cannot read the response format file " + file + " named by " + where
            + ": " + e + ". Pass @PATH to a readable file, or the format inline", e);
      }
      from = where + ", file " + file;
    }
    try {
      return ResponseFormat.parse(body, from);
    } catch (EngineException e) {
      throw new IllegalArgumentException(e.getMessage(), e);
    }
  }

  /** Rows a task holds at once: the look-ahead, and never less than a batch. */
  public int windowRows() {
    return Math.max(lookaheadRows, batchSize);
  }

  /** The column scored: the messages column in chat mode, else the prompt column. */
  public String scoredColumn() {
    return chat ? messagesColumn : promptColumn;
  }
}
