package io.genaibatch.settings;

import io.genaibatch.engine.Batching;
import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.mlflow.TrackingConnection;
import io.genaibatch.settings.Setting.Scope;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Every setting of genai-batch, each declared once. The job's flags, {@code --help}, the YAML
 * config's keys, Spark conf {@code spark.genaibatch.*}, the effective-config artifact, the
 * Transformer's params and the SQL function's options all come from this list; {@link
 * SettingValues} resolves them in one order (see there).
 *
 * <p>To add a setting: declare it here, read it where it is used with {@code values.get(SETTING)}.
 */
public final class Settings {
  /** Spark conf prefix: {@code spark.genaibatch.max_new_tokens}. */
  public static final String CONF_PREFIX = "spark.genaibatch.";
  /** The YAML section that holds the search options. */
  public static final String SEARCH_SECTION = "search";
  public static final int PARTITIONS_AUTO = 0;
  public static final int PARTITIONS_INPUT = -1;

  private static final List<Setting<?>> ALL = new ArrayList<>();

  // --- the model and the tracking server
  public static final Setting<String> MODEL_URI = declare("model_uri", Scope.SCORING, ValueType.locationText(), null, "URI",
      "models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/latest, models:/m-ID, runs:/RUN_ID/PATH, or a local,"
          + " file:, dbfs:, /Volumes/..., s3a:, abfss: or gs: model directory");
  public static final Setting<String> TRACKING_URI = declare("tracking_uri", Scope.SCORING, ValueType.locationText(), null,
      "URI", "MLflow tracking server (else MLFLOW_TRACKING_URI)");
  public static final Setting<String> CACHE_DIR = declare("cache_dir", Scope.SCORING, ValueType.locationText(), null, "DIR",
      "Per-host model cache folder (default $TMPDIR/genai-batch-models-$USER)");
  public static final Setting<Boolean> ALLOW_CUSTOM_OPS = declare("allow_custom_ops", Scope.SCORING, ValueType.bool(),
      false, "BOOL", "Load a model whose genai_config.json names a custom operator library (native code from the"
          + " model folder); refused by default");
  public static final Setting<String> EXECUTION_PROVIDER = declare("execution_provider", Scope.SCORING,
      ValueType.choice(ExecutionProvider.NAMES.stream().map(n -> n.toLowerCase(Locale.ROOT)).toArray(String[]::new)), ExecutionProvider.CPU, "NAME",
      "Where the model runs: cpu, or an onnxruntime-genai execution provider (cuda, ...) of the native library's"
          + " build; with cuda on a cluster, each task takes the GPU Spark gave it (spark.task.resource.gpu.amount)");
  public static final Setting<Map<String, String>> PROVIDER_OPTIONS = declare("provider_options", Scope.SCORING,
      ValueType.textMap(), Map.of(), "NAME=VALUE", "Options of the execution provider, e.g. enable_cuda_graph=1 or"
          + " gpu_mem_limit=20000000000; repeatable (device_id is the task's GPU unless given)");

  // --- input and output of the job
  public static final Setting<String> INPUT = declare("input", Scope.JOB, ValueType.locationText(), null, "PATH|TABLE",
      "Input path, or table name with --input-format table");
  public static final Setting<String> INPUT_FORMAT = declare("input_format", Scope.JOB,
      ValueType.choice("parquet", "json", "csv", "table"), "parquet", "FMT", "parquet, json, csv (with header) or table");
  public static final Setting<String> OUTPUT = declare("output", Scope.JOB, ValueType.locationText(), null, "PATH",
      "Output Parquet path");
  public static final Setting<String> MODE = declare("mode", Scope.JOB, ValueType.choice("overwrite", "append", "resume"),
      "overwrite", "MODE", "overwrite, append or resume; resume scores only input rows whose id has no successful"
          + " output row");
  public static final Setting<String> ID_COLUMN = declare("id_column", Scope.JOB, ValueType.text(), null, "COL",
      "Column identifying a row; needed by --mode resume");
  public static final Setting<Integer> COMMIT_ROWS = declare("commit_rows", Scope.JOB,
      ValueType.integer(1, Integer.MAX_VALUE), 10_000, "N", "With an id column, rows per committed wave, so a killed"
          + " job keeps its finished waves for --mode resume");

