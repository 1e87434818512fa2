package io.genaibatch.eval;

import static io.genaibatch.eval.Evaluation.column;
import static io.genaibatch.eval.Evaluation.require;
import static org.apache.spark.sql.functions.coalesce;
import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.count;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.not;
import static org.apache.spark.sql.functions.when;

import io.genaibatch.common.OutputColumns;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

/**
 * Compares this run's output with a previous run's, prompt by prompt (joined on the id column):
 * which answers changed, and how tokens and latency moved. A nightly job uses it to notice a model
 * or config change that rewrote answers nobody meant to touch.
 *
 * <p>Answers are compared as exact strings, null-safely: an error row (null response) against an
 * answer is a change, two error rows are not. Normalised comparison is not used here on purpose:
 * a change in casing or punctuation is still a change a downstream consumer sees.
 */
public final class RunComparison {
  /** Per-prompt columns (besides the id column, which keeps its name). */
  public static final String PROMPT = "prompt";
  public static final String PREVIOUS_RESPONSE = "previous_response";
  public static final String CURRENT_RESPONSE = "current_response";
  public static final String CHANGED = "changed";
  public static final String COMPLETION_TOKENS_DELTA = "completion_tokens_delta";
  public static final String LATENCY_MS_DELTA = "latency_ms_delta";

  /** Summary metrics. */
  public static final String COMPARE_ANSWERS_CHANGED = "compare_answers_changed";
  public static final String COMPARE_PROMPTS_COMPARED = "compare_prompts_compared";
  public static final String COMPARE_PROMPTS_NEW = "compare_prompts_new";
  public static final String COMPARE_PROMPTS_MISSING = "compare_prompts_missing";
  /** Followed by the evaluation metric's full name: {@code compare_delta_eval_token_f1}. */
  public static final String COMPARE_DELTA_PREFIX = "compare_delta_";

  private static final String PREV = "__genai_batch_prev_";
  private static final String CUR = "__genai_batch_cur_";
  private static final String ID = "id";
  private static final String PROMPT_IN = "prompt";
  private static final String TOKENS = "tokens";
  private static final String LATENCY = "latency";
  private static final String PRESENT = "present";
  private static final int DUPLICATES_SHOWN = 5;

  private RunComparison() {}

  /**
   * The per-prompt comparison and its summary.
   *
   * @param prompts one row per id found in either run: the id column, the prompt (the
   *     current run's, else the previous run's; absent when no prompt column was given), {@code
   *     previous_response}, {@code current_response}, {@code changed}, {@code
   *     completion_tokens_delta} and {@code latency_ms_delta} (current minus previous). For an id
   *     in only one run, {@code changed} and the deltas are null. Lazy: cache it before acting on
   *     it more than once.
   * @param metrics {@code compare_answers_changed}, {@code compare_prompts_compared}, {@code
   *     compare_prompts_new} (ids only in the current run), {@code compare_prompts_missing} (only
   *     in the previous run), and {@code compare_delta_eval_*} (current minus previous) for each
   *     evaluation metric both runs have
   */
  public record Result(Dataset<Row> prompts, Map<String, Double> metrics) {
    public Result {
      metrics = Collections.unmodifiableMap(new LinkedHashMap<>(metrics));
    }

    /** How many answers changed, for {@link Thresholds#check}. */
    public long answersChanged() {
      return metrics.get(COMPARE_ANSWERS_CHANGED).longValue();
    }
  }

  /** {@link #compare(Dataset, Dataset, String, String, Map, Map)} without evaluation metrics. */
  public static Result compare(Dataset<Row> previous, Dataset<Row> current, String idColumn, String promptColumn) {
    return compare(previous, current, idColumn, promptColumn, null, null);
  }

