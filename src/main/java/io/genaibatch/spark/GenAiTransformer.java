package io.genaibatch.spark;

import io.genaibatch.engine.SearchOptions;
import org.apache.spark.ml.Transformer;
import org.apache.spark.ml.param.BooleanParam;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
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
 * job and the SQL function. Unset search options fall back to Spark conf {@code
 * spark.genaibatch.*}, then the model's {@code model_config} and {@code genai_config.json}.
 */
public final class GenAiTransformer extends Transformer {
  private static final long serialVersionUID = 1L;

  private final String uid;
  private Param<String> modelUri;
  private Param<String> trackingUri;
  private Param<String> inputCol;
  private Param<String> outputCol;
  private BooleanParam chat;
  private IntParam batchSize;
  private IntParam lookaheadRows;
  private Param<String> partitions;
  private Param<String> batching;
  private IntParam maxNewTokens;
  private DoubleParam temperature;
  private DoubleParam topP;
  private IntParam topK;
  private BooleanParam doSample;
  private LongParam seed;

  public GenAiTransformer() {
    this(Identifiable.randomUID("genaiTransformer"));
  }

  /**
   * Needed by Spark ML's {@code copy}. Params are made here, after the uid they belong to (a
   * Java field initializer would run before it is set), and exposed through methods, which is
   * how Spark ML's {@code params} finds them.
   */
  public GenAiTransformer(String uid) {
    this.uid = uid;
    modelUri = new Param<>(uid, "modelUri", "MLflow model URI or model directory");
    trackingUri = new Param<>(uid, "trackingUri", "MLflow tracking URI (else MLFLOW_TRACKING_URI)");
    inputCol = new Param<>(uid, "inputCol", "prompt column, or messages column in chat mode");
    outputCol = new Param<>(uid, "outputCol", "answer column");
    chat = new BooleanParam(uid, "chat", "score chat messages with the model's chat template");
    batchSize = new IntParam(uid, "batchSize", "prompts per generation call");
    lookaheadRows = new IntParam(uid, "lookaheadRows", "rows a task reads ahead and sorts by prompt length");
    partitions = new Param<>(uid, "partitions", "auto, input or a number of partitions");
    batching = new Param<>(uid, "batching", "adaptive (batch sizes by measured cost) or fixed");
    maxNewTokens = new IntParam(uid, "maxNewTokens", "most new tokens per prompt");
    temperature = new DoubleParam(uid, "temperature", "sampling temperature");
    topP = new DoubleParam(uid, "topP", "nucleus sampling mass");
    topK = new IntParam(uid, "topK", "top-k sampling");
    doSample = new BooleanParam(uid, "doSample", "sample instead of greedy search");
    seed = new LongParam(uid, "seed", "random seed");
    setDefault(inputCol, ScoringOptions.PROMPT_COLUMN_DEFAULT);
    setDefault(outputCol, OutputSchema.RESPONSE);
    setDefault(chat, false);
    setDefault(batchSize, ScoringOptions.BATCH_SIZE_DEFAULT);
    setDefault(lookaheadRows, ScoringOptions.LOOKAHEAD_ROWS_DEFAULT);
    setDefault(partitions, "auto");
    setDefault(batching, "adaptive");
  }

  public Param<String> modelUri() {
    return modelUri;
  }

  public Param<String> trackingUri() {
    return trackingUri;
  }

  public Param<String> inputCol() {
    return inputCol;
  }

  public Param<String> outputCol() {
    return outputCol;
  }

  public BooleanParam chat() {
    return chat;
  }

  public IntParam batchSize() {
    return batchSize;
  }

  public IntParam maxNewTokens() {
    return maxNewTokens;
  }

  public IntParam lookaheadRows() {
    return lookaheadRows;
  }

  public Param<String> partitions() {
    return partitions;
  }

  public Param<String> batching() {
    return batching;
  }

  /** {@code adaptive} (batch sizes up to the batch size, by measured cost) or {@code fixed}. */
  public GenAiTransformer setBatching(String v) {
    io.genaibatch.engine.Batching.parse(v);
    set(batching, v);
    return this;
  }

