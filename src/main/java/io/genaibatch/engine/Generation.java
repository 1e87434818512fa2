package io.genaibatch.engine;

import java.util.List;

/**
 * The outcome for one prompt of a batch: either its completions with their usage, or an error.
 *
 * @param index the prompt's position in the batch it came in
 * @param choices the completions, {@code n} of them (one unless the request asked for more); empty
 *     on error
 * @param promptTokens tokens of the prompt as the model's tokenizer counts them (0 when unknown)
 * @param completionTokens tokens generated over all completions, stop tokens included (as OpenAI's
 *     usage counts {@code n} completions)
 * @param errorKind why the prompt has no answer; null when ok
 * @param error what went wrong and the limit it broke, for users, without the prompt's index
 *     (that is {@code index}); null when ok
 */
public record Generation(
    int index,
    List<Choice> choices,
    int promptTokens,
    int completionTokens,
    ErrorKind errorKind,
    String error) {

  public Generation {
    choices = List.copyOf(choices);
  }

  /** A successful outcome: usage is summed over {@code choices}. */
  public static Generation of(int index, int promptTokens, List<Choice> choices) {
    int completion = 0;
    for (Choice c : choices) {
      completion += c.completionTokens();
    }
    return new Generation(index, choices, promptTokens, completion, null, null);
  }

  /** An error outcome: no answer, no completion tokens, finish reason {@link FinishReason#ERROR}. */
  public static Generation failed(int index, int promptTokens, ErrorKind kind, String error) {
    return new Generation(index, List.of(), promptTokens, 0, kind, error);
  }

  public int totalTokens() {
    return promptTokens + completionTokens;
  }

  public boolean ok() {
    return errorKind == null;
  }

  /** The first completion's text; null on error. */
  public String text() {
    return choices.isEmpty() ? null : choices.get(0).text();
  }

  /** The first completion's tokens; empty on error. */
  public int[] tokenIds() {
    return choices.isEmpty() ? new int[0] : choices.get(0).tokenIds();
  }

  /** The first completion's finish reason; {@link FinishReason#ERROR} on error. */
  public FinishReason finishReason() {
    return choices.isEmpty() ? FinishReason.ERROR : choices.get(0).finishReason();
  }

  /** Milliseconds until the last completion was done; 0 on error. */
  public double latencyMs() {
    double max = 0;
    for (Choice c : choices) {
      max = Math.max(max, c.latencyMs());
    }
    return max;
  }
}
