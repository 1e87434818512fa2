package io.genaibatch.common;

import java.util.regex.Pattern;

/**
 * Keeps secrets out of logs, params, tags, outputs and messages: the one place a URI's credentials
 * are cut out before it is shown or written.
 */
public final class Redact {
  /**
   * {@code scheme://user:pass@} up to the last {@code @} before the path (a password may hold
   * {@code @}); not Azure's {@code abfss://container@account}, where it names the container.
   */
  private static final Pattern USER_INFO =
      Pattern.compile("^(?!(?i:abfss?|wasbs?):)([A-Za-z][A-Za-z0-9+.-]*:)?//[^/?#]*@");
  /** A query string: a presigned URL's signature, a SAS token, an access key. */
  private static final Pattern QUERY = Pattern.compile("\\?[^#]*");

  private Redact() {}

  /**
   * {@code uri} without its user-info part and its query string ({@code
   * https://user:pass@host/p?sig=x} -> {@code https://***@host/p?***}); null for null. Pass URIs only:
   * any {@code ?} starts a query.
   */
  public static String uri(String uri) {
    if (uri == null) {
      return null;
    }
    String out = USER_INFO.matcher(uri).replaceFirst(m -> (m.group(1) == null ? "" : m.group(1)) + "//***@");
    return QUERY.matcher(out).replaceFirst("?***");
  }
}
