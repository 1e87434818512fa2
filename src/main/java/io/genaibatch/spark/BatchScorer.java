package io.genaibatch.spark;

import io.genaibatch.common.OutputColumns;
import io.genaibatch.common.Redact;
import io.genaibatch.engine.GenAiConfig;
import io.genaibatch.engine.guidance.NativeGuidance;
import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.engine.natives.NativeLibraries;
import io.genaibatch.mlflow.MlModel;
import io.genaibatch.mlflow.ModelCache;
import io.genaibatch.mlflow.ModelFetcher;
import io.genaibatch.mlflow.ModelResolver;
import io.genaibatch.mlflow.ModelUri;
import io.genaibatch.mlflow.ResolvedModel;
import io.genaibatch.mlflow.TrackingConnection;
import io.genaibatch.settings.Setting.Scope;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple2;
import scala.collection.Iterator;

/**
 * The driver side of scoring: resolves the model URI through MLflow, fetches and inspects the
 * model (its {@code MLmodel} signature and {@code model_config}, its {@code genai_config.json}),
 * settles the search options, checks the input against the signature, and only then maps the
 * partitions. Everything that can be wrong with the model, the options or the input's columns
 * fails here, before any task starts.
 */
public final class BatchScorer {
  private static final Logger LOG = LoggerFactory.getLogger(BatchScorer.class);
  /** Rows per generation call on an accelerator unless --batch-size says otherwise. */
  public static final int ACCELERATOR_BATCH_SIZE = 32;
  private final SparkSession spark;
  private final ModelSpec spec;
  private final ModelFetcher.LocalModel local;
  /** The model's genai_config.json, read on the driver from its metadata. */
  private final GenAiConfig genai;
  private final ScoringOptions options;
  private final SettingValues settings;
  /** Spark's GPU scheduling of this job; null when it asks for none. */
  private final GpuScheduling gpus;
  /** The type of {@code response_parsed}, with {@code parse_response}; else null. */
  private final StructType parsedType;

  private BatchScorer(SparkSession spark, ModelSpec spec, ModelFetcher.LocalModel local, GenAiConfig genai,
      ScoringOptions options, SettingValues settings, Optional<GpuScheduling> gpus) {
    this.spark = spark;
    this.gpus = gpus.orElse(null);
    this.spec = spec;
    this.local = local;
    this.genai = genai;
    this.options = options;
    this.settings = settings;
    this.parsedType = parsedType(options);
    if (options.responseFormat() != null || options.columns().containsKey(RowOption.RESPONSE_FORMAT)) {
      // A library without llguidance would generate unconstrained: refuse it here, before scoring,
      // where this JVM can tell (in local mode it is the executors' own).
      NativeGuidance.unavailable().ifPresent(why -> {
        throw new IllegalArgumentException(Settings.RESPONSE_FORMAT.key() + " is set, but " + why);
      });
    }
  }

  /**
   * The struct an answer is parsed into, from the job's JSON Schema response format.
   *
   * @throws IllegalArgumentException when {@code parse_response} is on without a JSON Schema of an object
   */
  static StructType parsedType(ScoringOptions options) {
    if (!options.parseResponse()) {
      return null;
    }
    ResponseFormat f = options.responseFormat();
    if (f == null || f.jsonSchema().isEmpty()) {
      throw new IllegalArgumentException(Settings.PARSE_RESPONSE.key() + " parses answers under the job's JSON"
          + " Schema, but " + (f == null ? "no " + Settings.RESPONSE_FORMAT.key() + " is set"
          : Settings.RESPONSE_FORMAT.key() + " is a " + f.kind().name().toLowerCase(Locale.ROOT).replace('_', ' '))
          + ". Set --response-format to a JSON Schema of an object (e.g. @schema.json), or drop --parse-response");
    }
    return ResponseSchemas.structOf(f.jsonSchema().get(), Settings.RESPONSE_FORMAT.key());
  }

