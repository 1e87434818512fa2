package io.genaibatch.job;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.common.OutputColumns;
import io.genaibatch.eval.Evaluation;
import io.genaibatch.mlflow.EvaluationDatasets;
import io.genaibatch.mlflow.Retry;
import io.genaibatch.mlflow.RunLogger;
import io.genaibatch.mlflow.TraceAssessments;
import io.genaibatch.mlflow.TraceExporter;
import io.genaibatch.settings.Settings;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.functions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A nightly evaluation where MLflow 3 shows one: the prompt set with its references as an
 * evaluation dataset (registered once per content digest, then found again, and logged as the
 * run's input), and on each traced row's trace the reference as the expectation {@value
 * TraceAssessments#EXPECTED_RESPONSE} and the row's scores as feedback. The driver reads rows a
 * partition at a time and holds one batch of records, whatever the prompt set's size.
 */
final class EvaluationRecords {
  private static final Logger LOG = LoggerFactory.getLogger(EvaluationRecords.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Feedback that an answer parsed under the job's response format. */
  static final String RESPONSE_VALID = "response_valid";

  private EvaluationRecords() {}

  /**
   * Registers the prompt set (or finds it) and links it to the run; then, when rows were traced,
   * logs their expectations and feedback. A server without evaluation datasets is skipped with one warning.
   *
   * @param scores the per-row scores ({@link Evaluation.Result#rows()}, keyed by the id column)
   * @param datasetName the dataset's name: the input's name and its content digest
   * @throws RuntimeException when the server fails within the retry budget (the job exits 4)
   */
  static void log(JobConfig cfg, RunLogger run, Dataset<Row> out, Dataset<Row> scores, String scoredColumn,
      boolean chat, String datasetName, long traced) {
    Retry retry = new Retry(Duration.ofSeconds(cfg.get(Settings.TRACKING_RETRY_SECONDS)));
    String reference = cfg.get(Settings.REFERENCE_COLUMN);
    try {
      register(run, retry, out, reference, scoredColumn, chat, datasetName);
    } catch (EvaluationDatasets.Unsupported e) {
      LOG.warn("The prompt set is not registered as an evaluation dataset: {}", e.getMessage());
    }
    if (traced == 0) {
      return;
    }
    if (cfg.get(Settings.ID_COLUMN) == null) {
      LOG.warn("No --id-column: the traces get no expectations or feedback (the scores are keyed by the id)");
      return;
    }
    assess(cfg, run, retry, out, scores, scoredColumn);
  }

  private static void register(RunLogger run, Retry retry, Dataset<Row> out, String reference, String scoredColumn,
      boolean chat, String datasetName) {
    Dataset<Row> rows = out.filter(functions.col(reference).isNotNull().and(functions.col(scoredColumn).isNotNull()))
        .select(RunTraces.inputs(scoredColumn, chat), functions.col(reference).cast("string"));
    Iterator<Row> it = rows.toLocalIterator();
    Iterator<Map<String, Object>> records = new Iterator<>() {
      @Override
      public boolean hasNext() {
        return it.hasNext();
      }

      @Override
      public Map<String, Object> next() {
        Row r = it.next();
        return EvaluationDatasets.record(parse(r.getString(0)), r.getString(1));
      }
    };
    EvaluationDatasets.Registered d = new EvaluationDatasets(run.tracking(), retry).findOrCreate(run.experimentId(),
        datasetName, Map.of(NightlyEvaluation.PROMPT_SET_TAG, datasetName), records);
    run.logInput(d.name(), d.digest(), EvaluationDatasets.SOURCE_TYPE, d.source(), List.of(), rows.count(), "evaluation");
    System.out.println("genai-batch: evaluation dataset '" + d.name() + "' (" + d.id() + ", "
        + (d.created() ? "registered now" : "registered before") + ") logged as the run's input");
  }

  /** The traced rows of this run: the reference as an expectation, each score as feedback. */
  private static void assess(JobConfig cfg, RunLogger run, Retry retry, Dataset<Row> out, Dataset<Row> scores,
      String scoredColumn) {
    long t0 = System.nanoTime();
    String id = cfg.get(Settings.ID_COLUMN);
    boolean parsed = List.of(out.columns()).contains(OutputColumns.RESPONSE_PARSED);
    Column valid = parsed ? functions.col(OutputColumns.ERROR).isNull().and(functions.col(OutputColumns.RESPONSE_PARSED)
        .isNotNull()) : functions.lit(null).cast("boolean");
    Dataset<Row> mine = out.filter(functions.col(OutputColumns.RUN_ID).equalTo(run.runId()))
        .select(functions.col(id), RunTraces.key(cfg, scoredColumn).as("key"),
            functions.col(cfg.get(Settings.REFERENCE_COLUMN)).cast("string").as("reference"), valid.as("valid"));
    Dataset<Row> rows = RunTraces.sample(mine, RunTraces.sampleRate(cfg, out)).join(scores, id).select("key",
        "reference", Evaluation.EXACT_MATCH, Evaluation.TOKEN_F1, Evaluation.ROUGE_L, "valid");
    TraceExporter traces = new TraceExporter(run.tracking(), run.experimentId(), run.runId(), retry);
    TraceAssessments assessments = new TraceAssessments(run.tracking(), retry);
    Iterator<Row> it = rows.toLocalIterator();
    while (it.hasNext()) {
      Row r = it.next();
      String trace = traces.traceId(r.getString(0));
      if (!r.isNullAt(1)) {
        assessments.expectation(trace, TraceAssessments.EXPECTED_RESPONSE, r.getString(1));
      }
      for (Map.Entry<String, Object> f : feedback(r).entrySet()) {
        assessments.feedback(trace, f.getKey(), f.getValue());
      }
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    System.out.printf("genai-batch: %d expectations and feedback logged on the traces in %.1f s%n", assessments.sent(),
        seconds);
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("assessments_logged", (double) assessments.sent());
    m.put("assessment_export_s", seconds);
    run.logMetrics(m, 0);
  }

  /** A row's scores by name, those it has: exact match as pass/fail, F1 and ROUGE-L as numbers, validity. */
  private static Map<String, Object> feedback(Row r) {
    Map<String, Object> f = new LinkedHashMap<>();
    if (!r.isNullAt(2)) {
      f.put(Evaluation.EXACT_MATCH, r.getDouble(2) >= 1.0);
    }
    if (!r.isNullAt(3)) {
      f.put(Evaluation.TOKEN_F1, r.getDouble(3));
    }
    if (!r.isNullAt(4)) {
      f.put(Evaluation.ROUGE_L, r.getDouble(4));
    }
    if (!r.isNullAt(5)) {
      f.put(RESPONSE_VALID, r.getBoolean(5));
    }
    return f;
  }

  private static Map<String, Object> parse(String json) {
    try {
      return JSON.readValue(json, new TypeReference<Map<String, Object>>() {});
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
