package io.genaibatch.job;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.common.OutputColumns;
import io.genaibatch.common.Redact;
import io.genaibatch.common.Sha256;
import io.genaibatch.engine.DecodeProfile;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.SlotUsage;
import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.mlflow.MlflowException;
import io.genaibatch.mlflow.Retry;
import io.genaibatch.mlflow.RunLogger;
import io.genaibatch.mlflow.TrackingConnection;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import io.genaibatch.spark.BatchScorer;
import io.genaibatch.spark.GpuScheduling;
import io.genaibatch.spark.LocalPreload;
import io.genaibatch.spark.PartitionScorer;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.expressions.Window;
import org.apache.spark.sql.expressions.WindowSpec;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructField;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One run of the job, as a few named stages: {@link #check} (model, options, input; nothing is
 * scored if it fails), {@link #startTracking}, {@link #score} (in committed waves), {@link
 * #readBack} (counts from the written output), {@link #report} (metrics, the metrics file, the
 * summary line) and {@link #finish} (the run's metrics, artifacts, evaluation and end). A stage
 * that must end the job throws a {@link JobFailure} carrying its exit code. The output is always
 * written before anything is logged from it, and never deleted on a tracking failure.
 */
final class JobRunner {
  private static final Logger LOG = LoggerFactory.getLogger(JobRunner.class);
  private static final String WAVE = "__genai_batch_wave";

  private final SparkSession spark;
  private final JobConfig cfg;
  /**
   * Seconds of the job's steps before the report: JVM and Spark start, driver checks (model
   * metadata, input read and digest), the tracking run's start, scoring (model loads and generation
   * included), reading the output back. The fixed cost of a job is all but the generation span.
   */
  private final Map<String, Double> phases = new LinkedHashMap<>();
  /** The input's name as the run's dataset, once tracking started. */
  private String inputName;
  /** The model's load ahead of the tasks, under a local master; null otherwise. */
  private LocalPreload preload;

  JobRunner(SparkSession spark, JobConfig cfg) {
    this.spark = spark;
    this.cfg = cfg;
  }

  /** What {@link #check} found: the scorer, the input, its size and digest. */
  private record Checked(BatchScorer scorer, Dataset<Row> input, long rows, String promptSet) {}

  /** What {@link #score} did: the rows expected in the output, the task metrics, scoring time. */
  private record Scored(long expectedRows, PartitionScorer.ScoringMetrics metrics, double seconds) {}

  /** What {@link #readBack} counted in the written output, and the exit code it implies. */
  private record Written(Dataset<Row> out, Row agg, long rows, long ok, ExitCode code, String failure) {
    long failed() {
      return rows - ok;
    }

    double errorRate() {
      return rows == 0 ? 0 : (double) failed() / rows;
    }
  }

  ExitCode run() {
    long t0 = System.nanoTime();
    // The JVM's start (and so Spark's) up to here: what a job pays before its first step.
    phases.put("phase_start_s",
        (System.currentTimeMillis() - ManagementFactory.getRuntimeMXBean().getStartTime()) / 1e3);
    Checked in = check();
    phases.put("phase_check_s", (System.nanoTime() - t0) / 1e9);
    RunLogger run = null;
    try {
      String trackingFailure = null;
      long tracking = System.nanoTime();
      try {
        run = startTracking(in);
        phases.put("phase_tracking_start_s", (System.nanoTime() - tracking) / 1e9);
      } catch (RuntimeException e) {
        // The scoring is worth more than its record: score and write anyway, then exit 4.
        trackingFailure = Redact.message(e.getMessage());
        LOG.error("MLflow tracking at {} failed; scoring anyway, the run will not be logged: {}",
            Redact.uri(cfg.trackingUri()), trackingFailure);
      }
      Scored scored = score(in, run);
      phases.put("phase_score_s", scored.seconds());
      long back = System.nanoTime();
      Written w = readBack(scored, t0);
      phases.put("phase_read_back_s", (System.nanoTime() - back) / 1e9);
      Map<String, Double> m = report(in.scorer(), scored, w, (System.nanoTime() - t0) / 1e9);
      if (trackingFailure != null) {
        throw new JobFailure(ExitCode.TRACKING, "the output is complete at " + cfg.get(Settings.OUTPUT)
            + ", but the run was not logged to MLflow: " + trackingFailure, null);
      }
      if (run == null) {
        if (List.of(w.out().columns()).contains(cfg.get(Settings.REFERENCE_COLUMN))) {
          // No run to log to or compare with, but the reference metrics are still worth printing.
          NightlyEvaluation.run(spark, cfg, null, w.out(), in.scorer().options().scoredColumn(), in.promptSet(), null);
        }
        return w.code();
      }
      return finish(run, in, w, m);
    } finally {
      if (run != null) {
        run.tracking().close();
      }
    }
  }

  /**
   * Driver-side checks: resolves and fetches the model, settles the options, reads the input and
   * checks its columns, counts and digests it.
   *
   * @throws JobFailure with {@link ExitCode#USAGE} naming what is wrong
   */
  private Checked check() {
    try {
      long t0 = System.nanoTime();
      BatchScorer scorer = BatchScorer.create(spark, cfg.values());
      if (spark.sparkContext().isLocal()) {
        preload = LocalPreload.start(scorer.spec());
      }
      long t1 = System.nanoTime();
      Dataset<Row> input = BatchScoringJob.readInput(spark, cfg);
      scorer.check(input.schema());
      long t2 = System.nanoTime();
      PromptSet set = promptSet(input);
      phases.put("phase_check_model_s", (t1 - t0) / 1e9);
      phases.put("phase_check_input_s", (t2 - t1) / 1e9);
      phases.put("phase_check_digest_s", (System.nanoTime() - t2) / 1e9);
      return new Checked(scorer, input, set.rows(), set.digest());
    } catch (IllegalArgumentException | MlflowException | EngineException e) {
      throw new JobFailure(ExitCode.USAGE, e.getMessage(), e);
    } catch (Exception e) {
      // Spark's AnalysisException (a missing path or table), undeclared in Java's view.
      throw new JobFailure(ExitCode.USAGE, "cannot read input " + cfg.get(Settings.INPUT) + " as "
          + cfg.get(Settings.INPUT_FORMAT) + ": " + e.getMessage(), e);
    }
  }

  /** Starts the MLflow run with its tags, params and input dataset; null when tracking is off. */
  private RunLogger startTracking(Checked in) {
    String uri = cfg.trackingUri();
    if (!cfg.get(Settings.TRACKING)) {
      return null;
    }
    if (uri == null) {
      LOG.warn("No MLflow tracking URI (--tracking-uri or MLFLOW_TRACKING_URI): the run is not logged");
      return null;
    }
    Retry retry = new Retry(Duration.ofSeconds(cfg.get(Settings.TRACKING_RETRY_SECONDS)));
    TrackingConnection conn = TrackingConnection.connect(uri);
    try {
      RunLogger run = RunLogger.start(conn, cfg.get(Settings.EXPERIMENT),
          "genai-batch " + LocalDateTime.now(ZoneId.systemDefault()).format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss")),
          tags(in.scorer(), in.promptSet()), retry);
      run.logParams(params(in.scorer()));
      String dataset = logDataset(run, in.input(), in.rows(), in.promptSet());
      inputName = dataset;
      String modelId = in.scorer().spec().model().modelId();
      if (modelId != null) {
        run.attachModel(modelId, dataset, in.promptSet());
      }
      LOG.info("MLflow run {} in experiment '{}' at {}", run.runId(), cfg.get(Settings.EXPERIMENT), Redact.uri(uri));
      return run;
    } catch (RuntimeException e) {
      conn.close();
      throw e;
    }
  }

  /**
   * Scores and writes, with progress reports; in a resume, only the rows not done yet.
   *
   * @throws JobFailure with {@link ExitCode#FAILED}, after ending the run as failed
   */
  private Scored score(Checked in, RunLogger run) {
    PartitionScorer.ScoringMetrics metrics = PartitionScorer.ScoringMetrics.register(spark.sparkContext());
    if (preload != null) {
      preload.record(metrics);
    }
    long start = System.nanoTime();
    String output = cfg.get(Settings.OUTPUT);
    String mode = cfg.get(Settings.MODE);
    try {
      long before = mode.equals("append") && exists(output) ? spark.read().parquet(output).count() : 0;
      boolean resume = mode.equals("resume") && exists(output);
      Dataset<Row> todo = resume ? notDone(in.input()) : in.input();
      // Progress counts what this run has to score: in a resume, the rows not done yet.
      long todoRows = resume ? todo.count() : in.rows();
      if (resume) {
        LOG.info("Resume: {} of {} input rows still to score", todoRows, in.rows());
      }
      try (BatchScoringJob.Progress p = new BatchScoringJob.Progress(metrics, todoRows,
          cfg.get(Settings.PROGRESS_SECONDS), run)) {
        write(in.scorer(), todo, todoRows, resume, run == null ? null : run.runId(), metrics);
      } finally {
        metrics.release();
      }
      return new Scored(in.rows() + before, metrics, (System.nanoTime() - start) / 1e9);
    } catch (RuntimeException e) {
      LOG.error("Scoring failed", Redact.throwable(e));
      if (run != null) {
        try {
          run.setTags(Map.of("genai_batch.error", String.valueOf(Redact.message(e.getMessage()))));
          run.finish(false);
        } catch (RuntimeException notEnded) {
          LOG.warn("Could not end the MLflow run as FAILED: {}", Redact.message(notEnded.getMessage()));
        }
      }
      throw new JobFailure(ExitCode.FAILED, "scoring failed: " + Redact.message(e.getMessage()), e);
    }
  }

  /**
   * Reads the written output back and counts it: rows, error rows, tokens, latency percentiles.
   * Metrics come from the output, never from estimates. The exit code so far: {@link
   * ExitCode#FAILED} when rows are missing, {@link ExitCode#ERROR_RATE} above the error budget.
   */
  private Written readBack(Scored scored, long t0) {
    String output = cfg.get(Settings.OUTPUT);
    Dataset<Row> out = spark.read().parquet(output);
    Row agg = out.agg(
        functions.count(functions.lit(1)).as("rows"),
        functions.sum(functions.when(functions.col(OutputColumns.ERROR).isNull(), 1).otherwise(0)).as("ok"),
        functions.sum(OutputColumns.PROMPT_TOKENS).as("pt"),
        functions.sum(OutputColumns.COMPLETION_TOKENS).as("ct"),
        percentile(0.5, "p50"), percentile(0.95, "p95"), percentile(0.99, "p99"))
        .first();
    long rows = agg.getLong(0);
    long ok = agg.isNullAt(1) ? 0 : agg.getLong(1);
    System.out.printf("genai-batch: wrote %d rows (%d ok, %d errors) to %s in %.1f s%n", rows, ok, rows - ok, Settings.OUTPUT.shown(output),
        (System.nanoTime() - t0) / 1e9);
    double errorRate = rows == 0 ? 0 : (double) (rows - ok) / rows;
    double maxErrorRate = cfg.get(Settings.MAX_ERROR_RATE);
    ExitCode code = ExitCode.OK;
    String failure = null;
    if (rows != scored.expectedRows()) {
      failure = String.format("the output has %d rows but %d were expected", rows, scored.expectedRows());
      code = ExitCode.FAILED;
    } else if (errorRate > maxErrorRate) {
      failure = String.format("%.2f%% of rows are errors, above --max-error-rate %.2f%%; see the error column in %s",
          100 * errorRate, 100 * maxErrorRate, output);
      code = ExitCode.ERROR_RATE;
    }
    if (failure != null) {
      System.err.println("genai-batch: " + failure);
    }
    return new Written(out, agg, rows, ok, code, failure);
  }

  private static Column percentile(double p, String name) {
    return functions.percentile_approx(functions.col(OutputColumns.LATENCY_MS), functions.lit(p), functions.lit(10000))
        .as(name);
  }

  /** The run's metrics: written beside the output, printed as one summary line, returned for logging. */
  private Map<String, Double> report(BatchScorer scorer, Scored scored, Written w, double wallSeconds) {
    Row agg = w.agg();
    PartitionScorer.ScoringMetrics metrics = scored.metrics();
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("rows_total", (double) w.rows());
    m.put("rows_ok", (double) w.ok());
    m.put("rows_failed", (double) w.failed());
    m.put("error_rate", w.errorRate());
    m.put("prompt_tokens", agg.isNullAt(2) ? 0.0 : agg.getLong(2));
    m.put("completion_tokens", agg.isNullAt(3) ? 0.0 : agg.getLong(3));
    m.put("total_tokens", m.get("prompt_tokens") + m.get("completion_tokens"));
    m.put("generated_tokens_per_s", m.get("completion_tokens") / wallSeconds);
    m.put("rows_per_s", w.rows() / wallSeconds);
    m.put("latency_p50_ms", agg.isNullAt(4) ? null : agg.getDouble(4));
    m.put("latency_p95_ms", agg.isNullAt(5) ? null : agg.getDouble(5));
    m.put("latency_p99_ms", agg.isNullAt(6) ? null : agg.getDouble(6));
    if (metrics.formatted().value() > 0) {
      // Rows answered under a response format, and how many of those parse under it (every completion).
      m.put("responses_formatted", (double) metrics.formatted().value());
      m.put("responses_parsed", (double) metrics.formattedOk().value());
    }
    m.put("model_loads", (double) metrics.loads().value());
    m.put("model_load_ms", (double) metrics.loadMillis().value());
    m.put("model_fetch_ms", scorer.localModel().fetchMillis());
    m.put("model_fetch_bytes", (double) scorer.localModel().fetchedBytes());
    m.put("model_fetch_mb_per_s", scorer.localModel().fetchMbPerSecond());
    m.put("executor_fetch_bytes", (double) metrics.fetchBytes().value());
    m.put("executor_fetch_ms", (double) metrics.fetchMillis().value());
    m.put("executor_fetch_mb_per_s", metrics.fetchMbPerSecond());
    Map<String, Double> rss = metrics.peakRssMbByExecutor();
    m.put("executors_used", (double) rss.size());
    Map<String, Long> byGpu = metrics.tasksByGpu();
    if (!byGpu.isEmpty()) {
      m.put("gpus_used", (double) byGpu.size());
      System.out.printf("genai-batch: tasks per GPU Spark gave them (%s): %s%n", scorer.spec().provider(), byGpu);
    }
    m.put("executor_peak_rss_mb", rss.values().stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN));
    m.putAll(schedulingMetrics(scorer, metrics.slots(), metrics.profile().tokensAvoided(), scored.seconds(),
        metrics.generationSpan()));
    m.putAll(decodeMetrics(metrics.profile()));
    m.putAll(phases);
    m.put("wall_time_s", wallSeconds);
    writeMetricsFile(m);
    System.out.printf("genai-batch: slot efficiency %.1f%% (prefill %.1f%%, decode %.1f%%); %d partitions on %d task"
        + " slots x %d native threads; %.1f tokens/s per core%n", 100 * m.get("slot_efficiency"),
        100 * m.get("prefill_slot_efficiency"), 100 * m.get("decode_slot_efficiency"), m.get("partitions").intValue(),
        m.get("task_slots").intValue(), m.get("threads_per_task").intValue(), m.get("tokens_per_s_per_core"));
    if (m.containsKey("prefix_tokens_reused")) {
      System.out.printf("genai-batch: prefix store: %.0f of %.0f prompt tokens read from it (hit rate %.1f%%), at most"
          + " %.1f MiB held; %.0f completions answered from an identical one%n", m.get("prefix_tokens_reused"),
          m.get("prefix_tokens_reused") + m.get("prompt_tokens_computed"), 100 * m.get("prefix_hit_rate"),
          m.get("prefix_cache_bytes") / (1 << 20), m.get("duplicate_completions"));
    }
    return m;
  }

  /**
   * Logs the metrics and artifacts, evaluates against the reference column and the previous run,
   * tags and ends the run. Returns the final exit code.
   */
  private ExitCode finish(RunLogger run, Checked in, Written w, Map<String, Double> m) {
    ExitCode code = w.code();
    String failure = w.failure();
    // java.nio's Path: the Hadoop Path imported here names output locations.
    java.nio.file.Path tmp = null;
    try {
      run.logMetrics(m, 0);
      RunReport.log(run, w.out(), cfg, in.scorer(), w.rows());
      tmp = Files.createTempDirectory("genai-batch-eval");
      NightlyEvaluation.Outcome eval = NightlyEvaluation.run(spark, cfg, run, w.out(),
          in.scorer().options().scoredColumn(), in.promptSet(), tmp);
      run.logMetrics(eval.metrics(), 0);
      boolean nightly = NightlyEvaluation.hasReference(cfg, w.out());
      RunTraces.export(cfg, run, w.out(), in.scorer().options().scoredColumn(), in.scorer().options().chat(),
          nightly);
      if (nightly) {
        EvaluationRecords.register(cfg, run, w.out(), in.scorer().options().scoredColumn(),
            in.scorer().options().chat(), inputName + "@" + in.promptSet());
      }
      Map<String, String> endTags = new LinkedHashMap<>();
      // A path's credentials stay out of the run: a next run's comparison cannot read such an output back.
      endTags.put(NightlyEvaluation.OUTPUT_TAG, String.valueOf(Settings.OUTPUT.shown(cfg.get(Settings.OUTPUT))));
      if (!eval.breaches().isEmpty()) {
        String breaches = String.join("; ", eval.breaches());
        System.err.println("genai-batch: evaluation thresholds breached: " + breaches);
        endTags.put("genai_batch.threshold_breaches", breaches);
        if (code == ExitCode.OK) {
          code = ExitCode.THRESHOLDS;
          failure = "evaluation thresholds breached: " + breaches;
        }
      }
      if (failure != null) {
        endTags.put("genai_batch.error", failure);
      }
      run.setTags(endTags);
      run.finish(code == ExitCode.OK);
      System.out.println("genai-batch: MLflow run " + run.runId() + " at " + Redact.uri(cfg.trackingUri()));
      return code;
    } catch (RuntimeException | IOException e) {
      throw new JobFailure(ExitCode.TRACKING, "the output is complete at " + cfg.get(Settings.OUTPUT)
          + ", but logging the run to MLflow failed: " + Redact.message(e.getMessage()), e);
    } finally {
      deleteTree(tmp);
    }
  }

  private static void deleteTree(java.nio.file.Path dir) {
    if (dir == null) {
      return;
    }
    try (var s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      LOG.warn("Could not delete {}: {}", dir, e.getMessage());
    }
  }

  /** Logs the input as an MLflow dataset (name, digest, source, schema and row count); returns its name. */
  private String logDataset(RunLogger run, Dataset<Row> input, long rows, String digest) {
    List<Map<String, Object>> schema = new ArrayList<>();
    for (StructField f : input.schema().fields()) {
      schema.add(Map.of("name", f.name(), "type", mlflowType(f.dataType()), "required", !f.nullable()));
    }
    boolean table = cfg.get(Settings.INPUT_FORMAT).equals("table");
    String shown = String.valueOf(Settings.INPUT.shown(cfg.get(Settings.INPUT)));
    String source;
    try {
      source = new ObjectMapper().writeValueAsString(table ? Map.of("table_name", shown) : Map.of("uri", shown));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
    String name = table ? shown : new Path(shown).getName();
    run.logInput(name, digest, table ? "table" : "local", source, schema, rows, "scoring");
    return name;
  }

  /** The input's row count and content digest. */
  private record PromptSet(long rows, String digest) {}

  /**
   * Counts the input and digests its content (schema, row count, and an order-independent sum of
   * row hashes) in one pass: the same prompts give the same digest night after night, whatever
   * file holds them.
   */
  private static PromptSet promptSet(Dataset<Row> input) {
    Column[] cols = Arrays.stream(input.columns()).map(functions::col)
        .toArray(Column[]::new);
    Row agg = input.agg(functions.count(functions.lit(1)),
        functions.sum(functions.xxhash64(cols).cast("decimal(38,0)"))).first();
    long rows = agg.getLong(0);
    String fingerprint = input.schema().json() + "|" + rows + "|" + (agg.isNullAt(1) ? "0" : agg.get(1));
    return new PromptSet(rows, Sha256.hexPrefix(fingerprint, 12));
  }

  private static String mlflowType(DataType t) {
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

  /**
   * The run's params: every setting that has a value after precedence (the model's {@code
   * model_config} included), under its config-file key ({@code batch_size}, {@code
   * search.max_new_tokens}), the tracking URI left out (it may carry credentials), then the
   * resolved model and the cluster's shape.
   */
  @SuppressWarnings({"unchecked", "rawtypes"})
  private Map<String, String> params(BatchScorer scorer) {
    Map<String, String> p = new LinkedHashMap<>();
    SettingValues settled = scorer.settings();
    for (Setting s : Settings.all()) {
      Object v = s.shown(settled.get(s));
      if (v != null && s != Settings.TRACKING_URI) {
        p.put(s.yamlPath(), String.valueOf(v));
      }
    }
    ResponseFormat format = scorer.options().responseFormat();
    if (format != null) {
      // A schema may be longer than a param may hold: the param names it, the artifact holds it.
      p.put(Settings.RESPONSE_FORMAT.yamlPath(), format.kind().name().toLowerCase(Locale.ROOT) + " ("
          + RunReport.RESPONSE_FORMAT_ARTIFACT + ")");
      p.put("response_format_digest", format.digest());
    }
    p.put(Settings.MODEL_URI.key(), Redact.uri(cfg.get(Settings.MODEL_URI)));
    p.put(Settings.CHAT.key(), String.valueOf(scorer.options().chat()));
    var r = scorer.spec().model();
    p.put("model_artifact_uri", Redact.uri(r.artifactUri()));
    p.put("model_version", String.valueOf(r.versionLabel()));
    p.put("spark_master", spark.sparkContext().master());
    p.put("executor_instances", spark.sparkContext().getConf().get("spark.executor.instances", "default"));
    p.put("executor_cores", spark.sparkContext().getConf().get("spark.executor.cores", "default"));
    p.put("task_cpus", spark.sparkContext().getConf().get("spark.task.cpus", "1"));
    p.put("task_gpus", spark.sparkContext().getConf().get(GpuScheduling.TASK_AMOUNT, "0"));
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
  static Map<String, Double> schedulingMetrics(BatchScorer scorer, SlotUsage slots, long avoided,
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
    // Every prompt and answer token served counts, those read from the prefix store or copied from a
    // duplicate too: useful tokens/s can then pass the machine's prefill rate.
    double useful = slots.prefillUseful() + slots.decodeUseful() + avoided;
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

  /**
   * Where the continuous loops' time went, summed over executors (each executor's one loop runs on
   * all its cores, and each window is given its share of the steps it was in): prefills and decode
   * steps in onnxruntime, choosing tokens and checking ends, moving cache regions; the counts of
   * prefills and steps; the largest key/value cache a loop held. Empty when no row went through the loop.
   */
  static Map<String, Double> decodeMetrics(DecodeProfile p) {
    Map<String, Double> m = new LinkedHashMap<>();
    if (p.totalMs() <= 0) {
      return m;
    }
    m.put("continuous_s", p.totalMs() / 1e3);
    m.put("continuous_prefill_s", p.prefillMs() / 1e3);
    m.put("continuous_decode_s", p.stepMs() / 1e3);
    m.put("continuous_choose_s", p.chooseMs() / 1e3);
    m.put("continuous_move_s", p.moveMs() / 1e3);
    m.put("continuous_prefills", (double) p.prefills());
    m.put("continuous_steps", (double) p.steps());
    m.put("kv_cache_bytes", (double) p.kvBytes());
    m.put("prompt_tokens_computed", (double) p.promptComputed());
    m.put("prefix_tokens_reused", (double) p.promptReused());
    m.put("prefix_hit_rate", p.prefixHitRate());
    m.put("prefix_cache_bytes", (double) p.storeBytes());
    m.put("duplicate_completions", (double) p.duplicates());
    m.put("duplicate_tokens", (double) p.duplicateTokens());
    return m;
  }

  /** Writes the metrics beside the output, so a run without tracking keeps them too. */
  private void writeMetricsFile(Map<String, Double> m) {
    Path file = new Path(cfg.get(Settings.OUTPUT), BatchScoringJob.METRICS_FILE);
    try {
      FileSystem fs = file.getFileSystem(spark.sparkContext().hadoopConfiguration());
      try (OutputStream os = fs.create(file, true)) {
        new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(os, m);
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
    String id = cfg.get(Settings.ID_COLUMN);
    SaveMode first = cfg.get(Settings.MODE).equals("overwrite") ? SaveMode.Overwrite : SaveMode.Append;
    if (id == null) {
      scorer.score(todo, runId, metrics).write().mode(first).parquet(cfg.get(Settings.OUTPUT));
    } else {
      long waves = Math.max(1, (todoRows + cfg.get(Settings.COMMIT_ROWS) - 1) / cfg.get(Settings.COMMIT_ROWS));
      Column wave = functions.pmod(functions.xxhash64(todo.col(id)), functions.lit(waves));
      Dataset<Row> tagged = todo.withColumn(WAVE, wave);
      for (long w = 0; w < waves; w++) {
        Dataset<Row> part = tagged.filter(functions.col(WAVE).equalTo(w)).drop(WAVE);
        scorer.score(part, runId, metrics).write().mode(w == 0 ? first : SaveMode.Append).parquet(cfg.get(Settings.OUTPUT));
      }
    }
    if (resume) {
      compact(id);
    }
  }

  /** Input rows whose id has no successful row in the output yet. */
  private Dataset<Row> notDone(Dataset<Row> input) {
    String id = cfg.get(Settings.ID_COLUMN);
    Dataset<Row> done = BatchScoringJob.okIds(spark.read().parquet(cfg.get(Settings.OUTPUT)), id);
    return input.join(done, input.col(id).equalTo(done.col(id)), "left_anti");
  }

  /**
   * After a resume, an id that failed before and was scored again has two rows: keeps the newest
   * row per id, rewriting the output through a sibling folder and a rename.
   */
  private void compact(String id) {
    Dataset<Row> out = spark.read().parquet(cfg.get(Settings.OUTPUT));
    long rows = out.count();
    long ids = out.select(id).distinct().count();
    if (rows == ids) {
      return;
    }
    WindowSpec w = Window.partitionBy(id)
        .orderBy(functions.col(OutputColumns.ERROR).isNull().desc(), functions.col(OutputColumns.SCORED_AT).desc());
    Dataset<Row> latest = out.withColumn("__rn", functions.row_number().over(w)).filter("__rn = 1").drop("__rn");
    String next = cfg.get(Settings.OUTPUT).replaceAll("/+$", "") + ".compacting";
    latest.write().mode(SaveMode.Overwrite).parquet(next);
    try {
      Path target = new Path(cfg.get(Settings.OUTPUT));
      FileSystem fs = target.getFileSystem(new Configuration(spark.sparkContext().hadoopConfiguration()));
      Path old = new Path(cfg.get(Settings.OUTPUT).replaceAll("/+$", "") + ".replaced");
      fs.delete(old, true);
      if (!fs.rename(target, old) || !fs.rename(new Path(next), target)) {
        throw new IllegalStateException("Cannot move the compacted output " + next + " to " + cfg.get(Settings.OUTPUT));
      }
      fs.delete(old, true);
    } catch (IOException e) {
      throw new IllegalStateException("Cannot compact " + cfg.get(Settings.OUTPUT) + ": " + e.getMessage(), e);
    }
    LOG.info("Resume: kept the newest of {} rows for {} ids", rows, ids);
  }
}