  public GenAiTransformer setLookaheadRows(int v) {
    set(lookaheadRows, v);
    return this;
  }

  /** {@code auto} (spread over the task slots), {@code input} (keep the input's) or a number. */
  public GenAiTransformer setPartitions(String v) {
    ScoringOptions.parsePartitions(v);
    set(partitions, v);
    return this;
  }

  public DoubleParam temperature() {
    return temperature;
  }

  public DoubleParam topP() {
    return topP;
  }

  public IntParam topK() {
    return topK;
  }

  public BooleanParam doSample() {
    return doSample;
  }

  public LongParam seed() {
    return seed;
  }

  @Override
  public String uid() {
    return uid;
  }

  public GenAiTransformer setModelUri(String v) {
    set(modelUri, v);
    return this;
  }

  public GenAiTransformer setTrackingUri(String v) {
    set(trackingUri, v);
    return this;
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
    set(chat, v);
    return this;
  }

  public GenAiTransformer setBatchSize(int v) {
    set(batchSize, v);
    return this;
  }

  public GenAiTransformer setMaxNewTokens(int v) {
    set(maxNewTokens, v);
    return this;
  }

  public GenAiTransformer setTemperature(double v) {
    set(temperature, v);
    return this;
  }

  public GenAiTransformer setTopP(double v) {
    set(topP, v);
    return this;
  }

  public GenAiTransformer setTopK(int v) {
    set(topK, v);
    return this;
  }

  public GenAiTransformer setDoSample(boolean v) {
    set(doSample, v);
    return this;
  }

  public GenAiTransformer setSeed(long v) {
    set(seed, v);
    return this;
  }

  private <T> T opt(Param<T> p) {
    return isDefined(p) ? $(p) : null;
  }

  SearchOptions search() {
    return new SearchOptions(
        isDefined(maxNewTokens) ? (Integer) $(maxNewTokens) : null, null,
        isDefined(temperature) ? (Double) $(temperature) : null,
        isDefined(topP) ? (Double) $(topP) : null,
        isDefined(topK) ? (Integer) $(topK) : null,
        isDefined(doSample) ? (Boolean) $(doSample) : null,
        isDefined(seed) ? (Long) $(seed) : null, null);
  }

  private ScoringOptions scoring() {
    boolean isChat = (Boolean) $(chat);
    String in = $(inputCol);
    return new ScoringOptions(isChat ? ScoringOptions.PROMPT_COLUMN_DEFAULT : in,
        isChat ? in : ScoringOptions.MESSAGES_COLUMN_DEFAULT, null, (Integer) $(batchSize), SearchOptions.DEFAULTS, isChat,
        (Integer) $(lookaheadRows), ScoringOptions.parsePartitions($(partitions)),
        io.genaibatch.engine.Batching.parse($(batching)));
  }

  @Override
  public Dataset<Row> transform(Dataset<?> dataset) {
    if (!isDefined(modelUri)) {
      throw new IllegalArgumentException("GenAiTransformer needs a model: call setModelUri(\"models:/NAME@ALIAS\")");
    }
    BatchScorer scorer = BatchScorer.create(dataset.sparkSession(), $(modelUri), opt(trackingUri), search(),
        scoring(), null);
    Dataset<Row> out = scorer.score(dataset.toDF(), null, null);
    return $(outputCol).equals(OutputSchema.RESPONSE) ? out : out.withColumnRenamed(OutputSchema.RESPONSE, $(outputCol));
  }

  @Override
  public StructType transformSchema(StructType schema) {
    StructType out = OutputSchema.of(schema, (Boolean) $(chat));
    if ($(outputCol).equals(OutputSchema.RESPONSE)) {
      return out;
    }
    org.apache.spark.sql.types.StructField[] fs = out.fields().clone();
    for (int i = 0; i < fs.length; i++) {
      if (fs[i].name().equals(OutputSchema.RESPONSE)) {
        fs[i] = new org.apache.spark.sql.types.StructField($(outputCol), fs[i].dataType(), fs[i].nullable(), fs[i].metadata());
      }
    }
    return new StructType(fs);
  }

  @Override
  public GenAiTransformer copy(ParamMap extra) {
    return defaultCopy(extra);
  }
}
