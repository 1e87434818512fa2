package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import io.genaibatch.testing.Slow;
import io.genaibatch.testing.SparkTestBase;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A run that scores an MLflow 3 logged model shows on the model's page: read back with MLflow's Python client. */
@Slow
class LoggedModelTest extends SparkTestBase {

  @Test
  void theRunsMetricsAreTheLoggedModelsWithThePromptSet(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    JsonNode logged = server.python("log_model", null, "--model-dir", Fixtures.tinyModel().toString(),
        "--experiment", "logged-model-page");
    String modelId = logged.path("model_id").asText();
    assertThat(modelId).startsWith("m-");
    String input = BatchScoringJobTest.writePrompts(tmp, 6, false);
    String output = tmp.resolve("out").toString();
    BatchScoringJobTest.Result r = BatchScoringJobTest.run("--model-uri", "models:/" + modelId,
        "--input", input, "--output", output, "--tracking-uri", server.uri(), "--experiment", "logged-model-page",
        "--id-column", "id", "--max-tokens", "2");
    assertThat(r.code()).as(r.err()).isZero();
    String runId = TrackingTest.runId(output);

    JsonNode model = Fixtures.runPython("src/test/python/read_logged_model.py", Map.of("MLFLOW_TRACKING_URI", server.uri()),
        Map.of("model_id", modelId, "run_id", runId));
    assertThat(model.path("run_model_inputs").toString()).contains(modelId);
    Map<String, JsonNode> metrics = new HashMap<>();
    for (JsonNode m : model.path("metrics")) {
      if (m.path("run_id").asText().equals(runId)) {
        metrics.put(m.path("key").asText(), m);
      }
    }
    assertThat(metrics.get("rows_total").path("value").asDouble()).isEqualTo(6.0);
    assertThat(metrics).containsKeys("rows_ok", "completion_tokens", "latency_p50_ms");
    assertThat(metrics.get("rows_total").path("dataset_name").asText()).isEqualTo("prompts.parquet");
    assertThat(metrics.get("rows_total").path("dataset_digest").asText()).hasSize(12);
  }
}
