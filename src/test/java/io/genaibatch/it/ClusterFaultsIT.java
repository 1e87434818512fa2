package io.genaibatch.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.genaibatch.common.OutputColumns;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What clusters do to a running job, on the two-worker standalone cluster of jobs/run-cluster.sh,
 * tracking to a real MLflow server: an executor JVM killed (SIGKILL) in its decode loop and a task
 * that fails once; speculative copies of a slow task; the driver killed and the job resumed. Each
 * time every row is written once, with the answers of an undisturbed run on {@code local[1]}.
 * Spark's event log (plain JSON lines) tells which attempts ran, failed and were killed.
 */
class ClusterFaultsIT {
  static final int ROWS = 64;
  static final int FILES = 8;
  /** The slow partition's rows ask for many tokens (a task speculation copies); the others for few. */
  static final int SLOW_FILE = 0;

  static MlflowServer server;
  static Path input;
  static Map<Long, String> undisturbed;

  @BeforeAll
  static void start(@TempDir Path dir) throws Exception {
    server = MlflowServer.start(dir.resolve("mlflow"), Map.of());
    server.python("log_model", null, "--model-dir", Fixtures.tinyModel().toString(), "--register", "tiny-faults",
        "--alias", "champion", "--experiment", "fault-models");
    input = ClusterRuns.input(dir, "in", ROWS, FILES, f -> f == SLOW_FILE ? 1000 : 150);
    Path out = dir.resolve("out-local1");
    Process p = ClusterRuns.onLocalOne(dir.resolve("local1.log"), server, job(out)).start();
    assertThat(p.waitFor(300, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(Files.readString(dir.resolve("local1.log"))).isZero();
    undisturbed = ClusterRuns.column(out, OutputColumns.RESPONSE);
    assertThat(undisturbed).hasSize(ROWS);
  }

  @AfterAll
  static void stop() {
    server.stop();
  }

  /** The job's flags, writing to {@code out}: each input file one partition, every row's own budget. */
  private static String[] job(Path out, String... more) {
    List<String> args = new ArrayList<>(List.of("--model-uri", "models:/tiny-faults@champion", "--input",
        input.toString(), "--input-format", "json", "--output", out.toString(), "--id-column", "id",
        "--max-tokens-column", "max_tokens", "--max-length", "1024", "--batch-size", "4", "--partitions", "input",
        "--experiment", "cluster-faults"));
    args.addAll(List.of(more));
    return args.toArray(String[]::new);
  }

  /** Spark's event log, written uncompressed into {@code dir} as one file of JSON lines. */
  private static List<String> eventLog(Path dir) {
    return List.of("--conf", "spark.eventLog.enabled=true", "--conf", "spark.eventLog.dir=file:" + dir,
        "--conf", "spark.eventLog.compress=false", "--conf", "spark.eventLog.rolling.enabled=false");
  }

  /** The events of the one application logged in {@code dir}. */
  private static List<JsonNode> events(Path dir) throws IOException {
    List<JsonNode> events = new ArrayList<>();
    try (Stream<Path> files = Files.list(dir)) {
      List<Path> logs = files.toList();
      assertThat(logs).as("event logs in %s", dir).hasSize(1);
      for (String line : Files.readAllLines(logs.get(0))) {
        events.add(ClusterRuns.JSON.readTree(line));
      }
    }
    return events;
  }

  private static List<JsonNode> taskEnds(List<JsonNode> events) {
    return events.stream().filter(e -> e.path("Event").asText().equals("SparkListenerTaskEnd")).toList();
  }

  /** Every row once, with the undisturbed run's answers. */
  private static void assertWholeOutput(Path out) throws Exception {
    assertThat(ClusterRuns.rowCount(out)).as("rows written to %s", out).isEqualTo(ROWS);
    assertThat(ClusterRuns.column(out, OutputColumns.RESPONSE)).isEqualTo(undisturbed);
  }

  /** The metrics of the one MLflow run that wrote {@code out}, from the server; every row counted once. */
  private static Map<String, Double> runMetrics(Path out) throws Exception {
    Set<String> runIds = new HashSet<>(ClusterRuns.column(out, OutputColumns.RUN_ID).values());
    assertThat(runIds).hasSize(1).doesNotContainNull();
    Map<String, Double> metrics = ClusterRuns.runMetrics(server, runIds.iterator().next());
    assertThat(metrics.get("rows_ok")).isEqualTo(ROWS);
    assertThat(metrics.get("rows_failed")).isZero();
    return metrics;
  }

  private static void assertExitZero(Process p, Path log) throws Exception {
    assertThat(p.waitFor(400, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(Files.readString(log)).isZero();
  }

  /** Waits up to 300 s for {@code file} (which may not exist yet) to hold {@code text}. */
  private static void awaitText(Path file, String text, Process job) throws Exception {
    for (int i = 0; i < 3000; i++) {
      if (Files.isRegularFile(file) && Files.readString(file).contains(text)) {
        return;
      }
      assertThat(job.isAlive()).as("the job ended before %s held '%s'", file, text).isTrue();
      Thread.sleep(100);
    }
    throw new AssertionError(file + " never held '" + text + "'");
  }

  /** The executor JVM whose working folder lies under {@code workerDir}, once there is one. */
  private static ProcessHandle executorIn(Path workerDir) throws Exception {
    for (int i = 0; i < 600; i++) {
      Optional<ProcessHandle> found = ProcessHandle.allProcesses()
          .filter(h -> h.info().commandLine().orElse("").contains("CoarseGrainedExecutorBackend"))
          .filter(h -> cwd(h).startsWith(workerDir)).findFirst();
      if (found.isPresent()) {
        return found.get();
      }
      Thread.sleep(100);
    }
    throw new AssertionError("no executor JVM working under " + workerDir);
  }

  private static Path cwd(ProcessHandle h) {
    try {
      return Files.readSymbolicLink(Path.of("/proc", Long.toString(h.pid()), "cwd"));
    } catch (IOException | UnsupportedOperationException e) {
      return Path.of("/nonexistent");
    }
  }

  /** The executor's log (stderr) in a worker's folder: {@code worker-N/APP/EXECUTOR/stderr}. */
  private static Path executorLog(Path workerDir, String executorId) throws IOException {
    try (Stream<Path> apps = Files.list(workerDir)) {
      Path app = apps.filter(Files::isDirectory).findFirst().orElseThrow();
      return app.resolve(executorId).resolve("stderr");
    }
  }

  /** A jar of {@link FailOncePlugin}, for spark-submit's classpaths. */
  private static Path pluginJar(Path dir) throws IOException {
    Path jar = dir.resolve("fail-once-plugin.jar");
    Path classes = Path.of(FailOncePlugin.class.getProtectionDomain().getCodeSource().getLocation().getPath());
    try (OutputStream o = Files.newOutputStream(jar); JarOutputStream j = new JarOutputStream(o);
        Stream<Path> all = Files.walk(classes.resolve("io/genaibatch/it"))) {
      for (Path c : all.filter(p -> p.getFileName().toString().startsWith("FailOncePlugin")).toList()) {
        j.putNextEntry(new JarEntry(classes.relativize(c).toString()));
        j.write(Files.readAllBytes(c));
        j.closeEntry();
      }
    }
    return jar;
  }

  @Test
  void anExecutorKilledInItsDecodeLoopAndATaskThatFailsOnceLoseNoRowAndWriteNoneTwice(@TempDir Path dir)
      throws Exception {
    Path cluster = dir.resolve("cluster");
    Path events = Files.createDirectories(dir.resolve("events"));
    Path out = dir.resolve("out");
    Path log = dir.resolve("job.log");
    Path plugin = pluginJar(dir);
    List<String> conf = new ArrayList<>(eventLog(events));
    conf.addAll(List.of("--driver-class-path", plugin.toString(), "--conf", "spark.executor.extraClassPath=" + plugin,
        "--conf", "spark.plugins=" + FailOncePlugin.class.getName(), "--conf",
        "spark.executorEnv." + FailOncePlugin.PARTITION_ENV + "=3"));
    // One task slot per executor: the work left when one dies keeps the other busy until its
    // replacement has started and taken some.
    Process p = ClusterRuns.onCluster(cluster, server, log, conf, Map.of("GENAI_BATCH_WORKER_CORES", "1"),
        job(out)).start();
    Path worker1 = cluster.resolve("worker-1");
    ProcessHandle executor = executorIn(worker1);
    String firstId = cwd(executor).getFileName().toString();
    Path firstLog = executorLog(worker1, firstId);
    awaitText(firstLog, "Loaded model", p);
    Thread.sleep(500); // into its decode loop: a task here computes for seconds
    assertThat(executor.destroyForcibly()).isTrue(); // SIGKILL
    assertExitZero(p, log);

    // It died in the middle of a task: its last task never finished.
    String killed = Files.readString(firstLog);
    Matcher running = Pattern.compile("Running task \\S+ in stage \\S+ \\(TID (\\d+)\\)").matcher(killed);
    String lastTid = null;
    while (running.find()) {
      lastTid = running.group(1);
    }
    assertThat(lastTid).isNotNull();
    assertThat(killed).doesNotContain("(TID " + lastTid + "). ");

    assertWholeOutput(out);
    Map<String, Double> metrics = runMetrics(out);
    List<JsonNode> ends = taskEnds(events(events));
    assertThat(ends).as("a task lost with its executor")
        .anyMatch(e -> e.path("Task End Reason").path("Reason").asText().equals("ExecutorLostFailure"));
    assertThat(ends).as("the injected failure")
        .anyMatch(e -> e.path("Task End Reason").path("Description").asText().contains("Injected by FailOncePlugin"));
    // Its replacement loaded the model and scored; model_loads counts every executor that scored.
    Set<String> scoredOn = new HashSet<>();
    try (Stream<Path> logs = Files.find(cluster, 4, (f, a) -> f.getFileName().toString().equals("stderr"))) {
      for (Path l : logs.toList()) {
        if (!l.equals(firstLog) && Files.readString(l).contains("Loaded model")) {
          scoredOn.add(l.toString());
        }
      }
    }
    assertThat(scoredOn).as("executors other than the killed one that loaded the model").hasSize(2);
    // The killed executor's load went with it (nothing of it reports); the replacement's counts even
    // when its task then failed (the injected failure may have been its).
    assertThat(metrics).containsEntry("model_loads", 2.0).containsEntry("executors_used", 2.0);
  }

  @Test
  void speculativeCopiesOfASlowTaskWriteNoRowTwiceAndTheLoserLeavesTheLoopAtOnce(@TempDir Path dir)
      throws Exception {
    Path events = Files.createDirectories(dir.resolve("events"));
    Path out = dir.resolve("out");
    Path log = dir.resolve("job.log");
    List<String> conf = new ArrayList<>(eventLog(events));
    // A copy of a task that has run 3 s, once half the tasks are done and it has run twice their median.
    conf.addAll(List.of("--conf", "spark.speculation=true", "--conf", "spark.speculation.quantile=0.5", "--conf",
        "spark.speculation.multiplier=2", "--conf", "spark.speculation.minTaskRuntime=3s"));
    // Spark never runs a copy of a task on a host that runs an attempt of it: a host per worker.
    Process p = ClusterRuns.onCluster(dir.resolve("cluster"), server, log, conf,
        Map.of("GENAI_BATCH_WORKER_HOSTS", "distinct"), job(out)).start();
    assertExitZero(p, log);
    assertWholeOutput(out);
    assertThat(runMetrics(out).get("rows_total")).isEqualTo(ROWS);

    List<JsonNode> ends = taskEnds(events(events));
    Map<String, JsonNode> winners = new HashMap<>();
    for (JsonNode e : ends) {
      if (e.path("Task End Reason").path("Reason").asText().equals("Success")) {
        winners.put(e.path("Stage ID").asText() + "/" + e.path("Task Info").path("Index").asText(), e.path("Task Info"));
      }
    }
    List<JsonNode> losers = ends.stream().filter(e -> e.path("Task Info").path("Speculative").asBoolean()
        || e.path("Task End Reason").path("Reason").asText().equals("TaskKilled")).toList();
    assertThat(losers).as("speculative copies").isNotEmpty();
    boolean lateCopyLeftAtOnce = false;
    for (JsonNode e : losers) {
      if (!e.path("Task End Reason").path("Reason").asText().equals("TaskKilled")) {
        continue; // a copy that won
      }
      JsonNode loser = e.path("Task Info");
      JsonNode winner = winners.get(e.path("Stage ID").asText() + "/" + loser.path("Index").asText());
      assertThat(winner).as("the attempt that beat %s", loser).isNotNull();
      long after = loser.path("Finish Time").asLong() - winner.path("Finish Time").asLong();
      long lateBy = loser.path("Launch Time").asLong() - winner.path("Launch Time").asLong();
      // Computing to the end, the loser would end about lateBy after the winner; it stops at the
      // next decode step once Spark kills it.
      assertThat(after).as("ms from the winner's end to the killed attempt's (started %d ms later)", lateBy)
          .isLessThan(2000);
      lateCopyLeftAtOnce |= lateBy >= 3000;
    }
    assertThat(lateCopyLeftAtOnce).as("a copy started 3 s or more after the attempt that won, killed: %s", losers)
        .isTrue();
  }

  @Test
  void aKilledDriverLeavesCommittedWavesAndResumeScoresOnlyTheRest(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("out");
    Path log = dir.resolve("first.log");
    Process p = ClusterRuns.onCluster(dir.resolve("cluster-1"), server, log, List.of(), Map.of(),
        job(out, "--commit-rows", "16")).start();
    awaitText(out.resolve("_SUCCESS"), "", p); // the first wave is committed
    ProcessHandle driver = p.descendants()
        .filter(h -> h.info().commandLine().orElse("").contains("org.apache.spark.deploy.SparkSubmit")).findFirst()
        .orElseThrow();
    assertThat(driver.destroyForcibly()).isTrue(); // SIGKILL
    assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(Files.readString(log)).isNotZero();
    long kept = ClusterRuns.rowCount(out);
    assertThat(kept).isBetween(1L, ROWS - 1L);

    Path resumeLog = dir.resolve("resume.log");
    Process resume = ClusterRuns.onCluster(dir.resolve("cluster-2"), server, resumeLog, List.of(), Map.of(),
        job(out, "--commit-rows", "16", "--mode", "resume")).start();
    assertExitZero(resume, resumeLog);
    assertThat(Files.readString(resumeLog)).contains("Resume: " + (ROWS - kept) + " of " + ROWS + " input rows");
    assertWholeOutput(out);
  }
}
