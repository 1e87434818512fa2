package io.genaibatch.job;

import io.genaibatch.engine.SearchOptions;
import io.genaibatch.mlflow.RunLogger;
import io.genaibatch.mlflow.TrackingConnection;
import io.genaibatch.spark.BatchScorer;
import io.genaibatch.spark.OutputSchema;
import io.genaibatch.spark.PartitionScorer;
import io.genaibatch.spark.ScoringOptions;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code spark-submit --class io.genaibatch.job.BatchScoringJob genai-batch.jar [flags]}: scores
 * a prompt table with an MLflow model and writes every answer with its usage to Parquet.
 *
 * <p>Exit codes: 0 the output is complete, the run logged (when tracking is on) and the share of
 * error rows at most {@code --max-error-rate}; 2 bad flags, config, model or input (nothing was
 * scored); 3 too many error rows (the output is complete); 4 the tracking server failed (the
 * output is complete); 5 an evaluation threshold was breached (the output is complete, the run
 * ends FAILED); 1 any other failure.
 */
@Command(name = "genai-batch", mixinStandardHelpOptions = true, version = "genai-batch " + BatchScoringJob.VERSION,
    sortOptions = false, usageHelpAutoWidth = true,
    description = "Batch-score prompts with an MLflow-packaged onnxruntime-genai model on Spark and write"
        + " every answer with its token usage to Parquet.%n"
        + "Precedence, highest first: flag, --config file, Spark conf spark.genaibatch.*, the MLmodel's"
        + " model_config, the model folder's genai_config.json search section.",
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {"0:output complete, run logged, error rows within --max-error-rate",
        "1:the job failed", "2:bad flags, config, model or input; nothing scored",
        "3:more error rows than --max-error-rate (output complete)",
        "4:the tracking server failed (output complete)",
        "5:an evaluation threshold was breached (output complete, run FAILED)"})
public final class BatchScoringJob implements Callable<Integer> {
  public static final String VERSION = "0.1.0";
  static final int EXIT_OK = 0;
  static final int EXIT_FAILED = 1;
  static final int EXIT_USAGE = 2;
  static final int EXIT_ERROR_RATE = 3;
  static final int EXIT_TRACKING = 4;
  static final int EXIT_THRESHOLDS = 5;

  private static final Logger LOG = LoggerFactory.getLogger(BatchScoringJob.class);