  // --- what is scored and how it is batched
  public static final Setting<String> PROMPT_COLUMN = declare("prompt_column", Scope.SCORING, ValueType.text(),
      "prompt", "COL", "Column holding the prompt (the signature's prompt input)");
  public static final Setting<String> MESSAGES_COLUMN = declare("messages_column", Scope.SCORING, ValueType.text(),
      "messages", "COL", "Column holding chat messages, array<struct<role,content>>");
  public static final Setting<Boolean> CHAT = declare("chat", Scope.SCORING, ValueType.bool(), false, "BOOL",
      "Score the messages column with the model's chat template (on by itself for an llm/v1/chat model)");
  public static final Setting<Integer> BATCH_SIZE = declare("batch_size", Scope.SCORING,
      ValueType.integer(1, 4096), 8, "N", "Rows each task brings to a decode step (its executor's one loop runs its"
          + " tasks' rows together; with static batches, prompts per generation call); 1 runs every prompt alone and gives the answers of a one-prompt-at-a-time reference such as the"
          + " pyfunc wrapper");
  public static final Setting<Integer> KV_CACHE_MB = declare("kv_cache_mb", Scope.SCORING,
      ValueType.integer(1, 1_048_576), 4096, "MIB", "Most key/value cache one task accounts for, in MiB, on"
          + " every path (its executor's loop holds at most its tasks' limits summed; onnxruntime-genai's own batches"
          + " count rows x max_length): a window whose batch would need more runs fewer rows at a time, and a row that"
          + " alone needs more is that row's error");
  public static final Setting<Integer> PREFIX_CACHE_MB = declare("prefix_cache_mb", Scope.SCORING,
      ValueType.integer(0, 1_048_576), 2048, "MIB", "Most key/value cache of prompt prefixes each executor keeps, in"
          + " MiB: a row whose prompt starts with a cached prefix (a shared instruction, system prompt or few-shot"
          + " examples) computes only the rest, and identical rows are generated once; least recently used blocks go"
          + " first. 0 turns prefix reuse and duplicate answering off. Answers are the same either way");
  public static final Setting<Integer> LOOKAHEAD_ROWS = declare("lookahead_rows", Scope.SCORING,
      ValueType.integer(1, 1_000_000), 256, "N", "Rows a task reads ahead into one window (the continuous loop takes"
          + " them in order; static batches sort them by prompt length, so batches pad little); a task holds this many"
          + " rows");
  public static final Setting<Integer> PARTITIONS = declare("partitions", Scope.SCORING, ValueType.partitions(),
      PARTITIONS_AUTO, "auto|input|N", "auto: repartition to the task slots when the input has fewer partitions (one"
          + " input file is one task on one core), or to whole waves of tasks when a few waves would end with a partial"
          + " one; input: keep the input's partitions; N: exactly N");
  public static final Setting<Batching> BATCHING = declare("batching", Scope.SCORING, ValueType.enumOf(Batching.class),
      Batching.CONTINUOUS, "continuous|adaptive|fixed", "continuous: up to --batch-size rows decode together, a row"
          + " that ends leaves its slot at once and a waiting row takes it; adaptive: onnxruntime-genai's static batches,"
          + " sizes up to --batch-size chosen by the cost measured as the job runs; fixed: as few even static batches of"
          + " --batch-size as can be. Greedy answers do not depend on the choice");

