package io.genaibatch.engine;

import io.genaibatch.engine.batches.BatchPlanner;
import io.genaibatch.engine.loop.ContinuousBatches;

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
