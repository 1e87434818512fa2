package io.genaibatch.mlflow;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The tracking server's token goes to its own host and port only. Two real HTTP servers on
 * 127.0.0.1 stand in for hosts: "another host", which records the Authorization header of every
 * request and serves a one-file listing (what an artifact URI that someone registered could point
 * at), and a "tracking server" that answers artifact requests with a redirect to it (what
 * a compromised or misconfigured proxy could do).
 */
class ArtifactCredentialsTest {
  static final String TOKEN = "tracking-token-" + System.nanoTime();
  private HttpServer other;
  private HttpServer tracking;
  private final List<String> seenByOther = new CopyOnWriteArrayList<>();

  @BeforeEach
  void start() throws IOException {
    other = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    other.createContext("/", ex -> {
      seenByOther.add(String.valueOf(ex.getRequestHeaders().getFirst("Authorization")));
      respond(ex, 200, "{\"files\":[{\"path\":\"weights.onnx\",\"is_dir\":false,\"file_size\":3}]}");
    });
    other.start();
    tracking = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    tracking.createContext("/", ex -> {
      ex.getResponseHeaders().add("Location", "http://127.0.0.1:" + other.getAddress().getPort()
          + ex.getRequestURI());
      respond(ex, 302, "");
    });
    tracking.start();
  }

  @AfterEach
  void stop() {
    other.stop(0);
    tracking.stop(0);
  }

  private static void respond(HttpExchange ex, int status, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    ex.sendResponseHeaders(status, bytes.length == 0 ? -1 : bytes.length);
    if (bytes.length > 0) {
      ex.getResponseBody().write(bytes);
    }
    ex.close();
  }

  private TrackingConnection connection() {
    return TrackingConnection.connect("http://127.0.0.1:" + tracking.getAddress().getPort(),
        Map.of("MLFLOW_TRACKING_TOKEN", TOKEN));
  }

  @Test
  void anArtifactUriOnAnotherHostIsFetchedWithoutTheToken() throws IOException {
    String uri = "mlflow-artifacts://127.0.0.1:" + other.getAddress().getPort() + "/1/models/m-1/artifacts";
    List<ArtifactFile> files = ProxiedArtifactDirectory.of(uri, connection()).listFiles();
    assertThat(files).extracting(ArtifactFile::path).containsExactly("weights.onnx");
    assertThat(seenByOther).isNotEmpty().containsOnly("null");
  }

  @Test
  void aRedirectFromTheTrackingServerIsNotFollowedWithTheToken() {
    ArtifactDirectory onTracking = ProxiedArtifactDirectory.of("mlflow-artifacts:/1/models/m-1/artifacts",
        connection());
    assertThatThrownBy(onTracking::listFiles).hasMessageContaining("redirected to http://127.0.0.1:"
        + other.getAddress().getPort()).hasMessageContaining("does not follow");
    assertThat(seenByOther).isEmpty();
  }
}
