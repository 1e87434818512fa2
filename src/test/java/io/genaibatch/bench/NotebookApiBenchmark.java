package io.genaibatch.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.spark.GenAiFunctions;
import io.genaibatch.spark.GenAiTransformer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * The notebook API's two ways on the same prompts: the Transformer and {@code genai_generate} in a
 * {@code SELECT}, greedy, on {@code local[2]}, one input partition (as the benchmark's one Parquet
 * file), no prefix reuse, each run timed after a warm-up that loads the model; the answers must agree. A benchmark,
 * not part of the job jar:
 *
 * <pre>
 * java -cp target/test-classes:target/classes:RUNTIME_CLASSPATH io.genaibatch.bench.NotebookApiBenchmark \
 *   MODEL_DIR PROMPTS.json [NEW_TOKENS 256] [REPEATS 2]
 * </pre>
 *
 * <p>PROMPTS.json is {@code python -m genai_batch.bench.workload}'s output (its {@code prompts}).
 */
public final class NotebookApiBenchmark {
  private NotebookApiBenchmark() {}

  public static void main(String[] args) throws Exception {
    String model = Path.of(args[0]).toAbsolutePath().toString();
    JsonNode prompts = new ObjectMapper().readTree(Path.of(args[1]).toFile()).get("prompts");
    int newTokens = args.length > 2 ? Integer.parseInt(args[2]) : 256;
    int repeats = args.length > 3 ? Integer.parseInt(args[3]) : 2;
    SparkSession spark = SparkSession.builder().master("local[2]").appName("notebook-api-benchmark")
        .config("spark.ui.enabled", "false")
        // No prefix store: the second system would find the first one's prompts in it.
        .config("spark.genaibatch.prefix_cache_mb", "0").getOrCreate();
    List<Row> rows = new ArrayList<>();
    for (int i = 0; i < prompts.size(); i++) {
      rows.add(RowFactory.create(i, prompts.get(i).asText()));
    }
    StructType schema = new StructType().add("id", DataTypes.IntegerType).add("prompt", DataTypes.StringType);
    Dataset<Row> in = spark.createDataFrame(rows, schema).repartition(1);
    in.createOrReplaceTempView("prompts");
    GenAiFunctions.register(spark, model);
    GenAiTransformer t = new GenAiTransformer().setModelUri(model).setMaxNewTokens(newTokens).setDoSample(false);
    String sql = "SELECT id, genai_generate(prompt, map('max_new_tokens', '" + newTokens + "', 'do_sample', 'false'))"
        + ".response AS response FROM prompts";
    spark.sql(sql + " LIMIT 2").collectAsList(); // loads the model
    for (int r = 0; r < repeats; r++) {
      // Each goes first in every other repeat: a shared machine's load shifts.
      long[] ns = new long[2];
      List<List<Row>> answers = new ArrayList<>(List.of(List.of(), List.of()));
      for (int k = 0; k < 2; k++) {
        int which = (k + r) % 2;
        long t0 = System.nanoTime();
        answers.set(which, which == 0 ? t.transform(in).select("id", "response").orderBy("id").collectAsList()
            : spark.sql(sql).orderBy("id").collectAsList());
        ns[which] = System.nanoTime() - t0;
      }
      System.out.printf("repeat %d (%s first): Transformer %.1f s, genai_generate %.1f s (%.2fx the Transformer's"
          + " throughput), answers %s%n", r, r % 2 == 0 ? "Transformer" : "genai_generate", ns[0] / 1e9, ns[1] / 1e9,
          (double) ns[0] / ns[1], answers.get(0).equals(answers.get(1)) ? "equal" : "DIFFER");
    }
    spark.stop();
  }
}
