package io.genaibatch.job;

import io.genaibatch.common.OutputColumns;
import io.genaibatch.common.Redact;
import io.genaibatch.mlflow.RunLogger;
import io.genaibatch.settings.Setting.Scope;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import io.genaibatch.spark.BatchScorer;
import io.genaibatch.spark.PartitionScorer;
import java.io.PrintWriter;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine;

/**
 * {@code spark-submit --class io.genaibatch.job.BatchScoringJob genai-batch.jar [flags]}: scores
 * a prompt table with an MLflow model and writes every answer with its usage to Parquet.
 *
 * <p>The flags, their help and their defaults come from {@link Settings}; the exit codes from
 * {@link ExitCode}; the run itself is {@link JobRunner}'s stages.
 */
public final class BatchScoringJob {
  public static final String VERSION = "0.1.0";
  /**
   * The file in the output folder that holds the run's metrics, written with or without tracking;
   * Spark's readers skip names starting with '_'.
   */
  public static final String METRICS_FILE = "_genai_batch_metrics.json";
  private static final String CONFIG_FLAG = "--config";

  private static final Logger LOG = LoggerFactory.getLogger(BatchScoringJob.class);

  private BatchScoringJob() {}

  public static void main(String[] args) {
    System.exit(execute(args));
  }

  /** Runs the job as the command line would, returning the exit code. */
  public static int execute(String... args) {
    CommandLine cl = new CommandLine(command());
    // '@file' is a value of its own (--response-format @schema.json), not picocli's argument file.
    cl.setExpandAtFiles(false);
    cl.setExecutionStrategy(parsed -> {
      Integer help = CommandLine.executeHelpRequest(parsed);
      return help != null ? help : run(parsed, cl.getErr());
    });
    return cl.execute(args);
  }

  private static int run(ParseResult parsed, PrintWriter err) {
    try {
      SettingValues values = settle(parsed);
      SparkSession.Builder b = SparkSession.builder().appName("genai-batch " + Redact.uri(values.get(Settings.MODEL_URI)));
      SparkConf conf = new SparkConf();
      if (!conf.contains("spark.master")) {
        b.master("local[*]");
      }
      if (conf.get("spark.master", "local").startsWith("local") && !conf.contains("spark.ui.enabled")) {
        // A local job's UI dies with it and costs about a second to start: off unless asked for.
        b.config("spark.ui.enabled", "false");
      }
      // Set before the SparkContext starts: its UI, REST API and event log read it from there.
      b.config(REDACTION_REGEX, redactionRegex(conf));
      SparkSession spark = b.getOrCreate();
      JobConfig cfg = new JobConfig(BatchScorer.withSparkConf(spark, values));
      return new JobRunner(spark, cfg).run().code();
    } catch (JobFailure e) {
      err.println("genai-batch: " + Redact.message(e.getMessage()));
      if (e.code() == ExitCode.FAILED) {
        LOG.error("Job failed", Redact.throwable(e));
      }
      return e.code().code();
    } catch (IllegalArgumentException e) {
      err.println("genai-batch: " + Redact.message(e.getMessage()));
      return ExitCode.USAGE.code();
    } catch (RuntimeException e) {
      err.println("genai-batch: failed: " + Redact.message(String.valueOf(e)));
      LOG.error("Job failed", Redact.throwable(e));
      return ExitCode.FAILED.code();
    } finally {
      err.flush();
    }
  }

  /** Spark's pattern of the conf keys and values its UI, REST API and event log hide. */
  static final String REDACTION_REGEX = "spark.redaction.regex";

  /**
   * {@link #REDACTION_REGEX} as the job runs with it: the user's (else Spark's default) or the job's
   * own conf keys that name a location ({@code spark.genaibatch.tracking_uri}, {@code
   * spark.genaibatch.input}, ...) or a value holding a URI's password or a credential parameter
   * (a command line in {@code sun.java.command}).
   */
  static String redactionRegex(SparkConf conf) {
    String user = conf.get(REDACTION_REGEX,
        org.apache.spark.internal.config.package$.MODULE$.SECRET_REDACTION_PATTERN().defaultValueString());
    String keys = Settings.all().stream().filter(s -> s.type().location())
        .map(s -> Pattern.quote(s.confKey())).collect(Collectors.joining("|"));
    return user + "|" + keys + "|" + Redact.CREDENTIAL_REGEX;
  }