  /**
   * Resolves, fetches and inspects the model; settles the options: {@code values} (flags, config,
   * Spark conf, or the Transformer's params over Spark conf) over the MLmodel's {@code
   * model_config}.
   *
   * @param values the settings from every layer above the model's own; see {@link #withSparkConf}
   */
  public static BatchScorer create(SparkSession spark, SettingValues values) {
    io.genaibatch.spark.compat.SparkLine.check(spark); // the jar's Spark line is the runtime's
    String modelUri = values.get(Settings.MODEL_URI);
    if (modelUri == null) {
      throw new IllegalArgumentException("No model: set " + Settings.MODEL_URI.key() + " (--model-uri, the"
          + " Transformer's setModelUri, or " + Settings.MODEL_URI.confKey() + ")");
    }
    Redact.rememberUri(modelUri);
    ModelUri uri = ModelUri.parse(modelUri);
    String tracking = TrackingConnection.uriOrEnv(values.get(Settings.TRACKING_URI));
    // A --cache-dir holds on every host; without one each host (the driver here, each executor
    // there) takes its own default.
    String cache = values.get(Settings.CACHE_DIR);
    JobHadoopConf.install();
    ResolvedModel resolved;
    ModelFetcher.LocalModel local;
    try (TrackingConnection conn = uri.needsTracking() || tracking != null ? TrackingConnection.connect(tracking) : null) {
      resolved = new ModelResolver(conn).resolve(uri);
      // The driver reads the metadata only; executors fetch the whole model into their host's cache.
      local = ModelFetcher.fetchMetadata(resolved, conn,
          new ModelCache(cache != null ? Paths.get(cache) : ModelCache.defaultRoot()));
    }
    GenAiConfig genai = GenAiConfig.read(local.genaiDir(), local::has);
    boolean allowCustomOps = values.get(Settings.ALLOW_CUSTOM_OPS);
    GenAiConfig.checkCustomOps(local.genaiDir(), allowCustomOps);
    SettingValues fromModel = local.mlModel() == null ? values
        : values.below("model_config of " + modelUri, local.mlModel().modelConfig(), Scope.SEARCH, false);
    ExecutionProvider provider = ExecutionProvider.of(fromModel.get(Settings.EXECUTION_PROVIDER),
        fromModel.get(Settings.PROVIDER_OPTIONS));
    // A GPU's generation call pays off with more rows than a core's: its own default batch size.
    SettingValues settled = provider.isCpu() ? fromModel : fromModel.below("the default on an accelerator",
        Map.of(Settings.BATCH_SIZE.key(), ACCELERATOR_BATCH_SIZE), Scope.SCORING, false);
    boolean chatModel = local.mlModel() != null && local.mlModel().signature().isChat();
    int threads = Integer.parseInt(spark.sparkContext().getConf().get("spark.task.cpus", "1"));
    ScoringOptions options = ScoringOptions.from(settled, chatModel);
    Optional<GpuScheduling> gpus = checkProvider(spark, provider);
    // The continuous loop runs the decoder graph on the CPU; an accelerator batches in onnxruntime-genai.
    boolean continuous = options.batching().continuous(options.batchSize(), provider.isCpu());
    ModelSpec spec = new ModelSpec(resolved, tracking, ModelSpec.driverMlflowEnv(), cache, threads,
        executorCores(spark.sparkContext().getConf(), spark.sparkContext().isLocal()), continuous, allowCustomOps,
        provider);
    return new BatchScorer(spark, spec, local, genai, options, settled, gpus);
  }

  /**
   * Cores of one executor, which its tasks' shared decode loop runs on: {@code spark.executor.cores}
   * when set, a local master's cores, else 0 (a standalone or Databricks executor takes its host's
   * cores: each executor counts its own).
   */
  static int executorCores(SparkConf conf, boolean localMaster) {
    if (conf.contains("spark.executor.cores")) {
      return Integer.parseInt(conf.get("spark.executor.cores").strip());
    }
    if (!localMaster) {
      return 0;
    }
    Matcher m = LOCAL_CORES.matcher(conf.get("spark.master", "local"));
    return !m.matches() || m.group(1) == null ? 1
        : "*".equals(m.group(1)) ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(m.group(1));
  }

  /** A local master's cores: {@code local}, {@code local[N]}, {@code local[*]}, {@code local[N, F]}. */
  private static final Pattern LOCAL_CORES =
      Pattern.compile("local(?:\\[\\s*(\\*|\\d+)\\s*(?:,\\s*\\d+\\s*)?\\])?");