  /**
   * Joins the two runs on the id column and counts what changed; runs a few Spark jobs (a check
   * that each run has one row per id, then the summary).
   *
   * @param previous the earlier run's output
   * @param current this run's output
   * @param idColumn the column that identifies a prompt in both runs; a null id matches nothing
   * @param promptColumn the prompt (or messages) column, copied into the result; null to leave it out
   * @param previousEval the previous run's {@link Evaluation.Result#metrics()}, or null
   * @param currentEval this run's {@link Evaluation.Result#metrics()}, or null
   * @throws IllegalArgumentException if a column is missing or a run has two rows for one id
   */
  public static Result compare(Dataset<Row> previous, Dataset<Row> current, String idColumn, String promptColumn,
      Map<String, Double> previousEval, Map<String, Double> currentEval) {
    if (idColumn == null) {
      throw new IllegalArgumentException("Comparing runs needs an id column to match prompts across runs; "
          + "set the job's id column");
    }
    Dataset<Row> prev = side(previous, "Previous run's output", PREV, idColumn, promptColumn);
    Dataset<Row> cur = side(current, "Current run's output", CUR, idColumn, promptColumn);
    requireUniqueIds(previous, "Previous run's output", idColumn);
    requireUniqueIds(current, "Current run's output", idColumn);

    Dataset<Row> joined = prev.join(cur, col(PREV + ID).equalTo(col(CUR + ID)), "full_outer");
    Column inBoth = col(PREV + PRESENT).isNotNull().and(col(CUR + PRESENT).isNotNull());
    List<Column> out = new ArrayList<>();
    out.add(coalesce(col(CUR + ID), col(PREV + ID)).as(idColumn));
    if (promptColumn != null) {
      out.add(coalesce(col(CUR + PROMPT_IN), col(PREV + PROMPT_IN)).as(PROMPT));
    }
    out.add(col(PREV + OutputColumns.RESPONSE).as(PREVIOUS_RESPONSE));
    out.add(col(CUR + OutputColumns.RESPONSE).as(CURRENT_RESPONSE));
    out.add(when(inBoth, not(col(PREV + OutputColumns.RESPONSE).eqNullSafe(col(CUR + OutputColumns.RESPONSE))))
        .as(CHANGED));
    out.add(col(CUR + TOKENS).minus(col(PREV + TOKENS)).as(COMPLETION_TOKENS_DELTA));
    out.add(col(CUR + LATENCY).minus(col(PREV + LATENCY)).as(LATENCY_MS_DELTA));
    Dataset<Row> prompts = joined.select(out.toArray(Column[]::new));

    Row agg = joined.agg(
        count(when(inBoth.and(not(col(PREV + OutputColumns.RESPONSE).eqNullSafe(col(CUR + OutputColumns.RESPONSE)))),
            lit(1))),
        count(when(inBoth, lit(1))),
        count(when(col(PREV + PRESENT).isNull(), lit(1))),
        count(when(col(CUR + PRESENT).isNull(), lit(1))))
        .first();
    Map<String, Double> metrics = new LinkedHashMap<>();
    metrics.put(COMPARE_ANSWERS_CHANGED, (double) agg.getLong(0));
    metrics.put(COMPARE_PROMPTS_COMPARED, (double) agg.getLong(1));
    metrics.put(COMPARE_PROMPTS_NEW, (double) agg.getLong(2));
    metrics.put(COMPARE_PROMPTS_MISSING, (double) agg.getLong(3));
    metrics.putAll(metricDeltas(previousEval, currentEval));
    return new Result(prompts, metrics);
  }

  /**
   * {@code compare_delta_<metric>} = current - previous for each {@code eval_*} metric both maps
   * hold (a metric only one run has, such as a first run with references, has no delta).
   */
  public static Map<String, Double> metricDeltas(Map<String, Double> previousEval, Map<String, Double> currentEval) {
    Map<String, Double> deltas = new LinkedHashMap<>();
    if (previousEval == null || currentEval == null) {
      return deltas;
    }
    currentEval.forEach((name, now) -> {
      Double before = previousEval.get(name);
      if (name.startsWith(Evaluation.METRIC_PREFIX) && now != null && before != null
          && !now.isNaN() && !before.isNaN()) {
        deltas.put(COMPARE_DELTA_PREFIX + name, now - before);
      }
    });
    return deltas;
  }

  /** One run's columns under prefixed names, so the two sides never clash in the join. */
  private static Dataset<Row> side(Dataset<Row> run, String frame, String prefix, String idColumn,
      String promptColumn) {
    List<String> names = Arrays.asList(run.columns());
    require(frame, names, idColumn, "the id column");
    require(frame, names, OutputColumns.RESPONSE, "the model's answers");
    require(frame, names, OutputColumns.COMPLETION_TOKENS, "tokens generated per row");
    require(frame, names, OutputColumns.LATENCY_MS, "latency per row");
    List<Column> cols = new ArrayList<>();
    cols.add(column(idColumn).as(prefix + ID));
    if (promptColumn != null) {
      require(frame, names, promptColumn, "the prompt column");
      cols.add(column(promptColumn).as(prefix + PROMPT_IN));
    }
    cols.add(column(OutputColumns.RESPONSE).as(prefix + OutputColumns.RESPONSE));
    cols.add(column(OutputColumns.COMPLETION_TOKENS).as(prefix + TOKENS));
    cols.add(column(OutputColumns.LATENCY_MS).as(prefix + LATENCY));
    cols.add(lit(true).as(prefix + PRESENT));
    return run.select(cols.toArray(Column[]::new));
  }

  /**
   * Two rows for one id would count that prompt twice (or four times) in the join; an output
   * written with {@code --mode append} can hold them.
   */
  private static void requireUniqueIds(Dataset<Row> run, String frame, String idColumn) {
    List<Row> dups = run.filter(column(idColumn).isNotNull()).groupBy(column(idColumn))
        .agg(count(lit(1)).as("__genai_batch_rows")).filter(col("__genai_batch_rows").gt(1)).limit(DUPLICATES_SHOWN).collectAsList();
    if (!dups.isEmpty()) {
      String ids = dups.stream().map(r -> r.get(0) + " (" + r.getLong(1) + " rows)")
          .collect(Collectors.joining(", "));
      throw new IllegalArgumentException(frame + " has more than one row for an id in column '" + idColumn
          + "': " + ids + (dups.size() == DUPLICATES_SHOWN ? " and maybe more" : "")
          + "; a comparison needs one row per id (keep the newest row per id, as --mode resume does)");
    }
  }
}
