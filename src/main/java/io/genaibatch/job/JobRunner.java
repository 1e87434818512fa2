package io.genaibatch.job;

import io.genaibatch.mlflow.MlflowException;
import io.genaibatch.mlflow.Retry;
import io.genaibatch.mlflow.RunLogger;
import io.genaibatch.mlflow.TrackingConnection;
import io.genaibatch.spark.BatchScorer;
import io.genaibatch.spark.OutputSchema;
import io.genaibatch.spark.PartitionScorer;
import java.io.IOException;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.StructField;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One run of the job: driver checks, the MLflow run, scoring in committed waves, the read-back
 * of the written output, metrics from it, the exit code. The output is always written before
 * anything is logged from it, and never deleted on a tracking failure.
 */
final class JobRunner {
  private static final Logger LOG = LoggerFactory.getLogger(JobRunner.class);
  private static final String WAVE = "__genai_batch_wave";

  private final SparkSession spark;
  private final JobConfig cfg;

  JobRunner(SparkSession spark, JobConfig cfg) {
    this.spark = spark;
    this.cfg = cfg;
  }

  int run() {
    long t0 = System.nanoTime();
    // Driver-side checks first: model, options, input columns. Nothing is scored if they fail.
    BatchScorer scorer;
    Dataset<Row> input;
    long inputRows;
    String promptSet;
    try {
      scorer = BatchScoringJob.scorer(spark, cfg);
      input = BatchScoringJob.readInput(spark, cfg);
      scorer.check(input.schema());
      PromptSet set = promptSet(input);
      inputRows = set.rows();
      promptSet = set.digest();
    } catch (IllegalArgumentException | MlflowException | io.genaibatch.engine.EngineException e) {
      System.err.println("genai-batch: " + e.getMessage());
      return BatchScoringJob.EXIT_USAGE;
    } catch (Exception e) {
      // Spark's AnalysisException (a missing path or table), undeclared in Java's view.
      System.err.println("genai-batch: cannot read input " + cfg.input() + " as " + cfg.inputFormat() + ": " + e.getMessage());
      return BatchScoringJob.EXIT_USAGE;
    }
    Retry retry = new Retry(Duration.ofSeconds(cfg.trackingRetrySeconds()));
    RunLogger run = null;
    String trackingFailure = null;
    if (cfg.tracking() && cfg.trackingUri() != null && !cfg.trackingUri().isBlank()) {
      try {
        run = RunLogger.start(TrackingConnection.connect(cfg.trackingUri()), cfg.experiment(),
            "genai-batch " + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss")),
            tags(scorer, promptSet), retry);
        run.logParams(params(scorer));
        logDataset(run, input, inputRows, promptSet);
        LOG.info("MLflow run {} in experiment '{}' at {}", run.runId(), cfg.experiment(), Redact.uri(cfg.trackingUri()));
      } catch (RuntimeException e) {
        // The scoring is worth more than its record: score and write anyway, then exit 4.
        trackingFailure = e.getMessage();
        LOG.error("MLflow tracking at {} failed; scoring anyway, the run will not be logged: {}",
            Redact.uri(cfg.trackingUri()), e.getMessage());
        run = null;
      }
    } else if (cfg.tracking()) {
      LOG.warn("No MLflow tracking URI (--tracking-uri or MLFLOW_TRACKING_URI): the run is not logged");
    }
    PartitionScorer.ScoringMetrics metrics = PartitionScorer.ScoringMetrics.register(spark.sparkContext());
    long expected;
    long scoreStart = System.nanoTime();
    try {
      long before = cfg.mode().equals("append") && exists(cfg.output()) ? spark.read().parquet(cfg.output()).count() : 0;
      boolean resume = cfg.mode().equals("resume") && exists(cfg.output());
      Dataset<Row> todo = resume ? notDone(input) : input;
      // Progress counts what this run has to score: in a resume, the rows not done yet.
      long todoRows = resume ? todo.count() : inputRows;
      if (resume) {
        LOG.info("Resume: {} of {} input rows still to score", todoRows, inputRows);
      }
      try (BatchScoringJob.Progress p = new BatchScoringJob.Progress(metrics, todoRows, cfg.progressSeconds(), run)) {
        write(scorer, todo, todoRows, resume, run == null ? null : run.runId(), metrics);
      } finally {
        metrics.release();
      }
      expected = inputRows + before;
    } catch (RuntimeException e) {
      LOG.error("Scoring failed", e);
      System.err.println("genai-batch: scoring failed: " + e.getMessage());
      if (run != null) {
        try {
          run.setTags(Map.of("genai_batch.error", String.valueOf(e.getMessage())));
          run.finish(false);
        } catch (RuntimeException ignored) {
          LOG.warn("Could not end the MLflow run as FAILED: {}", ignored.getMessage());
        }
      }
      return BatchScoringJob.EXIT_FAILED;
    }

    double scoreSeconds = (System.nanoTime() - scoreStart) / 1e9;
    // Metrics come from the written output, read back, never from estimates.
    Dataset<Row> out = spark.read().parquet(cfg.output());
    Row agg = out.agg(
        functions.count(functions.lit(1)).as("rows"),
        functions.sum(functions.when(functions.col(OutputSchema.ERROR).isNull(), 1).otherwise(0)).as("ok"),
        functions.sum(OutputSchema.PROMPT_TOKENS).as("pt"),
        functions.sum(OutputSchema.COMPLETION_TOKENS).as("ct"),
        functions.percentile_approx(functions.col(OutputSchema.LATENCY_MS), functions.lit(0.5), functions.lit(10000)).as("p50"),
        functions.percentile_approx(functions.col(OutputSchema.LATENCY_MS), functions.lit(0.95), functions.lit(10000)).as("p95"),
        functions.percentile_approx(functions.col(OutputSchema.LATENCY_MS), functions.lit(0.99), functions.lit(10000)).as("p99"))
        .first();
    long rows = agg.getLong(0);
    long ok = agg.isNullAt(1) ? 0 : agg.getLong(1);
    long failed = rows - ok;
    double wallSeconds = (System.nanoTime() - t0) / 1e9;
    double errorRate = rows == 0 ? 0 : (double) failed / rows;
    System.out.printf("genai-batch: wrote %d rows (%d ok, %d errors) to %s in %.1f s%n", rows, ok, failed, cfg.output(), wallSeconds);
    int code = BatchScoringJob.EXIT_OK;
    String failure = null;
    if (rows != expected) {
      failure = String.format("the output has %d rows but %d were expected", rows, expected);
      code = BatchScoringJob.EXIT_FAILED;
    } else if (errorRate > cfg.maxErrorRate()) {
      failure = String.format("%.2f%% of rows are errors, above --max-error-rate %.2f%%; see the error column in %s",
          100 * errorRate, 100 * cfg.maxErrorRate(), cfg.output());
      code = BatchScoringJob.EXIT_ERROR_RATE;
    }
    if (failure != null) {
      System.err.println("genai-batch: " + failure);
    }
    if (run == null && List.of(out.columns()).contains(cfg.referenceColumn())) {
      // No run to log to or compare with, but the reference metrics are still worth printing.
      NightlyEvaluation.run(spark, cfg, null, out, promptColumn(scorer), promptSet, null);
    }
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("rows_total", (double) rows);
    m.put("rows_ok", (double) ok);
    m.put("rows_failed", (double) failed);
    m.put("error_rate", errorRate);
    m.put("prompt_tokens", agg.isNullAt(2) ? 0.0 : agg.getLong(2));
    m.put("completion_tokens", agg.isNullAt(3) ? 0.0 : agg.getLong(3));
    m.put("total_tokens", m.get("prompt_tokens") + m.get("completion_tokens"));
    m.put("generated_tokens_per_s", m.get("completion_tokens") / wallSeconds);
    m.put("rows_per_s", rows / wallSeconds);
    m.put("latency_p50_ms", agg.isNullAt(4) ? null : agg.getDouble(4));
    m.put("latency_p95_ms", agg.isNullAt(5) ? null : agg.getDouble(5));
    m.put("latency_p99_ms", agg.isNullAt(6) ? null : agg.getDouble(6));
    m.put("model_loads", (double) metrics.loads().value());
    m.put("model_load_ms", (double) metrics.loadMillis().value());
    m.put("model_fetch_ms", scorer.localModel().fetchMillis());
    Map<String, Double> rss = metrics.peakRssMbByExecutor();
    m.put("executors_used", (double) rss.size());
    m.put("executor_peak_rss_mb", rss.values().stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN));
    m.putAll(schedulingMetrics(scorer, metrics.slots(), scoreSeconds, metrics.generationSpan()));
    m.put("wall_time_s", wallSeconds);
    writeMetricsFile(m);
    System.out.printf("genai-batch: slot efficiency %.1f%% (prefill %.1f%%, decode %.1f%%); %d partitions on %d task"
        + " slots x %d native threads; %.1f tokens/s per core%n", 100 * m.get("slot_efficiency"),
        100 * m.get("prefill_slot_efficiency"), 100 * m.get("decode_slot_efficiency"), m.get("partitions").intValue(),
        m.get("task_slots").intValue(), m.get("threads_per_task").intValue(), m.get("tokens_per_s_per_core"));
    if (trackingFailure != null) {
      System.err.println("genai-batch: the output is complete at " + cfg.output()
          + ", but the run was not logged to MLflow: " + trackingFailure);
      return BatchScoringJob.EXIT_TRACKING;
    }
    if (run != null) {
      try {
        run.logMetrics(m, 0);
        RunReport.log(run, out, cfg, scorer, rows);
        java.nio.file.Path tmp = java.nio.file.Files.createTempDirectory("genai-batch-eval");
        NightlyEvaluation.Outcome eval = NightlyEvaluation.run(spark, cfg, run, out, promptColumn(scorer), promptSet, tmp);
        run.logMetrics(eval.metrics(), 0);
        Map<String, String> endTags = new LinkedHashMap<>();
        endTags.put(NightlyEvaluation.OUTPUT_TAG, cfg.output());
        if (!eval.breaches().isEmpty()) {
          String breaches = String.join("; ", eval.breaches());
          System.err.println("genai-batch: evaluation thresholds breached: " + breaches);
          endTags.put("genai_batch.threshold_breaches", breaches);
          if (code == BatchScoringJob.EXIT_OK) {
            code = BatchScoringJob.EXIT_THRESHOLDS;
            failure = "evaluation thresholds breached: " + breaches;
          }
        }
        if (failure != null) {
          endTags.put("genai_batch.error", failure);
        }
        run.setTags(endTags);
        run.finish(code == BatchScoringJob.EXIT_OK);
        System.out.println("genai-batch: MLflow run " + run.runId() + " at " + Redact.uri(cfg.trackingUri()));
      } catch (RuntimeException | java.io.IOException e) {
        System.err.println("genai-batch: the output is complete at " + cfg.output()
            + ", but logging the run to MLflow failed: " + e.getMessage());
        return BatchScoringJob.EXIT_TRACKING;
      }
    }
    return code;
  }

  /** The input as an MLflow dataset: name, digest, source, schema and row count. */
  private void logDataset(RunLogger run, Dataset<Row> input, long rows, String digest) {
    List<Map<String, Object>> schema = new ArrayList<>();
    for (StructField f : input.schema().fields()) {
      schema.add(Map.of("name", f.name(), "type", mlflowType(f.dataType()), "required", !f.nullable()));
    }
    boolean table = cfg.inputFormat().equals("table");
    String source;
    try {
      source = new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(
          table ? Map.of("table_name", cfg.input()) : Map.of("uri", cfg.input()));
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
    String name = table ? cfg.input() : new Path(cfg.input()).getName();
    run.logInput(name, digest, table ? "table" : "local", source, schema, rows, "scoring");
  }

  /** The input's row count and content digest. */
  private record PromptSet(long rows, String digest) {}

  /**
   * Counts the input and digests its content (schema, row count, and an order-independent sum of
   * row hashes) in one pass: the same prompts give the same digest night after night, whatever
   * file holds them.
   */
  private static PromptSet promptSet(Dataset<Row> input) {
    org.apache.spark.sql.Column[] cols = java.util.Arrays.stream(input.columns()).map(functions::col)
        .toArray(org.apache.spark.sql.Column[]::new);
    Row agg = input.agg(functions.count(functions.lit(1)),
        functions.sum(functions.xxhash64(cols).cast("decimal(38,0)"))).first();
    long rows = agg.getLong(0);
    String fingerprint = input.schema().json() + "|" + rows + "|" + (agg.isNullAt(1) ? "0" : agg.get(1));
    try {
      return new PromptSet(rows, java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
          .digest(fingerprint.getBytes(java.nio.charset.StandardCharsets.UTF_8))).substring(0, 12));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static String mlflowType(org.apache.spark.sql.types.DataType t) {
    String s = t.typeName();
    return switch (s) {
      case "string" -> "string";
      case "long" -> "long";
      case "integer", "short", "byte" -> "integer";
      case "double" -> "double";
      case "float" -> "float";
      case "boolean" -> "boolean";
      case "binary" -> "binary";
      case "timestamp", "date", "timestamp_ntz" -> "datetime";
      default -> t.simpleString();
    };
  }

  private Map<String, String> tags(BatchScorer scorer, String promptSet) {
    Map<String, String> t = new LinkedHashMap<>();
    t.put(NightlyEvaluation.PROMPT_SET_TAG, promptSet);
    t.put("mlflow.user", System.getProperty("user.name", ""));
    t.put("mlflow.source.name", "genai-batch " + BatchScoringJob.VERSION);
    t.put("mlflow.source.type", "JOB");
    var r = scorer.spec().model();
    if (r.registeredName() != null) {
      t.put("genai_batch.model_name", r.registeredName());
      t.put("genai_batch.model_version", r.version());
    }
    if (r.modelId() != null) {
      t.put("genai_batch.model_id", r.modelId());
    }
    t.put("genai_batch.job_version", BatchScoringJob.VERSION);
    return t;
  }

  static String promptColumn(BatchScorer scorer) {
    return scorer.options().chat() ? scorer.options().messagesColumn() : scorer.options().promptColumn();
  }

  private Map<String, String> params(BatchScorer scorer) {
    Map<String, String> p = new LinkedHashMap<>();
    var r = scorer.spec().model();
    p.put("model_uri", Redact.uri(cfg.modelUri()));
    p.put("model_artifact_uri", r.artifactUri());
    p.put("model_version", String.valueOf(r.versionLabel()));
    p.put("input", cfg.input());
    p.put("input_format", cfg.inputFormat());
    p.put("output", cfg.output());
    p.put("mode", cfg.mode());
    p.put("batch_size", String.valueOf(cfg.batchSize()));
    p.put("prompt_column", promptColumn(scorer));
    p.put("id_column", String.valueOf(cfg.idColumn()));
    p.put("chat", String.valueOf(scorer.options().chat()));
    scorer.options().search().asMap().forEach((k, v) -> p.put("search." + k, String.valueOf(v)));
    p.put("spark_master", spark.sparkContext().master());
    p.put("executor_instances", spark.sparkContext().getConf().get("spark.executor.instances", "default"));
    p.put("executor_cores", spark.sparkContext().getConf().get("spark.executor.cores", "default"));
    p.put("task_cpus", spark.sparkContext().getConf().get("spark.task.cpus", "1"));
    p.put("job_version", BatchScoringJob.VERSION);
    return p;
  }

  /**
   * How the work was spread and how much of the computed token slots served an answer: slot
   * efficiencies (useful prompt and answer tokens over slots computed, prefill and decode apart,
   * from what the tasks reported), the partitions, task slots and native threads per task, and
   * tokens per second per core over the scoring stage (from the start of scoring to the output
   * written; the tokens are the finished tasks' own counts).
   */
  static Map<String, Double> schedulingMetrics(BatchScorer scorer, io.genaibatch.engine.SlotUsage slots,
      double scoreSeconds, long[] span) {
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("prefill_slots", (double) slots.prefillSlots());
    m.put("decode_slots", (double) slots.decodeSlots());
    m.put("prefill_slot_efficiency", slots.prefillEfficiency());
    m.put("decode_slot_efficiency", slots.decodeEfficiency());
    m.put("slot_efficiency", slots.efficiency());
    m.put("partitions", (double) scorer.partitionsUsed());
    m.put("task_slots", (double) scorer.taskSlots());
    m.put("threads_per_task", (double) scorer.threadsPerTask());
    m.put("scoring_wall_s", scoreSeconds);
    double useful = slots.prefillUseful() + slots.decodeUseful();
    double cores = (double) scorer.taskSlots() * scorer.threadsPerTask();
    m.put("tokens_per_s", scoreSeconds > 0 ? useful / scoreSeconds : Double.NaN);
    m.put("tokens_per_s_per_core", scoreSeconds > 0 ? useful / scoreSeconds / cores : Double.NaN);
    if (span != null) {
      // Generation alone: from the first window's start to the last one's end, over all tasks.
      double genSeconds = Math.max(1e-3, (span[1] - span[0]) / 1e3);
      m.put("generation_start_epoch_ms", (double) span[0]);
      m.put("generation_end_epoch_ms", (double) span[1]);
      m.put("generation_s", genSeconds);
      m.put("generation_tokens_per_s", useful / genSeconds);
    }
    return m;
  }

  /** The file in the output folder that holds the run's metrics; Spark's readers skip names starting with '_'. */
  public static final String METRICS_FILE = "_genai_batch_metrics.json";

  /** Writes the metrics beside the output, so a run without tracking keeps them too. */
  private void writeMetricsFile(Map<String, Double> m) {
    Path file = new Path(cfg.output(), METRICS_FILE);
    try {
      FileSystem fs = file.getFileSystem(spark.sparkContext().hadoopConfiguration());
      try (java.io.OutputStream os = fs.create(file, true)) {
        new com.fasterxml.jackson.databind.ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(os, m);
      }
    } catch (IOException e) {
      LOG.warn("Could not write {}: {}", file, e.getMessage());
    }
  }

  private boolean exists(String path) {
    try {
      Path p = new Path(path);
      FileSystem fs = p.getFileSystem(spark.sparkContext().hadoopConfiguration());
      return fs.exists(new Path(p, "_SUCCESS")) || (fs.exists(p) && fs.listStatus(p).length > 0);
    } catch (IOException e) {
      throw new IllegalStateException("Cannot check output " + path + ": " + e.getMessage(), e);
    }
  }

  /**
   * Scores and writes. With an id column the input is cut into waves of about {@code commitRows}
   * rows by a hash of the id; each wave is one committed Spark write, so a killed job keeps what
   * it finished and {@code --mode resume} picks up the rest.
   */
  private void write(BatchScorer scorer, Dataset<Row> todo, long todoRows, boolean resume, String runId,
      PartitionScorer.ScoringMetrics metrics) {
    String id = cfg.idColumn();
    SaveMode first = cfg.mode().equals("overwrite") ? SaveMode.Overwrite : SaveMode.Append;
    if (id == null) {
      scorer.score(todo, runId, metrics).write().mode(first).parquet(cfg.output());
    } else {
      long waves = Math.max(1, (todoRows + cfg.commitRows() - 1) / cfg.commitRows());
      Column wave = functions.pmod(functions.xxhash64(todo.col(id)), functions.lit(waves));
      Dataset<Row> tagged = todo.withColumn(WAVE, wave);
      for (long w = 0; w < waves; w++) {
        Dataset<Row> part = tagged.filter(functions.col(WAVE).equalTo(w)).drop(WAVE);
        scorer.score(part, runId, metrics).write().mode(w == 0 ? first : SaveMode.Append).parquet(cfg.output());
      }
    }
    if (resume) {
      compact(id);
    }
  }

  /** Input rows whose id has no successful row in the output yet. */
  private Dataset<Row> notDone(Dataset<Row> input) {
    String id = cfg.idColumn();
    Dataset<Row> done = BatchScoringJob.okIds(spark.read().parquet(cfg.output()), id);
    return input.join(done, input.col(id).equalTo(done.col(id)), "left_anti");
  }

  /**
   * After a resume, an id that failed before and was scored again has two rows: keeps the newest
   * row per id, rewriting the output through a sibling folder and a rename.
   */
  private void compact(String id) {
    Dataset<Row> out = spark.read().parquet(cfg.output());
    long rows = out.count();
    long ids = out.select(id).distinct().count();
    if (rows == ids) {
      return;
    }
    org.apache.spark.sql.expressions.WindowSpec w = org.apache.spark.sql.expressions.Window.partitionBy(id)
        .orderBy(functions.col(OutputSchema.ERROR).isNull().desc(), functions.col(OutputSchema.SCORED_AT).desc());
    Dataset<Row> latest = out.withColumn("__rn", functions.row_number().over(w)).filter("__rn = 1").drop("__rn");
    String next = cfg.output().replaceAll("/+$", "") + ".compacting";
    latest.write().mode(SaveMode.Overwrite).parquet(next);
    try {
      Path target = new Path(cfg.output());
      FileSystem fs = target.getFileSystem(new Configuration(spark.sparkContext().hadoopConfiguration()));
      Path old = new Path(cfg.output().replaceAll("/+$", "") + ".replaced");
      fs.delete(old, true);
      if (!fs.rename(target, old) || !fs.rename(new Path(next), target)) {
        throw new IllegalStateException("Cannot move the compacted output " + next + " to " + cfg.output());
      }
      fs.delete(old, true);
    } catch (IOException e) {
      throw new IllegalStateException("Cannot compact " + cfg.output() + ": " + e.getMessage(), e);
    }
    LOG.info("Resume: kept the newest of {} rows for {} ids", rows, ids);
  }
}
