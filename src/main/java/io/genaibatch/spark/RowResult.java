package io.genaibatch.spark;

import io.genaibatch.engine.ErrorKind;
import io.genaibatch.engine.FinishReason;
import io.genaibatch.engine.Generation;

/**
 * One row's values of the output contract (DESIGN.md "Output rows"), made from the engine's
 * {@link Generation}: the one mapping that {@link PartitionScorer} (job and Transformer) and
 * {@link GenAiFunctions} (SQL function) both use. An error row has no response, finish reason
 * {@code error}, its prompt tokens where the engine counted them, no completion tokens, and the
 * engine's message, which names no batch index.
 *
 * @param response the answer; null on error
 * @param finishReason {@code stop}, {@code length} or {@code error}
 * @param latencyMs milliseconds until the row's answer was done; 0 on error
 * @param error the user-facing message; null when ok
 */
record RowResult(String response, String finishReason, int promptTokens, int completionTokens, double latencyMs,
    String error) {

  static RowResult of(Generation g) {
    if (!g.ok()) {
      return new RowResult(null, FinishReason.ERROR.wire(), g.promptTokens(), 0, g.latencyMs(), g.error());
    }
    return new RowResult(g.text(), g.finishReason().wire(), g.promptTokens(), g.completionTokens(), g.latencyMs(),
        null);
  }

  /**
   * A row the engine never answered because the call around it failed (the model could not be
   * had, or was closed under its window).
   */
  static RowResult generationFailed(RuntimeException e) {
    return of(Generation.failed(0, 0, ErrorKind.GENERATION_FAILED, "generation failed: " + e.getMessage()));
  }

  int totalTokens() {
    return promptTokens + completionTokens;
  }

  boolean ok() {
    return error == null;
  }
}
