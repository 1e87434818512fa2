package io.genaibatch.job;

import com.fasterxml.jackson.databind.JsonNode;
import io.genaibatch.settings.Settings;
import io.genaibatch.eval.Evaluation;
import io.genaibatch.eval.RunComparison;
import io.genaibatch.mlflow.RunLogger;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The nightly evaluation of a scoring run: reference-based metrics when the prompt set has a
 * reference column, the comparison with the previous successful run of the same experiment and
 * prompt set (found by the {@value #PROMPT_SET_TAG} tag, its output read from {@value
 * #OUTPUT_TAG}), and the config's thresholds.
 */
final class NightlyEvaluation {
  private static final Logger LOG = LoggerFactory.getLogger(NightlyEvaluation.class);
  static final String PROMPT_SET_TAG = "genai_batch.prompt_set";
  static final String OUTPUT_TAG = "genai_batch.output";
  static final String EVAL_TABLE = "evaluation.json";
  static final String COMPARISON_TABLE = "comparison.json";
  static final int TABLE_ROWS = 1000;

  /** Metrics to log, threshold breaches (empty: pass), and the previous run compared with. */
  record Outcome(Map<String, Double> metrics, List<String> breaches, String previousRunId) {}

  private NightlyEvaluation() {}

  static Outcome run(SparkSession spark, JobConfig cfg, RunLogger run, Dataset<Row> out, String promptColumn,
      String promptSet, Path tmp) {
    Map<String, Double> metrics = new LinkedHashMap<>();
    Map<String, Double> current = Map.of();
    if (hasReference(cfg, out)) {
      Evaluation.Result ev = Evaluation.evaluate(out, cfg.get(Settings.ID_COLUMN), cfg.get(Settings.REFERENCE_COLUMN));
      current = ev.metrics();
      metrics.putAll(current);
      System.out.println("genai-batch: evaluation against '" + cfg.get(Settings.REFERENCE_COLUMN) + "': " + current);
      if (run != null && cfg.get(Settings.ID_COLUMN) != null) {
        Dataset<Row> rows = out.select(functions.col(cfg.get(Settings.ID_COLUMN)), functions.col(promptColumn),
                functions.col(cfg.get(Settings.REFERENCE_COLUMN)), functions.col("response"))
            .join(ev.rows(), cfg.get(Settings.ID_COLUMN)).orderBy(cfg.get(Settings.ID_COLUMN));
        run.logTable(List.of(rows.columns()), RunReport.tableRows(rows.limit(TABLE_ROWS)), EVAL_TABLE, tmp);
      }
    }
    if (run == null || !cfg.get(Settings.COMPARE_PREVIOUS)) {
      return new Outcome(metrics, cfg.thresholds().check(null, current, null), null);
    }
    if (cfg.get(Settings.ID_COLUMN) == null) {
      LOG.warn("No --id-column: this run is not compared with the previous one");
      return new Outcome(metrics, cfg.thresholds().check(null, current, null), null);
    }
    JsonNode previous = previousRun(run, promptSet);
    if (previous == null) {
      LOG.info("No previous successful run of this prompt set in the experiment: nothing to compare with");
      return new Outcome(metrics, cfg.thresholds().check(null, current, null), null);
    }
    String prevId = previous.path("info").path("run_id").asText();
    String prevOutput = tag(previous, OUTPUT_TAG);
    Dataset<Row> prevOut;
    try {
      prevOut = spark.read().parquet(prevOutput);
      prevOut.schema();
    } catch (Exception e) {
      LOG.warn("The previous run {} wrote {}, which cannot be read any more ({}): nothing to compare with",
          prevId, prevOutput, e.getMessage());
      return new Outcome(metrics, cfg.thresholds().check(null, current, null), null);
    }
    Map<String, Double> prevEval = new LinkedHashMap<>();
    for (JsonNode m : previous.path("data").path("metrics")) {
      if (m.path("key").asText().startsWith(Evaluation.METRIC_PREFIX)) {
        prevEval.put(m.path("key").asText(), m.path("value").asDouble());
      }
    }
    RunComparison.Result cmp = RunComparison.compare(prevOut, out, cfg.get(Settings.ID_COLUMN), promptColumn,
        prevEval.isEmpty() ? null : prevEval, current.isEmpty() ? null : current);
    metrics.putAll(cmp.metrics());
    Dataset<Row> table = cmp.prompts().orderBy(functions.col(RunComparison.CHANGED).desc_nulls_last(),
        functions.col(cfg.get(Settings.ID_COLUMN)));
    run.logTable(List.of(table.columns()), RunReport.tableRows(table.limit(TABLE_ROWS)), COMPARISON_TABLE, tmp);
    run.setTags(Map.of("genai_batch.compared_with", prevId));
    long changed = cmp.answersChanged();
    System.out.println("genai-batch: compared with run " + prevId + ": " + changed + " answers changed");
    return new Outcome(metrics, cfg.thresholds().check(prevEval, current, changed), prevId);
  }

  /**
   * Whether the output has the reference column: a nightly evaluation, whose rows are scored
   * against it (here, and again in {@link RunTraces}' read for their traces' assessments, so no id
   * column is needed for those), traced by default and registered as an evaluation dataset.
   */
  static boolean hasReference(JobConfig cfg, Dataset<Row> out) {
    String ref = cfg.get(Settings.REFERENCE_COLUMN);
    return ref != null && List.of(out.columns()).contains(ref);
  }

  private static String tag(JsonNode run, String key) {
    for (JsonNode t : run.path("data").path("tags")) {
      if (t.path("key").asText().equals(key)) {
        return t.path("value").asText();
      }
    }
    return null;
  }

  /** The newest FINISHED run of the experiment with the same prompt set, other than this one. */
  private static JsonNode previousRun(RunLogger run, String promptSet) {
    Map<String, Object> body = new LinkedHashMap<>();
    body.put("experiment_ids", List.of(run.experimentId()));
    body.put("filter", "tags.`" + PROMPT_SET_TAG + "` = '" + promptSet + "' and attributes.status = 'FINISHED'");
    body.put("order_by", List.of("attributes.start_time DESC"));
    body.put("max_results", 10);
    for (JsonNode r : run.tracking().post("runs/search", body).path("runs")) {
      if (!r.path("info").path("run_id").asText().equals(run.runId()) && tag(r, OUTPUT_TAG) != null) {
        return r;
      }
    }
    return null;
  }
}
