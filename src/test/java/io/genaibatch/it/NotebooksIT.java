package io.genaibatch.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Runs the notebooks under {@code notebooks/} top to bottom, from the repository root, the way a
 * user runs them outside a notebook server:
 *
 * <ul>
 *   <li>{@code package_phi3_model.ipynb} (Python) with {@code jupyter nbconvert --execute} from
 *       {@code .venv}, against a real MLflow server;
 *   <li>{@code score_prompts_scala.scala} (Databricks source format) pasted into {@code spark-shell
 *       --master local[2] --jars JAR} (by default target/genai-batch-spark4_2.13.jar and Spark from
 *       {@code .venv}; {@code -Dgenaibatch.jar} and {@code -Dgenaibatch.spark.home} pick another), scoring a
 *       {@code models:/NAME@champion} model registered on that server;
 *   <li>{@code score_prompts_java.ipynb} (IJava) cell by cell through JShell
 *       ({@code src/test/notebooks-runner/JShellNotebookRunner.java}), scoring the tiny model folder.
 * </ul>
 *
 * Each must exit 0 and print its closing {@code NOTEBOOK OK} line, which the notebook prints only
 * after its own checks pass. Every log is kept under the test's temporary folder and its tail is
 * shown on failure.
 */
class NotebooksIT {
  static final ObjectMapper JSON = new ObjectMapper();
  static final Duration LIMIT = Duration.ofSeconds(300);
  static final String MARKER = "NOTEBOOK OK";

  @TempDir
  static Path shared;
  private static MlflowServer server;
  private static String registeredModel;

  /** The MLflow server, started on first use (the Java notebook does not need one). */
  private static synchronized MlflowServer server() throws Exception {
    if (server == null) {
      server = MlflowServer.start(shared.resolve("mlflow"), Map.of());
    }
    return server;
  }

  /** {@code models:/notebooks-tiny@champion}: the tiny model logged and registered as the seed does. */
  private static synchronized String registeredModelUri() throws Exception {
    if (registeredModel == null) {
      server().python("log_model", null, "--model-dir", Fixtures.tinyModel().toString(), "--register",
          "notebooks-tiny", "--alias", "champion", "--experiment", "notebooks-models", "--max-new-tokens", "8");
      registeredModel = "models:/notebooks-tiny@champion";
    }
    return registeredModel;
  }

  @AfterAll
  static void stopServer() {
    if (server != null) {
      server.stop();
    }
  }

  @Test
  void pythonPackagingNotebookRegistersTheModel(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("executed");
    Map<String, String> env = Map.of(
        "MLFLOW_TRACKING_URI", server().uri(),
        "GENAI_BATCH_EXPERIMENT", "notebooks-it",
        "GENAI_BATCH_REGISTERED_MODEL", "notebook-phi3",
        "GENAI_BATCH_MODEL_DIR", "",
        "GENAI_BATCH_REPO", "",
        // Kernel specs and runtime files from .venv and this test only, never the user's.
        "JUPYTER_DATA_DIR", dir.resolve("jupyter-data").toString(),
        "JUPYTER_RUNTIME_DIR", dir.resolve("jupyter-runtime").toString(),
        "IPYTHONDIR", dir.resolve("ipython").toString(),
        "JUPYTER_PLATFORM_DIRS", "1");
    Run run = run("python", dir, env, null, List.of(
        venvBin("jupyter").toString(), "nbconvert", "--to", "notebook", "--execute",
        "--ExecutePreprocessor.timeout=" + (LIMIT.toSeconds() - 30), "--output-dir", out.toString(),
        "notebooks/package_phi3_model.ipynb"));
    assertThat(run.code).as(run.tail()).isZero();

    // nbconvert keeps the cells' output in the executed notebook, not on its own stdout.
    String outputs = cellOutputs(out.resolve("package_phi3_model.ipynb"));
    assertThat(outputs).as(outputs).contains(MARKER + ": models:/notebook-phi3@champion is version 1");
    assertThat(outputs).doesNotContain("Traceback");
    // And it really went to the test's server: the alias is there.
    JsonNode alias = get("/api/2.0/mlflow/registered-models/alias?name=notebook-phi3&alias=champion");
    assertThat(alias.path("model_version").path("version").asText()).isEqualTo("1");
    assertThat(get("/api/2.0/mlflow/registered-models/alias?name=notebook-phi3-chat&alias=champion")
        .path("model_version").path("version").asText()).isEqualTo("1");
  }

