package io.genaibatch.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.genaibatch.testing.Fixtures;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job end to end through the runtime's own {@code spark-submit} ({@code jobs/spark-submit.sh}
 * with SPARK_HOME at {@link Fixtures#sparkHome()}, the jar {@link Fixtures#jobJar()}): a prompt
 * file with bad rows in, every row out with error rows, exit code 3 above --max-error-rate and 0
 * within it; then {@code --mode resume} rescoring only the rows that failed. jobs/test.sh runs it on
 * every runtime of src/main/python/runtimes.txt; and a jar of the other Spark line is refused there,
 * naming both versions.
 */
class RuntimeJobIT {
  static final ObjectMapper JSON = new ObjectMapper();
  static final int ROWS = 12;
  /** The rows the job cannot score: a null prompt, an empty one, one longer than the context. */
  static final List<String> BAD = List.of("1", "2", "3");

  static Path prompts(Path dir) throws Exception {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < ROWS; i++) {
      ObjectNode row = JSON.createObjectNode().put("id", i);
      switch (i) {
        case 1 -> row.putNull("prompt");
        case 2 -> row.put("prompt", "");
        case 3 -> row.put("prompt", "word ".repeat(5000));
        default -> row.put("prompt", "Prompt number " + i + (i % 4 == 0 ? " ends." : " goes on"));
      }
      sb.append(JSON.writeValueAsString(row)).append('\n');
    }
    Path in = dir.resolve("prompts.jsonl");
    Files.writeString(in, sb.toString());
    return in;
  }

  /** jobs/spark-submit.sh --master local[2] -- ARGS on the runtime under test, with extra env. */
  static Fixtures.ChildRun submit(Path dir, String name, Map<String, String> env, List<String> sparkArgs,
      String... jobArgs) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(Fixtures.projectDir().resolve("jobs/spark-submit.sh").toString(),
        "--master", "local[2]", "--conf", "spark.sql.warehouse.dir=" + dir.resolve("warehouse")));
    cmd.addAll(sparkArgs);
    cmd.add("--");
    cmd.addAll(List.of(jobArgs));
    Path log = dir.resolve(name + ".log");
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
        .redirectOutput(log.toFile()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
    Fixtures.sparkEnv(pb.environment()).putAll(env);
    long start = System.nanoTime();
    Process p = pb.start();
    if (!p.waitFor(300, TimeUnit.SECONDS)) {
      p.descendants().forEach(ProcessHandle::destroyForcibly);
      p.destroyForcibly();
      throw new IllegalStateException(name + " did not finish in 300 s: " + Files.readString(log));
    }
    String out = Files.readString(log, StandardCharsets.UTF_8);
    System.out.printf("[RuntimeJobIT] %s on %s: exit %d in %d s%n", name, Fixtures.sparkHome(), p.exitValue(),
        TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start));
    return new Fixtures.ChildRun(p.exitValue(), out);
  }

  static String[] job(Path in, Path out, String... more) {
    List<String> a = new ArrayList<>(List.of("--model-uri", Fixtures.tinyModel().toString(), "--input", in.toString(),
        "--input-format", "json", "--output", out.toString(), "--no-tracking", "--id-column", "id",
        "--max-tokens", "4", "--batch-size", "3",
        "--cache-dir", out.resolveSibling("model-cache").toString()));
    a.addAll(List.of(more));
    return a.toArray(String[]::new);
  }

  /** The ids of the output's error rows. */
  static List<String> errorIds(JsonNode rows) {
    List<String> ids = new ArrayList<>();
    rows.fields().forEachRemaining(e -> {
      if (!e.getValue().path("error").isNull()) {
        ids.add(e.getKey());
      }
    });
    ids.sort(null);
    return ids;
  }

  @Test
  void badRowsBecomeErrorRowsThenAResumeRescoresOnlyThem(@TempDir Path dir) throws Exception {
    Path in = prompts(dir);
    Path out = dir.resolve("out");

    // 3 error rows of 12 is above the default --max-error-rate (5%): exit 3, the output complete.
    Fixtures.ChildRun first = submit(dir, "first", Map.of(), List.of(), job(in, out));
    assertThat(first.code()).as(first.output()).isEqualTo(3);
    assertThat(first.output()).contains("wrote 12 rows (9 ok, 3 errors) to " + out);
    JsonNode before = Fixtures.readOutput(out);
    assertThat(before.size()).isEqualTo(ROWS);
    assertThat(errorIds(before)).isEqualTo(BAD);
    before.fields().forEachRemaining(e -> assertThat(e.getValue().path("response").isNull())
        .as("row %s: a response exactly when no error", e.getKey()).isEqualTo(BAD.contains(e.getKey())));

    // Resume, now within --max-error-rate (exit 0): only the 3 error rows are scored again (they
    // fail again); the 9 good rows are kept as they were, scored_at included, one row per id.
    Fixtures.ChildRun resume = submit(dir, "resume", Map.of(), List.of(),
        job(in, out, "--mode", "resume", "--max-error-rate", "0.5"));
    assertThat(resume.code()).as(resume.output()).isZero();
    assertThat(resume.output()).contains("Resume: 3 of 12 input rows still to score");
    JsonNode after = Fixtures.readOutput(out);
    assertThat(after.size()).isEqualTo(ROWS);
    assertThat(errorIds(after)).isEqualTo(BAD);
    Map<String, String> kept = new TreeMap<>();
    Map<String, String> keptBefore = new TreeMap<>();
    after.fields().forEachRemaining(e -> {
      if (!BAD.contains(e.getKey())) {
        kept.put(e.getKey(), e.getValue().path("scored_at").asText() + " " + e.getValue().path("response").asText());
        keptBefore.put(e.getKey(), before.path(e.getKey()).path("scored_at").asText() + " "
            + before.path(e.getKey()).path("response").asText());
      } else {
        assertThat(e.getValue().path("scored_at").asText()).as("error row %s scored again", e.getKey())
            .isNotEqualTo(before.path(e.getKey()).path("scored_at").asText());
      }
    });
    assertThat(kept).hasSize(ROWS - BAD.size()).isEqualTo(keptBefore);
  }

  /** The jar name of the Spark line this runtime is not: the one jobs/spark-submit.sh must refuse. */
  static String otherLineJar() {
    return Fixtures.jobJar().getFileName().toString().startsWith("genai-batch-spark4_")
        ? "genai-batch-spark3.5_2.12.jar" : "genai-batch-spark4_2.13.jar";
  }

  @Test
  void sparkSubmitShRefusesAJarOfTheOtherLineNamingBoth(@TempDir Path dir) throws Exception {
    // The script decides by the jar's name before Spark starts: an empty file of that name will do.
    Path other = Files.createFile(dir.resolve(otherLineJar()));
    Fixtures.ChildRun r = submit(dir, "other-line-script", Map.of("GENAI_BATCH_JAR", other.toString()), List.of(),
        job(prompts(dir), dir.resolve("out")));
    assertThat(r.code()).as(r.output()).isEqualTo(2);
    Matcher m = Pattern.compile("^genai-batch-spark([0-9.]+)_([0-9.]+)\\.jar$").matcher(otherLineJar());
    assertThat(m.matches()).isTrue();
    assertThat(r.output()).contains(otherLineJar() + " is for Spark " + m.group(1) + " / Scala " + m.group(2))
        .contains("use " + Fixtures.jobJar().getFileName());
    assertThat(Files.exists(dir.resolve("out"))).isFalse();
  }

  @Test
  void theOtherLinesJarItselfRefusesThisRuntimeWithExitTwo(@TempDir Path dir) throws Exception {
    // Past the script (spark-submit itself), the jar's own check: built only when both lines are.
    Path other = Fixtures.projectDir().resolve("target").resolve(otherLineJar());
    assumeTrue(Files.isRegularFile(other), other + " not built");
    List<String> cmd = List.of(Fixtures.sparkHome().resolve("bin/spark-submit").toString(), "--master", "local[1]",
        "--class", "io.genaibatch.job.BatchScoringJob", other.toString(),
        "--model-uri", Fixtures.tinyModel().toString(), "--input", prompts(dir).toString(), "--input-format", "json",
        "--output", dir.resolve("out").toString(), "--no-tracking");
    Path log = dir.resolve("other-line-jvm.log");
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
        .redirectOutput(log.toFile());
    Fixtures.sparkEnv(pb.environment());
    Process p = pb.start();
    assertThat(p.waitFor(300, TimeUnit.SECONDS)).isTrue();
    String output = Files.readString(log);
    assertThat(p.exitValue()).as(output).isEqualTo(2);
    assertThat(output).contains(otherLineJar() + " is for Spark ")
        .contains("but this runtime is Spark " + Fixtures.sparkVersion() + " with Scala ")
        .contains("use " + Fixtures.jobJar().getFileName() + " instead");
    assertThat(Files.exists(dir.resolve("out"))).isFalse();
  }
}
