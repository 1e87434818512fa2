package io.genaibatch.job;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.common.OutputColumns;
import io.genaibatch.eval.Evaluation;
import io.genaibatch.mlflow.EvaluationDatasets;
import io.genaibatch.mlflow.Retry;
import io.genaibatch.mlflow.RunLogger;
import io.genaibatch.mlflow.TraceAssessments;
import io.genaibatch.settings.Settings;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
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
 * TraceAssessments#EXPECTED_RESPONSE} and the row's scores as feedback. The traced rows'
 * assessments go out in {@link RunTraces}' pass over the output, a batch after its traces, several
 * calls in flight ({@code tracking_parallelism}); the
 * dataset's records are read only when the dataset is new, a partition at a time, one batch of
 * records held.
 */
final class EvaluationRecords {
  private static final Logger LOG = LoggerFactory.getLogger(EvaluationRecords.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Feedback that an answer parsed under the job's response format. */
  static final String RESPONSE_VALID = "response_valid";

  private EvaluationRecords() {}

  /**
   * Registers the prompt set (or finds it) and links it to the run. A server without evaluation
   * datasets is skipped with one warning.
   *
   * @param datasetName the dataset's name: the input's name and its content digest
   * @throws RuntimeException when the server fails within the retry budget (the job exits 4)
   */
  static void register(JobConfig cfg, RunLogger run, Dataset<Row> out, String scoredColumn, boolean chat,
      String datasetName) {
    Retry retry = new Retry(Duration.ofSeconds(cfg.get(Settings.TRACKING_RETRY_SECONDS)));
    String reference = cfg.get(Settings.REFERENCE_COLUMN);
    Dataset<Row> rows = out.filter(functions.col(reference).isNotNull().and(functions.col(scoredColumn).isNotNull()))
        .select(RunTraces.inputs(scoredColumn, chat), functions.col(reference).cast("string"));
    EvaluationDatasets.Registered d;
    try {
      d = new EvaluationDatasets(run.tracking(), retry).findOrCreate(run.experimentId(), datasetName,
          Map.of(NightlyEvaluation.PROMPT_SET_TAG, datasetName), () -> records(rows.toLocalIterator()));
    } catch (EvaluationDatasets.Unsupported e) {
      LOG.warn("The prompt set is not registered as an evaluation dataset: {}", e.getMessage());
      return;
    }
    run.logInput(d.name(), d.digest(), EvaluationDatasets.SOURCE_TYPE, d.source(), List.of(), d.records(),
        "evaluation");
    System.out.println("genai-batch: evaluation dataset '" + d.name() + "' (" + d.id() + ", "
        + (d.created() ? "registered now" : "registered before") + ") logged as the run's input");
  }

  private static Iterator<Map<String, Object>> records(Iterator<Row> it) {
    return new Iterator<>() {
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
  }

  /**
   * What a row's assessments are made of, as one struct column of the output: its reference, its
   * scores ({@link Evaluation#rowScores}, the values behind the run's {@code eval_*} means) and,
   * when the job parsed answers, whether its answer parsed.
   */
  static Column assessed(JobConfig cfg, Dataset<Row> out) {
    String reference = cfg.get(Settings.REFERENCE_COLUMN);
    Column valid = List.of(out.columns()).contains(OutputColumns.RESPONSE_PARSED)
        ? functions.col(OutputColumns.ERROR).isNull().and(functions.col(OutputColumns.RESPONSE_PARSED).isNotNull())
        : functions.lit(null).cast("boolean");
    return functions.struct(functions.col(reference).cast("string").as("reference"),
        Evaluation.rowScores(out, reference).as("scores"), valid.as("valid"));
  }

  /** A traced row's assessments ({@link #assessed}): the reference as an expectation, each score as feedback. */
  static List<TraceAssessments.Assessment> assessments(String traceId, Row assessed) {
    List<TraceAssessments.Assessment> a = new ArrayList<>();
    if (!assessed.isNullAt(0)) {
      a.add(TraceAssessments.Assessment.expectation(traceId, TraceAssessments.EXPECTED_RESPONSE, assessed.getString(0)));
    }
    for (Map.Entry<String, Object> f : feedback(assessed.getStruct(1), assessed).entrySet()) {
      a.add(TraceAssessments.Assessment.feedback(traceId, f.getKey(), f.getValue()));
    }
    return a;
  }

  /** A row's scores by name, those it has: exact match as pass/fail, F1 and ROUGE-L as numbers, validity. */
  private static Map<String, Object> feedback(Row scores, Row assessed) {
    Map<String, Object> f = new LinkedHashMap<>();
    Double exact = scores.getAs(Evaluation.EXACT_MATCH);
    if (exact != null) {
      f.put(Evaluation.EXACT_MATCH, exact >= 1.0);
    }
    for (String name : List.of(Evaluation.TOKEN_F1, Evaluation.ROUGE_L)) {
      Double v = scores.getAs(name);
      if (v != null) {
        f.put(name, v);
      }
    }
    if (!assessed.isNullAt(2)) {
      f.put(RESPONSE_VALID, assessed.getBoolean(2));
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
