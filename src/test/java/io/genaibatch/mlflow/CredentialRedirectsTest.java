package io.genaibatch.mlflow;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The tracking token goes only where it was sent: real HTTP servers on two loopback addresses, the
 * first redirecting the job's REST calls, the second listening for any request that carries a
 * credential.
 */
class CredentialRedirectsTest {
  private static final String TOKEN = "dapi-secret-token-1234";
  private final List<HttpServer> servers = new CopyOnWriteArrayList<>();
  /** The Authorization header of every request the other host received ("" when none). */
  private final List<String> otherHostSaw = new CopyOnWriteArrayList<>();

  @AfterEach
  void stop() {
    servers.forEach(s -> s.stop(0));
  }

  private HttpServer start(String address) throws IOException {
    HttpServer s = HttpServer.create(new InetSocketAddress(InetAddress.getByName(address), 0), 0);
    s.start();
    servers.add(s);
    return s;
  }

  private static void answer(HttpExchange x, int status, String location, String body) throws IOException {
    if (location != null) {
      x.getResponseHeaders().add("Location", location);
    }
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    x.sendResponseHeaders(status, b.length == 0 ? -1 : b.length);
    if (b.length > 0) {
      x.getResponseBody().write(b);
    }
    x.close();
  }

  /** A tracking server on 127.0.0.1 whose API answers {@code status} to {@code location} on {@code other}. */
  private String redirectingServer(int status, String otherScheme) throws IOException {
    HttpServer other = start("127.0.0.2");
    other.createContext("/", x -> {
      String auth = x.getRequestHeaders().getFirst("Authorization");
      otherHostSaw.add(auth == null ? "" : auth);
      answer(x, 200, null, "{\"experiment\": {\"experiment_id\": \"0\", \"name\": \"Default\"}}");
    });
    HttpServer tracking = start("127.0.0.1");
    String target = otherScheme + "://127.0.0.2:" + other.getAddress().getPort();
    tracking.createContext("/", x -> answer(x, status, target + x.getRequestURI(), ""));
    return "http://127.0.0.1:" + tracking.getAddress().getPort();
  }

  @Test
  void aRedirectToAnotherHostFailsTheCallAndTheTokenNeverLeaves() throws Exception {
    for (int status : new int[] {301, 302, 307, 308}) {
      String uri = redirectingServer(status, "http");
      TrackingConnection conn = TrackingConnection.connect(uri, Map.of("MLFLOW_TRACKING_TOKEN", TOKEN));
      assertThatThrownBy(() -> conn.get("experiments/get", "experiment_id", "0")).as("HTTP %d", status)
          .hasMessageContaining(status == 308 ? "answered GET with 308" : "redirected a call to http://127.0.0.2:")
          .hasMessageContaining("Set --tracking-uri")
          .satisfies(e -> assertThat(e.getMessage()).doesNotContain(TOKEN));
      assertThatThrownBy(() -> conn.client().getExperiment("0")).as("the Java client's own calls, HTTP %d", status)
          .satisfies(e -> assertThat(e.toString()).doesNotContain(TOKEN));
      assertThatThrownBy(() -> conn.post("experiments/create", Map.of("name", "x"))).as("a POST, HTTP %d", status)
          .hasMessageContaining("Set --tracking-uri");
      conn.close();
    }
    assertThat(otherHostSaw).as("requests the other host received").isEmpty();
  }

  @Test
  void aRedirectOnTheSameServerIsFollowed() throws Exception {
    HttpServer tracking = start("127.0.0.1");
    List<String> sawAuth = new CopyOnWriteArrayList<>();
    tracking.createContext("/api/", x -> answer(x, 302, "/moved" + x.getRequestURI(), ""));
    tracking.createContext("/moved/", x -> {
      sawAuth.add(String.valueOf(x.getRequestHeaders().getFirst("Authorization")));
      answer(x, 200, null, "{\"experiment\": {\"experiment_id\": \"0\", \"name\": \"Default\"}}");
    });
    String uri = "http://127.0.0.1:" + tracking.getAddress().getPort();
    try (TrackingConnection conn = TrackingConnection.connect(uri, Map.of("MLFLOW_TRACKING_TOKEN", TOKEN))) {
      assertThat(conn.get("experiments/get", "experiment_id", "0").path("experiment").path("name").asText())
          .isEqualTo("Default");
    }
    assertThat(sawAuth).containsExactly("Bearer " + TOKEN);
  }

  @Test
  void onlyTheSameServerOrAnUpgradeToHttpsOnTheSameHostIsFollowed() {
    assertThat(CredentialRedirects.follows("http", "mlflow.example", 5000, URI.create("http://mlflow.example:5000/x")))
        .isTrue();
    assertThat(CredentialRedirects.follows("http", "mlflow.example", -1, URI.create("http://MLflow.example:80/x")))
        .isTrue();
    assertThat(CredentialRedirects.follows("http", "mlflow.example", 5000, URI.create("https://mlflow.example/x")))
        .as("an upgrade to TLS on the same host").isTrue();
    assertThat(CredentialRedirects.follows("https", "mlflow.example", 443, URI.create("http://mlflow.example/x")))
        .as("https to http").isFalse();
    assertThat(CredentialRedirects.follows("http", "mlflow.example", 5000, URI.create("http://mlflow.example:6000/x")))
        .as("another port").isFalse();
    assertThat(CredentialRedirects.follows("https", "mlflow.example", 443, URI.create("https://evil.example/x")))
        .as("another host").isFalse();
    assertThat(CredentialRedirects.follows("https", "mlflow.example", 443, URI.create("/relative")))
        .as("no host: resolved before it gets here, refused if not").isFalse();
  }
}
