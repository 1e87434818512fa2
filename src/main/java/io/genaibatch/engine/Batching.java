package io.genaibatch.engine;

/** How a window of prompts sorted by length is cut into native batches. */
public enum Batching {
  /** As few batches of at most the batch size as can be, sizes as even as can be. */
  FIXED,
  /**
   * Sizes chosen by expected cost, measured as the job runs (see {@code BatchPlanner}); the batch
   * size is the largest batch.
   */
  ADAPTIVE;

  /** Parses {@code fixed} or {@code adaptive}, naming both when neither matches. */
  public static Batching parse(String value) {
    for (Batching b : values()) {
      if (b.name().equalsIgnoreCase(value.trim())) {
        return b;
      }
    }
    throw new IllegalArgumentException("batching must be fixed or adaptive, got '" + value + "'");
  }
}
