package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.genaibatch.mlflow.ModelCache;
import io.genaibatch.mlflow.ModelFetcher;
import io.genaibatch.mlflow.ModelResolver;
import io.genaibatch.mlflow.ModelUri;
import io.genaibatch.mlflow.ResolvedModel;
import io.genaibatch.mlflow.TrackingConnection;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.Slow;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jobs/mlflow-server.sh} with the project's {@code log_model}: a model logs to the direct
 * artifact root whole (its weights copied once) and resolves to where it lies; a model that cannot
 * answer its input example is marked failed and not registered; {@code stop} ends the server for
 * good, also while a worker is busy with a request.
 */
@Slow
class MlflowServerScriptTest {
  private static String script(Map<String, String> env, String... args) throws Exception {
    ProcessBuilder pb = new ProcessBuilder("bash", Fixtures.projectDir().resolve("jobs/mlflow-server.sh").toString());
    pb.command().addAll(List.of(args));
    pb.environment().putAll(env);
    pb.redirectErrorStream(true);
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(out).isZero();
    return out.trim();
  }

  private static boolean groupAlive(long pgid) throws Exception {
    Process p = new ProcessBuilder("pgrep", "-g", String.valueOf(pgid)).start();
    p.waitFor(10, TimeUnit.SECONDS);
    return p.exitValue() == 0;
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  /** Exit code, stdout and stderr of {@code python -m genai_batch.log_model ARGS} against {@code uri}. */
  private record Logged(int exit, String out, String err) {
    JsonNode json() throws IOException {
      return new ObjectMapper().readTree(out.substring(out.lastIndexOf('\n') + 1));
    }
  }

  private static Logged logModel(String uri, Path tmp, String... args) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(Fixtures.python().toString(), "-m", "genai_batch.log_model");
    pb.command().addAll(List.of(args));
    pb.environment().put("PYTHONPATH", Fixtures.projectDir().resolve("src/main/python").toString());
    pb.environment().put("MLFLOW_TRACKING_URI", uri);
    Path err = Files.createTempFile(tmp, "log_model", ".err");
    pb.redirectError(err.toFile());
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
    assertThat(p.waitFor(300, TimeUnit.SECONDS)).isTrue();
    return new Logged(p.exitValue(), out, Files.readString(err));
  }

