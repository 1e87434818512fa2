package io.genaibatch.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.genaibatch.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The driver's class archive of {@code jobs/spark-submit.sh}: recorded by a job's first run with a
 * Java and Spark install, mapped by the next without a warning and with the same answers; never
 * kept from a failed run; refused in a folder that is not the user's own. (jobs/test.sh turns the
 * archive off for every other test.)
 */
class ClassArchiveIT {

  private static Map<String, String> archiveIn(Path folder) {
    return Map.of("GENAI_BATCH_CLASS_ARCHIVE", "auto", "GENAI_BATCH_CLASS_ARCHIVE_DIR", folder.toString());
  }

  private static List<Path> files(Path folder) throws Exception {
    try (Stream<Path> s = Files.list(folder)) {
      return s.sorted().toList();
    }
  }

  @Test
  void firstRunRecordsTheArchiveAndTheNextMapsItWithTheSameAnswers(@TempDir Path dir) throws Exception {
    Path in = RuntimeJobIT.prompts(dir);
    Path folder = dir.resolve("archive");
    Map<String, String> env = archiveIn(folder);

    // A run that fails on the driver (a bad flag) keeps nothing.
    Fixtures.ChildRun failed = RuntimeJobIT.submit(dir, "failed", env, List.of(),
        "--model-uri", Fixtures.tinyModel().toString(), "--input", in.toString(), "--input-format", "json",
        "--output", dir.resolve("failed-out").toString(), "--no-tracking", "--batch-size", "0");
    assertThat(failed.code()).as(failed.output()).isEqualTo(2);
    assertThat(files(folder)).as("nothing kept from a failed run, no temporary file left").isEmpty();

    Fixtures.ChildRun first = RuntimeJobIT.submit(dir, "first", env, List.of(),
        RuntimeJobIT.job(in, dir.resolve("first-out"), "--max-error-rate", "0.5"));
    assertThat(first.code()).as(first.output()).isZero();
    assertThat(first.output()).contains("class archive: none yet for this Java and Spark")
        .doesNotContain("[warning][cds]");
    List<Path> made = files(folder);
    assertThat(made).hasSize(1);
    assertThat(made.get(0).getFileName().toString()).matches("driver-[0-9a-f]{16}\\.jsa");
    assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(folder))).isEqualTo("rwx------");

    Fixtures.ChildRun second = RuntimeJobIT.submit(dir, "second", env, List.of(),
        RuntimeJobIT.job(in, dir.resolve("second-out"), "--max-error-rate", "0.5"));
    assertThat(second.code()).as(second.output()).isZero();
    assertThat(second.output()).contains("class archive: " + made.get(0))
        .as("the JVM maps the archive without complaint").doesNotContain("[cds]").doesNotContain("VM warning");
    assertThat(files(folder)).isEqualTo(made);
    assertThat(answers(dir.resolve("second-out"))).isEqualTo(answers(dir.resolve("first-out")));
  }

  @Test
  void aFolderOfAnotherUserIsNotUsedAndTheJobStillRuns(@TempDir Path dir) throws Exception {
    Path folder = Files.createDirectory(dir.resolve("theirs"));
    Files.setAttribute(folder, "unix:uid", 65534);
    assumeTrue((Integer) Files.getAttribute(folder, "unix:uid") == 65534, "giving a folder away needs root");
    Path in = RuntimeJobIT.prompts(dir);
    Fixtures.ChildRun run = RuntimeJobIT.submit(dir, "theirs", archiveIn(folder), List.of(),
        RuntimeJobIT.job(in, dir.resolve("out"), "--max-error-rate", "0.5"));
    assertThat(run.code()).as(run.output()).isZero();
    assertThat(run.output()).contains("class archive: not used (" + folder + " is not a private folder");
    assertThat(files(folder)).isEmpty();
  }

  private static Map<String, String> answers(Path out) throws Exception {
    Map<String, String> byId = new java.util.TreeMap<>();
    Fixtures.readOutput(out).fields().forEachRemaining(
        e -> byId.put(e.getKey(), e.getValue().path("response").asText() + "|" + e.getValue().path("error").asText()));
    return byId;
  }
}
