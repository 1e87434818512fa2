package io.genaibatch.mlflow;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.common.Redact;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The tracking server's proxied artifact store ({@code mlflow server --serve-artifacts}), over
 * its REST API {@code /api/2.0/mlflow-artifacts/artifacts}: list, download and upload in Java.
 * MLflow's Java client shells out to Python for artifacts; this does not.
 */
final class ProxiedArtifactDirectory implements ArtifactDirectory {
  private static final Logger LOG = LoggerFactory.getLogger(ProxiedArtifactDirectory.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String API = "/api/2.0/mlflow-artifacts/artifacts";

  private final String uri;
  private final String base;
  private final String path;
  private final String authorization;
  private final HttpClient http;

  private ProxiedArtifactDirectory(String uri, String base, String path, String authorization, HttpClient http) {
    this.uri = uri;
    this.base = base;
    this.path = path;
    this.authorization = authorization;
    this.http = http;
  }

  /**
   * The directory {@code uri} names, on the tracking server or on the host the URI names. The
   * tracking server's credentials go to the tracking server's own host and port only: a URI that
   * names another host (a registry entry anyone who can register a version may write) is fetched
   * without them, and a directory that carries them follows no redirect.
   */
  static ProxiedArtifactDirectory of(String uri, TrackingConnection tracking) {
    URI u = URI.create(uri);
    URI server = URI.create(tracking.host());
    String scheme = server.getScheme() == null ? "http" : server.getScheme();
    String base = tracking.host();
    String authorization = tracking.authorization();
    if (u.getHost() != null && !sameServer(scheme, u, server)) {
      base = scheme + "://" + u.getHost() + (u.getPort() < 0 ? "" : ":" + u.getPort());
      if (authorization != null) {
        LOG.warn("Artifacts {} are on {}, not on the tracking server's host {}: fetched without the tracking"
            + " server's credentials", Redact.uri(uri), base, server.getHost());
        authorization = null;
      }
    }
    String p = u.getPath() == null ? "" : u.getPath();
    p = p.replaceAll("^/+", "").replaceAll("/+$", "");
    return new ProxiedArtifactDirectory(uri.replaceAll("/+$", ""), base, p, authorization,
        client(tracking.insecureTls(), authorization != null));
  }

  /** Whether {@code artifacts} names the host and port of {@code server} (a missing port: the scheme's). */
  private static boolean sameServer(String scheme, URI artifacts, URI server) {
    int fallback = "https".equals(scheme) ? 443 : 80;
    return artifacts.getHost().equalsIgnoreCase(server.getHost())
        && (artifacts.getPort() < 0 ? fallback : artifacts.getPort())
            == (server.getPort() < 0 ? fallback : server.getPort());
  }

  private static HttpClient client(boolean insecure, boolean credentials) {
    // A redirect could lead credentials to another host: a directory that carries them follows none.
    HttpClient.Builder b = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(20))
        .followRedirects(credentials ? HttpClient.Redirect.NEVER : HttpClient.Redirect.NORMAL);
    if (insecure) {
      try {
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, new TrustManager[] {new X509TrustManager() {
          @Override public void checkClientTrusted(X509Certificate[] c, String a) {}
          @Override public void checkServerTrusted(X509Certificate[] c, String a) {}
          @Override public X509Certificate[] getAcceptedIssuers() {
            return new X509Certificate[0];
          }
        }}, new SecureRandom());
        b.sslContext(ctx);
      } catch (Exception e) {
        throw new MlflowException("Cannot set up MLFLOW_TRACKING_INSECURE_TLS: " + e.getMessage(), e);
      }
    }
    return b.build();
  }

  @Override
  public String uri() {
    return uri;
  }

  private HttpRequest.Builder request(String url) {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofMinutes(30));
    if (authorization != null) {
      b.header("Authorization", authorization);
    }
    return b;
  }

  private static String encodePath(String p) {
    StringBuilder sb = new StringBuilder();
    for (String seg : p.split("/", -1)) {
      if (seg.isEmpty()) {
        continue;
      }
      sb.append('/').append(URLEncoder.encode(seg, StandardCharsets.UTF_8).replace("+", "%20"));
    }
    return sb.toString();
  }

  private String join(String rel) {
    return rel.isEmpty() ? path : path.isEmpty() ? rel : path + "/" + rel;
  }

  @Override
  public List<ArtifactFile> listFiles() throws IOException {
    List<ArtifactFile> out = new ArrayList<>();
    listInto("", out);
    if (out.isEmpty()) {
      throw new MlflowException("Artifact directory " + uri + " is empty or does not exist");
    }
    return out;
  }

  private void listInto(String rel, List<ArtifactFile> out) throws IOException {
    String url = base + API + "?path=" + URLEncoder.encode(join(rel), StandardCharsets.UTF_8);
    JsonNode files = JSON.readTree(send(request(url).GET().build(), "list " + uri + (rel.isEmpty() ? "" : "/" + rel)))
        .path("files");
    for (JsonNode f : files) {
      String name = f.path("path").asText();
      // The server answers with paths relative to the listed directory; older servers answer
      // with the name alone. Either way it must stay inside.
      String child = ArtifactFile.checkRelative(name.contains("/") && !rel.isEmpty() && name.startsWith(rel + "/")
          ? name : rel.isEmpty() ? name : rel + "/" + name);
      if (f.path("is_dir").asBoolean(false)) {
        listInto(child, out);
      } else {
        // The server leaves file_size out when it is 0.
        out.add(new ArtifactFile(child, f.path("file_size").asLong(0)));
      }
    }
  }

  @Override
  public void download(ArtifactFile file, Path target) throws IOException {
    HttpRequest req = request(base + API + encodePath(join(file.path()))).GET().build();
    try {
      HttpResponse<Path> r = http.send(req, HttpResponse.BodyHandlers.ofFile(target));
      if (r.statusCode() / 100 != 2) {
        String body = Files.readString(target);
        Files.deleteIfExists(target);
        throw new MlflowException("Cannot download " + uri + "/" + file.path() + ": HTTP " + r.statusCode() + " " + body);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("Interrupted while downloading " + uri + "/" + file.path(), e);
    }
  }

  @Override
  public void upload(Path source, String relativePath) throws IOException {
    HttpRequest req = request(base + API + encodePath(join(ArtifactFile.checkRelative(relativePath))))
        .PUT(HttpRequest.BodyPublishers.ofFile(source)).build();
    send(req, "upload " + uri + "/" + relativePath);
  }

  @Override
  public boolean exists(String relativePath) throws IOException {
    String rel = ArtifactFile.checkRelative(relativePath);
    int slash = rel.lastIndexOf('/');
    String dir = slash < 0 ? "" : rel.substring(0, slash);
    String url = base + API + "?path=" + URLEncoder.encode(join(dir), StandardCharsets.UTF_8);
    for (JsonNode f : JSON.readTree(send(request(url).GET().build(), "list " + uri)).path("files")) {
      String name = f.path("path").asText();
      if (!f.path("is_dir").asBoolean(false) && (name.equals(rel) || name.equals(rel.substring(slash + 1)))) {
        return true;
      }
    }
    return false;
  }

  @Override
  public ArtifactDirectory resolve(String relativePath) {
    String rel = ArtifactFile.checkRelative(relativePath);
    return new ProxiedArtifactDirectory(uri + "/" + rel, base, join(rel), authorization, http);
  }

  private String send(HttpRequest req, String what) throws IOException {
    try {
      HttpResponse<String> r = http.send(req, HttpResponse.BodyHandlers.ofString());
      if (r.statusCode() / 100 == 3) {
        throw new MlflowException("Cannot " + what + ": " + base + " redirected to "
            + r.headers().firstValue("Location").map(l -> Redact.uri(l)).orElse("nowhere")
            + ", which genai-batch does not follow with the tracking server's credentials");
      }
      if (r.statusCode() / 100 != 2) {
        throw new MlflowException("Cannot " + what + ": HTTP " + r.statusCode() + " " + r.body().strip());
      }
      return r.body();
    } catch (ConnectException e) {
      throw new MlflowException("Cannot " + what + ": the tracking server at " + base + " refused the connection", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("Interrupted: " + what, e);
    }
  }
}
