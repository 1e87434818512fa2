package io.genaibatch.spark;

import io.genaibatch.common.OutputColumns;
import io.genaibatch.common.Redact;
import io.genaibatch.settings.Setting.Scope;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.ml.Transformer;
import org.apache.spark.ml.param.BooleanParam;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWritable;
import org.apache.spark.ml.util.DefaultParamsWriter;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.ml.util.MLWriter;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * A Spark ML {@code Transformer} that scores a prompt (or chat messages) column with an MLflow
 * model, for Scala and Java notebooks and pipelines:
 *
 * <pre>{@code
 * new GenAiTransformer().setModelUri("models:/phi3-mini@champion").setInputCol("prompt")
 *     .setMaxNewTokens(64).transform(df)
 * }</pre>
 *
 * <p>Adds the job's output columns (DESIGN.md "Output rows"), with {@code response} renamed to
 * {@code outputCol}. Batches inside partitions and shares the executor-wide model cache with the
 * job and the SQL function.
 *
 * <p>Its params are the scoring and search settings of {@link Settings}, each under its camelCase
 * name ({@code batch_size} is {@code batchSize}; {@code setOption("batch_size", 4)} sets any of
 * them by key), beside Spark ML's {@code inputCol} and {@code outputCol}. A param left unset falls
 * back to Spark conf {@code spark.genaibatch.*}, then the model's {@code model_config}, then the
 * setting's default, as in the job. Saved and loaded with a {@code Pipeline} ({@link #write},
 * {@link #load}).
 */
public final class GenAiTransformer extends Transformer implements DefaultParamsWritable {
  private static final long serialVersionUID = 1L;

  private final String uid;
  private final Param<String> inputCol;
  private final Param<String> outputCol;
  /** One param per setting, by setting key. */
  private final Map<String, Param<?>> byKey = new LinkedHashMap<>();
  private final Param<?>[] all;

  public GenAiTransformer() {
    this(Identifiable.randomUID("genaiTransformer"));
  }

  /**
   * Needed by Spark ML's {@code copy} and {@code load}. Params are made here, after the uid they
   * belong to, and listed by {@link #params}, which Spark ML's param lookup uses.
   */
  public GenAiTransformer(String uid) {
    this.uid = uid;
    inputCol = new Param<>(uid, "inputCol", "prompt column, or messages column in chat mode");
    outputCol = new Param<>(uid, "outputCol", "answer column");
    List<Param<?>> ps = new ArrayList<>(List.of(inputCol, outputCol));
    for (Setting<?> s : Settings.within(Scope.SCORING)) {
      if (s == Settings.PROMPT_COLUMN || s == Settings.MESSAGES_COLUMN) {
        continue; // inputCol, in Spark ML's spelling
      }
      Param<?> p = param(uid, s);
      byKey.put(s.key(), p);
      ps.add(p);
    }
    all = ps.toArray(new Param<?>[0]);
    setDefault(inputCol, Settings.PROMPT_COLUMN.defaultValue());
    setDefault(outputCol, OutputColumns.RESPONSE);
  }

  private static Param<?> param(String uid, Setting<?> s) {
    String name = s.paramName();
    if (!s.type().plain()) {
      return new Param<String>(uid, name, s.doc());
    }
    Class<?> t = s.type().javaType();
    return t == Integer.class ? new IntParam(uid, name, s.doc())
        : t == Double.class ? new DoubleParam(uid, name, s.doc())
        : t == Long.class ? new LongParam(uid, name, s.doc())
        : t == Boolean.class ? new BooleanParam(uid, name, s.doc())
        : new Param<String>(uid, name, s.doc());
  }

  /** Every param: {@code inputCol}, {@code outputCol} and one per scoring or search setting. */
  @Override
  public Param<?>[] params() {
    return all.clone();
  }

  @Override
  public String uid() {
    return uid;
  }

  /**
   * Sets the setting {@code key} ({@code batch_size}, {@code max_new_tokens}, ...) to {@code value},
   * checked as the job checks its flags.
   *
   * @throws IllegalArgumentException for an unknown key or a bad value, naming what is accepted
   */
  @SuppressWarnings("unchecked")
  public GenAiTransformer setOption(String key, Object value) {
    Setting<?> s = Settings.byKey(key).filter(x -> byKey.containsKey(x.key())).orElseThrow(() ->
        new IllegalArgumentException("GenAiTransformer has no option '" + key + "'; did you mean '"
            + Settings.nearest(key, List.copyOf(byKey.keySet())) + "'?"));
    Object typed = s.parse(value, "GenAiTransformer");
    Object v = s.type().plain() ? typed : String.valueOf(show(s, typed));
    set((Param<Object>) byKey.get(s.key()), v);
    return this;
  }

  @SuppressWarnings("unchecked")
  private static <T> Object show(Setting<T> s, Object v) {
    return s.show((T) v);
  }

  public GenAiTransformer setModelUri(String v) {
    return setOption(Settings.MODEL_URI.key(), v);
  }

  public GenAiTransformer setTrackingUri(String v) {
    return setOption(Settings.TRACKING_URI.key(), v);
  }

  public GenAiTransformer setInputCol(String v) {
    set(inputCol, v);
    return this;
  }

  public GenAiTransformer setOutputCol(String v) {
    set(outputCol, v);
    return this;
  }

  public GenAiTransformer setChat(boolean v) {
    return setOption(Settings.CHAT.key(), v);
  }

  public GenAiTransformer setBatchSize(int v) {
    return setOption(Settings.BATCH_SIZE.key(), v);
  }

  public GenAiTransformer setLookaheadRows(int v) {
    return setOption(Settings.LOOKAHEAD_ROWS.key(), v);
  }

  /** {@code auto} (spread over the task slots), {@code input} (keep the input's) or a number. */
  public GenAiTransformer setPartitions(String v) {
    return setOption(Settings.PARTITIONS.key(), v);
  }

  /** {@code adaptive} (batch sizes up to the batch size, by measured cost) or {@code fixed}. */
  public GenAiTransformer setBatching(String v) {
    return setOption(Settings.BATCHING.key(), v);
  }

  public GenAiTransformer setMaxNewTokens(int v) {
    return setOption(Settings.MAX_NEW_TOKENS.key(), v);
  }

  public GenAiTransformer setMaxLength(int v) {
    return setOption(Settings.MAX_LENGTH.key(), v);
  }

  public GenAiTransformer setTemperature(double v) {
    return setOption(Settings.TEMPERATURE.key(), v);
  }

  public GenAiTransformer setTopP(double v) {
    return setOption(Settings.TOP_P.key(), v);
  }

  public GenAiTransformer setTopK(int v) {
    return setOption(Settings.TOP_K.key(), v);
  }

  public GenAiTransformer setDoSample(boolean v) {
    return setOption(Settings.DO_SAMPLE.key(), v);
  }

  public GenAiTransformer setSeed(long v) {
    return setOption(Settings.SEED.key(), v);
  }

  public GenAiTransformer setRepetitionPenalty(double v) {
    return setOption(Settings.REPETITION_PENALTY.key(), v);
  }

  /** The params that are set, as a layer of settings; the input column by the chat mode. */
  SettingValues settings() {
    Map<String, Object> set = new LinkedHashMap<>();
    byKey.forEach((key, p) -> {
      if (isSet(p)) {
        set.put(key, $(p));
      }
    });
    boolean chat = Boolean.TRUE.equals(set.get(Settings.CHAT.key()));
    set.put((chat ? Settings.MESSAGES_COLUMN : Settings.PROMPT_COLUMN).key(), $(inputCol));
    return SettingValues.defaults().above("GenAiTransformer params", set, Scope.SCORING, true);
  }

  @Override
  public Dataset<Row> transform(Dataset<?> dataset) {
    if (!isSet(byKey.get(Settings.MODEL_URI.key()))) {
      throw new IllegalArgumentException("GenAiTransformer needs a model: call setModelUri(\"models:/NAME@ALIAS\")");
    }
    BatchScorer scorer = BatchScorer.create(dataset.sparkSession(),
        BatchScorer.withSparkConf(dataset.sparkSession(), settings()));
    Dataset<Row> out = scorer.score(dataset.toDF(), null, null);
    return $(outputCol).equals(OutputColumns.RESPONSE) ? out : out.withColumnRenamed(OutputColumns.RESPONSE, $(outputCol));
  }

  @Override
  public StructType transformSchema(StructType schema) {
    // Without the model at hand: the params' own view (a chat model turns chat on by itself).
    Param<?> chat = byKey.get(Settings.CHAT.key());
    Param<?> n = byKey.get(Settings.N.key());
    boolean many = (isSet(n) && (Integer) $(n) > 1) || isSet(byKey.get(Settings.N_COLUMN.key()));
    StructType parsed = null;
    Param<?> parse = byKey.get(Settings.PARSE_RESPONSE.key());
    if (isSet(parse) && (Boolean) $(parse)) {
      parsed = BatchScorer.parsedType(ScoringOptions.from(settings(), false));
    }
    StructType out = OutputSchema.of(schema, isSet(chat) && (Boolean) $(chat), many, parsed);
    if ($(outputCol).equals(OutputColumns.RESPONSE)) {
      return out;
    }
    StructField[] fs = out.fields().clone();
    for (int i = 0; i < fs.length; i++) {
      if (fs[i].name().equals(OutputColumns.RESPONSE)) {
        fs[i] = new StructField($(outputCol), fs[i].dataType(), fs[i].nullable(), fs[i].metadata());
      }
    }
    return new StructType(fs);
  }

  @Override
  public GenAiTransformer copy(ParamMap extra) {
    return defaultCopy(extra);
  }

  /**
   * Saves a copy whose tracking and model URIs lost their credentials ({@link Redact#uri}): a saved
   * Pipeline is read by whoever can read its folder. Give credentials through {@code
   * MLFLOW_TRACKING_USERNAME}, {@code MLFLOW_TRACKING_PASSWORD} or {@code MLFLOW_TRACKING_TOKEN}.
   */
  @Override
  @SuppressWarnings("unchecked")
  public MLWriter write() {
    GenAiTransformer saved = copy(ParamMap.empty());
    for (Setting<?> s : List.of(Settings.TRACKING_URI, Settings.MODEL_URI)) {
      Param<Object> p = (Param<Object>) byKey.get(s.key());
      if (p != null && saved.isSet(p)) {
        saved.set(p, Redact.uri(String.valueOf(saved.getOrDefault(p))));
      }
    }
    return new DefaultParamsWriter(saved);
  }

  /** Reads a transformer saved with {@code write().save(path)}, or as a stage of a saved Pipeline. */
  public static MLReader<GenAiTransformer> read() {
    return new DefaultParamsReader<>();
  }

  public static GenAiTransformer load(String path) {
    return read().load(path);
  }
}
