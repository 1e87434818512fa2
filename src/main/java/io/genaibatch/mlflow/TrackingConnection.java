package io.genaibatch.mlflow;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.common.Redact;
import java.io.Closeable;
import java.io.IOException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.StringJoiner;
import org.mlflow.tracking.MlflowClient;
import org.mlflow_project.apachehttp.client.methods.CloseableHttpResponse;
import org.mlflow_project.apachehttp.client.methods.HttpPost;
import org.mlflow_project.apachehttp.entity.ByteArrayEntity;
import org.mlflow_project.apachehttp.entity.ContentType;
import org.mlflow_project.apachehttp.impl.client.CloseableHttpClient;
import org.mlflow_project.apachehttp.util.EntityUtils;
import org.mlflow.tracking.MlflowClientException;
import org.mlflow.tracking.MlflowHttpException;
import org.mlflow.tracking.creds.BasicMlflowHostCreds;
import org.mlflow.tracking.creds.DatabricksConfigHostCredsProvider;
import org.mlflow.tracking.creds.MlflowHostCreds;
import org.mlflow.tracking.creds.MlflowHostCredsProvider;

/**
 * One tracking server: the MLflow Java client for the calls it has, its raw REST calls for those
 * it lacks (aliases, MLflow 3 logged models), and the credentials for genai-batch's own HTTP
 * artifact transfers.
 *
 * <p>Credentials come from the environment as MLflow's Python client reads them: {@code
 * MLFLOW_TRACKING_TOKEN}, {@code MLFLOW_TRACKING_USERNAME}/{@code MLFLOW_TRACKING_PASSWORD},
 * {@code MLFLOW_TRACKING_INSECURE_TLS}; {@code databricks} and {@code databricks://PROFILE} use
 * the Databricks config file. The Java client alone reads none of the HTTP ones. No secret is
 * ever put in a message, {@link #toString()} or log line.
 *
 * <p>Thread-safe: the Java client and genai-batch's own calls share one pooled Apache HTTP client
 * (thread-safe, up to {@value #MAX_PARALLEL_CALLS} connections to the server), and the credentials are
 * read per call.
 */
public final class TrackingConnection implements Closeable {
  public static final String TRACKING_URI_ENV = "MLFLOW_TRACKING_URI";
  /**
   * The most calls one connection makes to the server at once: its HTTP client's connections to the
   * server (the Apache client's pool keeps 2 a host unless told otherwise).
   */
  public static final int MAX_PARALLEL_CALLS = 32;
  private static final ObjectMapper JSON = new ObjectMapper();
  /** How much of a non-JSON error answer a message quotes. */
  private static final int BODY_CHARS = 200;

  private final String trackingUri;
  private final MlflowHostCredsProvider creds;
  private final MlflowClient client;
  /** The Java client's own HTTP client, with {@link CredentialRedirects}: for calls it has no method for. */
  private final CloseableHttpClient http;

  private TrackingConnection(String trackingUri, MlflowHostCredsProvider creds) {
    this.trackingUri = trackingUri;
    this.creds = creds;
    this.client = new MlflowClient(creds);
    this.http = CredentialRedirects.install(client, ignoresTls(creds));
  }

  /** The host's MLFLOW_TRACKING_INSECURE_TLS; false when its credentials cannot be read yet (the first call says why). */
  private static boolean ignoresTls(MlflowHostCredsProvider creds) {
    try {
      return creds.getHostCreds().shouldIgnoreTlsVerification();
    } catch (RuntimeException e) {
      return false;
    }
  }

  /**
   * Connects to {@code trackingUri}, or to {@code MLFLOW_TRACKING_URI} when it is null.
   *
   * @throws MlflowException when neither is set or the URI is not a tracking server
   */
  /** The tracking URI given, else {@code MLFLOW_TRACKING_URI}; null when neither is set. */
  public static String uriOrEnv(String trackingUri) {
    String uri = trackingUri != null && !trackingUri.isBlank() ? trackingUri : System.getenv(TRACKING_URI_ENV);
    return uri == null || uri.isBlank() ? null : uri;
  }

  public static TrackingConnection connect(String trackingUri) {
    return connect(trackingUri, System.getenv());
  }

