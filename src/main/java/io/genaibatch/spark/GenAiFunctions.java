package io.genaibatch.spark;

import io.genaibatch.common.OutputColumns;
import io.genaibatch.engine.ErrorKind;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.settings.Setting.Scope;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import io.genaibatch.spark.compat.SparkCompat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.StructType;

/**
 * The SQL function {@code genai_generate(prompt [, options])} for notebooks:
 *
 * <pre>{@code
 * GenAiFunctions.register(spark, "models:/phi3-mini@champion");
 * spark.sql("SELECT prompt, genai_generate(prompt, map('max_new_tokens', '32')).response FROM prompts")
 * }</pre>
 *
 * <p>Returns a struct: response, finish_reason, prompt_tokens, completion_tokens, total_tokens,
 * error, responses (every completion's text, {@code n} of them). The options are the job's search
 * options by key, {@code stop}, {@code n} and {@code response_format} included (inline only). One row per call (a scalar function cannot batch; the job and the Transformer do), on
 * the executor-wide model cache. Registered non-deterministic, so the optimizer never calls it
 * twice for a row.
 */
public final class GenAiFunctions {
  public static final String NAME = "genai_generate";

  /** The columns of a call's result, as the job's output declares them, every completion's text last. */
  private static final List<OutputSchema.Field> RESULT_FIELDS = OutputSchema.pick(OutputColumns.RESPONSE,
      OutputColumns.FINISH_REASON, OutputColumns.PROMPT_TOKENS, OutputColumns.COMPLETION_TOKENS,
      OutputColumns.TOTAL_TOKENS, OutputColumns.ERROR, OutputColumns.RESPONSES);

  public static final StructType RESULT = result();

  private static StructType result() {
    StructType t = new StructType();
    for (OutputSchema.Field f : RESULT_FIELDS) {
      t = t.add(f.struct());
    }
    return t;
  }

  private GenAiFunctions() {}

  /** Registers {@code genai_generate} for {@code modelUri}, tracking from MLFLOW_TRACKING_URI. */
  public static void register(SparkSession spark, String modelUri) {
    register(spark, modelUri, null);
  }

  /** Registers {@code genai_generate} on {@code spark}; the model is resolved and checked now. */
  public static void register(SparkSession spark, String modelUri, String trackingUri) {
    Map<String, Object> given = new LinkedHashMap<>();
    given.put(Settings.MODEL_URI.key(), modelUri);
    given.put(Settings.TRACKING_URI.key(), trackingUri);
    BatchScorer scorer = BatchScorer.create(spark, BatchScorer.withSparkConf(spark,
        SettingValues.defaults().above(NAME, given, Scope.SCORING, true)));
    ModelSpec spec = scorer.spec();
    SettingValues base = scorer.settings();
    UDF2<String, scala.collection.Map<String, String>, Row> impl = (prompt, options) -> generate(spec, base, prompt,
        options == null ? null : SparkCompat.asJava(options));
    // A Java UDF cannot have an optional argument: how the optional options are had differs by Spark line.
    SparkCompat.registerWithOptionalOptions(spark, NAME, IMPL, functions.udf(impl, RESULT).asNondeterministic(), RESULT);
  }

  /** The Java UDF behind {@value #NAME}. */
  static final String IMPL = "genai_generate_impl";

  private static Row generate(ModelSpec spec, SettingValues base, String prompt, Map<String, String> options) {
    RowResult r;
    Generation g = null;
    try {
      // The call's options over the registered settings; an unknown key fails the query naming the nearest.
      SettingValues values = options == null ? base : base.above(NAME + " options", options, Scope.SEARCH, true);
      String format = values.get(Settings.RESPONSE_FORMAT);
      if (format != null && format.startsWith("@")) {
        throw new IllegalArgumentException(NAME + " takes response_format inline, not as @file: a file is read where"
            + " the call runs, on an executor");
      }
      ResponseFormat f = ScoringOptions.responseFormat(format, NAME + " option " + Settings.RESPONSE_FORMAT.key());
      GenerationRequest request = new GenerationRequest(prompt, values.search(),
          values.get(Settings.STOP), values.get(Settings.N), f == null ? null : f.guidance());
      try (ExecutorModelCache.Lease lease = ExecutorModelCache.acquire(spec)) {
        g = lease.model().generateOne(request);
        r = RowResult.of(g);
      }
    } catch (SettingValues.UnknownKeyException e) {
      throw e; // a misspelt option is the query's mistake: it fails, naming the nearest key
    } catch (IllegalArgumentException e) {
      // A bad option value is this call's error, as a bad row option is its row's in the job.
      r = RowResult.of(Generation.failed(0, 0, ErrorKind.BAD_OPTION, e.getMessage()));
    } catch (RuntimeException e) {
      r = RowResult.generationFailed(e);
    }
    OutputSchema.Scored scored = new OutputSchema.Scored(r, g, null, null, null, null, 0);
    Object[] values = new Object[RESULT_FIELDS.size()];
    for (int i = 0; i < RESULT_FIELDS.size(); i++) {
      values[i] = RESULT_FIELDS.get(i).value().apply(scored);
    }
    return RowFactory.create(values);
  }
}
