package io.genaibatch.job;

import io.genaibatch.common.OutputColumns;
import io.genaibatch.mlflow.Retry;
import io.genaibatch.mlflow.RunLogger;
import io.genaibatch.mlflow.TraceAssessments;
import io.genaibatch.mlflow.TraceExporter;
import io.genaibatch.settings.Settings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.expressions.Window;
import org.apache.spark.sql.functions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The run's rows as MLflow traces: a sample of the written output (every row of a nightly
 * evaluation by default), read back on the driver once, a partition at a time, and sent in batches
 * of {@value TraceExporter#BATCH}: each batch's spans by {@link TraceExporter}, then, in a nightly
 * evaluation, the same rows' expectations and feedback ({@link EvaluationRecords#assessments}, up to
 * {@code tracking_parallelism} calls in flight, all ended before the next batch's spans). The driver
 * holds one partition and one batch of rows and calls whatever the row count. Rows are chosen by a
 * hash of their id, so the same sample rate picks the same rows every night.
 */
final class RunTraces {
  private static final Logger LOG = LoggerFactory.getLogger(RunTraces.class);
  /** The default rate without a reference column: a bulk job's traces are a sample to look at, not a record. */
  static final double BULK_SAMPLE_RATE = 0.01;
  /** The Spark jobs of the pass carry this description and the run id: the Spark UI names them so. */
  static final String JOB_DESCRIPTION = "genai-batch: traces and assessments of run ";
  /** The local property setJobDescription sets (SparkContext.SPARK_JOB_DESCRIPTION, private to Spark). */
  private static final String SPARK_JOB_DESCRIPTION = "spark.job.description";
  private static final long BUCKETS = 1_000_000L;
  /** Where {@link #rows} puts the assessed column, after the span's ten. */
  private static final int ASSESSED = 10;

  private RunTraces() {}

  /** The sample rate: the setting's, else 1 for a nightly evaluation (a reference column) and {@value #BULK_SAMPLE_RATE} otherwise. */
  static double sampleRate(JobConfig cfg, Dataset<Row> out) {
    Double set = cfg.get(Settings.TRACE_SAMPLE_RATE);
    if (set != null) {
      return set;
    }
    return NightlyEvaluation.hasReference(cfg, out) ? 1.0 : BULK_SAMPLE_RATE;
  }

  /**
   * Sends this run's sampled rows of {@code out} as traces linked to {@code run}, each batch followed
   * by its rows' assessments when {@code assess}; returns how many traces. A server without a trace
   * endpoint is skipped with one warning, and then gets no assessments either.
   *
   * @param assess whether the rows get expectations and feedback (a nightly evaluation: the reference column)
   * @throws RuntimeException when the server fails within the retry budget (the job exits 4)
   */
  static long export(JobConfig cfg, RunLogger run, Dataset<Row> out, String scoredColumn, boolean chat,
      boolean assess) {
    double rate = sampleRate(cfg, out);
    if (rate <= 0) {
      return 0;
    }
    long t0 = System.nanoTime();
    Dataset<Row> rows = distinctKeys(sample(rows(cfg, out, run.runId(), scoredColumn, chat,
        assess ? EvaluationRecords.assessed(cfg, out) : null), rate));
    Retry retry = new Retry(Duration.ofSeconds(cfg.get(Settings.TRACKING_RETRY_SECONDS)));
    TraceExporter traces = new TraceExporter(run.tracking(), run.experimentId(), run.runId(), retry);
    TraceAssessments assessments = assess
        ? new TraceAssessments(run.tracking(), retry, cfg.get(Settings.TRACKING_PARALLELISM)) : null;
    SparkContext sc = out.sparkSession().sparkContext();
    String description = sc.getLocalProperty(SPARK_JOB_DESCRIPTION);
    sc.setJobDescription(JOB_DESCRIPTION + run.runId());
    long assessNanos;
    try {
      assessNanos = sendAll(rows.toLocalIterator(), traces, assessments, chat);
    } catch (TraceExporter.Unsupported e) {
      LOG.warn("No traces logged{}: {}", assess ? ", so no expectations or feedback either" : "", e.getMessage());
      return 0;
    } finally {
      sc.setJobDescription(description);
      if (assessments != null) {
        assessments.close();
      }
    }
    logMetrics(run, rate, traces.sent(), assessments, (System.nanoTime() - t0 - assessNanos) / 1e9, assessNanos / 1e9);
    return traces.sent();
  }

  /**
   * The one pass: each batch's traces, then its rows' assessments, all of them ended before the next
   * batch's spans. Returns the nanoseconds spent on assessments.
   */
  private static long sendAll(Iterator<Row> it, TraceExporter traces, TraceAssessments assessments, boolean chat) {
    List<Row> batch = new ArrayList<>(TraceExporter.BATCH);
    long assessNanos = 0;
    while (it.hasNext()) {
      batch.add(it.next());
      if (batch.size() < TraceExporter.BATCH && it.hasNext()) {
        continue;
      }
      traces.export(batch.stream().map(r -> traceRow(r, chat)).toList());
      if (assessments != null) {
        long a0 = System.nanoTime();
        List<TraceAssessments.Assessment> calls = new ArrayList<>();
        for (Row r : batch) {
          calls.addAll(EvaluationRecords.assessments(traces.traceId(r.getString(0)), r.getStruct(ASSESSED)));
        }
        assessments.log(calls);
        assessNanos += System.nanoTime() - a0;
      }
      batch.clear();
    }
    return assessNanos;
  }

  /**
   * {@code trace_export_s}: the pass less the assessment calls (reading the rows back, the spans,
   * the links to the run); {@code assessment_export_s}: the assessment calls alone.
   */
  private static void logMetrics(RunLogger run, double rate, long sent, TraceAssessments assessments,
      double traceSeconds, double assessSeconds) {
    System.out.printf("genai-batch: %d traces (sample rate %s) sent to the run in %.1f s%n", sent, rate, traceSeconds);
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("traces_logged", (double) sent);
    m.put("trace_export_s", traceSeconds);
    if (assessments != null) {
      System.out.printf("genai-batch: %d expectations and feedback logged on the traces in %.1f s%n",
          assessments.sent(), assessSeconds);
      m.put("assessments_logged", (double) assessments.sent());
      m.put("assessment_export_s", assessSeconds);
    }
    run.logMetrics(m, 0);
  }

  /**
   * This run's rows of the output (a resume's output also holds earlier runs' rows), as the spans
   * need them, then the {@code assessed} column when there is one.
   */
  private static Dataset<Row> rows(JobConfig cfg, Dataset<Row> out, String runId, String scoredColumn, boolean chat,
      Column assessed) {
    List<String> cols = List.of(out.columns());
    Column key = key(cfg, scoredColumn);
    Column inputs = inputs(scoredColumn, chat);
    List<Column> answer = new ArrayList<>();
    answer.add(functions.col(OutputColumns.RESPONSE));
    if (cols.contains(OutputColumns.RESPONSES)) {
      answer.add(functions.col(OutputColumns.RESPONSES));
    }
    Column outputs = chat && cols.contains(OutputColumns.CHAT_COMPLETION)
        ? functions.to_json(functions.col(OutputColumns.CHAT_COMPLETION))
        : functions.to_json(functions.struct(answer.toArray(Column[]::new)));
    List<Column> select = new ArrayList<>(List.of(key.as("key"), inputs.as("inputs"),
        functions.when(functions.col(OutputColumns.ERROR).isNull(), outputs).as("outputs"),
        functions.col(OutputColumns.PROMPT_TOKENS), functions.col(OutputColumns.COMPLETION_TOKENS),
        functions.col(OutputColumns.LATENCY_MS), functions.unix_millis(functions.col(OutputColumns.SCORED_AT)).as("end_ms"),
        functions.col(OutputColumns.ERROR), functions.col(OutputColumns.FINISH_REASON),
        functions.col(OutputColumns.MODEL_VERSION)));
    if (assessed != null) {
      select.add(assessed.as("assessed"));
    }
    return out.filter(functions.col(OutputColumns.RUN_ID).equalTo(runId)).select(select.toArray(Column[]::new));
  }

  /** A row's trace key: the id column, else a hash of its prompt or messages. */
  static Column key(JobConfig cfg, String scoredColumn) {
    String id = cfg.get(Settings.ID_COLUMN);
    return id != null ? functions.col(id).cast("string") : functions.xxhash64(functions.col(scoredColumn)).cast("string");
  }

  /** The span's inputs as JSON: {@code {"prompt": ...}} or {@code {"messages": [...]}}. */
  static Column inputs(String scoredColumn, boolean chat) {
    return functions.to_json(functions.struct(functions.col(scoredColumn).as(chat ? "messages" : "prompt")));
  }

  /** The rows whose key hashes below {@code rate}: the same rows for the same rate, night after night. */
  static Dataset<Row> sample(Dataset<Row> rows, double rate) {
    if (rate >= 1) {
      return rows;
    }
    Column bucket = functions.pmod(functions.xxhash64(functions.lit("genai-batch trace"), functions.col("key")),
        functions.lit(BUCKETS));
    return rows.filter(bucket.lt(Math.round(rate * BUCKETS)));
  }

  /**
   * Rows whose key another row has too (a repeated id, or the same prompt twice without an id column)
   * keep it apart: the first in a fixed order keeps the key, the n-th becomes {@code key#n}. A trace's id
   * is made from its key, and MLflow takes a trace id once: two rows with one key would fail the run's
   * link to its traces. Rows sharing a key were sampled together (the sample hashes the key).
   */
  static Dataset<Row> distinctKeys(Dataset<Row> rows) {
    Column n = functions.row_number().over(Window.partitionBy("key")
        .orderBy("end_ms", "inputs", "outputs", OutputColumns.ERROR));
    Column key = functions.when(n.equalTo(1), functions.col("key"))
        .otherwise(functions.concat(functions.col("key"), functions.lit("#"), n.cast("string")));
    return rows.withColumn("key", key);
  }

  private static TraceExporter.Row traceRow(Row r, boolean chat) {
    Map<String, String> attributes = new LinkedHashMap<>();
    attributes.put("genai_batch.finish_reason", r.getString(8));
    attributes.put("genai_batch.model_version", r.isNullAt(9) ? null : r.getString(9));
    return new TraceExporter.Row(r.getString(0), chat, r.getString(1), r.isNullAt(2) ? null : r.getString(2),
        r.getInt(3), r.getInt(4), r.getDouble(5), r.getLong(6), r.isNullAt(7) ? null : r.getString(7), attributes);
  }
}
