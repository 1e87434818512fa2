package io.genaibatch.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import io.genaibatch.common.Sha256;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.spark.BatchScorer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.spark.sql.SparkSession;

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
   * The fixture script's {@code kernel-paths} model (hidden 1024, ~160 MB), made once under
   * target/models/ and kept there, named by a digest of the script and its options (a changed script
   * makes a new one): wide enough that int4 kernels answer a lone row differently from a batched one.
   * Safe for test JVMs that run at once: each makes its own temporary folder and the first to move
   * its folder into place wins; the others drop theirs.
   */
  public static synchronized Path kernelPathsModel() throws IOException, InterruptedException {
    Path script = projectDir().resolve("src/main/python/genai_batch/make_tiny_phi3.py");
    List<String> options = List.of("--size", "kernel-paths");
    String key = Sha256.hexPrefix(Files.readString(script) + "\0" + options, 12);
    Path dir = projectDir().resolve("target/models/kernel-paths-" + key);
    if (Files.isRegularFile(dir.resolve("genai_config.json"))) {
      return dir;
    }
    Path tmp = projectDir().resolve("target/models/kernel-paths-" + key + ".tmp-" + ProcessHandle.current().pid());
    List<String> cmd = new ArrayList<>(List.of(python().toString(), script.toString()));
    cmd.addAll(options);
    cmd.addAll(List.of("--out", tmp.toString()));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException("make_tiny_phi3.py --size kernel-paths failed: " + out);
    }
    try {
      Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException another) {
      // Another test JVM put its copy in place first: use that one.
      if (!Files.isRegularFile(dir.resolve("genai_config.json"))) {
        throw another;
      }
      deleteTree(tmp);
    }
    return dir;
  }

  private static void deleteTree(Path root) throws IOException {
    try (var paths = Files.walk(root)) {
      for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }

  /**
   * The Spark runtime the integration tests run the job jar on: {@code -Dgenaibatch.spark.home}
   * (jobs/test.sh points it at an extra runtime's pyspark, e.g. .venv-spark3.5), else the pinned
   * pyspark in .venv (never the environment's SPARK_HOME).
   */
  public static Path sparkHome() {
    String home = System.getProperty("genaibatch.spark.home", "");
    if (!home.isBlank()) {
      Path p = Paths.get(home).toAbsolutePath();
      if (!Files.isExecutable(p.resolve("bin/spark-submit"))) {
        throw new IllegalStateException("-Dgenaibatch.spark.home=" + home + " has no bin/spark-submit");
      }
      return p;
    }
    try (DirectoryStream<Path> pys = Files.newDirectoryStream(projectDir().resolve(".venv/lib"), "python3*")) {
      for (Path py : pys) {
        Path pyspark = py.resolve("site-packages/pyspark");
        if (Files.isExecutable(pyspark.resolve("bin/spark-shell"))) {
          return pyspark;
        }
      }
    } catch (IOException e) {
      throw new IllegalStateException("no .venv: run jobs/setup.sh first", e);
    }
    throw new IllegalStateException("no pyspark with bin/spark-shell in .venv: run jobs/setup.sh first");
  }

  /** The Spark version of {@link #sparkHome()}, from its spark-core jar's name (spark-core_2.13-4.0.4.jar). */
  public static String sparkVersion() {
    try (DirectoryStream<Path> cores = Files.newDirectoryStream(sparkHome().resolve("jars"), "spark-core_*.jar")) {
      for (Path core : cores) {
        String name = core.getFileName().toString();
        return name.substring(name.lastIndexOf('-') + 1, name.length() - ".jar".length());
      }
    } catch (IOException e) {
      throw new IllegalStateException("cannot list " + sparkHome().resolve("jars"), e);
    }
    throw new IllegalStateException("no spark-core jar in " + sparkHome().resolve("jars"));
  }

  /**
   * The job jar the integration tests run: {@code -Dgenaibatch.jar} (pom.xml sets it to the jar of
   * the Spark line being built), else the Spark 4 jar.
   */
  public static Path jobJar() {
    String jar = System.getProperty("genaibatch.jar", "");
    Path p = jar.isBlank() ? projectDir().resolve("target/genai-batch-spark4_2.13.jar") : Paths.get(jar).toAbsolutePath();
    if (!Files.isRegularFile(p)) {
      throw new IllegalStateException(p + " is missing (mvn package builds it before the integration tests)");
    }
    return p;
  }

  /**
   * The JDK of the Spark processes the integration tests start: {@code -Dgenaibatch.java.home},
   * else the test JVM's own.
   */
  public static Path childJavaHome() {
    String home = System.getProperty("genaibatch.java.home", "");
    return Paths.get(home.isBlank() ? System.getProperty("java.home") : home);
  }

  /** The environment of a child that runs Spark: that runtime, that jar, that JDK, on 127.0.0.1. */
  public static Map<String, String> sparkEnv(Map<String, String> env) {
    env.put("SPARK_HOME", sparkHome().toString());
    env.put("GENAI_BATCH_JAR", jobJar().toString());
    env.put("JAVA_HOME", childJavaHome().toString());
    env.put("SPARK_LOCAL_IP", "127.0.0.1");
    env.remove("SPARK_CONF_DIR");
    return env;
  }

  /**
   * A job's Parquet output read back with .venv's pyarrow: id -> {response, error, scored_at}, each
   * a string or null.
   */
  public static JsonNode readOutput(Path output) throws IOException, InterruptedException {
    String code = "import json, sys, pyarrow.parquet as pq\n"
        + "rows = pq.read_table(sys.argv[1]).to_pylist()\n"
        + "print(json.dumps({str(r['id']): {k: None if r[k] is None else str(r[k])"
        + " for k in ('response', 'error', 'scored_at')} for r in rows}))\n";
    Process p = new ProcessBuilder(python().toString(), "-c", code, output.toString())
        .redirectError(ProcessBuilder.Redirect.INHERIT).start();
    byte[] out = p.getInputStream().readAllBytes();
    if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException("reading " + output + " failed: " + new String(out, StandardCharsets.UTF_8));
    }
    return JSON.readTree(out);
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
    return runMain(workDir, env, "io.genaibatch.job.BatchScoringJob", args);
  }

  /** Runs {@code mainClass} of the test class path in a child JVM as {@link #runJob} runs the job's. */
  public static ChildRun runMain(Path workDir, Map<String, String> env, String mainClass, String... args)
      throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(Paths.get(System.getProperty("java.home"), "bin", "java").toString()));
    for (String opt : System.getProperty("genaibatch.test.jvmargs", "").split(" ")) {
      if (!opt.isBlank()) {
        cmd.add(opt);
      }
    }
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "-Dgenaibatch.project.dir=" + projectDir(),
        mainClass));
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
    return runPython(python(), script, env, request, args);
  }

  /** As {@link #runPython(String, Map, Object, String...)} with another venv's Python (e.g. .venv-mlflow2's). */
  public static JsonNode runPython(Path python, String script, Map<String, String> env, Object request,
      String... args) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(python.toString(), projectDir().resolve(script).toString()));
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
  public static SettingValues settings(Object... keyValues) {
    Map<String, Object> m = new LinkedHashMap<>();
    for (int i = 0; i < keyValues.length; i += 2) {
      m.put((String) keyValues[i], keyValues[i + 1]);
    }
    return SettingValues.defaults().above("test", m, Setting.Scope.JOB, true);
  }

  /** A scorer of the tiny model with the settings given as key-value pairs, over the session's conf. */
  public static BatchScorer tinyScorer(SparkSession spark, Path cache, Object... keyValues) {
    Object[] kv = Arrays.copyOf(keyValues, keyValues.length + 4);
    kv[keyValues.length] = "model_uri";
    kv[keyValues.length + 1] = tinyModel().toString();
    kv[keyValues.length + 2] = "cache_dir";
    kv[keyValues.length + 3] = cache.toString();
    return BatchScorer.create(spark, BatchScorer.withSparkConf(spark, settings(kv)));
  }
}
