package io.genaibatch.mlflow;

import io.genaibatch.common.Redact;
import java.lang.reflect.Field;
import java.net.URI;
import java.security.GeneralSecurityException;
import java.util.Locale;
import org.mlflow.tracking.MlflowClient;
import org.mlflow_project.apachehttp.HttpHost;
import org.mlflow_project.apachehttp.HttpRequest;
import org.mlflow_project.apachehttp.HttpResponse;
import org.mlflow_project.apachehttp.ProtocolException;
import org.mlflow_project.apachehttp.client.protocol.HttpClientContext;
import org.mlflow_project.apachehttp.conn.ssl.NoopHostnameVerifier;
import org.mlflow_project.apachehttp.conn.ssl.SSLConnectionSocketFactory;
import org.mlflow_project.apachehttp.conn.ssl.TrustSelfSignedStrategy;
import org.mlflow_project.apachehttp.impl.client.CloseableHttpClient;
import org.mlflow_project.apachehttp.impl.client.DefaultRedirectStrategy;
import org.mlflow_project.apachehttp.impl.client.HttpClientBuilder;
import org.mlflow_project.apachehttp.protocol.HttpContext;
import org.mlflow_project.apachehttp.ssl.SSLContextBuilder;

/**
 * Keeps the tracking credentials on the tracking server. The MLflow Java client's HTTP client (the
 * Apache HttpClient it bundles, relocated) follows redirects to any host, https to http too, and
 * copies the request's {@code Authorization} header along. This redirect strategy follows one only
 * to the same scheme, host and port (a path on the same server), or from http to https on the same
 * host; any other redirect fails the call with a message naming where it led (its host, never a
 * credential) and what to set instead.
 *
 * <p>mlflow-client 2.17.2 takes no HTTP client and no redirect setting, so {@link #install} puts a
 * client built here (with the TLS setting the library's own would have) into the client's HTTP caller
 * by reflection; a library whose fields differ fails the connection at once, naming this class, so an
 * upgrade cannot silently drop the protection.
 */
final class CredentialRedirects extends DefaultRedirectStrategy {
  /**
   * Whether to follow {@code response}: as the default strategy decides (301, 302, 307 for GET and
   * HEAD, 303 for any); any other redirect status fails the call instead of handing the library an
   * empty answer as if it were the server's (a 308, or a 302 to a POST).
   */
  @Override
  public boolean isRedirected(HttpRequest request, HttpResponse response, HttpContext context)
      throws ProtocolException {
    if (super.isRedirected(request, response, context)) {
      return true;
    }
    int status = response.getStatusLine().getStatusCode();
    if (status >= 300 && status < 400 && status != 304) {
      HttpHost from = HttpClientContext.adapt(context).getTargetHost();
      throw new ProtocolException("The tracking server " + Redact.uri(from == null ? "" : from.toURI()) + " answered "
          + request.getRequestLine().getMethod() + " with " + status + ", a redirect genai-batch does not follow."
          + " Set --tracking-uri (or MLFLOW_TRACKING_URI) to the server's final address");
    }
    return false;
  }

  /**
   * The redirect's target, as the default strategy resolves it (relative ones against the request,
   * each target recorded once), when it keeps the credentials on the server; else the call fails.
   */
  @Override
  public URI getLocationURI(HttpRequest request, HttpResponse response, HttpContext context)
      throws ProtocolException {
    URI to = super.getLocationURI(request, response, context);
    HttpHost from = HttpClientContext.adapt(context).getTargetHost();
    if (from != null && follows(from.getSchemeName(), from.getHostName(), from.getPort(), to)) {
      return to;
    }
    String fromText = from == null ? "the tracking server" : from.toURI();
    throw new ProtocolException("The tracking server " + Redact.uri(fromText) + " redirected a call to "
        + Redact.uri(to.getScheme() + "://" + to.getRawAuthority()) + ": genai-batch follows no redirect to another"
        + " host or from https to http, so the tracking credentials stay with the server they were given for."
        + " Set --tracking-uri (or MLFLOW_TRACKING_URI) to the server's final address");
  }

  /**
   * Whether a redirect from {@code scheme://host:port} to {@code to} keeps the credentials on the same
   * server: the same host, and the same scheme and port or an upgrade from http to https.
   */
  static boolean follows(String scheme, String host, int port, URI to) {
    if (to.getHost() == null || to.getScheme() == null || !to.getHost().equalsIgnoreCase(host)) {
      return false;
    }
    String fromScheme = scheme.toLowerCase(Locale.ROOT);
    String toScheme = to.getScheme().toLowerCase(Locale.ROOT);
    if (toScheme.equals("https") && fromScheme.equals("http")) {
      return true;
    }
    return toScheme.equals(fromScheme) && port(fromScheme, port) == port(toScheme, to.getPort());
  }

  private static int port(String scheme, int port) {
    return port >= 0 ? port : scheme.equals("https") ? 443 : 80;
  }

  /**
   * Gives {@code client}'s HTTP caller an HTTP client that follows redirects only as {@link
   * #isRedirected} allows, with {@code insecureTls} as the library would apply it, and returns that
   * HTTP client (genai-batch's own calls to the server go through it too).
   *
   * @throws MlflowException when the library's fields are not the ones this was written for
   */
  static CloseableHttpClient install(MlflowClient client, boolean insecureTls) {
    try {
      Field callerField = MlflowClient.class.getDeclaredField("httpCaller");
      callerField.setAccessible(true);
      Object caller = callerField.get(client);
      Field httpField = caller.getClass().getDeclaredField("httpClient");
      httpField.setAccessible(true);
      if (httpField.get(caller) != null) {
        return (CloseableHttpClient) httpField.get(caller); // made already, by this method: a connection installs once
      }
      CloseableHttpClient http = build(insecureTls);
      httpField.set(caller, http);
      return http;
    } catch (ReflectiveOperationException | RuntimeException e) {
      throw new MlflowException("Cannot keep the tracking credentials from following redirects: this mlflow-client"
          + " is not the one " + CredentialRedirects.class.getName() + " was written for (2.17.2): " + e, e);
    }
  }

  private static CloseableHttpClient build(boolean insecureTls) {
    HttpClientBuilder b = HttpClientBuilder.create().setRedirectStrategy(new CredentialRedirects())
        .setMaxConnPerRoute(TrackingConnection.MAX_PARALLEL_CALLS)
        .setMaxConnTotal(TrackingConnection.MAX_PARALLEL_CALLS);
    if (insecureTls) {
      try {
        b.setSSLSocketFactory(new SSLConnectionSocketFactory(
            new SSLContextBuilder().loadTrustMaterial(null, new TrustSelfSignedStrategy()).build(),
            new NoopHostnameVerifier()));
      } catch (GeneralSecurityException e) {
        throw new MlflowException("Cannot set MLFLOW_TRACKING_INSECURE_TLS: " + e.getMessage(), e);
      }
    }
    return b.build();
  }
}
