package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import io.genaibatch.testing.Slow;
import io.genaibatch.testing.SparkTestBase;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Two nightly runs in a row: evaluation, comparison in MLflow, and a threshold that fails the run. */
@Slow
class NightlyEvaluationTest extends SparkTestBase {
  static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void consecutiveNightsCompareAndAThresholdBreachFailsTheRun(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    StructType schema = new StructType().add("id", DataTypes.LongType).add("prompt", DataTypes.StringType)
        .add("expected", DataTypes.StringType);
    List<Row> rows = new ArrayList<>();
    Set<Long> stopAtOnce = new TreeSet<>();
    for (long i = 0; i < 12; i++) {
      boolean stops = i % 3 == 0;
      if (stops) {
        stopAtOnce.add(i);
      }
      rows.add(RowFactory.create(i, "Nightly question " + i + (stops ? " ends." : " goes on"), "answer " + i));
    }
    String input = tmp.resolve("nightly.parquet").toString();
    spark.createDataFrame(rows, schema).coalesce(1).write().parquet(input);
    String experiment = "nightly-" + System.nanoTime();
    String[] common = {"--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--tracking-uri", server.uri(),
        "--experiment", experiment, "--id-column", "id"};

    BatchScoringJobTest.Result night1 = BatchScoringJobTest.run(concat(common, "--output", tmp.resolve("d1").toString(),
        "--max-tokens", "4"));
    assertThat(night1.code()).as(night1.err()).isZero();
    // Night 2: different search options. Prompts that stop at once keep their (empty) answer.
    BatchScoringJobTest.Result night2 = BatchScoringJobTest.run(concat(common, "--output", tmp.resolve("d2").toString(),
        "--max-tokens", "6"));
    assertThat(night2.code()).as(night2.err()).isZero();
    String run1 = TrackingTest.runId(tmp.resolve("d1").toString());
    String run2 = TrackingTest.runId(tmp.resolve("d2").toString());
    assertThat(night2.out()).contains("compared with run " + run1 + ": 8 answers changed");

    JsonNode r2 = Fixtures.runPython("src/test/python/read_run.py", Map.of("MLFLOW_TRACKING_URI", server.uri()),
        Map.of("run_id", run2, "download_dir", tmp.resolve("dl2").toString()));
    assertThat(r2.path("metrics").path("compare_answers_changed").asInt()).isEqualTo(8);
    assertThat(r2.path("metrics").path("compare_prompts_compared").asInt()).isEqualTo(12);
    assertThat(r2.path("metrics").has("eval_token_f1")).isTrue();
    assertThat(r2.path("metrics").has("compare_delta_eval_answer_length_mean")
        || r2.path("metrics").has("compare_delta_eval_token_f1")).isTrue();
    assertThat(r2.path("tags").path("genai_batch.compared_with").asText()).isEqualTo(run1);
    JsonNode table = JSON.readTree(r2.path("texts").path("comparison.json").asText());
    List<String> cols = new ArrayList<>();
    table.path("columns").forEach(c -> cols.add(c.asText()));
    Set<Long> changed = new TreeSet<>();
    for (JsonNode row : table.path("data")) {
      if (row.get(cols.indexOf("changed")).asBoolean()) {
        changed.add(row.get(cols.indexOf("id")).asLong());
      }
    }
    Set<Long> expected = new TreeSet<>();
    for (long i = 0; i < 12; i++) {
      if (!stopAtOnce.contains(i)) {
        expected.add(i);
      }
    }
    assertThat(changed).isEqualTo(expected);
    assertThat(r2.path("texts").path("evaluation.json").asText()).contains("token_f1").contains("rouge_l");

    // Night 3 allows no changed answer but changes them: the run fails and the job exits 5.
    BatchScoringJobTest.Result night3 = BatchScoringJobTest.run(concat(common, "--output", tmp.resolve("d3").toString(),
        "--max-tokens", "8", "--max-answers-changed", "0"));
    assertThat(night3.code()).isEqualTo(5);
    assertThat(night3.err()).contains("8 answers changed, more than the allowed 0");
    JsonNode r3 = Fixtures.runPython("src/test/python/read_run.py", Map.of("MLFLOW_TRACKING_URI", server.uri()),
        Map.of("run_id", TrackingTest.runId(tmp.resolve("d3").toString()), "download_dir", tmp.resolve("dl3").toString()));
    assertThat(r3.path("status").asText()).isEqualTo("FAILED");
    assertThat(r3.path("tags").path("genai_batch.threshold_breaches").asText()).contains("8 answers changed");
    assertThat(r3.path("tags").path("genai_batch.compared_with").asText()).isEqualTo(run2);
  }

  private static String[] concat(String[] a, String... b) {
    String[] out = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