  /**
   * The GPU scheduling for {@code provider}, checked before scoring: on a cluster an accelerator
   * needs Spark's GPU scheduling; under a local master this JVM is the executor, so the native
   * library must have the provider.
   */
  private static Optional<GpuScheduling> checkProvider(SparkSession spark, ExecutionProvider provider) {
    boolean localMaster = spark.sparkContext().isLocal();
    Optional<GpuScheduling> gpus = GpuScheduling.check(spark.sparkContext().getConf(), provider, localMaster);
    if (provider.isCpu() && gpus.isPresent()) {
      LOG.warn("{} is set, but --execution-provider is cpu: the GPUs Spark gives the tasks stay idle (set"
          + " --execution-provider cuda to use them)", GpuScheduling.TASK_AMOUNT);
    }
    if (!provider.isCpu() && localMaster) {
      NativeLibraries.onnxRuntimeDir().flatMap(provider::missingIn).ifPresent(why -> {
        throw new IllegalArgumentException(why);
      });
    }
    return gpus;
  }

  /**
   * {@code values} over {@code spark.genaibatch.*} from the session's runtime conf, which holds
   * the startup conf too: a notebook's {@code spark.conf.set("spark.genaibatch.max_new_tokens",
   * "32")} takes effect. A {@code spark.genaibatch.} key that names no setting is refused naming
   * the nearest one.
   */
  public static SettingValues withSparkConf(SparkSession spark, SettingValues values) {
    Map<String, Object> m = new LinkedHashMap<>();
    Iterator<Tuple2<String, String>> it = spark.conf().getAll().iterator();
    while (it.hasNext()) {
      Tuple2<String, String> kv = it.next();
      if (kv._1().startsWith(Settings.CONF_PREFIX)) {
        m.put(kv._1().substring(Settings.CONF_PREFIX.length()), kv._2());
      }
    }
    return values.below("Spark conf " + Settings.CONF_PREFIX + "*", m, Scope.JOB, true);
  }

  /** Every setting after precedence, the model's {@code model_config} included, with its source. */
  public SettingValues settings() {
    return settings;
  }

  public ModelSpec spec() {
    return spec;
  }

  public ModelFetcher.LocalModel localModel() {
    return local;
  }

  public ScoringOptions options() {
    return options;
  }

  /** The output schema for {@code input}. */
  public StructType outputSchema(StructType input) {
    return OutputSchema.of(input, options.chat(), RowOptions.resolve(options, input).manyCompletions(), parsedType);
  }

  /**
   * Checks {@code input}'s columns against the model signature and the options.
   *
   * @throws IllegalArgumentException naming exactly the missing or mistyped column and the fix
   */
  public void check(StructType input) {
    MlModel ml = local.mlModel();
    String col = options.chat() ? options.messagesColumn() : options.promptColumn();
    String sigName = options.chat() ? "messages" : "prompt";
    Set<String> names = Set.of(input.fieldNames());
    if (!names.contains(col)) {
      throw new IllegalArgumentException("Input has no column '" + col + "' (the model's '" + sigName
          + "' input); its columns are " + String.join(", ", input.fieldNames()) + ". Set --"
          + (options.chat() ? "messages" : "prompt") + "-column to the column that holds the "
          + (options.chat() ? "chat messages." : "prompts."));
    }
    DataType t = input.apply(col).dataType();
    if (options.chat()) {
      // The messages themselves, or a whole llm/v1/chat request (a struct with messages and options).
      DataType m = t instanceof StructType req && req.getFieldIndex("messages").isDefined()
          ? req.apply("messages").dataType() : t;
      boolean okType = m instanceof ArrayType a && a.elementType() instanceof StructType st
          && hasString(st, "role") && hasString(st, "content");
      if (!okType) {
        throw new IllegalArgumentException("Input column '" + col + "' has type " + t.simpleString()
            + ", but the model's 'messages' input needs array<struct<role:string,content:string>>, or a struct"
            + " (the whole llm/v1/chat request) whose messages field is one");
      }
    } else if (!DataTypes.StringType.equals(t)) {
      throw new IllegalArgumentException("Input column '" + col + "' has type " + t.simpleString()
          + ", but the model's 'prompt' input is a string. Cast it first, e.g. .withColumn(\"" + col
          + "\", col(\"" + col + "\").cast(\"string\"))");
    }
    if (ml != null && !ml.signature().inputs().isEmpty() && ml.signature().input(sigName).isEmpty()) {
      throw new IllegalArgumentException("The model's signature has no '" + sigName + "' input (it has "
          + ml.signature().inputs().stream().map(MlModel.ColumnSpec::name).toList()
          + "); genai-batch scores models whose signature is prompt: string or the llm/v1/chat messages shape");
    }
    RowOptions rowOptions = RowOptions.resolve(options, input);
    for (String added : OutputSchema.addedNames(options.chat(), rowOptions.manyCompletions(), parsedType != null)) {
      if (names.contains(added)) {
        throw new IllegalArgumentException("Input already has a column '" + added
            + "', which the output adds; rename or drop it first");
      }
    }
    if (!rowOptions.rowsSetNOrTemperature()) {
      // A job-wide n that no row can change: every row would be the same error row.
      genai.sameAnswers(options.search(), options.n()).ifPresent(why -> {
        throw new IllegalArgumentException(Settings.N.key() + " applies to every row (the input has no n or"
            + " temperature column), and " + why);
      });
    }
    if (options.idColumn() != null && !names.contains(options.idColumn())) {
      throw new IllegalArgumentException("Input has no id column '" + options.idColumn() + "'; its columns are "
          + String.join(", ", input.fieldNames()) + ". Set --id-column.");
    }
  }