  private static Map<String, byte[]> files(Path dir) throws IOException {
    Map<String, byte[]> out = new TreeMap<>();
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path f : s.filter(Files::isRegularFile).toList()) {
        out.put(dir.relativize(f).toString(), Files.readAllBytes(f));
      }
    }
    return out;
  }

  @Test
  void aModelLogsToTheDirectRootWholeAndIsReadWhereItLies(@TempDir Path tmp) throws Exception {
    Path dir = tmp.resolve("mlflow");
    String uri = script(Map.of(), "start", dir.toString(), String.valueOf(freePort()));
    try {
      Logged logged = logModel(uri, tmp, "--model-dir", Fixtures.tinyModel().toString(), "--register", "direct",
          "--alias", "champion", "--experiment", "direct-root", "--max-new-tokens", "4");
      assertThat(logged.exit()).as(logged.err()).isZero();
      // In the store: the folder byte for byte, as plain files (the weights were symlinked into
      // the saved model and copied by the upload), and an MLmodel that counts them.
      Path stored = Path.of(logged.json().get("artifact_uri").asText().replaceFirst("^file://", ""));
      assertThat(stored).startsWith(dir);
      Path folder = stored.resolve("artifacts/tiny-phi3");
      try (Stream<Path> s = Files.walk(stored)) {
        assertThat(s.filter(Files::isSymbolicLink).toList()).as("symlinks in the store").isEmpty();
      }
      Map<String, byte[]> want = files(Fixtures.tinyModel());
      Map<String, byte[]> got = files(folder);
      assertThat(got.keySet()).isEqualTo(want.keySet());
      want.forEach((name, bytes) -> assertThat(got.get(name)).as(name).isEqualTo(bytes));
      JsonNode mlmodel = new ObjectMapper(new YAMLFactory()).readTree(stored.resolve("MLmodel").toFile());
      long total;
      try (Stream<Path> s = Files.walk(stored)) {
        total = s.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
      }
      // (within the few bytes by which MLmodel itself changed when the size was written into it)
      assertThat(mlmodel.get("model_size_bytes").asLong()).isCloseTo(total, within(1024L));
      assertThat(mlmodel.at("/flavors/python_function/artifacts/phi3-mini-onnx/uri").asText())
          .isEqualTo(Fixtures.tinyModel().toString());
      // The job reads it where it lies: resolved through the registry, nothing downloaded.
      try (TrackingConnection t = TrackingConnection.connect(uri)) {
        ResolvedModel r = new ModelResolver(t).resolve(ModelUri.parse("models:/direct@champion"));
        ModelFetcher.LocalModel local = ModelFetcher.fetch(r, t, new ModelCache(tmp.resolve("cache")));
        assertThat(local.downloaded()).isFalse();
        assertThat(local.genaiDir()).isEqualTo(folder);
      }
    } finally {
      script(Map.of(), "stop", dir.toString());
    }
  }

  @Test
  void aModelThatCannotAnswerItsInputExampleIsMarkedFailedAndNotRegistered(@TempDir Path tmp) throws Exception {
    Path broken = tmp.resolve("broken-phi3");
    Files.createDirectories(broken);
    try (Stream<Path> s = Files.list(Fixtures.tinyModel())) {
      for (Path f : s.toList()) {
        Files.copy(f, broken.resolve(f.getFileName()));
      }
    }
    try (RandomAccessFile f = new RandomAccessFile(broken.resolve("model.onnx").toFile(), "rw")) {
      f.setLength(100_000); // a weights file cut short, as by a copy that died halfway
    }
    Path dir = tmp.resolve("mlflow");
    String uri = script(Map.of(), "start", dir.toString(), String.valueOf(freePort()));
    try {
      Logged logged = logModel(uri, tmp, "--model-dir", broken.toString(), "--register", "broken",
          "--alias", "champion", "--experiment", "broken-models");
      assertThat(logged.exit()).as(logged.out()).isEqualTo(2);
      assertThat(logged.err()).contains("cannot answer its input example").contains("--no-input-example");
      try (TrackingConnection t = TrackingConnection.connect(uri)) {
        assertThatThrownBy(() -> t.get("registered-models/get", "name", "broken"))
            .hasMessageContaining("answered 404").hasMessageContaining("name=broken not found");
        String experiment = t.get("experiments/get-by-name", "experiment_name", "broken-models")
            .at("/experiment/experiment_id").asText();
        JsonNode models = t.post("logged-models/search", Map.of("experiment_ids", List.of(experiment))).get("models");
        assertThat(models).hasSize(1);
        assertThat(models.get(0).at("/info/status").asText()).isEqualTo("LOGGED_MODEL_UPLOAD_FAILED");
      }
    } finally {
      script(Map.of(), "stop", dir.toString());
    }
  }

  @Test
  void stopEndsTheServerAndAWorkerBusyWithAnUploadWithinItsBound(@TempDir Path tmp) throws Exception {
    Path dir = tmp.resolve("mlflow");
    String uri = script(Map.of(), "start", dir.toString(), String.valueOf(freePort()));
    long pgid = Long.parseLong(Files.readString(dir.resolve("server.pid")).trim());
    // A request whose body the one worker is still reading: 300 MB at 200 kB/s.
    Process upload = new ProcessBuilder("bash", "-c", "head -c 300000000 /dev/zero | curl -s -o /dev/null"
        + " --limit-rate 200k -X POST -H 'Content-Type: application/json' -T - " + uri
        + "/api/2.0/mlflow/experiments/create").start();
    try {
      Thread.sleep(3000);
      assertThat(upload.isAlive()).as("the upload is in flight").isTrue();
      long t0 = System.nanoTime();
      script(Map.of("GENAI_BATCH_STOP_SECONDS", "3"), "stop", dir.toString());
      double seconds = (System.nanoTime() - t0) / 1e9;
      assertThat(groupAlive(pgid)).as("server or worker left running").isFalse();
      assertThat(seconds).as("stop waits its bound, then kills").isLessThan(20);
      assertThat(dir.resolve("server.pid")).doesNotExist();
    } finally {
      upload.destroyForcibly();
    }
  }
}
