package io.genaibatch.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntUnaryOperator;

/**
 * What the cluster tests share: prompt files (one input partition each), the job through
 * jobs/run-cluster.sh and jobs/spark-submit.sh, and reading back what it wrote: the Parquet output
 * (with Python's pyarrow) and the run's metrics (from the MLflow server's REST API).
 */
final class ClusterRuns {
  static final ObjectMapper JSON = new ObjectMapper();

  private ClusterRuns() {}

  /**
   * Writes {@code rows} prompts as {@code files} JSON files, row i in file i % files, with a
   * {@code max_tokens} column of {@code maxTokens.applyAsInt(file)}; returns their folder.
   */
  static Path input(Path dir, String name, int rows, int files, IntUnaryOperator maxTokens) throws IOException {
    Path in = dir.resolve(name);
    Files.createDirectories(in);
    for (int f = 0; f < files; f++) {
      StringBuilder sb = new StringBuilder();
      for (int i = f; i < rows; i += files) {
        sb.append("{\"id\": ").append(i).append(", \"prompt\": \"Cluster prompt number ").append(i)
            .append(" word".repeat(i % 9 * 3)).append("\", \"max_tokens\": ").append(maxTokens.applyAsInt(f))
            .append("}\n");
      }
      Files.writeString(in.resolve(String.format("part-%03d.json", f)), sb.toString());
    }
    return in;
  }

  /**
   * The job on a fresh standalone cluster (jobs/run-cluster.sh, two workers), tracking to {@code
   * server}: {@code sparkConf} for spark-submit, {@code env} for the script (cluster layout), the
   * job's {@code args}; its output goes to {@code log}.
   */
  static ProcessBuilder onCluster(Path dir, MlflowServer server, Path log, List<String> sparkConf,
      Map<String, String> env, String... args) {
    List<String> cmd = new ArrayList<>(List.of(Fixtures.projectDir().resolve("jobs/run-cluster.sh").toString()));
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(Fixtures.projectDir().toFile()).redirectErrorStream(true)
        .redirectOutput(log.toFile());
    Fixtures.sparkEnv(pb.environment()).put("MLFLOW_TRACKING_URI", server.uri());
    pb.environment().put("SKIP_BUILD", "1");
    pb.environment().put("GENAI_BATCH_CLUSTER_DIR", dir.toString());
    // One input file, one partition: no packing of small files.
    List<String> conf = new ArrayList<>(List.of("--conf", "spark.sql.files.maxPartitionBytes=1024", "--conf",
        "spark.sql.files.openCostInBytes=1"));
    conf.addAll(sparkConf);
    pb.environment().put("GENAI_BATCH_SPARK_CONF", String.join(" ", conf));
    pb.environment().putAll(env);
    return pb;
  }

  /** The job through spark-submit on {@code local[1]}, without tracking: {@code args} then its output folder. */
  static ProcessBuilder onLocalOne(Path log, MlflowServer server, String... args) {
    List<String> cmd = new ArrayList<>(List.of(Fixtures.projectDir().resolve("jobs/spark-submit.sh").toString(),
        "--master", "local[1]", "--"));
    cmd.addAll(List.of(args));
    cmd.add("--no-tracking");
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(Fixtures.projectDir().toFile()).redirectErrorStream(true)
        .redirectOutput(log.toFile());
    Fixtures.sparkEnv(pb.environment()).put("MLFLOW_TRACKING_URI", server.uri());
    return pb;
  }

  /** id -> the string column {@code name} of a job's Parquet output, read back with Python's pyarrow. */
  static Map<Long, String> column(Path out, String name) throws IOException, InterruptedException {
    JsonNode rows = Fixtures.runPython("src/test/python/read_answers.py", Map.of("output", out.toString(),
        "column", name));
    Map<Long, String> m = new HashMap<>();
    rows.fields().forEachRemaining(e -> m.put(Long.parseLong(e.getKey()), e.getValue().isNull() ? null
        : e.getValue().asText()));
    return m;
  }

  /** The rows of a job's Parquet output, every file counted: a row written twice counts twice. */
  static long rowCount(Path out) throws IOException, InterruptedException {
    return Fixtures.runPython("src/test/python/read_answers.py", Map.of("output", out.toString(), "count", true))
        .path("rows").asLong();
  }

  /** The metrics of the MLflow run {@code runId}, by key. */
  static Map<String, Double> runMetrics(MlflowServer server, String runId) throws IOException, InterruptedException {
    HttpResponse<String> r = server.get("/api/2.0/mlflow/runs/get?run_id=" + runId);
    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    Map<String, Double> metrics = new HashMap<>();
    for (JsonNode n : JSON.readTree(r.body()).path("run").path("data").path("metrics")) {
      metrics.put(n.path("key").asText(), n.path("value").asDouble());
    }
    return metrics;
  }
}
