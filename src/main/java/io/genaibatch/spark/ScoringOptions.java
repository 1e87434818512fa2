package io.genaibatch.spark;

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
 */
public record ScoringOptions(String promptColumn, String messagesColumn, String idColumn, int batchSize,
    SearchOptions search, boolean chat) implements Serializable {

  public static final String PROMPT_COLUMN_DEFAULT = "prompt";
  public static final String MESSAGES_COLUMN_DEFAULT = "messages";
  public static final int BATCH_SIZE_DEFAULT = 8;

  public ScoringOptions {
    if (batchSize < 1) {
      throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
    }
  }

  public static ScoringOptions defaults() {
    return new ScoringOptions(PROMPT_COLUMN_DEFAULT, MESSAGES_COLUMN_DEFAULT, null, BATCH_SIZE_DEFAULT,
        SearchOptions.DEFAULTS, false);
  }
}