  public static TrackingConnection connect(String trackingUri, Map<String, String> env) {
    String uri = trackingUri != null && !trackingUri.isBlank() ? trackingUri : env.get(TRACKING_URI_ENV);
    if (uri == null || uri.isBlank()) {
      throw new MlflowException("No MLflow tracking URI: pass --tracking-uri or set " + TRACKING_URI_ENV);
    }
    uri = uri.trim();
    // Whatever credentials the job holds are cut out of every message it shows from now on.
    Redact.rememberUri(uri);
    Redact.rememberSecret(env.get("MLFLOW_TRACKING_PASSWORD"));
    Redact.rememberSecret(env.get("MLFLOW_TRACKING_TOKEN"));
    if (uri.equals("databricks")) {
      return new TrackingConnection(uri, new DatabricksConfigHostCredsProvider());
    }
    if (uri.startsWith("databricks://")) {
      return new TrackingConnection(uri, new DatabricksConfigHostCredsProvider(uri.substring("databricks://".length())));
    }
    if (uri.startsWith("http://") || uri.startsWith("https://")) {
      String host = uri.endsWith("/") ? uri.substring(0, uri.length() - 1) : uri;
      boolean insecure = "true".equalsIgnoreCase(env.get("MLFLOW_TRACKING_INSECURE_TLS"));
      return new TrackingConnection(uri, new BasicMlflowHostCreds(host,
          env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD"),
          env.get("MLFLOW_TRACKING_TOKEN"), insecure));
    }
    throw new MlflowException("Tracking URI " + Redact.uri(uri) + " is not supported: use http(s)://HOST:PORT,"
        + " databricks or databricks://PROFILE (a local mlruns folder needs `mlflow server`)");
  }

  public String trackingUri() {
    return trackingUri;
  }

  public MlflowClient client() {
    return client;
  }

  /** The host part, e.g. {@code http://127.0.0.1:5000}. */
  public String host() {
    String h = creds.getHostCreds().getHost();
    return h.endsWith("/") ? h.substring(0, h.length() - 1) : h;
  }

  /** The Authorization header value for genai-batch's own HTTP calls, or null for none. */
  String authorization() {
    MlflowHostCreds c = creds.getHostCreds();
    if (c.getToken() != null && !c.getToken().isEmpty()) {
      return "Bearer " + c.getToken();
    }
    if (c.getUsername() != null && c.getPassword() != null) {
      return "Basic " + Base64.getEncoder().encodeToString(
          (c.getUsername() + ":" + c.getPassword()).getBytes(StandardCharsets.UTF_8));
    }
    return null;
  }

  boolean insecureTls() {
    return creds.getHostCreds().shouldIgnoreTlsVerification();
  }

  /** GET of a REST endpoint under {@code /api/2.0/mlflow/}, query parameters URL-encoded. */
  public JsonNode get(String endpoint, String... keyValues) {
    Map<String, String> q = new LinkedHashMap<>();
    for (int i = 0; i + 1 < keyValues.length; i += 2) {
      q.put(keyValues[i], keyValues[i + 1]);
    }
    StringJoiner query = new StringJoiner("&");
    q.forEach((k, v) -> query.add(URLEncoder.encode(k, StandardCharsets.UTF_8) + "="
        + URLEncoder.encode(v, StandardCharsets.UTF_8)));
    String path = q.isEmpty() ? endpoint : endpoint + "?" + query;
    return parse(endpoint, () -> client.sendGet(path));
  }

  /** POST of a JSON body to a REST endpoint under {@code /api/2.0/mlflow/}. */
  public JsonNode post(String endpoint, Object body) {
    return parse(endpoint, () -> client.sendPost(endpoint, JSON.writeValueAsString(body)));
  }

  /**
   * POST of {@code body} to {@code path} on the host (e.g. {@code /v1/traces} or {@code
   * /api/3.0/mlflow/...}, outside the Java client's {@code /api/2.0/mlflow/}), with the tracking
   * credentials and the same redirect policy as every other call; returns the answer's body.
   *
   * @throws MlflowHttpError on an HTTP error answer, {@link MlflowException} when the server cannot be reached
   */
  public byte[] postBytes(String path, String contentType, byte[] body, Map<String, String> headers) {
    HttpPost post = new HttpPost(host() + path);
    post.setEntity(new ByteArrayEntity(body, ContentType.create(contentType)));
    String auth = authorization();
    if (auth != null) {
      post.setHeader("Authorization", auth);
    }
    headers.forEach(post::setHeader);
    try (CloseableHttpResponse r = http.execute(post)) {
      byte[] answer = r.getEntity() == null ? new byte[0] : EntityUtils.toByteArray(r.getEntity());
      int status = r.getStatusLine().getStatusCode();
      if (status >= 300) {
        String text = new String(answer, StandardCharsets.UTF_8);
        throw new MlflowHttpError(status, errorCode(text), "MLflow " + Redact.uri(trackingUri) + " answered " + status
            + " to " + path + ": " + message(text), null);
      }
      return answer;
    } catch (IOException e) {
      throw new MlflowException("Cannot reach MLflow tracking server " + Redact.uri(trackingUri) + " (" + path + "): "
          + Redact.message(rootMessage(e)) + ". Check --tracking-uri / " + TRACKING_URI_ENV + " and that the server is up.", e);
    }
  }

