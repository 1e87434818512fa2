package io.genaibatch.engine.natives;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.common.Sha256;
import io.genaibatch.testing.Fixtures;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The loader in fresh JVMs: found with no flag, and when nothing loads, every place is named. */
class NativeLibrariesTest {

  private static String probe(Path workDir, String classPath, String path, String... props) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp", classPath));
    cmd.addAll(List.of(props));
    cmd.add(NativeProbeMain.class.getName());
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(workDir.toFile()).redirectErrorStream(true);
    pb.environment().remove("VIRTUAL_ENV");
    pb.environment().remove("PYSPARK_PYTHON");
    pb.environment().remove(NativeLibraries.NATIVE_DIR_ENV);
    pb.environment().put("PATH", path);
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes());
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(out).isZero();
    return out;
  }

  @Test
  void findsALibraryThatLoadsHereWithoutAnyFlag(@TempDir Path elsewhere) throws Exception {
    // From the project folder: the .venv wheel (or, on glibc >= 2.38, the binding's own).
    String out = probe(Fixtures.projectDir(), System.getProperty("java.class.path"), System.getenv("PATH"));
    assertThat(out).contains("loaded from ");
    assertThat(out).containsAnyOf("onnxruntime-genai wheel in", "the onnxruntime-genai jar");
  }

  @Test
  void namesEveryPlaceItTriedAndTheFixWhenNothingLoads(@TempDir Path elsewhere) throws Exception {
    // The project's classes copied away from the project, so no .venv is near them either.
    String[] entries = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"))
        .split(File.pathSeparator);
    StringBuilder cp = new StringBuilder();
    int n = 0;
    for (String e : entries) {
      Path p = Path.of(e);
      if (Files.isDirectory(p) && p.startsWith(Fixtures.projectDir())) {
        Path copy = elsewhere.resolve("classes-" + n++);
        try (var walk = Files.walk(p)) {
          for (Path f : walk.toList()) {
            Files.copy(f, copy.resolve(p.relativize(f).toString()));
          }
        }
        e = copy.toString();
      }
      cp.append(cp.length() == 0 ? "" : File.pathSeparator).append(e);
    }
    String out = probe(elsewhere, cp.toString(), "/nonexistent", "-Dgenaibatch.native.dir=" + elsewhere.resolve("nothing-here"));
    if (out.contains("loaded from the onnxruntime-genai jar")) {
      // glibc 2.38 or newer: the binding's own library loads, which is the right outcome there.
      return;
    }
    assertThat(out).contains("Cannot load the onnxruntime-genai native library. Tried, in order:")
        .contains("genaibatch.native.dir=" + elsewhere.resolve("nothing-here") + ": no libonnxruntime-genai.so there")
        .contains("the onnxruntime-genai jar: ").contains("GLIBC")
        .contains("python3: not found")
        .contains("Fix: run jobs/setup.sh").contains("pip install onnxruntime-genai==0.12.0");
  }

  private static Path stagedGenai(Path tmp) throws Exception {
    try (var walk = Files.walk(tmp.resolve("genai-batch-native-" + System.getProperty("user.name")))) {
      return walk.filter(f -> f.getFileName().toString().equals("libonnxruntime-genai.so")
          && f.getParent().getFileName().toString().startsWith("pair-")).findFirst().orElseThrow();
    }
  }

  @Test
  void aStagedLibraryIsTrustedByItsBytesNotItsSize(@TempDir Path tmp) throws Exception {
    String cp = System.getProperty("java.class.path");
    String tmpdir = "-Djava.io.tmpdir=" + tmp;
    assertThat(probe(Fixtures.projectDir(), cp, System.getenv("PATH"), tmpdir)).contains("loaded from ");
    Path staged = stagedGenai(tmp);
    String digest = Sha256.ofFile(staged);
    // Another file of the same size in its place (a new file: the staged one is a hard link to the source).
    long size = Files.size(staged);
    Files.delete(staged);
    Files.write(staged, new byte[(int) size]);
    assertThat(probe(Fixtures.projectDir(), cp, System.getenv("PATH"), tmpdir)).contains("loaded from ");
    assertThat(Sha256.ofFile(staged)).as("the impostor was replaced by the library").isEqualTo(digest);
    assertThat(Files.getPosixFilePermissions(staged.getParent().getParent()))
        .as("the staging root is this user's alone").isEqualTo(PosixFilePermissions.fromString("rwx------"));
  }

  @Test
  void aStagingFolderAnotherUserMadeIsRefusedNamingIt(@TempDir Path tmp) throws Exception {
    Path root = tmp.resolve("genai-batch-native-" + System.getProperty("user.name"));
    Files.createDirectories(root);
    Assumptions.assumeTrue((Integer) Files.getAttribute(root, "unix:uid") == 0,
        "giving a folder to another user needs root");
    Files.setAttribute(root, "unix:uid", 65534);
    String out = probe(Fixtures.projectDir(), System.getProperty("java.class.path"), System.getenv("PATH"),
        "-Djava.io.tmpdir=" + tmp);
    assertThat(out).doesNotContain("loaded from ").contains("The folder " + root + " belongs to another user (uid 65534")
        .contains("-Djava.io.tmpdir");
  }
}
