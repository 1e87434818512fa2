package io.genaibatch.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A nightly job (a reference column, tracking on) through {@code jobs/spark-submit.sh} against each
 * older MLflow server of src/main/python/old-servers.txt (its own .venv-NAME, installed by
 * {@code jobs/setup.sh --old-servers all}): exit 0, the run FINISHED with its params, metrics and
 * artifacts read back through that server's REST API, the Parquet output whole, and each feature
 * the server cannot take skipped with exactly one warning, without a stack trace. jobs/test.sh runs
 * it in a leg of its own (the full suite's failsafe run leaves it out: it needs those venvs). Each
 * job's log is kept as target/old-servers/NAME.log.
 */
class OldServersIT {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int ROWS = 6;

  /** A feature of a newer server that the job sends, and a phrase its warning names it by. */
  enum Feature {
    TRACES("takes no traces"),
    EVALUATION_DATASETS("has no evaluation datasets");

    final String warning;

    Feature(String warning) {
      this.warning = warning;
    }
  }

  /** What each server of old-servers.txt lacks, as measured: a name missing here fails the test. */
  private static final Map<String, List<Feature>> LACKS = Map.of(
      "mlflow3.6", List.of(),
      "mlflow2", List.of(Feature.TRACES, Feature.EVALUATION_DATASETS));
  /**
   * The servers with MLflow 3 logged models: the job scores one logged there ({@code models:/m-ID})
   * and logs its metrics against its {@code model_id}; the others score a registry version logged
   * with MLflow 2's API ({@code models:/tiny-phi3/1}), which has no {@code model_id}.
   */
  private static final Set<String> LOGGED_MODELS = Set.of("mlflow3.6");
  /** A line of the job's log: a log line with its time and level, the job's own, or the JVM's. */
  private static final Pattern LOG_LINE = Pattern.compile(
      "^(\\d\\d:\\d\\d:\\d\\d [A-Z]+ |genai-batch: |\\[genai-batch\\] |Picked up |WARNING: )");

  /**
   * The names of src/main/python/old-servers.txt, or those of them that the system property
   * genaibatch.old.servers lists (comma-separated; jobs/test.sh passes GENAI_BATCH_OLD_SERVERS on).
   */
  static Stream<String> servers() throws Exception {
    String asked = System.getProperty("genaibatch.old.servers", "all");
    List<String> only = asked.isBlank() || asked.equals("all") ? List.of() : List.of(asked.split(","));
    return Files.readAllLines(Fixtures.projectDir().resolve("src/main/python/old-servers.txt")).stream()
        .map(String::strip).filter(l -> !l.isEmpty() && !l.startsWith("#")).map(l -> l.split("\\s+")[0])
        .filter(name -> only.isEmpty() || only.contains(name));
  }

  @ParameterizedTest
  @MethodSource("servers")
  void aNightlyJobGetsACompleteRunAndOneWarningPerFeatureTheServerLacks(String name, @TempDir Path dir)
      throws Exception {
    assertThat(LACKS).as("what %s lacks", name).containsKey(name);
    long start = System.nanoTime();
    MlflowServer server = MlflowServer.start(Fixtures.projectDir().resolve(".venv-" + name), dir.resolve("mlflow"),
        Map.of());
    try {
      Path in = prompts(dir);
      Path out = dir.resolve("out");
      String model = model(name, server);
      Fixtures.ChildRun job = RuntimeJobIT.submit(dir, "nightly-" + name, Map.of(), List.of(),
          "--model-uri", model, "--input", in.toString(), "--input-format", "json",
          "--output", out.toString(), "--tracking-uri", server.uri(), "--experiment", "old-" + name,
          "--id-column", "id", "--max-tokens", "4", "--cache-dir", dir.resolve("model-cache").toString());
      String log = job.output();
      Path kept = Fixtures.projectDir().resolve("target/old-servers/" + name + ".log");
      Files.createDirectories(kept.getParent());
      Files.writeString(kept, log);
      assertThat(job.code()).as(log).isZero();
      checkLog(name, log);

      JsonNode output = Fixtures.readOutput(out);
      assertThat(output.size()).isEqualTo(ROWS);
      output.fields().forEachRemaining(e -> assertThat(e.getValue().path("error").isNull())
          .as("row %s", e.getKey()).isTrue());

      String experiment = json(server.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=old-" + name))
          .path("experiment").path("experiment_id").asText();
      JsonNode run = json(server.post("/api/2.0/mlflow/runs/search", "{\"experiment_ids\": [\"" + experiment + "\"]}"))
          .path("runs");
      assertThat(run).as("one run").hasSize(1);
      checkRun(server, run.get(0), name, model, out);
    } finally {
      server.stop();
    }
    System.out.printf("[OldServersIT] %s: %d s, the server's start included%n", name,
        TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start));
  }

  /** The tiny model logged on the server as that server's users log models, by its URI. */
  private static String model(String name, MlflowServer server) throws Exception {
    if (LOGGED_MODELS.contains(name)) {
      return server.python("log_model", null, "--model-dir", Fixtures.tinyModel().toString(), "--experiment",
          "models").path("model_uri").asText();
    }
    Path python = Fixtures.projectDir().resolve(".venv-" + name + "/bin/python");
    return Fixtures.runPython(python, "src/test/python/log_model_mlflow2.py", Map.of("MLFLOW_TRACKING_URI",
        server.uri()), Map.of("model_dir", Fixtures.tinyModel().toString(), "name", "tiny-phi3"))
        .path("model_uri").asText();
  }

  /** No stack trace, every line a line of its own, and one warning for each feature the server lacks. */
  private static void checkLog(String name, String log) {
    assertThat(log).as("no stack trace").doesNotContainPattern("(?m)^\\s+at [\\w.$]+\\(")
        .doesNotContain("Exception in thread");
    assertThat(log.lines().filter(l -> !l.isBlank() && !LOG_LINE.matcher(l).find()))
        .as("lines of the log that are no log line of their own (a quoted HTML page, say)").isEmpty();
    for (Feature f : Feature.values()) {
      long warnings = log.lines().filter(l -> l.contains(" WARN ") && l.contains(f.warning)).count();
      assertThat(warnings).as("%s warnings about %s in:%n%s", name, f, log)
          .isEqualTo(LACKS.get(name).contains(f) ? 1 : 0);
    }
  }

  /** The run read back through the server: FINISHED, its params, metrics and artifacts. */
  private static void checkRun(MlflowServer server, JsonNode run, String name, String model, Path out)
      throws Exception {
    String runId = run.path("info").path("run_id").asText();
    assertThat(run.path("info").path("status").asText()).isEqualTo("FINISHED");
    Map<String, String> params = pairs(run.path("data").path("params"));
    assertThat(params).containsEntry("model_uri", model);
    Map<String, String> metrics = pairs(run.path("data").path("metrics"));
    assertThat(Double.parseDouble(metrics.get("rows_total"))).isEqualTo(ROWS);
    assertThat(Double.parseDouble(metrics.get("rows_ok"))).isEqualTo(ROWS);
    assertThat(metrics).containsKey("eval_token_f1");
    boolean traces = !LACKS.get(name).contains(Feature.TRACES);
    assertThat(metrics.containsKey("traces_logged")).as("traces_logged").isEqualTo(traces);
    if (traces) {
      assertThat(Double.parseDouble(metrics.get("traces_logged"))).isEqualTo(ROWS);
      assertThat(Double.parseDouble(metrics.get("assessments_logged"))).as("expectations and feedback").isPositive();
    }
    List<String> datasets = new ArrayList<>();
    for (JsonNode in : run.path("inputs").path("dataset_inputs")) {
      datasets.add(in.path("dataset").path("source_type").asText() + " " + in.path("dataset").path("name").asText());
    }
    assertThat(datasets).as("the run's datasets").contains("local prompts.jsonl");
    assertThat(datasets.stream().anyMatch(d -> d.startsWith("mlflow_evaluation_dataset prompts.jsonl@")))
        .as("the evaluation dataset among %s", datasets).isEqualTo(!LACKS.get(name).contains(Feature.EVALUATION_DATASETS));
    if (LOGGED_MODELS.contains(name)) {
      checkLoggedModel(server, runId, model.substring("models:/".length()));
    }
    List<String> artifacts = new ArrayList<>();
    for (JsonNode f : json(server.get("/api/2.0/mlflow/artifacts/list?run_id=" + runId)).path("files")) {
      artifacts.add(f.path("path").asText());
    }
    assertThat(artifacts).contains("output.json", "effective_config.yaml");
    String written = server.get("/get-artifact?run_id=" + runId + "&path=output.json").body();
    assertThat(written).contains(out.getFileName().toString());
  }

  /** The logged model is the run's input and holds the run's final metrics (logged with its {@code model_id}). */
  private static void checkLoggedModel(MlflowServer server, String runId, String modelId) throws Exception {
    JsonNode inputs = json(server.get("/api/2.0/mlflow/runs/get?run_id=" + runId)).path("run").path("inputs");
    assertThat(inputs.path("model_inputs").toString()).as("the run's model inputs").contains(modelId);
    JsonNode metrics = json(server.get("/api/2.0/mlflow/logged-models/" + modelId)).path("model").path("data")
        .path("metrics");
    boolean rowsTotal = false;
    for (JsonNode m : metrics) {
      rowsTotal |= m.path("key").asText().equals("rows_total") && m.path("run_id").asText().equals(runId)
          && m.path("value").asDouble() == ROWS;
    }
    assertThat(rowsTotal).as("rows_total of run %s on the logged model: %s", runId, metrics).isTrue();
  }

  /** {@code [{key, value}, ...]} as a map. */
  private static Map<String, String> pairs(JsonNode list) {
    Map<String, String> m = new HashMap<>();
    list.forEach(p -> m.put(p.path("key").asText(), p.path("value").asText()));
    return m;
  }

  /** The JSON of a 200 answer. */
  private static JsonNode json(HttpResponse<String> r) throws Exception {
    assertThat(r.statusCode()).as(r.uri() + ": " + r.body()).isEqualTo(200);
    return JSON.readTree(r.body());
  }

  /** A nightly prompt set: ids, prompts and the reference column. */
  private static Path prompts(Path dir) throws Exception {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < ROWS; i++) {
      ObjectNode row = JSON.createObjectNode().put("id", i).put("prompt", "Question number " + i)
          .put("expected", "answer " + i);
      sb.append(JSON.writeValueAsString(row)).append('\n');
    }
    Path in = dir.resolve("prompts.jsonl");
    Files.writeString(in, sb.toString());
    return in;
  }
}
