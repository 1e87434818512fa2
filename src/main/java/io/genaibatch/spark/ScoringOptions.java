package io.genaibatch.spark;

import io.genaibatch.engine.Batching;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import java.io.Serializable;

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
 */
public record ScoringOptions(String promptColumn, String messagesColumn, String idColumn, int batchSize,
    SearchOptions search, boolean chat, int lookaheadRows, int partitions, Batching batching)
    implements Serializable {

  /**
   * The options {@code values} settle on.
   *
   * @param chatModel whether the model's signature is the llm/v1/chat shape, which turns chat on
   */
  public static ScoringOptions from(SettingValues values, boolean chatModel) {
    return new ScoringOptions(values.get(Settings.PROMPT_COLUMN), values.get(Settings.MESSAGES_COLUMN),
        values.get(Settings.ID_COLUMN), values.get(Settings.BATCH_SIZE), values.search(),
        values.get(Settings.CHAT) || chatModel, values.get(Settings.LOOKAHEAD_ROWS), values.get(Settings.PARTITIONS),
        values.get(Settings.BATCHING));
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
