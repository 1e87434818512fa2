package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.common.OutputColumns;
import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.spark.ExecutorModelCache;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import io.genaibatch.testing.Slow;
import io.genaibatch.testing.SparkTestBase;
import java.awt.image.BufferedImage;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every scoring run is a complete MLflow run: read back with MLflow's Python client. */
@Slow
class TrackingTest extends SparkTestBase {

  /** The run id the job wrote into its output's run_id column: one run, on every row. */
  static String runId(String output) {
    List<Row> ids = SparkSession.active().read().parquet(output).select(OutputColumns.RUN_ID).distinct().collectAsList();
    assertThat(ids).hasSize(1);
    assertThat(ids.get(0).getString(0)).matches("[0-9a-f]{32}");
    return ids.get(0).getString(0);
  }

  @Test
  void aRunReadsBackInPythonWithNumbersEqualToTheOutput(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    String input = BatchScoringJobTest.writePrompts(tmp, 24, true);
    String output = tmp.resolve("out").toString();
    BatchScoringJobTest.Result r = BatchScoringJobTest.run("--model-uri", Fixtures.tinyModel().toString(),
        "--input", input, "--output", output, "--tracking-uri", server.uri(), "--experiment", "tracking-test",
        "--id-column", "id", "--max-tokens", "6", "--max-error-rate", "0.2", "--progress-seconds", "1",
        "--response-format", "regex:(yes|no)");
    assertThat(r.code()).as(r.err()).isZero();
    String runId = runId(output);

    JsonNode run = Fixtures.runPython("src/test/python/read_run.py", Map.of("MLFLOW_TRACKING_URI", server.uri()),
        Map.of("run_id", runId, "download_dir", tmp.resolve("dl").toString()));
    assertThat(run.path("status").asText()).isEqualTo("FINISHED");

    Dataset<Row> out = spark.read().parquet(output);
    Row sums = out.agg(functions.count(functions.lit(1)), functions.sum("prompt_tokens"), functions.sum("completion_tokens"),
        functions.sum(functions.when(functions.col("error").isNull(), 1).otherwise(0))).first();
    JsonNode m = run.path("metrics");
    assertThat(m.path("rows_total").asLong()).isEqualTo(sums.getLong(0)).isEqualTo(24);
    assertThat(m.path("rows_ok").asLong()).isEqualTo(sums.getLong(3));
    assertThat(m.path("rows_failed").asLong()).isEqualTo(24 - sums.getLong(3));
    assertThat(m.path("prompt_tokens").asLong()).isEqualTo(sums.getLong(1));
    assertThat(m.path("completion_tokens").asLong()).isEqualTo(sums.getLong(2));
    assertThat(m.path("total_tokens").asLong()).isEqualTo(sums.getLong(1) + sums.getLong(2));
    for (String k : new String[] {"slot_efficiency", "prefill_slot_efficiency", "decode_slot_efficiency",
        "tokens_per_s_per_core", "partitions", "threads_per_task", "generated_tokens_per_s", "rows_per_s", "latency_p50_ms", "latency_p95_ms",
        "latency_p99_ms", "model_load_ms", "wall_time_s", "model_loads"}) {
      assertThat(m.has(k)).as(k).isTrue();
    }
    double p95 = out.filter("error is null").stat().approxQuantile("latency_ms", new double[] {0.95}, 0.0)[0];
    assertThat(m.path("latency_p95_ms").asDouble()).isCloseTo(p95, Offset.offset(p95 * 0.05 + 1));

    JsonNode params = run.path("params");
    assertThat(params.path("model_uri").asText()).isEqualTo(Fixtures.tinyModel().toString());
    assertThat(params.path("batch_size").asText()).isEqualTo("8");
    assertThat(params.path("search.max_new_tokens").asText()).isEqualTo("6");
    assertThat(params.path("output").asText()).isEqualTo(output);
    assertThat(params.path("prompt_column").asText()).isEqualTo("prompt");
    assertThat(params.has("spark_master")).isTrue();
    // The response format: its kind and digest as params, itself as an artifact, the answers that parse.
    ResponseFormat format = ResponseFormat.parse("regex:(yes|no)", "test");
    assertThat(params.path("search.response_format").asText()).isEqualTo("regex (response_format.json)");
    assertThat(params.path("response_format_digest").asText()).isEqualTo(format.digest());
    assertThat(run.path("texts").path("response_format.json").asText()).isEqualTo(format.canonical());
    assertThat(m.path("responses_formatted").asLong()).isEqualTo(sums.getLong(3));
    assertThat(m.path("responses_parsed").asLong()).isEqualTo(sums.getLong(3));
    assertThat(run.path("tags").path("genai_batch.job_version").asText()).isEqualTo(BatchScoringJob.VERSION);

    JsonNode ds = run.path("datasets").get(0);
    assertThat(ds.path("name").asText()).isEqualTo("prompts.parquet");
    assertThat(ds.path("profile").path("num_rows").asLong()).isEqualTo(24);
    assertThat(ds.path("schema").path("mlflow_colspec").toString()).contains("\"prompt\"").contains("\"id\"");
    assertThat(ds.path("digest").asText()).hasSize(12)
        .isEqualTo(run.path("tags").path("genai_batch.prompt_set").asText());
    assertThat(ds.path("source").asText()).contains(input);

    assertThat(run.path("table_rows").asInt()).isEqualTo(24);
    assertThat(run.path("table_columns").toString()).contains("response").contains("completion_tokens").contains("error");
    assertThat(run.path("artifacts").toString()).contains("effective_config.yaml").contains("output.json")
        .contains("plots/latency_ms.png").contains("plots/completion_tokens.png");
    assertThat(run.path("texts").path("effective_config.yaml").asText()).contains("max_new_tokens: 6")
        .as("every setting names its source").contains("flag --max-tokens").contains("source: \"default\"");
    assertThat(run.path("texts").path("output.json").asText()).contains(output);
    for (JsonNode local : run.path("plots")) {
      BufferedImage img = ImageIO.read(Path.of(local.asText()).toFile());
      assertThat(img).as(local.asText()).isNotNull();
      assertThat(img.getWidth()).isEqualTo(800);
    }
    // Live progress: step metrics while the job ran, read as MLflow's client reads a curve.
    JsonNode points = run.path("progress_rows");
    assertThat(points.size()).as(run.toString()).isPositive();
    double last = -1;
    for (JsonNode p : points) {
      assertThat(p.asDouble()).isBetween(last, 24.0);
      last = p.asDouble();
    }
    // The curve ends at every row scored.
    assertThat(last).isEqualTo(24.0);
  }