  // --- search options (null: the model's model_config, then its genai_config.json, decides)
  public static final Setting<Integer> MAX_NEW_TOKENS = new Builder<>("max_new_tokens", Scope.SEARCH,
      ValueType.integer(1, Integer.MAX_VALUE), "N", "Most new tokens per prompt, the stop token included")
      .flags("--max-tokens", "--max-new-tokens").aliases("max_tokens").add();
  public static final Setting<Integer> MAX_LENGTH = declare("max_length", Scope.SEARCH,
      ValueType.integer(1, Integer.MAX_VALUE), null, "N", "Most tokens per prompt, prompt and answer together");
  public static final Setting<Double> TEMPERATURE = declare("temperature", Scope.SEARCH,
      ValueType.decimal(0, true, Double.POSITIVE_INFINITY), null, "T",
      "Sampling temperature (with --do-sample); 0 means greedy search");
  public static final Setting<Double> TOP_P = declare("top_p", Scope.SEARCH, ValueType.decimal(0, false, 1), null, "P",
      "Nucleus sampling mass (with --do-sample)");
  public static final Setting<Integer> TOP_K = declare("top_k", Scope.SEARCH, ValueType.integer(1, Integer.MAX_VALUE),
      null, "K", "Sample among the K most likely tokens (with --do-sample)");
  public static final Setting<Boolean> DO_SAMPLE = declare("do_sample", Scope.SEARCH, ValueType.bool(), null, "BOOL",
      "Sample instead of greedy search");
  public static final Setting<Long> SEED = new Builder<>("seed", Scope.SEARCH, ValueType.longInteger(), "N",
      "Random seed for sampling").aliases("random_seed").add();
  public static final Setting<Double> REPETITION_PENALTY = declare("repetition_penalty", Scope.SEARCH,
      ValueType.decimal(0, false, Double.POSITIVE_INFINITY), null, "R", "Penalty for repeated tokens (1.0: none)");
  public static final Setting<List<String>> STOP = declare("stop", Scope.SEARCH, ValueType.textList(), null,
      "TEXT|JSON", "Stop strings: an answer ends where one first appears in its text, which it then excludes (a JSON"
          + " array for several, or for escapes: '[\"\\n\\n\", \"###\"]')");
  public static final Setting<Integer> N = new Builder<>("n", Scope.SEARCH, ValueType.integer(1, 64), "N",
      "Completions per prompt, sampled (needs --do-sample); usage counts them all").defaultValue(1)
      .flags("--n").add();
  public static final Setting<String> RESPONSE_FORMAT = declare("response_format", Scope.SEARCH, ValueType.text(), null,
      "FORMAT|@FILE", "Constrain every answer: a JSON Schema, OpenAI's {\"type\":\"json_schema\",...},"
          + " regex:PATTERN or lark:GRAMMAR, inline or @file (docs/structured-output.md)");

  // --- what one row may ask for, whatever its cells say (a breach is that row's error, naming the limit)
  public static final Setting<Integer> MAX_ROW_TOKENS = declare("max_row_tokens", Scope.SCORING,
      ValueType.integer(1, Integer.MAX_VALUE), 32768, "N", "Most new tokens one row may ask for in all: its n times"
          + " its token budget (max_tokens, or what the context leaves); its n completions' key/value cache must also"
          + " fit in --kv-cache-mb");
  public static final Setting<Integer> MAX_STOP_STRINGS = declare("max_stop_strings", Scope.SCORING,
      ValueType.integer(1, 10_000), 16, "N", "Most stop strings one row may give");
  public static final Setting<Integer> MAX_STOP_CHARS = declare("max_stop_chars", Scope.SCORING,
      ValueType.integer(1, 1_000_000), 256, "N", "Longest stop string one row may give, in characters");
  public static final Setting<Integer> MAX_FORMAT_CHARS = declare("max_format_chars", Scope.SCORING,
      ValueType.integer(1, Integer.MAX_VALUE), 65536, "N", "Longest response format one row may give, in characters");
  public static final Setting<Integer> MAX_FORMAT_DEPTH = declare("max_format_depth", Scope.SCORING,
      ValueType.integer(1, 10_000), 32, "N", "Deepest nesting of one row's response format: JSON objects and arrays,"
          + " regex groups, grammar parentheses");

  // --- a row's own options, from columns (in chat mode the llm/v1/chat fields, when the input has them)
  public static final Setting<String> MAX_TOKENS_COLUMN = declare("max_tokens_column", Scope.SCORING,
      ValueType.text(), null, "COL", "Column with a row's own max_tokens (chat mode: max_tokens when present)");
  public static final Setting<String> TEMPERATURE_COLUMN = declare("temperature_column", Scope.SCORING,
      ValueType.text(), null, "COL", "Column with a row's own temperature (chat mode: temperature when present)");
  public static final Setting<String> TOP_P_COLUMN = declare("top_p_column", Scope.SCORING, ValueType.text(), null,
      "COL", "Column with a row's own top_p (chat mode: top_p when present)");
  public static final Setting<String> STOP_COLUMN = declare("stop_column", Scope.SCORING, ValueType.text(), null,
      "COL", "Column with a row's own stop strings, array<string> or string (chat mode: stop when present)");
  public static final Setting<String> N_COLUMN = declare("n_column", Scope.SCORING, ValueType.text(), null, "COL",
      "Column with a row's own n (chat mode: n when present)");
  public static final Setting<String> RESPONSE_FORMAT_COLUMN = declare("response_format_column", Scope.SCORING,
      ValueType.text(), null, "COL", "Column with a row's own response format, as --response-format takes it"
          + " inline (chat mode: response_format when present)");
  public static final Setting<Boolean> PARSE_RESPONSE = declare("parse_response", Scope.SCORING, ValueType.bool(),
      false, "BOOL", "With a JSON Schema --response-format of an object, add the column response_parsed: the answer"
          + " parsed into a struct");

