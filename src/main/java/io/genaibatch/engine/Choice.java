package io.genaibatch.engine;

/**
 * One completion of a prompt: a request for {@code n} completions gets {@code n} of them.
 *
 * @param text the decoded answer without special tokens, cut before a stop string that ended it
 * @param tokenIds the generated token ids, the end-of-sequence token or the token that completed a
 *     stop string included
 * @param finishReason {@link FinishReason#STOP} (end of sequence or a stop string) or {@link
 *     FinishReason#LENGTH}
 * @param latencyMs milliseconds from the start of the batch call until this completion was done
 */
@SuppressWarnings("ArrayRecordComponent") // token ids are read, never compared
public record Choice(String text, int[] tokenIds, FinishReason finishReason, double latencyMs) {

  /** Tokens generated for this completion. */
  public int completionTokens() {
    return tokenIds.length;
  }
}
