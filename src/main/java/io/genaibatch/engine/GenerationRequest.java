package io.genaibatch.engine;

import io.genaibatch.engine.guidance.Guidance;
import java.io.Serializable;
import java.util.List;

/**
 * One prompt to generate for, with the options that apply to it alone: a row's own {@code
 * max_tokens}, {@code temperature}, {@code top_p}, stop strings, number of completions and response
 * format, already laid over the job's. Requests whose native options differ (everything but the
 * token budget) never share a native batch; see {@link LlmModel#score(List, int, Batching)}.
 *
 * @param prompt the prompt text; null or blank comes back as an error
 * @param options the search options for this prompt alone
 * @param stop strings that end a completion where they first appear in its decoded text (the answer
 *     excludes them); empty for none
 * @param n completions wanted, at least 1; more than 1 needs sampling
 * @param guidance constrained decoding, or null
 */
public record GenerationRequest(String prompt, SearchOptions options, List<String> stop, int n, Guidance guidance)
    implements Serializable {

  public GenerationRequest {
    options = options == null ? SearchOptions.DEFAULTS : options;
    stop = stop == null ? List.of() : List.copyOf(stop);
    if (n < 1) {
      throw new EngineException("n must be at least 1, got " + n);
    }
  }

  /** A prompt with {@code options} and nothing else. */
  public static GenerationRequest of(String prompt, SearchOptions options) {
    return new GenerationRequest(prompt, options, List.of(), 1, null);
  }
}
