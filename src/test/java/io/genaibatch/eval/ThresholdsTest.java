package io.genaibatch.eval;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import org.junit.jupiter.api.Test;

class ThresholdsTest {
  private static final Thresholds F1_AND_TEN_ANSWERS = new Thresholds(Map.of("eval_token_f1", 0.05), 10);

  @Test
  void aDropBeyondTheLimitNamesTheMetricBothValuesAndTheLimit() {
    assertThat(F1_AND_TEN_ANSWERS.check(Map.of("eval_token_f1", 0.70), Map.of("eval_token_f1", 0.58), 3L))
        .containsExactly("eval_token_f1 fell by 0.120 (0.700 -> 0.580), more than the allowed 0.050");
  }

  @Test
  void tooManyChangedAnswers() {
    assertThat(F1_AND_TEN_ANSWERS.check(Map.of("eval_token_f1", 0.70), Map.of("eval_token_f1", 0.70), 17L))
        .containsExactly("17 answers changed, more than the allowed 10");
    assertThat(new Thresholds(Map.of(), 0).check(null, Map.of(), 1L))
        .containsExactly("1 answer changed, more than the allowed 0");
  }

  @Test
  void bothBreachesAreReported() {
    assertThat(F1_AND_TEN_ANSWERS.check(Map.of("eval_token_f1", 0.70), Map.of("eval_token_f1", 0.58), 17L))
        .hasSize(2);
  }

  @Test
  void withinTheLimitsPasses() {
    // 0.75 - 0.70 is 0.05000000000000004 in doubles: a drop of exactly the limit still passes.
    assertThat(F1_AND_TEN_ANSWERS.check(Map.of("eval_token_f1", 0.75), Map.of("eval_token_f1", 0.70), 10L)).isEmpty();
    // A rise is never a breach.
    assertThat(F1_AND_TEN_ANSWERS.check(Map.of("eval_token_f1", 0.5), Map.of("eval_token_f1", 0.9), 0L)).isEmpty();
  }

  @Test
  void aFirstRunHasNothingToFallFrom() {
    assertThat(F1_AND_TEN_ANSWERS.check(null, Map.of("eval_token_f1", 0.58), null)).isEmpty();
    assertThat(Thresholds.NONE.check(Map.of("eval_token_f1", 0.9), Map.of("eval_token_f1", 0.1), 1000L)).isEmpty();
  }

  @Test
  void aLimitedMetricMissingFromThisRunIsABreach() {
    // A typo in the config, or a run whose references vanished, must not pass silently.
    assertThat(new Thresholds(Map.of("eval_tokenf1", 0.05), null)
        .check(Map.of("eval_token_f1", 0.7), Map.of("eval_token_f1", 0.7), 0L))
        .containsExactly("eval_tokenf1 is not among this run's metrics [eval_token_f1], "
            + "so its allowed drop of 0.050 cannot be checked");
  }

  @Test
  void aScorerMetricIsLeftToEvaluateRunEvenWhenThisRunLacksIt() {
    // answered/mean is logged after the job by evaluate_run.py, which checks its limit: the job
    // neither misses it nor judges its drop, and still checks its own metrics beside it.
    Thresholds t = new Thresholds(Map.of("answered/mean", 0.1, "eval_token_f1", 0.05), null);
    assertThat(Thresholds.isScorerMetric("answered/mean")).isTrue();
    assertThat(Thresholds.isScorerMetric("eval_token_f1")).isFalse();
    assertThat(t.check(Map.of("answered/mean", 1.0, "eval_token_f1", 0.7), Map.of("eval_token_f1", 0.7), 0L))
        .isEmpty();
    assertThat(t.check(Map.of("answered/mean", 1.0, "eval_token_f1", 0.7), Map.of("answered/mean", 0.0,
        "eval_token_f1", 0.6), 0L)).containsExactly("eval_token_f1 fell by 0.100 (0.700 -> 0.600), more than the"
        + " allowed 0.050");
  }
}