  // --- tracking, error budget and nightly evaluation
  public static final Setting<String> EXPERIMENT = declare("experiment", Scope.JOB, ValueType.text(), "genai-batch",
      "NAME", "MLflow experiment");
  public static final Setting<Boolean> TRACKING = new Builder<>("tracking", Scope.JOB, ValueType.bool(), "BOOL",
      "Log the run to MLflow (--no-tracking: do not)").defaultValue(true).flags("--no-tracking").negated().add();
  public static final Setting<Integer> TRACKING_RETRY_SECONDS = declare("tracking_retry_seconds", Scope.JOB,
      ValueType.integer(0, Integer.MAX_VALUE), 120, "S", "How long a slow or down tracking server is retried with"
          + " backoff; the output is written either way");
  public static final Setting<Integer> TRACKING_PARALLELISM = declare("tracking_parallelism", Scope.JOB,
      ValueType.integer(1, TrackingConnection.MAX_PARALLEL_CALLS), 4, "N", "Calls in flight to the tracking server"
          + " for per-trace assessments, a batch of traces at a time (1: one at a time); a server's worker count"
          + " (mlflow server --workers) is the useful most");
  public static final Setting<Double> MAX_ERROR_RATE = declare("max_error_rate", Scope.JOB, ValueType.decimal(0, true, 1),
      0.05, "F", "Largest share of error rows for exit code 0: a nightly run with more bad rows should page someone");
  public static final Setting<Integer> PROGRESS_SECONDS = declare("progress_seconds", Scope.JOB,
      ValueType.integer(1, Integer.MAX_VALUE), 30, "S", "Progress log interval");
  public static final Setting<String> REFERENCE_COLUMN = declare("reference_column", Scope.JOB, ValueType.text(),
      "expected", "COL", "Column with the expected answer; when present, exact match, token F1, ROUGE-L and answer"
          + " length are logged");
  public static final Setting<Double> TRACE_SAMPLE_RATE = declare("trace_sample_rate", Scope.JOB,
      ValueType.decimal(0, true, 1), null, "F", "Share of rows sent to MLflow as traces, chosen by a hash of the row"
          + " id (default: 1 when the input has the reference column, a nightly evaluation; 0.01 otherwise; 0: none)");
  public static final Setting<Boolean> COMPARE_PREVIOUS = new Builder<>("compare_previous", Scope.JOB, ValueType.bool(),
      "BOOL", "Compare with the previous successful run of this prompt set (--no-compare: do not)").defaultValue(true)
      .flags("--no-compare").negated().add();
  public static final Setting<Integer> MAX_ANSWERS_CHANGED = declare("max_answers_changed", Scope.JOB,
      ValueType.integer(0, Integer.MAX_VALUE), null, "N", "Fail the run (exit 5) when more answers changed since the"
          + " previous run");
  public static final Setting<Map<String, Double>> MAX_METRIC_DROP = declare("max_metric_drop", Scope.JOB,
      ValueType.limits(), Map.of(), "METRIC=X", "Fail the run (exit 5) when the metric fell by more than X since the"
          + " previous run, e.g. eval_token_f1=0.05; repeatable. A scorer's metric (answered/mean=0.1) is checked by"
          + " jobs/nightly.sh after the scorers ran, not by the job");
  public static final Setting<List<String>> SCORERS = declare("scorers", Scope.JOB, ValueType.textList(), null,
      "NAMES", "Scorers that jobs/nightly.sh runs with mlflow.genai.evaluate over the run's traces after the job, into"
          + " the same run (read by src/main/python/genai_batch/evaluate_run.py, not by the job): the project's code"
          + " scorers answered, reference_in_answer, answer_is_json and, with judge_model, MLflow's LLM judges"
          + " correctness, relevance_to_query, safety");
  public static final Setting<String> JUDGE_MODEL = declare("judge_model", Scope.JOB, ValueType.text(), null, "URI",
      "The model MLflow's LLM judges among the scorers call, as MLflow names it (e.g. openai:/gpt-4o-mini); without"
          + " it a judge in scorers is refused");

