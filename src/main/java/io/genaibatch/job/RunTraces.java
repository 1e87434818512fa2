package io.genaibatch.job;

import io.genaibatch.common.OutputColumns;
import io.genaibatch.mlflow.Retry;
import io.genaibatch.mlflow.RunLogger;
import io.genaibatch.mlflow.TraceExporter;
import io.genaibatch.settings.Settings;
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
 * The run's rows as MLflow traces: a sample of the written output (every row of a nightly
 * evaluation by default), read back on the driver a partition at a time and sent in batches by
 * {@link TraceExporter}, so the driver holds one partition and one batch whatever the row count.
 * Rows are chosen by a hash of their id, so the same sample rate picks the same rows every night.
 */
final class RunTraces {
  private static final Logger LOG = LoggerFactory.getLogger(RunTraces.class);
  /** The default rate without a reference column: a bulk job's traces are a sample to look at, not a record. */
  static final double BULK_SAMPLE_RATE = 0.01;
  private static final long BUCKETS = 1_000_000L;

  private RunTraces() {}

  /** The sample rate: the setting's, else 1 for a nightly evaluation (a reference column) and {@value #BULK_SAMPLE_RATE} otherwise. */
  static double sampleRate(JobConfig cfg, Dataset<Row> out) {
    Double set = cfg.get(Settings.TRACE_SAMPLE_RATE);
    if (set != null) {
      return set;
    }
    String ref = cfg.get(Settings.REFERENCE_COLUMN);
    return ref != null && List.of(out.columns()).contains(ref) ? 1.0 : BULK_SAMPLE_RATE;
  }

  /**
   * Sends this run's sampled rows of {@code out} as traces linked to {@code run}; returns how many.
   * A server without a trace endpoint is skipped with one warning.
   *
   * @throws RuntimeException when the server fails within the retry budget (the job exits 4)
   */
  static long export(JobConfig cfg, RunLogger run, Dataset<Row> out, String scoredColumn, boolean chat) {
    double rate = sampleRate(cfg, out);
    if (rate <= 0) {
      return 0;
    }
    long t0 = System.nanoTime();
    Dataset<Row> rows = sample(rows(cfg, out, run.runId(), scoredColumn, chat), rate);
    Retry retry = new Retry(Duration.ofSeconds(cfg.get(Settings.TRACKING_RETRY_SECONDS)));
    TraceExporter exporter = new TraceExporter(run.tracking(), run.experimentId(), run.runId(), retry);
    Iterator<Row> it = rows.toLocalIterator();
    long sent;
    try {
      sent = exporter.exportAll(new Iterator<>() {
        @Override
        public boolean hasNext() {
          return it.hasNext();
        }

        @Override
        public TraceExporter.Row next() {
          return traceRow(it.next(), chat);
        }
      });
    } catch (TraceExporter.Unsupported e) {
      LOG.warn("No traces logged, so no expectations or feedback on them either: {}", e.getMessage());
      return 0;
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    System.out.printf("genai-batch: %d traces (sample rate %s) sent to the run in %.1f s%n", sent, rate, seconds);
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("traces_logged", (double) sent);
    m.put("trace_export_s", seconds);
    run.logMetrics(m, 0);
    return sent;
  }

  /** This run's rows of the output (a resume's output also holds earlier runs' rows), as the spans need them. */
  private static Dataset<Row> rows(JobConfig cfg, Dataset<Row> out, String runId, String scoredColumn, boolean chat) {
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
    return out.filter(functions.col(OutputColumns.RUN_ID).equalTo(runId)).select(key.as("key"), inputs.as("inputs"),
        functions.when(functions.col(OutputColumns.ERROR).isNull(), outputs).as("outputs"),
        functions.col(OutputColumns.PROMPT_TOKENS), functions.col(OutputColumns.COMPLETION_TOKENS),
        functions.col(OutputColumns.LATENCY_MS), functions.unix_millis(functions.col(OutputColumns.SCORED_AT)).as("end_ms"),
        functions.col(OutputColumns.ERROR), functions.col(OutputColumns.FINISH_REASON),
        functions.col(OutputColumns.MODEL_VERSION));
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

  private static TraceExporter.Row traceRow(Row r, boolean chat) {
    Map<String, String> attributes = new LinkedHashMap<>();
    attributes.put("genai_batch.finish_reason", r.getString(8));
    attributes.put("genai_batch.model_version", r.isNullAt(9) ? null : r.getString(9));
    return new TraceExporter.Row(r.getString(0), chat, r.getString(1), r.isNullAt(2) ? null : r.getString(2),
        r.getInt(3), r.getInt(4), r.getDouble(5), r.getLong(6), r.isNullAt(7) ? null : r.getString(7), attributes);
  }
}
