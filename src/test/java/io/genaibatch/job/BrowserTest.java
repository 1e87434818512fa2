package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.testing.Browser;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import io.genaibatch.testing.Slow;
import io.genaibatch.testing.SparkTestBase;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Pattern;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a user sees of a nightly run in the MLflow UI, opened in headless Chromium: the run page,
 * the run's Traces tab and the logged model's page, each checked by its rendered text and kept as a
 * screenshot under target/browser/.
 */
@Slow
class BrowserTest extends SparkTestBase {
  private static final Path SHOTS = Fixtures.projectDir().resolve("target/browser");
  private static final Duration WAIT = Duration.ofSeconds(60);

  @Test
  void theRunItsTracesAndTheLoggedModelShowInTheMlflowUi(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    String modelId = server.python("log_model", null, "--model-dir", Fixtures.tinyModel().toString(),
        "--experiment", "browser-test").path("model_id").asText();
    String input = TracesTest.writeNightly(tmp, 4);
    String output = tmp.resolve("out").toString();
    BatchScoringJobTest.Result r = BatchScoringJobTest.run("--model-uri", "models:/" + modelId,
        "--input", input, "--output", output, "--tracking-uri", server.uri(), "--experiment", "browser-test",
        "--id-column", "id", "--max-tokens", "4", "--max-error-rate", "0.5");
    assertThat(r.code()).as(r.err()).isZero();
    String runId = TrackingTest.runId(output);
    JsonNode run = new ObjectMapper().readTree(server.get("/api/2.0/mlflow/runs/get?run_id=" + runId).body())
        .path("run").path("info");
    String experiment = server.uri() + "/#/experiments/" + run.path("experiment_id").asText();
    String runName = run.path("run_name").asText();
    Row ok = spark.read().parquet(output).filter("id = 0").first();

    String prompt = ok.getAs("prompt");
    String answer = new ObjectMapper().writeValueAsString(ok.<String>getAs("response")); // as the UI shows it

    try (Browser browser = Browser.start()) {
      String runPage = browser.open(experiment + "/runs/" + runId, SHOTS.resolve("run.png"), WAIT,
          runName, "traces_logged", "nightly.parquet");
      assertThat(runPage).contains(runName, lines("Run ID", runId), lines("rows_total", "4"), lines("rows_ok", "3"),
          lines("traces_logged", "4"), lines("model_uri", "models:/" + modelId), lines("genai_batch.model_id", ": " + modelId))
          .containsPattern("\\nnightly\\.parquet \\([0-9a-f]{12}\\)\\n");

      String traces = browser.open(experiment + "/runs/" + runId + "/traces", SHOTS.resolve("traces-tab.png"), WAIT,
          prompt, "4 of 4");
      // The columns: request, response, then the expectation and the feedback (a nightly run's
      // reference and scores), then tokens, execution time and state.
      assertThat(traces).contains(lines("Request", "Response", "Expected output"), "exact_match", "token_f1",
          "rouge_l", "4 of 4").containsPattern("\\nTokens\\nExecution time\\nState\\n");
      List<String> row = rowFrom(traces, prompt, 9);
      assertThat(row.get(1)).as("the answer beside the prompt").contains(answer);
      assertThat(row.get(2)).as("the reference as the expected output").isEqualTo(ok.<String>getAs("expected"));
      int time = row.indexOf(row.stream().filter(c -> c.matches("[0-9.]+s")).findFirst().orElseThrow());
      assertThat(row.get(time - 1)).as("the tokens before the execution time in %s", row)
          .isEqualTo(String.valueOf(ok.<Integer>getAs("total_tokens")));

      String model = browser.open(experiment + "/models/" + modelId, SHOTS.resolve("logged-model.png"), WAIT,
          modelId, "rows_total");
      assertThat(model).contains(lines("Model ID", modelId))
          .containsPattern("\\nrows_total\\nnightly\\.parquet \\(#[0-9a-f]{12}\\)\\n" + Pattern.quote(runName) + "\\n4\\n");
    }
  }

  /** Consecutive lines of a page's text, as {@code innerText} puts one cell or label a line. */
  private static String lines(String... lines) {
    return String.join("\n", lines);
  }

  /** The n lines of a page's text from the first that contains first (a table row, one cell a line). */
  private static List<String> rowFrom(String text, String first, int n) {
    List<String> all = text.lines().toList();
    for (int i = 0; i + n <= all.size(); i++) {
      if (all.get(i).contains(first)) {
        return all.subList(i, i + n);
      }
    }
    throw new AssertionError("no line holds " + first + " in:\n" + text);
  }
}
