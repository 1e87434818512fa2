package io.genaibatch.spark;

import io.genaibatch.engine.Batching;
import io.genaibatch.engine.SearchOptions;
import java.io.Serializable;

/**
 * How rows are scored: which columns, batch size, search options. Immutable.
 *
 * @param promptColumn the column with the prompt text (the signature's {@code prompt})
 * @param messagesColumn the column with chat messages (array of role/content structs)
 * @param idColumn the column that identifies a row, for resume; may be null
 * @param batchSize prompts per native generation call
 * @param search search options after precedence was applied
 * @param chat score the messages column with the chat template, emitting chat_completion
 * @param lookaheadRows rows a task reads ahead and sorts by prompt length before cutting them into
 *     batches (at least {@code batchSize} are read either way)
 * @param partitions {@link #PARTITIONS_AUTO}: repartition to the task slots when the input has
 *     fewer partitions; {@link #PARTITIONS_INPUT}: keep the input's; a positive number: exactly that
 * @param batching fixed batch sizes, or sizes chosen by measured cost up to {@code batchSize}
 */
public record ScoringOptions(String promptColumn, String messagesColumn, String idColumn, int batchSize,
    SearchOptions search, boolean chat, int lookaheadRows, int partitions, Batching batching)
    implements Serializable {

  public static final String PROMPT_COLUMN_DEFAULT = "prompt";
  public static final String MESSAGES_COLUMN_DEFAULT = "messages";
  public static final int BATCH_SIZE_DEFAULT = 8;
  /** Enough rows that a sorted window pads little, few enough to hold in a task. */
  public static final int LOOKAHEAD_ROWS_DEFAULT = 256;
  public static final int PARTITIONS_AUTO = 0;
  public static final int PARTITIONS_INPUT = -1;

  public ScoringOptions {
    if (batchSize < 1) {
      throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
    }
    if (lookaheadRows < 1) {
      throw new IllegalArgumentException("look-ahead rows must be >= 1, got " + lookaheadRows);
    }
    if (batching == null) {
      throw new IllegalArgumentException("batching must be fixed or adaptive");
    }
    if (partitions < PARTITIONS_INPUT) {
      throw new IllegalArgumentException("partitions must be auto, input or a positive number, got " + partitions);
    }
  }

  /** Default look-ahead, partitioning and batching. */
  public ScoringOptions(String promptColumn, String messagesColumn, String idColumn, int batchSize,
      SearchOptions search, boolean chat) {
    this(promptColumn, messagesColumn, idColumn, batchSize, search, chat, LOOKAHEAD_ROWS_DEFAULT, PARTITIONS_AUTO,
        Batching.ADAPTIVE);
  }


  /** Rows a task holds at once: the look-ahead, and never less than a batch. */
  public int windowRows() {
    return Math.max(lookaheadRows, batchSize);
  }

  /**
   * Parses a partitions setting: {@code auto}, {@code input} or a positive number.
   *
   * @throws IllegalArgumentException naming the accepted forms
   */
  public static int parsePartitions(String value) {
    String v = value.trim().toLowerCase(java.util.Locale.ROOT);
    if (v.equals("auto")) {
      return PARTITIONS_AUTO;
    }
    if (v.equals("input")) {
      return PARTITIONS_INPUT;
    }
    try {
      int n = Integer.parseInt(v);
      if (n > 0) {
        return n;
      }
    } catch (NumberFormatException e) {
      // falls through to the message below
    }
    throw new IllegalArgumentException("partitions must be auto, input or a positive number, got '" + value + "'");
  }

  /** The partitions setting as {@link #parsePartitions} reads it: {@code auto}, {@code input} or the number. */
  public static String partitionsLabel(int partitions) {
    return partitions == PARTITIONS_AUTO ? "auto" : partitions == PARTITIONS_INPUT ? "input"
        : String.valueOf(partitions);
  }

  public static ScoringOptions defaults() {
    return new ScoringOptions(PROMPT_COLUMN_DEFAULT, MESSAGES_COLUMN_DEFAULT, null, BATCH_SIZE_DEFAULT,
        SearchOptions.DEFAULTS, false);
  }
}
