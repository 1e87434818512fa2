package io.genaibatch.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A real MLflow tracking server ({@code mlflow server}, sqlite backend, proxied artifacts) on
 * 127.0.0.1 and a free port, started once per test JVM and stopped, with its whole process tree,
 * at JVM exit. Also runs the project's Python helpers against it.
 */
public final class MlflowServer {
  private static MlflowServer shared;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path dir;
  private final int port;
  private final Process process;

  private MlflowServer(Path dir, int port, Process process) {
    this.dir = dir;
    this.port = port;
    this.process = process;
  }

  /** The JVM-wide server, started on first use. */
  public static synchronized MlflowServer shared() throws Exception {
    if (shared == null) {
      shared = start(Files.createTempDirectory("genai-batch-mlflow"), Map.of());
      MlflowServer s = shared;
      Runtime.getRuntime().addShutdownHook(new Thread(s::stop));
    }
    return shared;
  }

  /** Starts a server of .venv (the pinned MLflow) with extra arguments (e.g. --app-name basic-auth) and environment. */
  public static MlflowServer start(Path dir, Map<String, String> env, String... extraArgs) throws Exception {
    return start(Fixtures.projectDir().resolve(".venv"), dir, env, extraArgs);
  }

  /**
   * Starts the server of the venv {@code venv} (e.g. .venv-mlflow2, an older MLflow of
   * src/main/python/old-servers.txt) with extra arguments and environment.
   */
  public static MlflowServer start(Path venv, Path dir, Map<String, String> env, String... extraArgs) throws Exception {
    Path mlflow = venv.resolve("bin/mlflow");
    if (!Files.isExecutable(mlflow)) {
      throw new IllegalStateException(mlflow + " is missing: run jobs/setup.sh (--old-servers NAME for .venv-NAME)");
    }
    Files.createDirectories(dir);
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    List<String> cmd = new ArrayList<>(List.of(
        mlflow.toString(), "server",
        "--host", "127.0.0.1", "--port", String.valueOf(port),
        "--backend-store-uri", "sqlite:///" + dir.resolve("mlflow.db"),
        "--artifacts-destination", dir.resolve("artifacts").toString(),
        "--serve-artifacts", "--workers", "1"));
    cmd.addAll(List.of(extraArgs));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(dir.resolve("server.log").toFile());
    pb.environment().putAll(env);
    Process p = pb.start();
    MlflowServer server = new MlflowServer(dir, port, p);
    server.awaitUp(Duration.ofSeconds(120));
    return server;
  }

  private void awaitUp(Duration limit) throws Exception {
    HttpClient http = HttpClient.newHttpClient();
    long deadline = System.nanoTime() + limit.toNanos();
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IllegalStateException("mlflow server exited: " + Files.readString(dir.resolve("server.log")));
      }
      try {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(uri() + "/health"))
            .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() == 200) {
          return;
        }
      } catch (IOException e) {
        // not up yet
      }
      Thread.sleep(250);
    }
    stop();
    throw new IllegalStateException("mlflow server did not come up in " + limit + ": "
        + Files.readString(dir.resolve("server.log")));
  }

  public String uri() {
    return "http://127.0.0.1:" + port;
  }

  public Path dir() {
    return dir;
  }

  /** The server's answer to a GET of {@code pathAndQuery} ({@code /api/2.0/mlflow/...}), whatever its status. */
  public HttpResponse<String> get(String pathAndQuery) throws IOException, InterruptedException {
    return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(uri() + pathAndQuery)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  /** The server's answer to a POST of the JSON {@code body} to {@code path} (runs/search takes POST only), whatever its status. */
  public HttpResponse<String> post(String path, String body) throws IOException, InterruptedException {
    return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(uri() + path))
        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  /** Stops the server and every process it started (uvicorn workers outlive a plain kill). */
  public void stop() {
    List<ProcessHandle> tree = new ArrayList<>(process.descendants().toList());
    process.destroy();
    tree.forEach(ProcessHandle::destroy);
    try {
      process.waitFor(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    tree.forEach(ProcessHandle::destroyForcibly);
    process.destroyForcibly();
  }

  /**
   * Runs {@code python -m genai_batch.MODULE args} against this server (src/main/python on the
   * path) and returns its last stdout line as JSON.
   */
  public JsonNode python(String module, String stdin, String... args) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(Fixtures.python().toString(), "-m", "genai_batch." + module));
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(false);
    pb.environment().put("PYTHONPATH", Fixtures.projectDir().resolve("src/main/python").toString());
    pb.environment().put("MLFLOW_TRACKING_URI", uri());
    pb.redirectError(dir.resolve("python-" + module + ".log").toFile());
    Process p = pb.start();
    if (stdin != null) {
      p.getOutputStream().write(stdin.getBytes(StandardCharsets.UTF_8));
    }
    p.getOutputStream().close();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
    if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException("python -m genai_batch." + module + " failed: " + out + "\n"
          + Files.readString(dir.resolve("python-" + module + ".log")));
    }
    String last = out.substring(out.lastIndexOf('\n') + 1);
    return JSON.readTree(last);
  }
}
