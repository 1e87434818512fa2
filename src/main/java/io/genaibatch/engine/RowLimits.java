package io.genaibatch.engine;

import java.io.Serializable;
import java.util.Optional;

/**
 * What one row may ask for, whatever its cells say: no cell of input may take a job down or hold a
 * task for long. Each limit is a job setting (declared with its default in {@code
 * io.genaibatch.settings.Settings}); a row that breaks one is that row's error, naming the limit.
 *
 * @param maxRowTokens most new tokens a row may ask for in all: {@code n} times its token budget
 * @param maxStopStrings most stop strings a row may give
 * @param maxStopChars longest stop string a row may give, in characters
 * @param maxFormatChars longest response format a row may give, in characters
 * @param maxFormatDepth deepest nesting of a row's response format (JSON objects and arrays, regex
 *     groups, grammar parentheses)
 */
public record RowLimits(int maxRowTokens, int maxStopStrings, int maxStopChars, int maxFormatChars,
    int maxFormatDepth) implements Serializable {

  /** No limit: for callers of the engine that trust their requests (tests, benchmarks). */
  public static final RowLimits NONE =
      new RowLimits(Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE);

  /**
   * Why a row of {@code n} completions of up to {@code budget} new tokens after {@code promptTokens}
   * asks too much, if it does: more new tokens in all than {@link #maxRowTokens}, or more key/value
   * cache for its completions ({@code n} regions of prompt and budget) than a task may hold.
   *
   * @param bytesPerPosition key/value bytes of one position of one row; 0 when unknown
   * @param kvLimitBytes most key/value bytes a task may hold
   */
  Optional<String> tokensBreach(int n, int promptTokens, int budget, long bytesPerPosition, long kvLimitBytes) {
    long inAll = (long) n * budget;
    if (inAll > maxRowTokens) {
      return Optional.of("the row asks for up to " + inAll + " new tokens in all (n " + n + " x " + budget
          + " new tokens), above the limit of --max-row-tokens " + maxRowTokens + ": lower its n or max_tokens, or"
          + " raise the limit");
    }
    long kvBytes = (long) n * (promptTokens + (long) budget) * bytesPerPosition;
    if (kvBytes > kvLimitBytes) {
      return Optional.of("the row's " + n + " completions of up to " + (promptTokens + budget) + " tokens need "
          + (kvBytes >> 20) + " MiB of key/value cache, above the limit of --kv-cache-mb " + (kvLimitBytes >> 20)
          + ": lower its n or max_tokens, or raise the limit");
    }
    return Optional.empty();
  }
}
