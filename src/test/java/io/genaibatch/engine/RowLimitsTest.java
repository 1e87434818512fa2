package io.genaibatch.engine;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** What one row may ask for: new tokens in all, and its completions' key/value cache. */
class RowLimitsTest {
  static final RowLimits LIMITS = new RowLimits(32768, 16, 256, 65536, 32);

  @Test
  void aRowMayAskForItsTokensInAllUpToTheLimit() {
    assertThat(LIMITS.tokensBreach(8, 100, 4096, 0, Long.MAX_VALUE)).isEmpty();
    assertThat(LIMITS.tokensBreach(64, 100, 4000, 0, Long.MAX_VALUE)).hasValueSatisfying(why ->
        assertThat(why).contains("256000 new tokens in all (n 64 x 4000").contains("--max-row-tokens 32768"));
  }

  @Test
  void aRowsCompletionsMustFitInTheTasksKeyValueCache() {
    // 4 completions of 1000 positions at 1 MiB a position: 4000 MiB, above a 1024 MiB limit.
    assertThat(LIMITS.tokensBreach(4, 200, 800, 1 << 20, 1024L << 20)).hasValueSatisfying(why ->
        assertThat(why).contains("4 completions of up to 1000 tokens need 4000 MiB").contains("--kv-cache-mb 1024"));
    assertThat(LIMITS.tokensBreach(1, 200, 800, 1 << 20, 1024L << 20)).isEmpty();
    assertThat(RowLimits.NONE.tokensBreach(64, 100, 4096, 0, Long.MAX_VALUE)).isEmpty();
  }
}
