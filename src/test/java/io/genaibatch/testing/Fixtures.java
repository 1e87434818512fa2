package io.genaibatch.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Where the project's fixtures live, and the project's Python (.venv) for reference runs. */
public final class Fixtures {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Fixtures() {}

  public static Path projectDir() {
    return Paths.get(System.getProperty("genaibatch.project.dir", System.getProperty("user.dir")))
        .toAbsolutePath();
  }

  /** The committed tiny Phi-3-architecture model made by make_tiny_phi3.py. */
  public static Path tinyModel() {
    return projectDir().resolve("src/test/resources/models/tiny-phi3");
  }

  /**
   * The fixture script's {@code kernel-paths} model (hidden 1024, ~160 MB), made once per build
   * under target/: wide enough that int4 kernels answer a lone row differently from a batched one.
   */
  public static synchronized Path kernelPathsModel() throws IOException, InterruptedException {
    Path dir = projectDir().resolve("target/models/kernel-paths");
    if (!Files.isRegularFile(dir.resolve("genai_config.json"))) {
      Path tmp = projectDir().resolve("target/models/kernel-paths.tmp");
      Process p = new ProcessBuilder(python().toString(),
          projectDir().resolve("src/main/python/genai_batch/make_tiny_phi3.py").toString(),
          "--size", "kernel-paths", "--out", tmp.toString()).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
        throw new IllegalStateException("make_tiny_phi3.py --size kernel-paths failed: " + out);
      }
      Files.move(tmp, dir);
    }
    return dir;
  }

  public static Path python() {
    Path py = projectDir().resolve(".venv/bin/python");
    if (!Files.isExecutable(py)) {
      throw new IllegalStateException(py + " is missing: run jobs/setup.sh first");
    }
    return py;
  }

  /**
   * Runs the job's main class in a child JVM (the test class path, Spark's module flags) with
   * extra environment variables; returns exit code and combined output.
   */
  public static ChildRun runJob(Path workDir, Map<String, String> env, String... args)
      throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(Paths.get(System.getProperty("java.home"), "bin", "java").toString()));
    for (String opt : System.getProperty("genaibatch.test.jvmargs", "").split(" ")) {
      if (!opt.isBlank()) {
        cmd.add(opt);
      }
    }
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "-Dgenaibatch.project.dir=" + projectDir(),
        "io.genaibatch.job.BatchScoringJob"));
    cmd.addAll(List.of(args));
    Path log = Files.createTempFile(workDir, "job-", ".log");
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(workDir.toFile()).redirectErrorStream(true)
        .redirectOutput(log.toFile());
    pb.environment().putAll(env);
    Process p = pb.start();
    if (!p.waitFor(300, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new IllegalStateException("job did not finish in 300 s: " + Files.readString(log));
    }
    return new ChildRun(p.exitValue(), Files.readString(log));
  }

  /** A finished child process: exit code and everything it printed. */
  public record ChildRun(int code, String output) {}

  /** Runs a Python script of the project with a JSON request on stdin; returns its JSON. */
  public static JsonNode runPython(String script, Object request, String... args)
      throws IOException, InterruptedException {
    return runPython(script, Map.of(), request, args);
  }

  /** As {@link #runPython(String, Object, String...)}, with extra environment variables. */
  public static JsonNode runPython(String script, Map<String, String> env, Object request, String... args)
      throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(python().toString(), projectDir().resolve(script).toString()));
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
    pb.environment().putAll(env);
    Process p = pb.start();
    p.getOutputStream().write(JSON.writeValueAsBytes(request));
    p.getOutputStream().close();
    byte[] out = p.getInputStream().readAllBytes();
    if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException(script + " failed: " + new String(out, StandardCharsets.UTF_8));
    }
    return JSON.readTree(out);
  }

  /**
   * Settings as a caller gives them, from key-value pairs ({@code "batch_size", 4}); checked as the
   * job checks its flags.
   */
  public static io.genaibatch.settings.SettingValues settings(Object... keyValues) {
    java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
    for (int i = 0; i < keyValues.length; i += 2) {
      m.put((String) keyValues[i], keyValues[i + 1]);
    }
    return io.genaibatch.settings.SettingValues.defaults().above("test", m,
        io.genaibatch.settings.Setting.Scope.JOB, true);
  }
}