  @Test
  void scalaNotebookRunsInSparkShellAgainstTheRegistry(@TempDir Path dir) throws Exception {
    Path notebook = Fixtures.projectDir().resolve("notebooks/score_prompts_scala.scala");
    String modelUri = registeredModelUri();
    Map<String, String> env = Map.of(
        "GENAI_BATCH_NOTEBOOK_TEST", "1",
        "GENAI_BATCH_MODEL_URI", modelUri,
        "MLFLOW_TRACKING_URI", server().uri());
    // spark-shell 4.0.x ignores -i (SPARK-52587): paste the file (one compilation unit, so the
    // first failure stops it, like a Databricks "Run all"); the notebook exits 0 itself after its
    // checks, and the line after the paste only runs when it did not.
    String stdin = ":paste " + notebook + "\nSystem.exit(1)\n";
    Run run = run("scala", dir, env, stdin, List.of(
        sparkHome().resolve("bin/spark-shell").toString(), "--master", "local[2]",
        "--jars", jar().toString(),
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.ui.showConsoleProgress=false",
        "--conf", "spark.sql.catalogImplementation=in-memory",
        "--conf", "spark.sql.warehouse.dir=" + dir.resolve("warehouse"),
        "--conf", "spark.genaibatch.cache_dir=" + dir.resolve("model-cache")));
    assertThat(run.code).as(run.tail()).isZero();
    assertThat(run.output).as(run.tail())
        .contains(MARKER + ": 5 prompts scored")
        .contains("model_uri=" + modelUri + " model_version=1")
        .contains("version " + Fixtures.sparkVersion()); // spark-shell's banner: the runtime under test
  }

  @Test
  void scalaNotebookIpynbIsCurrent(@TempDir Path dir) throws Exception {
    Run run = run("scala-ipynb", dir, Map.of(), null, List.of(Fixtures.python().toString(),
        "src/test/notebooks-runner/databricks_to_ipynb.py", "--check", "notebooks/score_prompts_scala.scala"));
    assertThat(run.code).as(run.output).isZero();
  }

  @Test
  void javaNotebookRunsThroughJShell(@TempDir Path dir) throws Exception {
    // The tiny model folder, no tracking server: the notebook's defaults.
    Map<String, String> env = Map.of("GENAI_BATCH_MODEL_URI", "", "MLFLOW_TRACKING_URI", "");
    Run run = run("java", dir, env, null, List.of(
        Fixtures.childJavaHome().resolve("bin/java").toString(),
        "-cp", sparkHome().resolve("jars") + "/*",
        "src/test/notebooks-runner/JShellNotebookRunner.java", "notebooks/score_prompts_java.ipynb",
        "-R-Xmx2g",
        "-R-Dspark.ui.enabled=false",
        "-R-Dspark.ui.showConsoleProgress=false",
        "-R-Dspark.sql.warehouse.dir=" + dir.resolve("warehouse"),
        "-R-Dspark.genaibatch.cache_dir=" + dir.resolve("model-cache")));
    assertThat(run.code).as(run.tail()).isZero();
    assertThat(run.output).as(run.tail())
        .contains(MARKER + ": 5 prompts scored")
        .contains("model_uri=" + Fixtures.tinyModel())
        .contains("[runner] every cell ran");
  }

  // ---------------------------------------------------------------------------------------------

