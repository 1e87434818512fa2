package io.genaibatch.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import java.io.File;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jobs/nightly.sh} as a scheduler runs it (a child process, SKIP_BUILD=1, the job jar through
 * jobs/spark-submit.sh), two nights in a row against a real MLflow server: each night is one run in
 * a dated output folder, holding the job's metrics and the scorers' ({@code <scorer>/mean}, from
 * mlflow.genai.evaluate); night 2 is compared with night 1, and a scorer metric that fell by more than
 * its {@code max_metric_drop} fails night 2's run with exit 5. A misspelt scorer exits 2 before anything
 * is scored. The answers are steered by a response format: {@code regex:yes} answers every row's
 * reference ("yes"), {@code regex:no} none.
 */
class NightlyShIT {
  static final ObjectMapper JSON = new ObjectMapper();
  static final int ROWS = 6;
  static final Pattern RUN_ID = Pattern.compile("genai-batch: MLflow run (\\w+) at ");

  /** A prompt set of ROWS rows whose reference is "yes", and a nightly config over it. */
  static Path config(Path dir, String experiment, String scorers, String maxMetricDrop) throws Exception {
    Path prompts = dir.resolve("prompts.jsonl");
    if (!Files.exists(prompts)) {
      StringBuilder sb = new StringBuilder();
      for (int i = 0; i < ROWS; i++) {
        sb.append(JSON.writeValueAsString(Map.of("id", i, "prompt", "Is " + i + " a number?", "expected", "yes")))
            .append('\n');
      }
      Files.writeString(prompts, sb.toString());
    }
    Path config = Files.createTempFile(dir, "nightly-", ".yaml");
    Files.writeString(config, String.join("\n",
        "model_uri: " + Fixtures.tinyModel(),
        "input: " + prompts,
        "input_format: json",
        "id_column: id",
        "prompt_column: prompt",
        "reference_column: expected",
        "experiment: " + experiment,
        "batch_size: 4",
        "compare_previous: true",
        "max_metric_drop: " + maxMetricDrop,
        "scorers: " + scorers,
        "search:",
        "  max_new_tokens: 8",
        ""));
    return config;
  }