  private Settings() {}

  private static <T> Setting<T> declare(String key, Scope scope, ValueType<T> type, T dflt, String label, String doc) {
    return new Builder<>(key, scope, type, label, doc).defaultValue(dflt).add();
  }

  /** Every setting, in declaration order (the order of {@code --help}). */
  public static List<Setting<?>> all() {
    return Collections.unmodifiableList(ALL);
  }

  /** Settings that apply at {@code widest} scope or wider ({@code SCORING}: scoring and search). */
  public static List<Setting<?>> within(Scope widest) {
    return ALL.stream().filter(s -> s.within(widest)).toList();
  }

  /** The setting for a key or one of its aliases. */
  public static Optional<Setting<?>> byKey(String key) {
    for (Setting<?> s : ALL) {
      if (s.key().equals(key) || s.aliases().contains(key)) {
        return Optional.of(s);
      }
    }
    return Optional.empty();
  }

  /**
   * The known name closest to {@code unknown} among {@code known}, for "did you mean" messages:
   * the same last segment first ({@code max_new_tokens} for {@code search.max_new_tokens}), then
   * the smallest edit distance.
   */
  public static String nearest(String unknown, List<String> known) {
    String tail = unknown.substring(unknown.lastIndexOf('.') + 1);
    for (String k : known) {
      if (k.substring(k.lastIndexOf('.') + 1).equals(tail)) {
        return k;
      }
    }
    String best = null;
    int bestD = Integer.MAX_VALUE;
    for (String k : known) {
      int d = distance(unknown, k);
      if (d < bestD) {
        bestD = d;
        best = k;
      }
    }
    return best;
  }

  /** Levenshtein distance, case-insensitive; written here as no dependency of the job has one. */
  static int distance(String a, String b) {
    String x = a.toLowerCase(Locale.ROOT);
    String y = b.toLowerCase(Locale.ROOT);
    int[] prev = new int[y.length() + 1];
    int[] cur = new int[y.length() + 1];
    for (int j = 0; j <= y.length(); j++) {
      prev[j] = j;
    }
    for (int i = 1; i <= x.length(); i++) {
      cur[0] = i;
      for (int j = 1; j <= y.length(); j++) {
        int sub = prev[j - 1] + (x.charAt(i - 1) == y.charAt(j - 1) ? 0 : 1);
        cur[j] = Math.min(sub, Math.min(prev[j] + 1, cur[j - 1] + 1));
      }
      int[] t = prev;
      prev = cur;
      cur = t;
    }
    return prev[y.length()];
  }

  /** Declares a setting with flags, aliases or a negated flag. */
  private static final class Builder<T> {
    private final String key;
    private final Scope scope;
    private final ValueType<T> type;
    private final String label;
    private final String doc;
    private T dflt;
    private List<String> flags;
    private boolean negated;
    private List<String> aliases = List.of();

    Builder(String key, Scope scope, ValueType<T> type, String label, String doc) {
      this.key = key;
      this.scope = scope;
      this.type = type;
      this.label = label;
      this.doc = doc;
      this.flags = List.of("--" + key.replace('_', '-'));
    }

    Builder<T> defaultValue(T v) {
      dflt = v;
      return this;
    }

    Builder<T> flags(String... names) {
      flags = List.of(names);
      return this;
    }

    Builder<T> negated() {
      negated = true;
      return this;
    }

    Builder<T> aliases(String... names) {
      aliases = List.of(names);
      return this;
    }

    Setting<T> add() {
      Setting<T> s = new Setting<>(key, scope, type, dflt, doc, label, flags, negated, aliases);
      ALL.add(s);
      return s;
    }
  }
}
