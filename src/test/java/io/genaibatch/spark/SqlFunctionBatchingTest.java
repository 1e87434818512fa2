package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.management.OperatingSystemMXBean;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.SparkTestBase;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code genai_generate} over a DataFrame: scored in batches as the Transformer scores, held to the
 * job's row limits, and stopped by a cancelled query.
 */
class SqlFunctionBatchingTest extends SparkTestBase {
  static final StructType SCHEMA = new StructType().add("id", DataTypes.IntegerType)
      .add("question", DataTypes.StringType).add("budget", DataTypes.IntegerType);

  @BeforeAll
  static void register() {
    GenAiFunctions.register(spark, Fixtures.tinyModel().toString());
  }

  /** Prompts of mixed lengths, each with its own token budget. */
  static Dataset<Row> mixed(int rows, int maxBudget) {
    String[] words = {"sea", "sun", "river", "mountain", "stone", "cloud", "fire", "wind", "tree", "light"};
    List<Row> out = new ArrayList<>();
    for (int i = 0; i < rows; i++) {
      StringBuilder p = new StringBuilder();
      for (int w = 0; w < (i * 7) % 31 + 1; w++) {
        p.append(words[(i + w * 3) % words.length]).append(' ');
      }
      out.add(RowFactory.create(i, p.append(i % 4 == 0 ? "." : "?").toString(),
          i % 3 == 0 ? maxBudget : Math.min(maxBudget, 5 + i % 17)));
    }
    return spark.createDataFrame(out, SCHEMA).repartition(2);
  }

  @Test
  void aSelectScoresItsRowsInBatchesWithTheTransformersAnswers() {
    Dataset<Row> in = mixed(24, 40);
    in.createOrReplaceTempView("mixed");
    Dataset<Row> sql = spark.sql("SELECT id, upper(question) AS q, genai_generate(question,"
        + " map('max_new_tokens', cast(budget AS string), 'do_sample', 'false')) AS g FROM mixed");
    assertThat(sql.queryExecution().optimizedPlan().toString()).as("the batched scoring operator")
        .contains("MapPartitions").doesNotContain(GenAiFunctions.IMPL);
    List<Row> got = sql.orderBy("id").collectAsList();
    List<Row> want = new GenAiTransformer().setModelUri(Fixtures.tinyModel().toString()).setInputCol("question")
        .setDoSample(false).setOption("max_tokens_column", "budget").transform(in).orderBy("id").collectAsList();
    assertThat(got).hasSize(24);
    for (int i = 0; i < got.size(); i++) {
      Row g = got.get(i).getAs("g");
      Row t = want.get(i);
      assertThat(got.get(i).<String>getAs("q")).isEqualTo(t.<String>getAs("question").toUpperCase(Locale.ROOT));
      assertThat(g.<String>getAs("error")).as("row %d", i).isNull();
      assertThat(g.<String>getAs("response")).as("row %d", i).isEqualTo(t.<String>getAs("response"));
      assertThat(g.<String>getAs("finish_reason")).as("row %d", i).isEqualTo(t.<String>getAs("finish_reason"));
      assertThat(g.<Integer>getAs("completion_tokens")).as("row %d", i)
          .isEqualTo(t.<Integer>getAs("completion_tokens"));
    }
  }

  @Test
  void aCallOverTheRowLimitsIsThatRowsErrorBatchedOrNot() {
    mixed(6, 8).createOrReplaceTempView("few");
    String options = "IF(id = 2, map('n', '64', 'max_tokens', '4096', 'temperature', '1', 'do_sample', 'true',"
        + " 'top_k', '40'),"
        + " map('max_new_tokens', '4'))";
    List<Row> rows = spark.sql("SELECT id, genai_generate(question, " + options + ") AS g FROM few ORDER BY id")
        .collectAsList();
    for (Row r : rows) {
      Row g = r.getAs("g");
      if (r.<Integer>getAs("id") == 2) {
        assertThat(g.<String>getAs("error")).contains("new tokens in all (n 64 x").contains("--max-row-tokens 32768");
      } else {
        assertThat(g.<String>getAs("error")).isNull();
        assertThat(g.<Integer>getAs("completion_tokens")).isBetween(1, 4);
      }
    }
    // In a filter the call stays a row-at-a-time UDF: the same limits hold.
    List<Row> failed = spark.sql("SELECT id FROM few WHERE genai_generate(question, " + options + ").error"
        + " LIKE '%--max-row-tokens%'").collectAsList();
    assertThat(failed).extracting(r -> r.getInt(0)).containsExactly(2);
  }

  @Test
  void aCancelledQueryStopsComputing() throws Exception {
    mixed(400, 240).createOrReplaceTempView("many");
    OperatingSystemMXBean os = (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    // The model loaded and the code warm first, so that the CPU counted below is the query's decoding.
    spark.sql("SELECT genai_generate(question, map('max_new_tokens', '2')) FROM many").collectAsList();
    CompletableFuture<Throwable> query = CompletableFuture.supplyAsync(() -> {
      // Not interrupting the task thread: the task's own cancellation (TaskContext) must stop the decoding.
      spark.sparkContext().setJobGroup("long-sql", "a long genai_generate", false);
      try {
        spark.sql("SELECT genai_generate(question, map('max_new_tokens', '240')).response FROM many").collectAsList();
        return null;
      } catch (Exception e) { // Spark's SparkException, thrown unchecked through collectAsList
        return e;
      } finally {
        spark.sparkContext().clearJobGroup();
      }
    });
    // Until the tasks are decoding: this JVM (the executor) busy for 3 s of CPU (1.5 s on both cores).
    long start = os.getProcessCpuTime();
    while (os.getProcessCpuTime() - start < 3_000_000_000L) {
      Thread.sleep(100);
    }
    long cancelledAt = System.nanoTime();
    spark.sparkContext().cancelJobGroup("long-sql");
    Throwable e = query.get(2, TimeUnit.MINUTES);
    assertThat(e).as("the query was cancelled").isNotNull().hasMessageContaining("cancelled");
    double secondsToStop = (System.nanoTime() - cancelledAt) / 1e9;
    assertThat(secondsToStop).as("seconds from cancel to the query's end").isLessThan(10);
    // No task goes on decoding after the query ended: the executor's CPU is near idle.
    Thread.sleep(500);
    long before = os.getProcessCpuTime();
    Thread.sleep(3000);
    double busyCores = (os.getProcessCpuTime() - before) / 3e9;
    assertThat(busyCores).as("cores busy in the 3 s after the cancel").isLessThan(0.3);
  }
}