  /** A finished child: exit code, everything it printed, and how long it took. */
  record Run(int code, String output, Duration took) {
    String tail() {
      return output.length() <= 12_000 ? output : "...\n" + output.substring(output.length() - 12_000);
    }
  }

  /**
   * Runs {@code cmd} in the repository root with the extra environment (an empty value removes the
   * variable), stdin (or none), its output to {@code dir/NAME.log}; kills its whole process tree
   * after {@link #LIMIT}.
   */
  static Run run(String name, Path dir, Map<String, String> env, String stdin, List<String> cmd)
      throws IOException, InterruptedException {
    Path log = dir.resolve(name + ".log");
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(Fixtures.projectDir().toFile())
        .redirectErrorStream(true).redirectOutput(log.toFile());
    Map<String, String> e = pb.environment();
    Fixtures.sparkEnv(e);
    e.put("VIRTUAL_ENV", Fixtures.projectDir().resolve(".venv").toString());
    e.put("PYTHONUNBUFFERED", "1");
    env.forEach((k, v) -> {
      if (v.isEmpty()) {
        e.remove(k);
      } else {
        e.put(k, v);
      }
    });
    if (stdin == null) {
      pb.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
    }
    long start = System.nanoTime();
    Process p = pb.start();
    if (stdin != null) {
      try (var in = p.getOutputStream()) {
        in.write(stdin.getBytes(StandardCharsets.UTF_8));
      }
    }
    boolean done = p.waitFor(LIMIT.toSeconds(), TimeUnit.SECONDS);
    if (!done) {
      List<ProcessHandle> tree = new ArrayList<>(p.descendants().toList());
      p.destroyForcibly();
      tree.forEach(ProcessHandle::destroyForcibly);
      p.waitFor(10, TimeUnit.SECONDS);
    }
    Duration took = Duration.ofNanos(System.nanoTime() - start);
    String output = Files.readString(log, StandardCharsets.UTF_8);
    System.out.printf("[NotebooksIT] %s notebook: exit %s in %d s (log %s)%n", name,
        done ? String.valueOf(p.exitValue()) : "none, killed", took.toSeconds(), log);
    Run run = new Run(done ? p.exitValue() : -1, output, took);
    assertThat(done).as("%s did not finish in %s:\n%s", name, LIMIT, run.tail()).isTrue();
    return run;
  }

  static Path sparkHome() {
    return Fixtures.sparkHome();
  }

  static Path venvBin(String name) {
    Fixtures.python(); // fails with the set-up hint when .venv is missing
    return Fixtures.projectDir().resolve(".venv/bin").resolve(name);
  }

  static Path jar() {
    return Fixtures.jobJar();
  }

  /** Every stream and result text of an executed notebook's cells. */
  static String cellOutputs(Path executed) throws IOException {
    StringBuilder sb = new StringBuilder();
    for (JsonNode cell : JSON.readTree(executed.toFile()).path("cells")) {
      for (JsonNode out : cell.path("outputs")) {
        appendText(sb, out.path("text"));
        appendText(sb, out.path("data").path("text/plain"));
        if (out.path("output_type").asText().equals("error")) {
          sb.append("Traceback: ").append(out.path("ename").asText()).append(": ")
              .append(out.path("evalue").asText()).append('\n');
        }
      }
    }
    return sb.toString();
  }

  private static void appendText(StringBuilder sb, JsonNode text) {
    if (text.isArray()) {
      text.forEach(t -> sb.append(t.asText()));
    } else if (!text.isMissingNode()) {
      sb.append(text.asText());
    }
    sb.append('\n');
  }

  static JsonNode get(String pathAndQuery) throws Exception {
    HttpResponse<String> r = HttpClient.newHttpClient().send(
        HttpRequest.newBuilder(URI.create(server().uri() + pathAndQuery)).timeout(Duration.ofSeconds(30)).build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    return JSON.readTree(r.body());
  }
}