  private static boolean hasString(StructType st, String name) {
    for (StructField f : st.fields()) {
      if (f.name().equals(name)) {
        return DataTypes.StringType.equals(f.dataType());
      }
    }
    return false;
  }

  /**
   * Scores {@code input}: every row once, input columns first, then the output columns.
   *
   * @param runId the MLflow run id for the output's run_id column, or null
   * @param metrics accumulators to fill, or null
   */
  public Dataset<Row> score(Dataset<Row> input, String runId, PartitionScorer.ScoringMetrics metrics) {
    check(input.schema());
    boolean java8 = Boolean.parseBoolean(spark.conf().get("spark.sql.datetime.java8API.enabled", "false"));
    PartitionScorer scorer = new PartitionScorer(spec, options, input.schema(), runId, java8, metrics);
    Dataset<Row> spread = spread(input);
    StructType scored = OutputSchema.of(input.schema(), options.chat(),
        RowOptions.resolve(options, input.schema()).manyCompletions(), null);
    Dataset<Row> out = spread.mapPartitions(scorer, Encoders.row(scored));
    if (parsedType == null) {
      return out;
    }
    return out.withColumn(OutputColumns.RESPONSE_PARSED, OutputSchema.parsed(parsedType));
  }

  /**
   * Tasks that can run at once: the cluster's cores (Spark's default parallelism) over
   * spark.task.cpus, and with GPU scheduling no more than the executors' GPUs take.
   */
  public int taskSlots() {
    int cores = Math.max(1, spark.sparkContext().defaultParallelism() / threadsPerTask());
    // Registered executors, the driver's entry aside (a local master's one entry is both).
    int executors = spark.sparkContext().statusTracker().getExecutorInfos().length - 1;
    return gpus != null && executors > 0 ? Math.min(cores, gpus.slots(executors)) : cores;
  }

  /** Native threads each task's generation uses: spark.task.cpus, the cores the task owns. */
  public int threadsPerTask() {
    return Math.max(1, spec.intraOpThreads());
  }

  /** Partitions the last {@link #score} call spread its input over. */
  public int partitionsUsed() {
    return partitionsUsed;
  }

  private volatile int partitionsUsed;

  /**
   * Spreads the input over the task slots: one input file is one partition, one task, one core.
   * With {@code partitions} auto, an input with fewer partitions than task slots, or a few waves
   * with a partial last one, is repartitioned (round robin, see {@link #autoPartitions}); which
   * rows share a native batch changes with it, their answers do not (see {@link
   * io.genaibatch.engine.LlmModel#score}).
   */
  private Dataset<Row> spread(Dataset<Row> input) {
    int have = input.rdd().getNumPartitions();
    int want = options.partitions() == Settings.PARTITIONS_INPUT ? have
        : options.partitions() == Settings.PARTITIONS_AUTO ? autoPartitions(have, taskSlots())
        : options.partitions();
    partitionsUsed = want;
    return want == have ? input : input.repartition(want);
  }

  /**
   * Partitions for {@code have} input partitions on {@code slots} task slots: at least the slots,
   * and, for a few waves of tasks, a whole number of waves, so that no last wave of a few tasks runs
   * on a few cores while the others idle (3 partitions on 2 slots become 4). Many partitions are kept
   * as they are: their last wave is a small part of the job.
   */
  public static int autoPartitions(int have, int slots) {
    if (have < slots) {
      return slots;
    }
    if (have < 4 * slots && have % slots != 0) {
      return (have + slots - 1) / slots * slots;
    }
    return have;
  }
}
