package io.genaibatch.engine;

/**
 * The outcome for one prompt of a batch: either an answer with its usage, or an error.
 *
 * @param index the prompt's position in the batch it came in
 * @param text the decoded answer without special tokens; null on error
 * @param tokenIds the generated token ids, the stop token included; empty on error
 * @param promptTokens tokens of the prompt as the model's tokenizer counts them (0 when unknown)
 * @param completionTokens generated tokens, the stop token included
 * @param finishReason stop, length or error
 * @param latencyMs milliseconds from the start of the batch call until this prompt was done
 * @param errorKind why the prompt has no answer; null when ok
 * @param error what went wrong and the limit it broke, for users, without the prompt's index
 *     (that is {@code index}); null when ok
 */
@SuppressWarnings("ArrayRecordComponent") // token ids are read, never compared
public record Generation(
    int index,
    String text,
    int[] tokenIds,
    int promptTokens,
    int completionTokens,
    FinishReason finishReason,
    double latencyMs,
    ErrorKind errorKind,
    String error) {

  public int totalTokens() {
    return promptTokens + completionTokens;
  }

  public boolean ok() {
    return errorKind == null;
  }

  /** An error outcome: no answer, no completion tokens, finish reason {@link FinishReason#ERROR}. */
  public static Generation failed(int index, int promptTokens, ErrorKind kind, String error) {
    return new Generation(index, null, new int[0], promptTokens, 0, FinishReason.ERROR, 0.0, kind, error);
  }
}