  @Option(names = "--model-uri", paramLabel = "URI", description = "models:/NAME/VERSION, models:/NAME@ALIAS,"
      + " models:/NAME/latest, models:/m-ID, runs:/RUN_ID/PATH, or a local, file:, dbfs:, /Volumes/..., s3a:,"
      + " abfss: or gs: model directory")
  String modelUri;
  @Option(names = "--input", paramLabel = "PATH|TABLE", description = "Input path, or table name with --input-format table")
  String input;
  @Option(names = "--input-format", paramLabel = "FMT", description = "parquet|json|csv|table (default parquet)")
  String inputFormat;
  @Option(names = "--output", paramLabel = "PATH", description = "Output Parquet path")
  String output;
  @Option(names = "--mode", paramLabel = "MODE", description = "overwrite|append|resume (default overwrite);"
      + " resume scores only input rows whose id has no successful output row")
  String mode;
  @Option(names = "--config", paramLabel = "YAML", description = "A YAML config file (see conf/); flags override it")
  String config;
  @Option(names = "--experiment", paramLabel = "NAME", description = "MLflow experiment (default genai-batch)")
  String experiment;
  @Option(names = "--tracking-uri", paramLabel = "URI", description = "MLflow tracking server (else MLFLOW_TRACKING_URI)")
  String trackingUri;
  @Option(names = "--no-tracking", description = "Do not log the run to MLflow")
  Boolean noTracking;
  @Option(names = {"--max-tokens", "--max-new-tokens"}, paramLabel = "N", description = "Most new tokens per prompt")
  Integer maxTokens;
  @Option(names = "--max-length", paramLabel = "N", description = "Most tokens per prompt, prompt and answer together")
  Integer maxLength;
  @Option(names = "--temperature", paramLabel = "T", description = "Sampling temperature (with --do-sample)")
  Double temperature;
  @Option(names = "--top-p", paramLabel = "P", description = "Nucleus sampling mass (with --do-sample)")
  Double topP;
  @Option(names = "--top-k", paramLabel = "K", description = "Sample among the K most likely tokens (with --do-sample)")
  Integer topK;
  @Option(names = "--do-sample", paramLabel = "BOOL", arity = "0..1", fallbackValue = "true",
      description = "Sample instead of greedy search")
  Boolean doSample;
  @Option(names = "--seed", paramLabel = "N", description = "Random seed for sampling")
  Long seed;
  @Option(names = "--repetition-penalty", paramLabel = "R", description = "Penalty for repeated tokens (1.0: none)")
  Double repetitionPenalty;
  @Option(names = "--batch-size", paramLabel = "N", description = "Prompts per generation call (default 8; 1 runs"
      + " every prompt alone and gives the answers of a one-prompt-at-a-time reference such as the pyfunc wrapper)")
  Integer batchSize;
  @Option(names = "--lookahead-rows", paramLabel = "N", description = "Rows a task reads ahead and sorts by prompt"
      + " length before cutting batches, so batches pad little (default 256; memory holds this many rows per task)")
  Integer lookaheadRows;
  @Option(names = "--partitions", paramLabel = "auto|input|N", description = "auto (default): repartition to the"
      + " task slots when the input has fewer partitions (one input file is one task on one core), or to whole waves"
      + " of tasks when a few waves would end with a partial one; input: keep the input's partitions; N: exactly N")
  String partitions;
  @Option(names = "--batching", paramLabel = "adaptive|fixed", description = "adaptive (default): batch sizes up to"
      + " --batch-size chosen by the cost measured as the job runs (padding, steps, answers' spread); fixed: as few"
      + " even batches of --batch-size as can be. Either way answers do not depend on the choice")
  String batching;
  @Option(names = "--prompt-column", paramLabel = "COL", description = "Column holding the prompt (default prompt)")
  String promptColumn;
  @Option(names = "--messages-column", paramLabel = "COL", description = "Column holding chat messages (default messages)")
  String messagesColumn;
  @Option(names = "--id-column", paramLabel = "COL", description = "Column identifying a row; needed by --mode resume")
  String idColumn;
  @Option(names = "--chat", description = "Score the messages column with the model's chat template")
  Boolean chat;
  @Option(names = "--max-error-rate", paramLabel = "F", description = "Largest share of error rows for exit code 0 (default 0.05)")
  Double maxErrorRate;
  @Option(names = "--cache-dir", paramLabel = "DIR", description = "Per-host model cache folder")
  String cacheDir;
  @Option(names = "--progress-seconds", paramLabel = "S", description = "Progress log interval (default 30)")
  Integer progressSeconds;
  @Option(names = "--commit-rows", paramLabel = "N", description = "With an id column, rows per committed wave"
      + " (default 10000), so a killed job keeps its finished waves for --mode resume")
  Integer commitRows;
  @Option(names = "--tracking-retry-seconds", paramLabel = "S", description = "How long a slow or down tracking"
      + " server is retried with backoff (default 120); the output is written either way")
  Integer trackingRetrySeconds;
  @Option(names = "--reference-column", paramLabel = "COL", description = "Column with the expected answer;"
      + " when present, exact match, token F1, ROUGE-L and answer length are logged (default expected)")
  String referenceColumn;
  @Option(names = "--no-compare", description = "Do not compare with the previous successful run of this prompt set")
  Boolean noCompare;
  @Option(names = "--max-answers-changed", paramLabel = "N", description = "Fail the run (exit 5) when more"
      + " answers changed since the previous run")
  Integer maxAnswersChanged;
  @Option(names = "--max-metric-drop", paramLabel = "METRIC=X", description = "Fail the run (exit 5) when the"
      + " metric fell by more than X since the previous run, e.g. eval_token_f1=0.05; repeatable")
  Map<String, Double> maxMetricDrop;

