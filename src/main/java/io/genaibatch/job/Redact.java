package io.genaibatch.job;

import java.net.URI;

/** Keeps secrets out of logs, params and artifacts. */
final class Redact {
  private Redact() {}

  /** A URI without its user-info part ({@code https://user:pass@host} -> {@code https://***@host}). */
  static String uri(String uri) {
    if (uri == null) {
      return null;
    }
    try {
      URI u = URI.create(uri);
      if (u.getRawUserInfo() == null) {
        return uri;
      }
      return uri.replace(u.getRawUserInfo() + "@", "***@");
    } catch (IllegalArgumentException e) {
      return uri.replaceAll("//[^/@]*@", "//***@");
    }
  }
}
