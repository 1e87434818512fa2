package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.testing.Fixtures;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jobs/mlflow-server.sh}: a model logs to its direct artifact root at disk speed and resolves
 * to where it lies; {@code stop} ends the server for good, also while a worker is busy with a request.
 */
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
