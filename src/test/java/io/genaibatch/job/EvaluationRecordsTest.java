package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import io.genaibatch.eval.Evaluation;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import io.genaibatch.testing.Slow;
import io.genaibatch.testing.SparkTestBase;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two nights of the same prompt set, read back with MLflow's Python client: the prompt set is one
 * evaluation dataset, each trace carries its reference and scores, and mlflow.genai.evaluate's
 * results land in the night's run.
 */
@Slow
class EvaluationRecordsTest extends SparkTestBase {

  @Test
  void twoNightsShareOneDatasetAndTheirTracesCarryExpectationsFeedbackAndScorerResults(@TempDir Path tmp)
      throws Exception {
    MlflowServer server = MlflowServer.shared();
    StructType schema = new StructType().add("id", DataTypes.LongType).add("prompt", DataTypes.StringType)
        .add("expected", DataTypes.StringType);
    List<Row> rows = new ArrayList<>();
    for (long i = 0; i < 8; i++) {
      // Row 1 has no prompt (an error row), row 2 no reference (not scored, not in the dataset).
      rows.add(RowFactory.create(i, i == 1 ? null : "Evening question " + i, i == 2 ? null : "answer " + i));
    }
    String input = tmp.resolve("prompts.parquet").toString();
    spark.createDataFrame(rows, schema).coalesce(1).write().parquet(input);
    String experiment = "evalsets-" + System.nanoTime();
    String[] outputs = {tmp.resolve("night1").toString(), tmp.resolve("night2").toString()};
    List<String> runIds = new ArrayList<>();
    // Night 2 answers under a JSON Schema and parses the answers: its traces also say which answers are valid.
    String[][] nights = {{"--max-tokens", "3"}, {"--max-tokens", "24", "--parse-response", "--response-format",
        "{\"type\":\"object\",\"properties\":{\"label\":{\"type\":\"string\",\"enum\":[\"yes\",\"no\"]}},"
            + "\"required\":[\"label\"],\"additionalProperties\":false}"}};
    for (int night = 0; night < 2; night++) {
      List<String> args = new ArrayList<>(List.of("--model-uri", Fixtures.tinyModel().toString(),
          "--input", input, "--output", outputs[night], "--tracking-uri", server.uri(), "--experiment", experiment,
          "--id-column", "id", "--max-error-rate", "0.5"));
      args.addAll(List.of(nights[night]));
      BatchScoringJobTest.Result r = BatchScoringJobTest.run(args.toArray(String[]::new));
      assertThat(r.code()).as(r.err()).isZero();
      assertThat(r.out()).contains(night == 0 ? "registered now" : "registered before");
      runIds.add(TrackingTest.runId(outputs[night]));
    }
    Path config = tmp.resolve("nightly.yaml");
    Files.writeString(config, "experiment: " + experiment + "\nscorers: [answered, reference_in_answer, answer_is_json]\n");
    JsonNode read = Fixtures.runPython("src/test/python/read_evaluation.py",
        Map.of("MLFLOW_TRACKING_URI", server.uri()), Map.of("experiment", experiment, "run_ids", runIds,
            "evaluate", List.of("--config", config.toString(), "--output", outputs[1])));

    // One dataset for both nights, holding the rows with a prompt and a reference.
    assertThat(read.path("datasets")).hasSize(1);
    JsonNode dataset = read.path("datasets").get(0);
    assertThat(dataset.path("records")).hasSize(6);
    for (JsonNode rec : dataset.path("records")) {
      String prompt = rec.path("inputs").path("prompt").asText();
      assertThat(rec.path("expectations").path("expected_response").asText())
          .isEqualTo("answer " + prompt.substring("Evening question ".length()));
    }
    for (String runId : runIds) {
      JsonNode linked = null;
      for (JsonNode in : read.path("runs").path(runId).path("inputs")) {
        if (in.path("source_type").asText().equals("mlflow_evaluation_dataset")) {
          linked = in;
        }
      }
      assertThat(linked).as("run %s's evaluation dataset input", runId).isNotNull();
      assertThat(linked.path("source").asText()).contains(dataset.path("id").asText());
      assertThat(linked.path("name").asText()).isEqualTo(dataset.path("name").asText());
    }

    // Seven rows with a reference: an expectation and three scores each; night 2 adds every row's validity.
    JsonNode m1 = read.path("runs").path(runIds.get(0)).path("metrics");
    JsonNode m2 = read.path("runs").path(runIds.get(1)).path("metrics");
    assertThat(m1.path("assessments_logged").asInt()).isEqualTo(28);
    assertThat(m2.path("assessments_logged").asInt()).isEqualTo(36);

    // Night 1's traces: the reference as an expectation, the job's scores as feedback, equal to the output's.
    Map<Long, Row> scores = new java.util.HashMap<>();
    for (Row s : Evaluation.evaluate(spark.read().parquet(outputs[0]), "id", "expected").rows().collectAsList()) {
      scores.put(s.<Long>getAs("id"), s);
    }
    JsonNode traces1 = read.path("runs").path(runIds.get(0)).path("traces");
    assertThat(traces1.size()).isEqualTo(8);
    for (long i = 0; i < 8; i++) {
      JsonNode a = traces1.path(String.valueOf(i));
      if (i == 2) {
        assertThat(a.has("expected_response")).as("row without a reference").isFalse();
        assertThat(a.has("token_f1")).isFalse();
        continue;
      }
      assertThat(a.path("expected_response")).hasSize(1);
      assertThat(a.path("expected_response").get(0).path("value").asText()).isEqualTo("answer " + i);
      assertThat(a.path("expected_response").get(0).path("source_id").asText()).isEqualTo("genai-batch");
      Row s = scores.get(i);
      assertThat(a.path("exact_match").get(0).path("value").asBoolean())
          .isEqualTo(s.<Double>getAs("exact_match") >= 1.0);
      assertThat(a.path("token_f1").get(0).path("value").asDouble()).isCloseTo(s.getAs("token_f1"), within(1e-9));
      assertThat(a.path("rouge_l").get(0).path("value").asDouble()).isCloseTo(s.getAs("rouge_l"), within(1e-9));
    }
    assertThat(traces1.path("1").path("token_f1").get(0).path("value").asDouble()).as("the error row").isZero();

    // mlflow.genai.evaluate over night 2: its scorers' means in the run, their feedback on the traces,
    // the reference still once per trace, and the run still FINISHED.
    assertThat(read.path("evaluate_rc").asInt()).isZero();
    JsonNode run2 = read.path("runs").path(runIds.get(1));
    assertThat(run2.path("status").asText()).isEqualTo("FINISHED");
    assertThat(run2.path("metrics").has("answered/mean")).as(run2.path("metrics").toString()).isTrue();
    assertThat(run2.path("metrics").path("reference_in_answer/mean").asDouble()).isBetween(0.0, 1.0);
    assertThat(run2.path("metrics").has("eval_token_f1")).isTrue();
    JsonNode traces2 = run2.path("traces");
    assertThat(traces2.size()).isEqualTo(8);
    assertThat(traces2.path("1").path("answered").get(0).path("value").asBoolean()).as("the error row").isFalse();
    Map<Long, Boolean> parsed = new java.util.HashMap<>();
    for (Row o : spark.read().parquet(outputs[1]).collectAsList()) {
      parsed.put(o.<Long>getAs("id"), o.getAs("error") == null && o.getAs("response_parsed") != null);
    }
    assertThat(parsed.values()).as("some answer parses under the schema").contains(true);
    for (long i = 0; i < 8; i++) {
      JsonNode a = traces2.path(String.valueOf(i));
      assertThat(a.path("answered")).as("row %s", i).hasSize(1);
      assertThat(a.path("expected_response").size()).isEqualTo(i == 2 ? 0 : 1);
      assertThat(a.has("reference_in_answer")).isEqualTo(i != 2);
      assertThat(a.path("response_valid").get(0).path("value").asBoolean()).as("row %s", i).isEqualTo(parsed.get(i));
      assertThat(a.path("answer_is_json").get(0).path("value").asBoolean()).isEqualTo(parsed.get(i));
    }
  }
}