  /** POST of a JSON body to {@code path} on the host, as {@link #postBytes}; returns the parsed answer. */
  public JsonNode postJson(String path, Object body) {
    try {
      byte[] answer = postBytes(path, "application/json", JSON.writeValueAsBytes(body), Map.of());
      return answer.length == 0 ? JSON.createObjectNode() : JSON.readTree(answer);
    } catch (IOException e) {
      throw new MlflowException("MLflow call " + path + " to " + Redact.uri(trackingUri) + " failed: "
          + Redact.message(rootMessage(e)), e);
    }
  }

  private interface Call {
    String run() throws Exception;
  }

  private JsonNode parse(String endpoint, Call call) {
    try {
      String s = call.run();
      return s == null || s.isBlank() ? JSON.createObjectNode() : JSON.readTree(s);
    } catch (MlflowHttpException e) {
      throw new MlflowHttpError(e.getStatusCode(), errorCode(e.getBodyMessage()),
          "MLflow " + Redact.uri(trackingUri) + " answered " + e.getStatusCode() + " to " + endpoint + ": " + message(e.getBodyMessage()), e);
    } catch (MlflowClientException e) {
      throw new MlflowException("Cannot reach MLflow tracking server " + Redact.uri(trackingUri) + " (" + endpoint + "): "
          + Redact.message(rootMessage(e)) + ". Check --tracking-uri / " + TRACKING_URI_ENV + " and that the server is up.", e);
    } catch (Exception e) {
      throw new MlflowException("MLflow call " + endpoint + " to " + Redact.uri(trackingUri) + " failed: "
          + Redact.message(rootMessage(e)), e);
    }
  }

  static String rootMessage(Throwable e) {
    Throwable r = e;
    while (r.getCause() != null && r.getCause() != r) {
      r = r.getCause();
    }
    return r.getClass().getSimpleName() + (r.getMessage() == null ? "" : ": " + r.getMessage());
  }

  private static String errorCode(String body) {
    try {
      return JSON.readTree(body).path("error_code").asText(null);
    } catch (Exception e) {
      return null;
    }
  }

  /**
   * MLflow's message from its JSON error answer; any other body (the HTML page of an older server's
   * missing endpoint, or of a proxy) as one line of its text, at most {@value #BODY_CHARS} characters,
   * so that a warning quoting it stays one line. Tags are dropped by a pattern: only a hint is wanted,
   * no HTML parser is needed for it.
   */
  private static String message(String body) {
    try {
      JsonNode n = JSON.readTree(body);
      if (n != null && n.hasNonNull("message")) {
        return n.get("message").asText();
      }
    } catch (Exception e) {
      // not JSON: the text below
    }
    String text = body.replaceAll("<[^>]*>", " ").replaceAll("\\s+", " ").strip();
    return text.length() <= BODY_CHARS ? text : text.substring(0, BODY_CHARS) + "...";
  }

  /** An HTTP error answer from the server, with MLflow's error code (e.g. RESOURCE_DOES_NOT_EXIST). */
  public static final class MlflowHttpError extends MlflowException {
    private static final long serialVersionUID = 1L;
    private final int status;
    private final String errorCode;

    MlflowHttpError(int status, String errorCode, String message, Throwable cause) {
      super(message, cause);
      this.status = status;
      this.errorCode = errorCode;
    }

    public int status() {
      return status;
    }

    public String errorCode() {
      return errorCode;
    }

    /** Not found; MLflow answers a missing alias with 400 INVALID_PARAMETER_VALUE "... not found". */
    public boolean notFound() {
      return status == 404 || "RESOURCE_DOES_NOT_EXIST".equals(errorCode)
          || (status == 400 && getMessage() != null && getMessage().contains("not found"));
    }
  }

  @Override
  public String toString() {
    return "TrackingConnection[" + trackingUri + "]";
  }

  @Override
  public void close() {
    client.close();
  }
}
