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
 * @param error what went wrong, naming the prompt index and the limit; null when ok
 */
public record Generation(
    int index,
    String text,
    int[] tokenIds,
    int promptTokens,
    int completionTokens,
    FinishReason finishReason,
    double latencyMs,
    String error) {

  public int totalTokens() {
    return promptTokens + completionTokens;
  }

  public boolean ok() {
    return error == null;
  }

  static Generation failed(int index, int promptTokens, String error) {
    return new Generation(index, null, new int[0], promptTokens, 0, FinishReason.ERROR, 0.0, error);
  }
}