  public static void main(String[] args) {
    System.exit(execute(args));
  }

  /** Runs the job as the command line would, returning the exit code. */
  public static int execute(String... args) {
    CommandLine cl = new CommandLine(new BatchScoringJob());
    cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
      if (e instanceof IllegalArgumentException) {
        cmd.getErr().println("genai-batch: " + e.getMessage());
        return EXIT_USAGE;
      }
      cmd.getErr().println("genai-batch: failed: " + e);
      LOG.error("Job failed", e);
      return EXIT_FAILED;
    });
    return cl.execute(args);
  }

  @Override
  public Integer call() {
    JobConfig cfg = settle();
    SparkConf conf = new SparkConf();
    SparkSession.Builder b = SparkSession.builder().appName("genai-batch " + cfg.modelUri());
    if (!conf.contains("spark.master")) {
      b.master("local[*]");
    }
    SparkSession spark = b.getOrCreate();
    return new JobRunner(spark, cfg).run();
  }

  /** Flags over config file; validation with messages that name the key and the fix. */
  JobConfig settle() {
    Map<String, Object> file = config != null ? JobConfig.readYaml(Paths.get(config)) : Map.of();
    @SuppressWarnings("unchecked")
    Map<String, Object> fileSearch = file.get(JobConfig.Keys.SEARCH) instanceof Map<?, ?> m
        ? (Map<String, Object>) m : Map.of();
    SearchOptions fromFile = SearchOptions.fromMap(fileSearch, "config " + config + " search");
    SearchOptions fromFlags = new SearchOptions(maxTokens, maxLength, temperature, topP, topK, doSample, seed,
        repetitionPenalty);
    JobConfig c = new JobConfig(
        pick(modelUri, file, JobConfig.Keys.MODEL_URI, null),
        pick(input, file, JobConfig.Keys.INPUT, null),
        pick(inputFormat, file, JobConfig.Keys.INPUT_FORMAT, JobConfig.Keys.INPUT_FORMAT_DEFAULT),
        pick(output, file, JobConfig.Keys.OUTPUT, null),
        pick(mode, file, JobConfig.Keys.MODE, JobConfig.Keys.MODE_DEFAULT),
        pick(experiment, file, JobConfig.Keys.EXPERIMENT, JobConfig.Keys.EXPERIMENT_DEFAULT),
        pick(trackingUri, file, JobConfig.Keys.TRACKING_URI, System.getenv(TrackingConnection.TRACKING_URI_ENV)),
        noTracking != null ? !noTracking : Boolean.parseBoolean(pick(null, file, JobConfig.Keys.TRACKING, "true")),
        pickInt(batchSize, file, JobConfig.Keys.BATCH_SIZE, JobConfig.Keys.BATCH_SIZE_DEFAULT),
        pickInt(lookaheadRows, file, JobConfig.Keys.LOOKAHEAD_ROWS, ScoringOptions.LOOKAHEAD_ROWS_DEFAULT),
        ScoringOptions.parsePartitions(pick(partitions, file, JobConfig.Keys.PARTITIONS, "auto")),
        io.genaibatch.engine.Batching.parse(pick(batching, file, JobConfig.Keys.BATCHING, "adaptive")),
        pick(promptColumn, file, JobConfig.Keys.PROMPT_COLUMN, ScoringOptions.PROMPT_COLUMN_DEFAULT),
        pick(messagesColumn, file, JobConfig.Keys.MESSAGES_COLUMN, ScoringOptions.MESSAGES_COLUMN_DEFAULT),
        pick(idColumn, file, JobConfig.Keys.ID_COLUMN, null),
        chat != null ? chat : Boolean.parseBoolean(pick(null, file, JobConfig.Keys.CHAT, "false")),
        Double.parseDouble(pick(maxErrorRate == null ? null : maxErrorRate.toString(), file,
            JobConfig.Keys.MAX_ERROR_RATE, String.valueOf(JobConfig.Keys.MAX_ERROR_RATE_DEFAULT))),
        pick(cacheDir, file, JobConfig.Keys.CACHE_DIR, null),
        pickInt(progressSeconds, file, JobConfig.Keys.PROGRESS_SECONDS, JobConfig.Keys.PROGRESS_SECONDS_DEFAULT),
        pickInt(commitRows, file, JobConfig.Keys.COMMIT_ROWS, JobConfig.Keys.COMMIT_ROWS_DEFAULT),
        pickInt(trackingRetrySeconds, file, JobConfig.Keys.TRACKING_RETRY_SECONDS,
            JobConfig.Keys.TRACKING_RETRY_SECONDS_DEFAULT),
        pick(referenceColumn, file, JobConfig.Keys.REFERENCE_COLUMN, JobConfig.Keys.REFERENCE_COLUMN_DEFAULT),
        noCompare != null ? !noCompare : Boolean.parseBoolean(pick(null, file, JobConfig.Keys.COMPARE, "true")),
        thresholds(file),
        fromFile.overriddenBy(fromFlags));
    require(c.modelUri(), "--model-uri", JobConfig.Keys.MODEL_URI);
    require(c.input(), "--input", JobConfig.Keys.INPUT);
    require(c.output(), "--output", JobConfig.Keys.OUTPUT);
    if (!JobConfig.FORMATS.contains(c.inputFormat())) {
      throw new IllegalArgumentException("--input-format must be one of " + JobConfig.FORMATS + ", got '" + c.inputFormat() + "'");
    }
    if (!JobConfig.MODES.contains(c.mode())) {
      throw new IllegalArgumentException("--mode must be one of " + JobConfig.MODES + ", got '" + c.mode() + "'");
    }
    if (c.mode().equals("resume") && c.idColumn() == null) {
      throw new IllegalArgumentException("--mode resume needs --id-column: the column that says which input rows are done");
    }
    if (c.batchSize() < 1) {
      throw new IllegalArgumentException("--batch-size must be >= 1, got " + c.batchSize());
    }
    if (c.lookaheadRows() < 1) {
      throw new IllegalArgumentException("--lookahead-rows must be >= 1, got " + c.lookaheadRows());
    }
    if (!(c.maxErrorRate() >= 0 && c.maxErrorRate() <= 1)) {
      throw new IllegalArgumentException("--max-error-rate is a fraction between 0 and 1, got " + c.maxErrorRate());
    }
    if (c.commitRows() < 1) {
      throw new IllegalArgumentException("--commit-rows must be >= 1, got " + c.commitRows());
    }
    return c;
  }

  /** Thresholds from the config file, with the flags' values over its own. */
  private io.genaibatch.eval.Thresholds thresholds(Map<String, Object> file) {
    Map<String, Object> merged = new java.util.LinkedHashMap<>();
    Object drops = file.get(JobConfig.Keys.MAX_METRIC_DROP);
    Map<String, Object> dropMap = new java.util.LinkedHashMap<>();
    if (drops instanceof Map<?, ?> m) {
      m.forEach((k, v) -> dropMap.put(String.valueOf(k), v));
    } else if (drops != null) {
      merged.put(JobConfig.Keys.MAX_METRIC_DROP, drops);
    }
    if (maxMetricDrop != null) {
      dropMap.putAll(maxMetricDrop);
    }
    if (!merged.containsKey(JobConfig.Keys.MAX_METRIC_DROP)) {
      merged.put(JobConfig.Keys.MAX_METRIC_DROP, dropMap);
    }
    merged.put(JobConfig.Keys.MAX_ANSWERS_CHANGED,
        maxAnswersChanged != null ? maxAnswersChanged : file.get(JobConfig.Keys.MAX_ANSWERS_CHANGED));
    return io.genaibatch.eval.Thresholds.fromConfig(merged, config != null ? "config " + config : "flags");
  }

  private static String pick(String flag, Map<String, Object> file, String key, String dflt) {
    if (flag != null) {
      return flag;
    }
    Object v = file.get(key);
    return v != null ? v.toString() : dflt;
  }

  /** A whole-number setting: the flag, else the config file's key, else the default. */
  private static int pickInt(Integer flag, Map<String, Object> file, String key, int dflt) {
    String v = pick(flag == null ? null : flag.toString(), file, key, String.valueOf(dflt));
    try {
      return Integer.parseInt(v.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("'" + key + "' must be a whole number, got '" + v + "'");
    }
  }

  private static void require(String v, String flag, String key) {
    if (v == null || v.isBlank()) {
      throw new IllegalArgumentException("Missing " + flag + " (or '" + key + "' in the --config file); see --help");
    }
  }

  /**
   * Progress on the driver at a steady interval: rows done, tokens/s, ETA, in the log and as
   * MLflow step metrics; one last point when scoring ends, so the curve always reaches the end.
   */
  static final class Progress implements AutoCloseable {
    private final Thread thread;
    private final PartitionScorer.ScoringMetrics metrics;
    private final long total;
    private final RunLogger run;
    private final long start = System.nanoTime();
    private long step;
    private volatile boolean stop;

    Progress(PartitionScorer.ScoringMetrics m, long total, int seconds, RunLogger run) {
      this.metrics = m;
      this.total = total;
      this.run = run;
      thread = new Thread(() -> {
        while (!stop) {
          try {
            Thread.sleep(seconds * 1000L);
          } catch (InterruptedException e) {
            return;
          }
          report();
        }
      }, "genai-batch-progress");
      thread.setDaemon(true);
      thread.start();
    }

    private synchronized void report() {
      double secs = (System.nanoTime() - start) / 1e9;
      long done = metrics.rows();
      double tps = metrics.generatedTokens() / Math.max(secs, 1e-9);
      double rps = done / Math.max(secs, 1e-9);
      String eta = rps > 0 && total > done ? Math.round((total - done) / rps) + " s" : "-";
      LOG.info("genai-batch progress: {}/{} rows, {} generated tokens/s, ETA {}", done, total,
          String.format("%.1f", tps), eta);
      if (run != null) {
        try {
          Map<String, Double> live = new LinkedHashMap<>();
          live.put("progress_rows", (double) done);
          live.put("progress_tokens_per_s", tps);
          run.logMetricsOnce(live, ++step);
        } catch (RuntimeException e) {
          LOG.warn("Could not log progress to MLflow: {}", e.getMessage());
        }
      }
    }

    @Override
    public void close() {
      stop = true;
      thread.interrupt();
      try {
        thread.join(5000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      report();
    }
  }

  static Dataset<Row> readInput(SparkSession spark, JobConfig c) {
    return switch (c.inputFormat()) {
      case "table" -> spark.table(c.input());
      case "csv" -> spark.read().option("header", "true").option("multiLine", "true").option("escape", "\"").csv(c.input());
      case "json" -> spark.read().json(c.input());
      default -> spark.read().parquet(c.input());
    };
  }

  static Dataset<Row> okIds(Dataset<Row> out, String id) {
    return out.filter(functions.col(OutputSchema.ERROR).isNull()).select(id).distinct();
  }

  static BatchScorer scorer(SparkSession spark, JobConfig c) {
    ScoringOptions opts = new ScoringOptions(c.promptColumn(), c.messagesColumn(), c.idColumn(), c.batchSize(),
        SearchOptions.DEFAULTS, c.chat(), c.lookaheadRows(), c.partitions(), c.batching());
    return BatchScorer.create(spark, c.modelUri(), c.trackingUri(), c.search(), opts, c.cacheDir());
  }
}
