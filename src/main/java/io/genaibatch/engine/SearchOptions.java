package io.genaibatch.engine;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Search (decoding) options for one generation call. Every field is optional: a null field
 * leaves the model's own default from {@code genai_config.json}'s {@code search} section in
 * force. Immutable and serializable, so a Spark driver can ship it to executors.
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

  public SearchOptions {
    positive("maxNewTokens", maxNewTokens);
    positive("maxLength", maxLength);
    positive("topK", topK);
    if (temperature != null && !(temperature >= 0)) {
      throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
    }
    if (topP != null && !(topP > 0 && topP <= 1)) {
      throw new IllegalArgumentException("topP must be in (0, 1], got " + topP);
    }
    if (repetitionPenalty != null && !(repetitionPenalty > 0)) {
      throw new IllegalArgumentException("repetitionPenalty must be > 0, got " + repetitionPenalty);
    }
  }

  private static void positive(String name, Integer v) {
    if (v != null && v < 1) {
      throw new IllegalArgumentException(name + " must be >= 1, got " + v);
    }
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
   * These options with a temperature of 0 read as greedy search (no temperature, {@code doSample}
   * false), as OpenAI-style clients mean it. Applied once, after every layer is merged.
   */
  public SearchOptions normalized() {
    return temperature != null && temperature == 0.0 ? withTemperature(null).withDoSample(false) : this;
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
   * Options from a string-keyed map, as in an MLmodel's {@code model_config}, a YAML config or
   * Spark conf: {@code max_new_tokens} (or {@code max_tokens}), {@code max_length}, {@code
   * temperature}, {@code top_p}, {@code top_k}, {@code do_sample}, {@code seed} (or {@code
   * random_seed}), {@code repetition_penalty}. Unknown keys are ignored; a bad value is refused
   * naming the key.
   */
  public static SearchOptions fromMap(Map<String, ?> m, String source) {
    try {
      return new SearchOptions(
          integer(m, source, "max_new_tokens", "max_tokens"),
          integer(m, source, "max_length"),
          number(m, source, "temperature"),
          number(m, source, "top_p"),
          integer(m, source, "top_k"),
          bool(m, source, "do_sample"),
          m.get("seed") != null || m.get("random_seed") != null
              ? Long.valueOf(integer(m, source, "seed", "random_seed")) : null,
          number(m, source, "repetition_penalty"));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
    }
  }

  private static Object first(Map<String, ?> m, String... keys) {
    for (String k : keys) {
      if (m.get(k) != null) {
        return m.get(k);
      }
    }
    return null;
  }

  private static Integer integer(Map<String, ?> m, String source, String... keys) {
    Object v = first(m, keys);
    if (v == null) {
      return null;
    }
    try {
      double d = v instanceof Number n ? n.doubleValue() : Double.parseDouble(v.toString().trim());
      if (d != Math.rint(d)) {
        throw new NumberFormatException();
      }
      return (int) d;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(keys[0] + " must be a whole number, got '" + v + "'");
    }
  }

  private static Double number(Map<String, ?> m, String source, String key) {
    Object v = m.get(key);
    if (v == null) {
      return null;
    }
    try {
      return v instanceof Number n ? n.doubleValue() : Double.parseDouble(v.toString().trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(key + " must be a number, got '" + v + "'");
    }
  }

  private static Boolean bool(Map<String, ?> m, String source, String key) {
    Object v = m.get(key);
    if (v == null) {
      return null;
    }
    if (v instanceof Boolean b) {
      return b;
    }
    String s = v.toString().trim().toLowerCase(java.util.Locale.ROOT);
    if (s.equals("true") || s.equals("false")) {
      return Boolean.valueOf(s);
    }
    throw new IllegalArgumentException(key + " must be true or false, got '" + v + "'");
  }

  /** The set options under onnxruntime-genai's search option names, for logging. */
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

  private static void putIf(Map<String, Object> m, String k, Object v) {
    if (v != null) {
      m.put(k, v);
    }
  }
}
