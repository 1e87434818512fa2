package io.genaibatch.engine;

/**
 * The token budget of one prompt, as the Python wrapper ({@code phi3_pyfunc.token_budget}) also
 * counts it; both are held to the cases in {@code src/test/resources/search-semantics.json}
 * (docs/search-options.md).
 */
public final class TokenBudget {
  private TokenBudget() {}

  /**
   * The most tokens a prompt and its answer may have together: {@code min(maxLength, context)}
   * when {@code maxLength} is set, else {@code context} when {@code maxNewTokens} is set, else
   * {@code min(defaultMaxLength, context)}. A prompt of this many tokens or more is refused.
   */
  static int totalLimit(int context, Integer maxLength, Integer maxNewTokens, int defaultMaxLength) {
    return maxLength != null ? Math.min(maxLength, context)
        : maxNewTokens != null ? context : Math.min(defaultMaxLength, context);
  }

  /**
   * New tokens for a prompt of {@code promptTokens} under {@code totalLimit}, capped by {@code
   * maxNewTokens} when set; less than 1 when the prompt leaves no room.
   */
  static int newTokens(int promptTokens, int totalLimit, Integer maxNewTokens) {
    int b = totalLimit - promptTokens;
    return maxNewTokens != null ? Math.min(b, maxNewTokens) : b;
  }
}
