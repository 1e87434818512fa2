package io.genaibatch.eval;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;

/**
 * How much worse a run may be than the previous one before the nightly job calls it a failure.
 *
 * <p>Both limits are absolute, in the metric's own units: {@code {eval_token_f1: 0.05}} allows
 * token F1 to fall from 0.70 to 0.65, not by 5% of 0.70. A rise never breaches; for a metric
 * where lower is better, leave it out.
 *
 * <p>Which limits are whose: a name with a {@value #SCORER_METRIC_MARK} is a scorer's metric
 * ({@code answered/mean}, as mlflow.genai.evaluate names them), logged after the job by
 * src/main/python/genai_batch/evaluate_run.py, which checks its limit there (jobs/nightly.sh exits 5
 * on a breach); the job checks every other name and passes over these ({@link #isScorerMetric}).
 *
 * @param maxMetricDrop metric name (as logged, e.g. {@code eval_token_f1} or {@code
 *     answered/mean}) to the most it may fall; empty for no limit
 * @param maxAnswersChanged the most answers that may differ from the previous run's; null for no
 *     limit
 */
public record Thresholds(Map<String, Double> maxMetricDrop, Integer maxAnswersChanged) {
  /** No limits: every run passes. */
  public static final Thresholds NONE = new Thresholds(Map.of(), null);

  /**
   * Floating-point slack: 0.75 - 0.70 is 0.05000000000000004 in doubles, and a drop of exactly
   * the limit must pass.
   */
  private static final double EPSILON = 1e-9;

  /** What marks a scorer's metric: {@code <scorer>/mean}. evaluate_run.py's is_scorer_metric says the same. */
  public static final String SCORER_METRIC_MARK = "/";

  public Thresholds {
    Map<String, Double> copy = new LinkedHashMap<>();
    if (maxMetricDrop != null) {
      maxMetricDrop.forEach((name, limit) -> {
        if (name == null || name.isBlank()) {
          throw new IllegalArgumentException("max_metric_drop has a blank metric name");
        }
        if (limit == null || limit.isNaN() || limit.isInfinite() || limit < 0) {
          throw new IllegalArgumentException("max_metric_drop." + name + " is " + limit
              + "; it must be a number >= 0 (the most the metric may fall)");
        }
        copy.put(name, limit);
      });
    }
    maxMetricDrop = Collections.unmodifiableMap(copy);
    if (maxAnswersChanged != null && maxAnswersChanged < 0) {
      throw new IllegalArgumentException("max_answers_changed is " + maxAnswersChanged
          + "; it must be >= 0, or absent for no limit");
    }
  }

  /**
   * The breaches, one message each, naming the metric, both values and the limit; empty when the
   * run passes.
   *
   * <p>Scorers' metrics ({@link #isScorerMetric}) are not the job's to check: they are left out here.
   * A limited metric that the current run lacks is a breach (a misspelt name, or evaluation
   * that silently stopped, must not pass night after night); one that only the previous run lacks
   * is not (the first run with it has nothing to fall from).
   *
   * @param previousMetrics the previous run's metrics (e.g. its {@link Evaluation.Result#metrics()}
   *     or what MLflow logged for it); null or empty when there is no previous run
   * @param currentMetrics this run's metrics
   * @param answersChanged {@link RunComparison.Result#answersChanged()}; null when the runs were
   *     not compared
   */
  public List<String> check(Map<String, Double> previousMetrics, Map<String, Double> currentMetrics,
      Long answersChanged) {
    Map<String, Double> previous = previousMetrics == null ? Map.of() : previousMetrics;
    Map<String, Double> current = currentMetrics == null ? Map.of() : currentMetrics;
    List<String> breaches = new ArrayList<>();
    maxMetricDrop.forEach((name, limit) -> {
      if (isScorerMetric(name)) {
        return;
      }
      Double now = current.get(name);
      Double before = previous.get(name);
      if (now == null || now.isNaN()) {
        breaches.add(String.format(Locale.ROOT,
            "%s is not among this run's metrics %s, so its allowed drop of %.3f cannot be checked",
            name, new TreeSet<>(current.keySet()), limit));
      } else if (before != null && !before.isNaN() && before - now > limit + EPSILON) {
        breaches.add(String.format(Locale.ROOT, "%s fell by %.3f (%.3f -> %.3f), more than the allowed %.3f",
            name, before - now, before, now, limit));
      }
    });
    if (maxAnswersChanged != null && answersChanged != null && answersChanged > maxAnswersChanged) {
      breaches.add(String.format(Locale.ROOT, "%d %s changed, more than the allowed %d",
          answersChanged, answersChanged == 1 ? "answer" : "answers", maxAnswersChanged));
    }
    return breaches;
  }

  /**
   * Whether a {@code max_metric_drop} name is a scorer's metric, whose limit evaluate_run.py checks
   * after the job rather than the job itself.
   */
  public static boolean isScorerMetric(String name) {
    return name.contains(SCORER_METRIC_MARK);
  }
}
