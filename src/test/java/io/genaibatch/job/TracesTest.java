package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import io.genaibatch.testing.Slow;
import io.genaibatch.testing.SparkTestBase;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerStageSubmitted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A run's rows as MLflow traces, read back with MLflow's Python client ({@code mlflow.search_traces}). */
@Slow
class TracesTest extends SparkTestBase {

  private static JsonNode traces(MlflowServer server, String runId) throws Exception {
    return Fixtures.runPython("src/test/python/read_traces.py", Map.of("MLFLOW_TRACKING_URI", server.uri()),
        Map.of("run_id", runId)).path("traces");
  }

  /** Rows with an id, a prompt and a reference answer; row 1's prompt is missing (an error row). */
  static String writeNightly(Path dir, int n) {
    StructType schema = new StructType().add("id", DataTypes.LongType).add("prompt", DataTypes.StringType)
        .add("expected", DataTypes.StringType);
    List<Row> rows = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      rows.add(RowFactory.create((long) i, i == 1 ? null : "Question " + i + " asks", "answer " + i));
    }
    String path = dir.resolve("nightly.parquet").toString();
    spark.createDataFrame(rows, schema).repartition(2).write().parquet(path);
    return path;
  }

  @Test
  void everyRowOfANightlyRunIsATraceWithItsPromptAnswerTokensAndId(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    String input = writeNightly(tmp, 12);
    String output = tmp.resolve("out").toString();
    RowsRead read = new RowsRead(RunTraces.JOB_DESCRIPTION);
    spark.sparkContext().addSparkListener(read);
    BatchScoringJobTest.Result r;
    try {
      r = BatchScoringJobTest.run("--model-uri", Fixtures.tinyModel().toString(),
          "--input", input, "--output", output, "--tracking-uri", server.uri(), "--experiment", "traces-test",
          "--id-column", "id", "--max-tokens", "4", "--max-error-rate", "0.5");
      spark.sparkContext().listenerBus().waitUntilEmpty();
    } finally {
      spark.sparkContext().removeSparkListener(read);
    }
    assertThat(r.code()).as(r.err()).isZero();
    assertThat(r.out()).contains("12 traces (sample rate 1.0)");
    String runId = TrackingTest.runId(output);
    // The traces and their expectations and feedback come from one read of the output: the Spark jobs
    // the UI lists as that pass read each of the 12 rows once.
    assertThat(r.out()).contains("expectations and feedback logged on the traces");
    assertThat(read.descriptions).containsOnly(RunTraces.JOB_DESCRIPTION + runId);
    assertThat(read.rows.get()).isEqualTo(12);

    Map<String, JsonNode> byId = new HashMap<>();
    for (JsonNode t : traces(server, runId)) {
      byId.put(t.path("attributes").path("genai_batch.row_id").asText(), t);
    }
    List<Row> rows = spark.read().parquet(output).collectAsList();
    assertThat(byId).hasSize(12);
    for (Row row : rows) {
      JsonNode t = byId.get(String.valueOf(row.<Long>getAs("id")));
      assertThat(t).as("trace of row %s", row.<Long>getAs("id")).isNotNull();
      assertThat(t.path("spans").asInt()).isEqualTo(1);
      assertThat(t.path("span_type").asText()).isEqualTo("LLM");
      assertThat(t.path("attributes").path("genai_batch.finish_reason").asText())
          .isEqualTo(row.<String>getAs("finish_reason"));
      assertThat(t.path("duration_ms").asDouble()).isCloseTo(row.<Double>getAs("latency_ms"),
          org.assertj.core.data.Offset.offset(1.0));
      String error = row.getAs("error");
      if (error != null) {
        assertThat(t.path("state").asText()).contains("ERROR");
        assertThat(t.path("status_message").asText()).isEqualTo(error);
        continue;
      }
      assertThat(t.path("state").asText()).contains("OK");
      assertThat(t.path("inputs").path("prompt").asText()).isEqualTo(row.<String>getAs("prompt"));
      assertThat(t.path("outputs").path("response").asText()).isEqualTo(row.<String>getAs("response"));
      assertThat(t.path("request_preview").asText()).contains(row.<String>getAs("prompt"));
      JsonNode usage = t.path("token_usage");
      assertThat(usage.path("input_tokens").asInt()).isEqualTo(row.<Integer>getAs("prompt_tokens"));
      assertThat(usage.path("output_tokens").asInt()).isEqualTo(row.<Integer>getAs("completion_tokens"));
      assertThat(usage.path("total_tokens").asInt()).isEqualTo(row.<Integer>getAs("total_tokens"));
    }
    assertThat(byId.get("1").path("state").asText()).as("the row without a prompt").contains("ERROR");
  }

  /** A sample rate picks rows by a hash of their id: the same rows on every run. */
  @Test
  void aSampleRateTracesTheSameSubsetOfRowsEveryRun(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    String input = BatchScoringJobTest.writePrompts(tmp, 40, false);
    List<Set<String>> sampled = new ArrayList<>();
    for (String night : new String[] {"a", "b"}) {
      String output = tmp.resolve("out-" + night).toString();
      BatchScoringJobTest.Result r = BatchScoringJobTest.run("--model-uri", Fixtures.tinyModel().toString(),
          "--input", input, "--output", output, "--tracking-uri", server.uri(), "--experiment", "traces-sample",
          "--id-column", "id", "--max-tokens", "2", "--trace-sample-rate", "0.3");
      assertThat(r.code()).as(r.err()).isZero();
      Set<String> ids = new TreeSet<>();
      for (JsonNode t : traces(server, TrackingTest.runId(output))) {
        ids.add(t.path("attributes").path("genai_batch.row_id").asText());
      }
      sampled.add(ids);
    }
    assertThat(sampled.get(0)).hasSizeBetween(4, 24).isEqualTo(sampled.get(1));
  }

  /**
   * Repeated prompts without an id column (duplicate rows, common in real prompt sets) are one trace
   * each: the trace key of the n-th repeat is its prompt's hash and {@code #n}, so the run links every
   * trace (two rows with one trace id failed the link, and the job exited 4). With a reference column
   * and no id column, each trace still gets its expectation and its scores as feedback.
   */
  @Test
  void repeatedPromptsWithoutAnIdColumnAreATraceEach(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    List<Row> rows = new ArrayList<>();
    for (String p : new String[] {"Name a colour", "Name a fruit", "Name a colour", "Name a colour", "Name a tree"}) {
      rows.add(RowFactory.create(p, "red"));
    }
    String input = tmp.resolve("repeated.parquet").toString();
    spark.createDataFrame(rows, new StructType().add("prompt", DataTypes.StringType)
        .add("expected", DataTypes.StringType)).write().parquet(input);
    String output = tmp.resolve("out").toString();
    BatchScoringJobTest.Result r = BatchScoringJobTest.run("--model-uri", Fixtures.tinyModel().toString(),
        "--input", input, "--output", output, "--tracking-uri", server.uri(), "--experiment", "traces-repeated",
        "--max-tokens", "2", "--trace-sample-rate", "1");
    assertThat(r.code()).as(r.err()).isZero();
    // Each row: the expectation and three scores (exact match, token F1, ROUGE-L).
    assertThat(r.out()).contains("5 traces (sample rate 1.0)").contains("20 expectations and feedback logged");
    List<String> prompts = new ArrayList<>();
    Set<String> keys = new TreeSet<>();
    for (JsonNode t : traces(server, TrackingTest.runId(output))) {
      prompts.add(t.path("inputs").path("prompt").asText());
      keys.add(t.path("attributes").path("genai_batch.row_id").asText());
    }
    assertThat(prompts).containsExactlyInAnyOrder("Name a colour", "Name a fruit", "Name a colour", "Name a colour",
        "Name a tree");
    assertThat(keys).hasSize(5).filteredOn(k -> k.endsWith("#2") || k.endsWith("#3")).hasSize(2);
  }

  /** A sample rate of 0 sends no trace, even for a nightly evaluation. */
  @Test
  void noTracesAtRateZero(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    String input = writeNightly(tmp, 6);
    String output = tmp.resolve("out").toString();
    BatchScoringJobTest.Result r = BatchScoringJobTest.run("--model-uri", Fixtures.tinyModel().toString(),
        "--input", input, "--output", output, "--tracking-uri", server.uri(), "--experiment", "traces-off",
        "--id-column", "id", "--max-tokens", "2", "--max-error-rate", "0.5", "--trace-sample-rate", "0");
    assertThat(r.code()).as(r.err()).isZero();
    assertThat(traces(server, TrackingTest.runId(output))).isEmpty();
  }

  /**
   * The server stops while the traces are on their way: the job says so and exits 4, and the Parquet
   * output, written before anything was traced, is whole.
   */
  @Test
  void aServerStoppedMidExportLeavesTheOutputWholeAndExitsFour(@TempDir Path tmp) throws Exception {
    MlflowServer own = MlflowServer.start(tmp.resolve("mlflow"), Map.of());
    int rows = 3000; // about 3 ms a trace on the pinned server: seconds of export to stop it in
    String input = BatchScoringJobTest.writePrompts(tmp, rows, false);
    String output = tmp.resolve("out").toString();
    BatchScoringJobTest.Result r = stopServerOnce(own, "stopped-export", "the export",
        (server, experimentId) -> get(server, "/api/2.0/mlflow/traces?max_results=1&experiment_ids=" + experimentId)
            .path("traces").size() > 0,
        "--input", input, "--output", output, "--trace-sample-rate", "1");
    assertThat(r.code()).as(r.out() + r.err()).isEqualTo(4);
    assertThat(r.err()).contains("the output is complete at " + output);
    assertThat(spark.read().parquet(output).count()).isEqualTo(rows);
  }

  /** What a test waits for before it stops the server: true once the experiment shows it. */
  private interface Reached {
    boolean test(MlflowServer server, String experimentId) throws Exception;
  }

  /**
   * Runs the job (the tiny model, ids, 2 s of retries, then {@code args}) against {@code own} into
   * {@code experiment}, stops the server as soon as {@code reached}, polled while the job runs, and
   * returns the job's result.
   */
  private static BatchScoringJobTest.Result stopServerOnce(MlflowServer own, String experiment, String what,
      Reached reached, String... args) throws Exception {
    List<String> all = new ArrayList<>(List.of("--model-uri", Fixtures.tinyModel().toString(), "--tracking-uri",
        own.uri(), "--experiment", experiment, "--tracking-retry-seconds", "2", "--max-tokens", "2", "--id-column",
        "id"));
    all.addAll(List.of(args));
    CompletableFuture<BatchScoringJobTest.Result> job =
        CompletableFuture.supplyAsync(() -> BatchScoringJobTest.run(all.toArray(String[]::new)));
    String experimentId = null;
    boolean seen = false;
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(240);
    while (!seen && System.nanoTime() < deadline && !job.isDone()) {
      Thread.sleep(50);
      if (experimentId == null) {
        JsonNode e = get(own, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=" + experiment);
        experimentId = e.path("experiment").path("experiment_id").asText(null);
      } else {
        seen = reached.test(own, experimentId);
      }
    }
    assertThat(seen).as("%s began while the job ran", what).isTrue();
    own.stop();
    return job.get(300, TimeUnit.SECONDS);
  }

  /**
   * A nightly evaluation's expectations and feedback sent four calls at a time: every trace holds
   * what it holds when they go one at a time, read back with MLflow's Python client. 130 rows: a
   * full batch of 100 and a partial one.
   */
  @Test
  void assessmentsSentInParallelEqualThoseSentOneAtATime(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    int n = 130;
    String input = writeNightly(tmp, n);
    String experiment = "parallel-assessments-" + System.nanoTime();
    List<String> runIds = new ArrayList<>();
    for (String parallelism : List.of("1", "4")) {
      String output = tmp.resolve("out-" + parallelism).toString();
      BatchScoringJobTest.Result r = BatchScoringJobTest.run("--model-uri", Fixtures.tinyModel().toString(),
          "--input", input, "--output", output, "--tracking-uri", server.uri(), "--experiment", experiment,
          "--id-column", "id", "--max-tokens", "2", "--max-error-rate", "0.5", "--tracking-parallelism", parallelism);
      assertThat(r.code()).as(r.err()).isZero();
      runIds.add(TrackingTest.runId(output));
    }
    JsonNode runs = Fixtures.runPython("src/test/python/read_evaluation.py", Map.of("MLFLOW_TRACKING_URI", server.uri()),
        Map.of("experiment", experiment, "run_ids", runIds)).path("runs");
    JsonNode one = runs.path(runIds.get(0));
    JsonNode four = runs.path(runIds.get(1));
    assertThat(one.path("traces").size()).isEqualTo(n);
    for (int i = 0; i < n; i++) {
      JsonNode a = one.path("traces").path(String.valueOf(i));
      for (String name : List.of("expected_response", "exact_match", "token_f1", "rouge_l")) {
        assertThat(a.path(name)).as("row %s's %s", i, name).hasSize(1);
      }
    }
    assertThat(four.path("traces")).isEqualTo(one.path("traces"));
    assertThat(one.path("metrics").path("assessments_logged").asInt()).isEqualTo(4 * n);
    assertThat(four.path("metrics").path("assessments_logged").asInt()).isEqualTo(4 * n);
  }

  /**
   * The server stops while a nightly evaluation's assessments go out, several at a time: the job
   * exits 4 with the failed call's own message (not a wrapper of the thread pool's), and the output
   * is whole.
   */
  @Test
  void aServerStoppedMidAssessmentsLeavesTheOutputWholeAndExitsFour(@TempDir Path tmp) throws Exception {
    MlflowServer own = MlflowServer.start(tmp.resolve("mlflow"), Map.of());
    int rows = 600; // 2,400 assessment calls: seconds to stop the server in
    String input = writeNightly(tmp, rows);
    String output = tmp.resolve("out").toString();
    // Seen once a trace holds an assessment: its batch's spans are in and its assessments on their way.
    BatchScoringJobTest.Result r = stopServerOnce(own, "stopped-assessments", "the assessments",
        (server, experimentId) -> {
          String traceId = get(server, "/api/2.0/mlflow/traces?max_results=1&experiment_ids=" + experimentId)
              .path("traces").path(0).path("request_id").asText(null);
          return traceId != null && get(server, "/api/3.0/mlflow/traces/" + traceId)
              .path("trace").path("trace_info").path("assessments").size() > 0;
        }, "--input", input, "--output", output, "--max-error-rate", "0.5", "--tracking-parallelism", "4");
    assertThat(r.code()).as(r.out() + r.err()).isEqualTo(4);
    assertThat(r.err()).contains("the output is complete at " + output)
        .contains("but logging the run to MLflow failed: ").contains("Cannot reach MLflow tracking server")
        .doesNotContain("ExecutionException");
    assertThat(spark.read().parquet(output).count()).isEqualTo(rows);
  }

  /** Rows read from storage by the Spark jobs whose description starts with a prefix, as the Spark UI lists them. */
  static final class RowsRead extends SparkListener {
    final Set<String> descriptions = ConcurrentHashMap.newKeySet();
    final AtomicLong rows = new AtomicLong();
    private final String prefix;
    private final Set<Integer> stages = ConcurrentHashMap.newKeySet();

    RowsRead(String prefix) {
      this.prefix = prefix;
    }

    @Override
    public void onStageSubmitted(SparkListenerStageSubmitted e) {
      String d = e.properties() == null ? null : e.properties().getProperty("spark.job.description");
      if (d != null && d.startsWith(prefix)) {
        descriptions.add(d);
        stages.add(e.stageInfo().stageId());
      }
    }

    @Override
    public void onTaskEnd(SparkListenerTaskEnd e) {
      if (stages.contains(e.stageId()) && e.taskMetrics() != null) {
        rows.addAndGet(e.taskMetrics().inputMetrics().recordsRead());
      }
    }
  }

  /** The JSON of a GET, or an empty object when the server answers otherwise than 200. */
  private static JsonNode get(MlflowServer server, String pathAndQuery) throws Exception {
    HttpResponse<String> r = server.get(pathAndQuery);
    return new ObjectMapper().readTree(r.statusCode() == 200 ? r.body() : "{}");
  }
}
