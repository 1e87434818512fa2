package io.genaibatch.engine;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Search (decoding) options for one generation call. Every field is optional: a null field
 * leaves the model's own default from {@code genai_config.json}'s {@code search} section in
 * force. Immutable and serializable, so a Spark driver can ship it to executors. Names, ranges
 * and how raw values are read are declared once, in {@code io.genaibatch.settings.Settings};
 * values reach this record already checked there.
 *
 * @param maxNewTokens most tokens generated per prompt, the stop token included
 * @param maxLength most tokens per prompt, prompt and answer together
 * @param temperature sampling temperature (only with {@code doSample})
 * @param topP nucleus sampling mass (only with {@code doSample})
 * @param topK sample among the k most likely tokens (only with {@code doSample})
 * @param doSample false for greedy search, true for sampling
 * @param seed random seed for sampling; fixed seeds give repeatable answers per batch
 * @param repetitionPenalty penalty for tokens already present; 1.0 means none
 */
public record SearchOptions(
    Integer maxNewTokens,
    Integer maxLength,
    Double temperature,
    Double topP,
    Integer topK,
    Boolean doSample,
    Long seed,
    Double repetitionPenalty)
    implements Serializable {

  /** No option set: the model's defaults apply. */
  public static final SearchOptions DEFAULTS =
      new SearchOptions(null, null, null, null, null, null, null, null);

  /**
   * Temperature 0 as greedy search, the meaning it has in OpenAI's API and the Python wrapper:
   * sampling at temperature 0 is undefined in onnxruntime-genai.
   */
  public SearchOptions normalized() {
    return temperature != null && temperature == 0.0 ? withTemperature(null).withDoSample(false) : this;
  }

  /** Greedy search with a fixed number of new tokens at most. */
  public static SearchOptions greedy(int maxNewTokens) {
    return DEFAULTS.withMaxNewTokens(maxNewTokens).withDoSample(false);
  }

  public SearchOptions withMaxNewTokens(Integer v) {
    return new SearchOptions(v, maxLength, temperature, topP, topK, doSample, seed, repetitionPenalty);
  }

  public SearchOptions withMaxLength(Integer v) {
    return new SearchOptions(maxNewTokens, v, temperature, topP, topK, doSample, seed, repetitionPenalty);
  }

  public SearchOptions withTemperature(Double v) {
    return new SearchOptions(maxNewTokens, maxLength, v, topP, topK, doSample, seed, repetitionPenalty);
  }

  public SearchOptions withTopP(Double v) {
    return new SearchOptions(maxNewTokens, maxLength, temperature, v, topK, doSample, seed, repetitionPenalty);
  }

  public SearchOptions withTopK(Integer v) {
    return new SearchOptions(maxNewTokens, maxLength, temperature, topP, v, doSample, seed, repetitionPenalty);
  }

  public SearchOptions withDoSample(Boolean v) {
    return new SearchOptions(maxNewTokens, maxLength, temperature, topP, topK, v, seed, repetitionPenalty);
  }

  public SearchOptions withSeed(Long v) {
    return new SearchOptions(maxNewTokens, maxLength, temperature, topP, topK, doSample, v, repetitionPenalty);
  }

  public SearchOptions withRepetitionPenalty(Double v) {
    return new SearchOptions(maxNewTokens, maxLength, temperature, topP, topK, doSample, seed, v);
  }

  /**
   * Overlays {@code other}'s set fields on this one: {@code other} wins where it has a value.
   */
  public SearchOptions overriddenBy(SearchOptions other) {
    return new SearchOptions(
        pick(other.maxNewTokens, maxNewTokens),
        pick(other.maxLength, maxLength),
        pick(other.temperature, temperature),
        pick(other.topP, topP),
        pick(other.topK, topK),
        pick(other.doSample, doSample),
        pick(other.seed, seed),
        pick(other.repetitionPenalty, repetitionPenalty));
  }

  private static <T> T pick(T first, T second) {
    return first != null ? first : second;
  }

  /**
   * The set options under onnxruntime-genai's search option names: logged as the run's settled
   * options, and (but the budget, {@link #batchOptions()}) given to its generator. The one place
   * that spells them.
   */
  public Map<String, Object> asMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    putIf(m, "max_new_tokens", maxNewTokens);
    putIf(m, "max_length", maxLength);
    putIf(m, "temperature", temperature);
    putIf(m, "top_p", topP);
    putIf(m, "top_k", topK);
    putIf(m, "do_sample", doSample);
    putIf(m, "random_seed", seed);
    putIf(m, "repetition_penalty", repetitionPenalty);
    return m;
  }

  /**
   * The set options but the token budget ({@code max_new_tokens}, {@code max_length}), under the same
   * native names: what the rows of one native batch must share, and what its generator is given.
   */
  public Map<String, Object> batchOptions() {
    Map<String, Object> m = asMap();
    m.remove("max_new_tokens");
    m.remove("max_length");
    return m;
  }

  private static void putIf(Map<String, Object> m, String k, Object v) {
    if (v != null) {
      m.put(k, v);
    }
  }
}