  /**
   * A registered model in the proxied store: the executors' fetch is in the run's metrics, every byte
   * of the model folder on a cold cache, nothing on a warm one (the model unloaded, its copy kept).
   */
  @Test
  void executorFetchBytesAreTheModelFolderOnAColdCacheAndZeroOnAWarmOne(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    // A name of its own: no other test of this JVM has loaded this model.
    JsonNode logged = server.python("log_model", null, "--model-dir", Fixtures.tinyModel().toString(),
        "--register", "tiny-executor-fetch", "--alias", "champion", "--experiment", "executor-fetch");
    String artifactUri = logged.path("artifact_uri").asText();
    assertThat(artifactUri).startsWith("mlflow-artifacts:");
    long modelBytes;
    try (Stream<Path> files = Files.walk(server.dir().resolve("artifacts")
        .resolve(artifactUri.replaceFirst("^mlflow-artifacts:/*", "")))) {
      modelBytes = files.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
    }
    String input = BatchScoringJobTest.writePrompts(tmp, 4, false);
    JsonNode cold = runFetching(server, input, tmp, "cold");
    assertThat(cold.path("executor_fetch_bytes").asLong()).isEqualTo(modelBytes);
    assertThat(cold.path("executor_fetch_ms").asDouble()).isPositive();
    assertThat(cold.path("executor_fetch_mb_per_s").asDouble()).isPositive();
    // The driver fetched the metadata only, never the weights.
    assertThat(cold.path("model_fetch_bytes").asLong()).isPositive().isLessThan(modelBytes);

    // Unloaded from this JVM, still in the host's cache: loaded again, fetched no more.
    ExecutorModelCache.closeAll();
    JsonNode warm = runFetching(server, input, tmp, "warm");
    assertThat(warm.path("model_loads").asInt()).isEqualTo(1);
    assertThat(warm.path("executor_fetch_bytes").asLong()).isZero();
    assertThat(warm.path("executor_fetch_ms").asDouble()).isZero();
  }

