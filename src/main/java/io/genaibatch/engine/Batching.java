package io.genaibatch.engine;

/** How a window of prompts becomes batches. */
public enum Batching {
  /**
   * Continuous batching: up to the batch size of rows decode together, a row that ends leaves its
   * slot at once and a waiting row takes it (see {@code ContinuousBatches}). Rows with a response
   * format, and models whose decoder graph the loop cannot run, take onnxruntime-genai's generator.
   */
  CONTINUOUS,
  /** As few batches of at most the batch size as can be, sizes as even as can be. */
  FIXED,
  /**
   * Sizes chosen by expected cost, measured as the job runs (see {@code BatchPlanner}); the batch
   * size is the largest batch.
   */
  ADAPTIVE;

  /**
   * Whether windows go to the continuous loop: continuous batching, more than one row a step
   * ({@code --batch-size 1} runs each prompt alone through onnxruntime-genai, the seed wrapper's
   * answers), on the CPU (an accelerator batches in onnxruntime-genai). The one rule: the executor
   * loads the model for the loop by it, and {@code LlmModel} sends rows by it (a row's response format
   * the loop cannot guide, or a graph it cannot run, then takes the static batches).
   */
  public boolean continuous(int batchSize, boolean cpu) {
    return this == CONTINUOUS && batchSize > 1 && cpu;
  }

  /** Whether windows run through onnxruntime-genai's static generator batches. */
  public boolean staticBatches() {
    return this != CONTINUOUS;
  }

  /** Parses {@code continuous}, {@code adaptive} or {@code fixed}, naming them when none matches. */
  public static Batching parse(String value) {
    for (Batching b : values()) {
      if (b.name().equalsIgnoreCase(value.trim())) {
        return b;
      }
    }
    throw new IllegalArgumentException("batching must be continuous, adaptive or fixed, got '" + value + "'");
  }
}