  /** The command line, every option made from its {@link Setting}. */
  static CommandSpec command() {
    CommandSpec spec = CommandSpec.create().name("genai-batch").version("genai-batch " + VERSION)
        .mixinStandardHelpOptions(true);
    Map<String, String> exits = new LinkedHashMap<>();
    for (ExitCode c : ExitCode.values()) {
      exits.put(String.valueOf(c.code()), c.meaning());
    }
    spec.usageMessage().sortOptions(false).autoWidth(true).exitCodeListHeading("%nExit codes:%n").exitCodeList(exits)
        .description("Batch-score prompts with an MLflow-packaged onnxruntime-genai model on Spark and write"
            + " every answer with its token usage to Parquet.%n"
            + "Precedence, highest first: flag, --config file, Spark conf " + Settings.CONF_PREFIX + "<key>, the"
            + " MLmodel's model_config, the model folder's genai_config.json search section.");
    spec.addOption(OptionSpec.builder(CONFIG_FLAG).paramLabel("YAML").type(String.class)
        .description("A YAML config file (see conf/): the settings' keys, search options under "
            + Settings.SEARCH_SECTION + ":; flags override it").build());
    for (Setting<?> s : Settings.all()) {
      spec.addOption(option(s));
    }
    return spec;
  }

  private static OptionSpec option(Setting<?> s) {
    String dflt = s.defaultValue() == null || (s.defaultValue() instanceof Map<?, ?> m && m.isEmpty()) ? ""
        : " (default " + shownDefault(s) + ")";
    OptionSpec.Builder b = OptionSpec.builder(s.flags().toArray(String[]::new)).description(s.doc() + dflt);
    if (s.negatedFlag()) {
      return b.arity("0").type(boolean.class).build();
    }
    if (s.type().javaType() == Boolean.class) {
      return b.arity("0..1").type(String.class).fallbackValue("true").paramLabel(s.label()).build();
    }
    if (Map.class.isAssignableFrom(s.type().javaType())) {
      return b.type(Map.class).auxiliaryTypes(String.class, String.class).paramLabel(s.label()).build();
    }
    return b.type(String.class).paramLabel(s.label()).build();
  }

  private static <T> Object shownDefault(Setting<T> s) {
    return s.show(s.defaultValue());
  }

  /**
   * The flags over the {@code --config} file, each checked by its setting: one layer per flag, so
   * a message and the effective config name the flag.
   */
  static SettingValues settle(ParseResult parsed) {
    SettingValues values = SettingValues.defaults();
    String config = parsed.matchedOptionValue(CONFIG_FLAG, null);
    if (config != null) {
      values = values.belowYaml("config " + config, JobConfig.readYaml(Paths.get(config)));
    }
    for (Setting<?> s : Settings.all()) {
      OptionSpec o = parsed.matchedOption(s.flags().get(0));
      if (o == null) {
        continue;
      }
      Object v = o.getValue();
      if (s.negatedFlag()) {
        v = !(Boolean) v;
      }
      values = values.above("flag " + s.flags().get(0), Map.of(s.key(), v), Scope.JOB, true);
    }
    return values;
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
          LOG.warn("Could not log progress to MLflow: {}", Redact.message(e.getMessage()));
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
    String input = c.get(Settings.INPUT);
    return switch (c.get(Settings.INPUT_FORMAT)) {
      case "table" -> spark.table(input);
      case "csv" -> spark.read().option("header", "true").option("multiLine", "true").option("escape", "\"").csv(input);
      case "json" -> spark.read().json(input);
      default -> spark.read().parquet(input);
    };
  }

  static Dataset<Row> okIds(Dataset<Row> out, String id) {
    return out.filter(functions.col(OutputColumns.ERROR).isNull()).select(id).distinct();
  }
}
