package io.genaibatch.spark;

import io.genaibatch.settings.Setting.Scope;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import io.genaibatch.spark.compat.SparkCompat;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.rules.Rule;
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
 * options by key, {@code stop}, {@code n} and {@code response_format} included (inline only), laid
 * over the registered settings (Spark conf {@code spark.genaibatch.*} and the model's {@code
 * model_config}) row by row.
 *
 * <p>A call in a projection ({@code SELECT}) is scored in batches, as the Transformer scores a
 * partition: an optimizer rule ({@link BatchedCalls}) turns it into a scoring operator over the
 * partition's rows, on the executor-wide model cache. Elsewhere (a filter, an aggregate, under a
 * {@code CASE WHEN}) it is a row-at-a-time UDF. Either way a call is held to the job's row limits
 * ({@code --max-row-tokens} and its siblings, {@code --kv-cache-mb}; a call over one is that call's
 * error) and stops at the next decode step when its query is cancelled. Registered
 * non-deterministic, so the optimizer never calls it twice for a row.
 */
public final class GenAiFunctions {
  public static final String NAME = "genai_generate";

  public static final StructType RESULT = CallRows.resultType();

  private GenAiFunctions() {}

  /** Registers {@code genai_generate} for {@code modelUri}, tracking from MLFLOW_TRACKING_URI. */
  public static void register(SparkSession spark, String modelUri) {
    register(spark, modelUri, null);
  }

  /**
   * Registers {@code genai_generate} on {@code spark}, and its batching rule in the session's
   * optimizer (in place of an earlier registration's); the model is resolved and checked now.
   */
  public static void register(SparkSession spark, String modelUri, String trackingUri) {
    Map<String, Object> given = new LinkedHashMap<>();
    given.put(Settings.MODEL_URI.key(), modelUri);
    given.put(Settings.TRACKING_URI.key(), trackingUri);
    BatchScorer scorer = BatchScorer.create(spark, BatchScorer.withSparkConf(spark,
        SettingValues.defaults().above(NAME, given, Scope.SCORING, true)));
    // A call alone is a window of one row, through the same scorer as the batched calls.
    PartitionScorer one = new PartitionScorer(scorer.spec(), scorer.options(),
        new CallRows(scorer.settings(), scorer.options().limits(), 0), null, false, null);
    UDF2<String, scala.collection.Map<String, String>, Row> impl = (prompt, options) -> {
      Iterator<Row> out = one.call(List.of(RowFactory.create(prompt, options)).iterator());
      Row scored = out.next();
      return scored.getStruct(scored.length() - 1);
    };
    // A Java UDF cannot have an optional argument: how the optional options are had differs by Spark line.
    SparkCompat.registerWithOptionalOptions(spark, NAME, IMPL, functions.udf(impl, RESULT).asNondeterministic(),
        RESULT);
    List<Rule<LogicalPlan>> rules = new ArrayList<>();
    var before = spark.experimental().extraOptimizations();
    for (int i = 0; i < before.length(); i++) {
      if (!(before.apply(i) instanceof BatchedCalls)) {
        rules.add(before.apply(i));
      }
    }
    rules.add(new BatchedCalls(scorer.spec(), scorer.options(), scorer.settings(), scorer::taskSlots));
    spark.experimental().extraOptimizations_$eq(SparkCompat.asSeq(rules));
  }

  /** The Java UDF behind {@value #NAME}. */
  static final String IMPL = "genai_generate_impl";
}
