package io.genaibatch.job;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.genaibatch.engine.SearchOptions;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * The job's settings after precedence: flag, then config file. (Spark conf {@code
 * spark.genaibatch.*} and the model's own {@code model_config} and {@code genai_config.json} come
 * after, applied by the scorer.) Every key, its default and its meaning is in {@link Keys}.
 */
public record JobConfig(
    String modelUri,
    String input,
    String inputFormat,
    String output,
    String mode,
    String experiment,
    String trackingUri,
    boolean tracking,
    int batchSize,
    int lookaheadRows,
    int partitions,
    io.genaibatch.engine.Batching batching,
    String promptColumn,
    String messagesColumn,
    String idColumn,
    boolean chat,
    double maxErrorRate,
    String cacheDir,
    int progressSeconds,
    int commitRows,
    int trackingRetrySeconds,
    String referenceColumn,
    boolean compare,
    io.genaibatch.eval.Thresholds thresholds,
    SearchOptions search) {

  /** Config keys (YAML, snake_case) with their defaults. */
  public static final class Keys {
    public static final String MODEL_URI = "model_uri";
    public static final String INPUT = "input";
    public static final String INPUT_FORMAT = "input_format";
    public static final String INPUT_FORMAT_DEFAULT = "parquet";
    public static final String OUTPUT = "output";
    public static final String MODE = "mode";
    public static final String MODE_DEFAULT = "overwrite";
    public static final String EXPERIMENT = "experiment";
    public static final String EXPERIMENT_DEFAULT = "genai-batch";
    public static final String TRACKING_URI = "tracking_uri";
    public static final String TRACKING = "tracking";
    public static final String BATCH_SIZE = "batch_size";
    public static final int BATCH_SIZE_DEFAULT = 8;
    public static final String LOOKAHEAD_ROWS = "lookahead_rows";
    public static final String PARTITIONS = "partitions";
    public static final String BATCHING = "batching";
    public static final String PROMPT_COLUMN = "prompt_column";
    public static final String MESSAGES_COLUMN = "messages_column";
    public static final String ID_COLUMN = "id_column";
    public static final String CHAT = "chat";
    public static final String MAX_ERROR_RATE = "max_error_rate";
    /** A nightly run with more than 5% error rows is a failed run: a scheduler should alert. */
    public static final double MAX_ERROR_RATE_DEFAULT = 0.05;
    public static final String CACHE_DIR = "cache_dir";
    public static final String PROGRESS_SECONDS = "progress_seconds";
    public static final int PROGRESS_SECONDS_DEFAULT = 30;
    public static final String COMMIT_ROWS = "commit_rows";
    /** Rows per committed wave when an id column is set, so a killed job keeps its finished waves. */
    public static final int COMMIT_ROWS_DEFAULT = 10_000;
    public static final String TRACKING_RETRY_SECONDS = "tracking_retry_seconds";
    /** How long a slow or down tracking server is retried, with backoff, before the job gives up on it. */
    public static final int TRACKING_RETRY_SECONDS_DEFAULT = 120;
    public static final String REFERENCE_COLUMN = "reference_column";
    public static final String REFERENCE_COLUMN_DEFAULT = "expected";
    /** Compare with the previous successful run of the same experiment and prompt set. */
    public static final String COMPARE = "compare_previous";
    public static final String MAX_METRIC_DROP = io.genaibatch.eval.Thresholds.MAX_METRIC_DROP;
    public static final String MAX_ANSWERS_CHANGED = io.genaibatch.eval.Thresholds.MAX_ANSWERS_CHANGED;
    public static final String SEARCH = "search";

    static final Set<String> ALL = Set.of(MODEL_URI, INPUT, INPUT_FORMAT, OUTPUT, MODE, EXPERIMENT, TRACKING_URI,
        TRACKING, BATCH_SIZE, LOOKAHEAD_ROWS, PARTITIONS, BATCHING, PROMPT_COLUMN, MESSAGES_COLUMN, ID_COLUMN, CHAT, MAX_ERROR_RATE, CACHE_DIR,
        PROGRESS_SECONDS, COMMIT_ROWS, TRACKING_RETRY_SECONDS, REFERENCE_COLUMN, COMPARE, MAX_METRIC_DROP,
        MAX_ANSWERS_CHANGED, SEARCH);

    private Keys() {}
  }

  static final Set<String> FORMATS = Set.of("parquet", "json", "csv", "table");
  static final Set<String> MODES = Set.of("overwrite", "append", "resume");

  /** Reads a YAML config file into a map, refusing unknown keys with the list of known ones. */
  static Map<String, Object> readYaml(Path file) {
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException("Config file " + file + " does not exist");
    }
    Map<String, Object> m;
    try {
      @SuppressWarnings("unchecked")
      Map<String, Object> read = new ObjectMapper(new YAMLFactory()).readValue(file.toFile(), Map.class);
      m = read == null ? new LinkedHashMap<>() : read;
    } catch (IOException e) {
      throw new IllegalArgumentException("Config file " + file + " is not valid YAML: " + e.getMessage(), e);
    }
    for (String k : m.keySet()) {
      if (!Keys.ALL.contains(k)) {
        throw new IllegalArgumentException("Config file " + file + ": unknown key '" + k + "'; known keys: "
            + new java.util.TreeSet<>(Keys.ALL));
      }
    }
    return m;
  }

  /** The effective config as a map, for logging with the run (no secrets: none are config). */
  public Map<String, Object> asMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put(Keys.MODEL_URI, modelUri);
    m.put(Keys.INPUT, input);
    m.put(Keys.INPUT_FORMAT, inputFormat);
    m.put(Keys.OUTPUT, output);
    m.put(Keys.MODE, mode);
    m.put(Keys.EXPERIMENT, experiment);
    m.put(Keys.TRACKING_URI, trackingUri);
    m.put(Keys.TRACKING, tracking);
    m.put(Keys.BATCH_SIZE, batchSize);
    m.put(Keys.LOOKAHEAD_ROWS, lookaheadRows);
    m.put(Keys.BATCHING, batching.name().toLowerCase(java.util.Locale.ROOT));
    m.put(Keys.PARTITIONS, io.genaibatch.spark.ScoringOptions.partitionsLabel(partitions));
    m.put(Keys.PROMPT_COLUMN, promptColumn);
    m.put(Keys.MESSAGES_COLUMN, messagesColumn);
    m.put(Keys.ID_COLUMN, idColumn);
    m.put(Keys.CHAT, chat);
    m.put(Keys.MAX_ERROR_RATE, maxErrorRate);
    m.put(Keys.CACHE_DIR, cacheDir);
    m.put(Keys.PROGRESS_SECONDS, progressSeconds);
    m.put(Keys.COMMIT_ROWS, commitRows);
    m.put(Keys.TRACKING_RETRY_SECONDS, trackingRetrySeconds);
    m.put(Keys.REFERENCE_COLUMN, referenceColumn);
    m.put(Keys.COMPARE, compare);
    m.put(Keys.MAX_METRIC_DROP, thresholds.maxMetricDrop());
    m.put(Keys.MAX_ANSWERS_CHANGED, thresholds.maxAnswersChanged());
    m.put(Keys.SEARCH, search.asMap());
    return m;
  }
}