  /** Runs the job on models:/tiny-executor-fetch@champion; returns its metrics file, checked against its MLflow run. */
  private JsonNode runFetching(MlflowServer server, String input, Path tmp, String name) throws Exception {
    String output = tmp.resolve("out-" + name).toString();
    BatchScoringJobTest.Result r = BatchScoringJobTest.run("--model-uri", "models:/tiny-executor-fetch@champion",
        "--input", input, "--output", output, "--tracking-uri", server.uri(), "--experiment", "executor-fetch",
        "--cache-dir", tmp.resolve("cache").toString(), "--max-tokens", "3");
    assertThat(r.code()).as(r.err()).isZero();
    ObjectMapper json = new ObjectMapper();
    JsonNode file = json.readTree(Path.of(output, BatchScoringJob.METRICS_FILE).toFile());
    HttpResponse<String> got = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
        URI.create(server.uri() + "/api/2.0/mlflow/runs/get?run_id=" + runId(output))).build(),
        HttpResponse.BodyHandlers.ofString());
    Map<String, Double> logged = new HashMap<>();
    json.readTree(got.body()).path("run").path("data").path("metrics")
        .forEach(n -> logged.put(n.path("key").asText(), n.path("value").asDouble()));
    for (String k : new String[] {"executor_fetch_bytes", "executor_fetch_ms"}) {
      assertThat(logged.get(k)).as(k).isEqualTo(file.path(k).asDouble());
    }
    return file;
  }

  /**
   * A password in the tracking URI (user-info) reaches no output: not the child JVM's stdout and
   * stderr (logs included), not the Parquet files, not the run's params, tags, metrics or artifacts,
   * nor anything the server stored. One with an {@code @} in it, which MLflow's client cannot parse
   * (it takes the part after the {@code @} for a host), is cut out of the failure's message too.
   */
  @Test
  void aCredentialInTheTrackingUriReachesNoOutput(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    String secret = "uri-s3cret-" + System.nanoTime();
    String input = BatchScoringJobTest.writePrompts(tmp, 6, false);
    Path output = tmp.resolve("out");
    Fixtures.ChildRun job = Fixtures.runJob(tmp, Map.of(), "--model-uri", Fixtures.tinyModel().toString(),
        "--input", input, "--output", output.toString(), "--max-tokens", "3", "--experiment", "redaction",
        "--tracking-uri", server.uri().replace("http://", "http://genai:" + secret + "@"));
    assertThat(job.code()).as(job.output()).isZero();
    assertThat(job.output()).contains("http://***@127.0.0.1").doesNotContain(secret);
    JsonNode run = Fixtures.runPython("src/test/python/read_run.py", Map.of("MLFLOW_TRACKING_URI", server.uri()),
        Map.of("run_id", runId(output.toString()), "download_dir", tmp.resolve("dl").toString()));
    assertThat(run.toString()).doesNotContain(secret);
    for (Path root : List.of(output, tmp.resolve("dl"), server.dir())) {
      try (Stream<Path> files = Files.walk(root)) {
        for (Path f : files.filter(Files::isRegularFile).toList()) {
          assertThat(new String(Files.readAllBytes(f), StandardCharsets.ISO_8859_1)).as(f.toString())
              .doesNotContain(secret);
        }
      }
    }

    String first = "pass" + System.nanoTime();
    String second = "word" + System.nanoTime();
    Fixtures.ChildRun withAt = Fixtures.runJob(tmp, Map.of(), "--model-uri", Fixtures.tinyModel().toString(),
        "--input", input, "--output", tmp.resolve("out-at").toString(), "--max-tokens", "3",
        "--tracking-retry-seconds", "2",
        "--tracking-uri", server.uri().replace("http://", "http://genai:" + first + "@" + second + "@"));
    assertThat(withAt.code()).as(withAt.output()).isEqualTo(4);
    assertThat(withAt.output()).contains("not logged to MLflow").doesNotContain(first).doesNotContain(second);
  }

  @Test
  void aServerDownAtStartStillWritesTheOutputAndExitsFour(@TempDir Path tmp) throws Exception {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    String input = BatchScoringJobTest.writePrompts(tmp, 8, false);
    String output = tmp.resolve("out").toString();
    BatchScoringJobTest.Result r = BatchScoringJobTest.run("--model-uri", Fixtures.tinyModel().toString(),
        "--input", input, "--output", output, "--tracking-uri", "http://127.0.0.1:" + port,
        "--tracking-retry-seconds", "2", "--max-tokens", "3");
    assertThat(r.code()).isEqualTo(4);
    assertThat(r.err()).contains("the output is complete at " + output).contains("not logged to MLflow")
        .contains("127.0.0.1:" + port);
    assertThat(spark.read().parquet(output).count()).isEqualTo(8);
  }

  @Test
  void aServerStoppedMidRunLeavesTheOutputIntactAndExitsFour(@TempDir Path tmp) throws Exception {
    MlflowServer own = MlflowServer.start(tmp.resolve("mlflow"), Map.of());
    String input = BatchScoringJobTest.writePrompts(tmp, 40, false);
    String output = tmp.resolve("out").toString();
    CompletableFuture<BatchScoringJobTest.Result> job = CompletableFuture.supplyAsync(() ->
        BatchScoringJobTest.run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output,
            "--tracking-uri", own.uri(), "--experiment", "stopped", "--tracking-retry-seconds", "2",
            "--max-tokens", "200", "--batch-size", "1", "--id-column", "id", "--commit-rows", "10"));
    // Stop the server once the run exists and scoring is under way.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    while (System.nanoTime() < deadline && !job.isDone()) {
      if (Files.isDirectory(Path.of(output)) && countParquet(Path.of(output)) > 0) {
        break;
      }
      Thread.sleep(50);
    }
    assertThat(job.isDone()).as("the job ended before the server could be stopped").isFalse();
    own.stop();
    BatchScoringJobTest.Result r = job.get(300, TimeUnit.SECONDS);
    assertThat(r.code()).as(r.out() + r.err()).isEqualTo(4);
    assertThat(r.err()).contains("the output is complete at " + output);
    assertThat(spark.read().parquet(output).count()).isEqualTo(40);
  }

  private static long countParquet(Path dir) {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.toString().endsWith(".parquet")).count();
    } catch (Exception e) {
      return 0;
    }
  }

  @Test
  void basicAuthWithRightAndWrongCredentialsAndNoSecretAnywhere(@TempDir Path tmp) throws Exception {
    String secret = "s3cr3t-Pa55word-" + System.nanoTime();
    Path db = tmp.resolve("auth");
    Files.createDirectories(db);
    Files.writeString(db.resolve("basic_auth.ini"), "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///"
        + db.resolve("auth.db") + "\nadmin_username = admin\nadmin_password = " + secret + "\nauthorization_function ="
        + " mlflow.server.auth:authenticate_request_basic_auth\n");
    MlflowServer auth = MlflowServer.start(db, Map.of("MLFLOW_AUTH_CONFIG_PATH", db.resolve("basic_auth.ini").toString(),
        "MLFLOW_FLASK_SERVER_SECRET_KEY", "test-secret-key"), "--app-name", "basic-auth");
    try {
      String input = BatchScoringJobTest.writePrompts(tmp, 6, false);
      Map<String, String> good = Map.of("MLFLOW_TRACKING_URI", auth.uri(), "MLFLOW_TRACKING_USERNAME", "admin",
          "MLFLOW_TRACKING_PASSWORD", secret);
      Fixtures.ChildRun ok = Fixtures.runJob(tmp, good, "--model-uri", Fixtures.tinyModel().toString(), "--input", input,
          "--output", tmp.resolve("out-ok").toString(), "--max-tokens", "3", "--experiment", "auth");
      assertThat(ok.code()).as(ok.output()).isZero();
      String runId = runId(tmp.resolve("out-ok").toString());

      Map<String, String> bad = Map.of("MLFLOW_TRACKING_URI", auth.uri(), "MLFLOW_TRACKING_USERNAME", "admin",
          "MLFLOW_TRACKING_PASSWORD", secret + "-wrong");
      Fixtures.ChildRun denied = Fixtures.runJob(tmp, bad, "--model-uri", Fixtures.tinyModel().toString(), "--input", input,
          "--output", tmp.resolve("out-denied").toString(), "--max-tokens", "3", "--experiment", "auth",
          "--tracking-retry-seconds", "2");
      assertThat(denied.code()).as(denied.output()).isEqualTo(4);
      assertThat(denied.output()).contains("401").contains("the output is complete at " + tmp.resolve("out-denied"));
      assertThat(spark.read().parquet(tmp.resolve("out-denied").toString()).count()).isEqualTo(6);

      JsonNode run = Fixtures.runPython("src/test/python/read_run.py", good,
          Map.of("run_id", runId, "download_dir", tmp.resolve("dl").toString()));
      assertThat(run.path("status").asText()).isEqualTo("FINISHED");
      // No secret in any log line, param, tag, metric name or artifact.
      assertThat(ok.output()).doesNotContain(secret);
      assertThat(denied.output()).doesNotContain(secret);
      assertThat(run.toString()).doesNotContain(secret);
      try (Stream<Path> files = Files.walk(tmp.resolve("dl"))) {
        for (Path f : files.filter(Files::isRegularFile).toList()) {
          assertThat(new String(Files.readAllBytes(f), StandardCharsets.ISO_8859_1)).as(f.toString())
              .doesNotContain(secret);
        }
      }
    } finally {
      auth.stop();
    }
  }
}
