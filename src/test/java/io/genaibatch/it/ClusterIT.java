package io.genaibatch.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.common.OutputColumns;
import io.genaibatch.job.BatchScoringJob;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shaded job jar ({@link Fixtures#jobJar()}, on the Spark of {@link Fixtures#sparkHome()})
 * through jobs/run-cluster.sh on a standalone cluster (a master and two
 * workers, one executor JVM each, on 127.0.0.1), logging to a real MLflow server: the model is
 * loaded once per executor JVM whatever the number of partitions, read from the run's metrics;
 * under Spark's GPU scheduling (made-up GPUs) each task is given a GPU of its executor; the
 * tracking URI's password, which the executors use too, is in no log of the driver, master, workers
 * or executors.
 */
class ClusterIT {
  static final ObjectMapper JSON = ClusterRuns.JSON;
  static final int ROWS = 64;
  static final String SECRET = "cl/uster#s3cret" + System.nanoTime();
  static MlflowServer server;

  @BeforeAll
  static void startMlflow(@TempDir Path dir) throws Exception {
    server = MlflowServer.start(dir, Map.of());
    server.python("log_model", null, "--model-dir", Fixtures.tinyModel().toString(), "--register", "tiny-cluster",
        "--alias", "champion", "--experiment", "cluster-models", "--max-new-tokens", "8");
  }

  @AfterAll
  static void stopMlflow() {
    server.stop();
  }

  private static JsonNode runOnCluster(Path dir, int partitions) throws Exception {
    Path in = ClusterRuns.input(dir, "in-" + partitions, ROWS, partitions, f -> 8);
    Path out = dir.resolve("out-" + partitions);
    Path logFile = dir.resolve("cluster-" + partitions + ".log");
    // Two made-up GPUs per worker (a discovery script, no CUDA): Spark's GPU scheduling gives every
    // task one, which the CPU provider leaves idle, saying so.
    // The tracking URI carries a password (percent-encoded '/' and '#'), which the executors use too.
    String tracking = server.uri().replace("http://", "http://genai:" + SECRET.replace("/", "%2F").replace("#", "%23")
        + "@");
    Process p = ClusterRuns.onCluster(dir.resolve("cluster-" + partitions), server, logFile, List.of(),
        Map.of("GENAI_BATCH_WORKER_GPUS", "2", "MLFLOW_TRACKING_URI", tracking), "--model-uri", "models:/tiny-cluster@champion", "--input",
        in.toString(), "--input-format", "json", "--output", out.toString(), "--id-column", "id", "--experiment",
        "cluster-it", "--batch-size", "4").start();
    assertThat(p.waitFor(540, TimeUnit.SECONDS)).isTrue();
    String log = Files.readString(logFile);
    assertThat(p.exitValue()).as(log).isZero();
    assertThat(log).contains("spark.task.resource.gpu.amount is set, but --execution-provider is cpu");
    // Neither the driver's log nor any log of the master, the workers and the executors holds the password.
    try (Stream<Path> files = Files.walk(dir.resolve("cluster-" + partitions))) {
      for (Path f : Stream.concat(Stream.of(logFile), files.filter(Files::isRegularFile)).toList()) {
        String text = new String(Files.readAllBytes(f), StandardCharsets.ISO_8859_1);
        assertThat(text).as(f.toString()).doesNotContain(SECRET).doesNotContain(SECRET.replace("/", "%2F").replace("#", "%23"))
            .doesNotContain(SECRET.substring(SECRET.indexOf('/') + 1));
      }
    }
    // The numbers come from the job's metrics file and its output, never from its log.
    JsonNode written = JSON.readTree(out.resolve(BatchScoringJob.METRICS_FILE).toFile());
    assertThat(written.path("rows_total").asInt()).isEqualTo(ROWS);
    assertThat(written.path("rows_ok").asInt()).isEqualTo(ROWS);
    assertThat(written.path("rows_failed").asInt()).isZero();
    Set<String> runIds = new HashSet<>(ClusterRuns.column(out, OutputColumns.RUN_ID).values());
    assertThat(runIds).as("run ids of the output").hasSize(1).doesNotContainNull();
    return JSON.valueToTree(ClusterRuns.runMetrics(server, runIds.iterator().next()));
  }

  /** The same prompts as one file through spark-submit on local[1]: answers by id. */
  private static Map<Long, String> runLocalOne(Path dir) throws Exception {
    Path in = ClusterRuns.input(dir, "in-1", ROWS, 1, f -> 8);
    Path out = dir.resolve("out-local1");
    Process p = ClusterRuns.onLocalOne(dir.resolve("local1.log"), server, "--model-uri",
        "models:/tiny-cluster@champion", "--input", in.toString(), "--input-format", "json", "--output",
        out.toString()).start();
    assertThat(p.waitFor(300, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(Files.readString(dir.resolve("local1.log"))).isZero();
    return ClusterRuns.column(out, OutputColumns.RESPONSE);
  }

  @Test
  void twoExecutorJvmsLoadTheModelTwiceAndMemoryStaysFlatAsPartitionsGrow(@TempDir Path dir) throws Exception {
    JsonNode eight = runOnCluster(dir, 8);
    // The same prompt set as one file on local[1]: one task, other batches, the same answers.
    Map<Long, String> cluster = ClusterRuns.column(dir.resolve("out-8"), OutputColumns.RESPONSE);
    assertThat(cluster).hasSize(ROWS);
    assertThat(runLocalOne(dir)).isEqualTo(cluster);
    assertThat(eight.path("executors_used").asInt()).isEqualTo(2);
    assertThat(eight.path("model_loads").asInt()).isEqualTo(2);
    assertThat(eight.path("rows_total").asInt()).isEqualTo(ROWS);
    // Each task was given a GPU of its executor: both addresses of both executors were in use.
    assertThat(eight.path("gpus_used").asInt()).isEqualTo(4);

    JsonNode thirtyTwo = runOnCluster(dir, 32);
    assertThat(thirtyTwo.path("executors_used").asInt()).isEqualTo(2);
    assertThat(thirtyTwo.path("model_loads").asInt()).isEqualTo(2);
    double rss8 = eight.path("executor_peak_rss_mb").asDouble();
    double rss32 = thirtyTwo.path("executor_peak_rss_mb").asDouble();
    System.out.printf("[ClusterIT] peak executor RSS: %.0f MB with 8 partitions, %.0f MB with 32%n", rss8, rss32);
    assertThat(rss8).isPositive();
    // Four times the partitions (and tasks) per executor, the same rows: the peak stays put, up to
    // the Java heap's growth, which depends on how busy the machine is (alone 496 -> 522 MB; beside
    // other test JVMs once 449 -> 596 MB). A copy of the model per task would add hundreds of MB
    // (and fail model_loads above).
    assertThat(rss32).as("peak executor RSS with 8 partitions %.0f MB, with 32 %.0f MB", rss8, rss32)
        .isLessThan(rss8 * 1.5);
  }
}