  /** jobs/nightly.sh CONFIG ARGS for the night {@code night}, outputs under {@code root}. */
  static Fixtures.ChildRun nightly(Path root, String night, String server, Path config, String... args)
      throws Exception {
    List<String> cmd = new ArrayList<>(List.of(Fixtures.projectDir().resolve("jobs/nightly.sh").toString(),
        config.toString()));
    cmd.addAll(List.of(args));
    Path log = root.resolve(night + ".log");
    Files.createDirectories(root);
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile())
        .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
    Map<String, String> env = Fixtures.sparkEnv(pb.environment());
    env.putAll(Map.of("SKIP_BUILD", "1", "GENAI_BATCH_MASTER", "local[2]", "GENAI_BATCH_OUTPUT_ROOT", root.toString(),
        "GENAI_BATCH_NIGHT", night, "MLFLOW_TRACKING_URI", server));
    long start = System.nanoTime();
    Process p = pb.start();
    if (!p.waitFor(300, TimeUnit.SECONDS)) {
      p.descendants().forEach(ProcessHandle::destroyForcibly);
      p.destroyForcibly();
      throw new IllegalStateException("jobs/nightly.sh for " + night + " did not finish in 300 s: "
          + Files.readString(log));
    }
    System.out.printf("[NightlyShIT] night %s: exit %d in %d s%n", night, p.exitValue(),
        TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start));
    return new Fixtures.ChildRun(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
  }

  static String runId(Fixtures.ChildRun night) {
    Matcher m = RUN_ID.matcher(night.output());
    assertThat(m.find()).as(night.output()).isTrue();
    return m.group(1);
  }

  /** A run as MLflow's REST API gives it: status, metrics and tags (key -> value). */
  record Run(String status, Map<String, Double> metrics, Map<String, String> tags) {}

  static Run run(MlflowServer server, String runId) throws Exception {
    JsonNode r = JSON.readTree(server.get("/api/2.0/mlflow/runs/get?run_id=" + runId).body()).path("run");
    Map<String, Double> metrics = new HashMap<>();
    r.path("data").path("metrics").forEach(m -> metrics.put(m.path("key").asText(), m.path("value").asDouble()));
    Map<String, String> tags = new HashMap<>();
    r.path("data").path("tags").forEach(t -> tags.put(t.path("key").asText(), t.path("value").asText()));
    return new Run(r.path("info").path("status").asText(), metrics, tags);
  }

  @Test
  void twoNightsCompareAndAScorerMetricThatFellFailsTheSecond(@TempDir Path dir) throws Exception {
    MlflowServer server = MlflowServer.shared();
    String experiment = "nightly-sh-" + System.nanoTime();
    // The config runs one scorer; the command line's --scorers (the job's flag, a JSON array) runs two,
    // and reaches evaluate_run.py too: its --check accepts the limit on the second, its metric is logged.
    Path config = config(dir, experiment, "[answered]", "{reference_in_answer/mean: 0.5}");
    String scorers = "[\"answered\",\"reference_in_answer\"]";
    Path root = dir.resolve("nightly");

    // Night 1: every answer is its reference. The job leaves the scorer's limit to evaluate_run.py
    // (it has no such metric when it checks its own): exit 0, the run FINISHED with both kinds of metric.
    Fixtures.ChildRun night1 = nightly(root, "2026-01-01", server.uri(), config, "--response-format", "regex:yes",
        "--scorers", scorers);
    assertThat(night1.code()).as(night1.output()).isZero();
    assertThat(Fixtures.readOutput(root.resolve("2026-01-01/scored.parquet")).size()).isEqualTo(ROWS);
    String run1 = runId(night1);
    Run r1 = run(server, run1);
    assertThat(r1.status()).isEqualTo("FINISHED");
    assertThat(r1.metrics()).containsEntry("answered/mean", 1.0).containsEntry("reference_in_answer/mean", 1.0)
        .containsKey("eval_token_f1");

    // Night 2: the same prompt set, answers that miss every reference. Compared with night 1, the
    // scorer's mean fell by 1.0, more than the 0.5 allowed: the run ends FAILED and nightly.sh exits 5,
    // the output complete in its own dated folder.
    Fixtures.ChildRun night2 = nightly(root, "2026-01-02", server.uri(), config, "--response-format", "regex:no",
        "--scorers", scorers);
    String breach = "reference_in_answer/mean fell by 1.000 (1.000 -> 0.000), more than the allowed 0.500";
    assertThat(night2.code()).as(night2.output()).isEqualTo(5);
    String run2 = runId(night2);
    assertThat(night2.output()).contains("compared with run " + run1 + ": " + ROWS + " answers changed")
        .contains("scorer thresholds breached: " + breach)
        .doesNotContain("genai-batch: evaluation thresholds breached");
    assertThat(Fixtures.readOutput(root.resolve("2026-01-02/scored.parquet")).size()).isEqualTo(ROWS);
    Run r2 = run(server, run2);
    assertThat(r2.status()).isEqualTo("FAILED");
    assertThat(r2.tags()).containsEntry("genai_batch.compared_with", run1)
        .containsEntry("genai_batch.threshold_breaches", breach);
    assertThat(r2.metrics()).containsEntry("answered/mean", 1.0).containsEntry("reference_in_answer/mean", 0.0);
  }

  @Test
  void aMisspeltScorerExitsTwoBeforeAnythingIsScored(@TempDir Path dir) throws Exception {
    MlflowServer server = MlflowServer.shared();
    String experiment = "nightly-sh-misspelt-" + System.nanoTime();
    Path root = dir.resolve("nightly");
    Fixtures.ChildRun r = nightly(root, "2026-01-03", server.uri(),
        config(dir, experiment, "[answred]", "{eval_token_f1: 0.05}"));
    assertThat(r.code()).as(r.output()).isEqualTo(2);
    assertThat(r.output()).contains("unknown scorer 'answred' in scorers; known: ['answer_is_json', 'answered',"
        + " 'reference_in_answer']");
    // A limit on a scorer the config does not run is refused the same way.
    Fixtures.ChildRun limit = nightly(root, "2026-01-04", server.uri(),
        config(dir, experiment, "[answered]", "{answer_is_json/mean: 0.1}"));
    assertThat(limit.code()).as(limit.output()).isEqualTo(2);
    assertThat(limit.output()).contains("max_metric_drop names 'answer_is_json/mean', a metric of scorer"
        + " 'answer_is_json', which is not among scorers ['answered']: add it to scorers, or drop the limit");
    // Nothing written: no output folder, no run (not even the experiment).
    assertThat(root.resolve("2026-01-03")).doesNotExist();
    assertThat(root.resolve("2026-01-04")).doesNotExist();
    assertThat(server.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name="
        + URLEncoder.encode(experiment, StandardCharsets.UTF_8)).statusCode()).isEqualTo(404);
  }
}
