package io.genaibatch.common;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
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

  /** A URI's user-info inside free text (an exception's message), up to the last {@code @} before the path. */
  private static final Pattern TEXT_USER_INFO =
      Pattern.compile("\\b((?!(?i:abfss?|wasbs?):)[A-Za-z][A-Za-z0-9+.-]*:)//[^\\s/?#]*@");
  /** A URI's query string inside free text. */
  private static final Pattern TEXT_QUERY = Pattern.compile("(\\b[A-Za-z][A-Za-z0-9+.-]*://[^\\s?#]*)\\?[^\\s#'\"]*");

  /**
   * {@code text} (a message that may quote URIs: an exception's, a server's answer) with every URI's
   * user-info and query string cut out as {@link #uri} does; null for null.
   */
  public static String message(String text) {
    if (text == null) {
      return null;
    }
    String out = TEXT_USER_INFO.matcher(text).replaceAll("$1//***@");
    out = TEXT_QUERY.matcher(out).replaceAll("$1?***");
    for (String secret : SECRETS) {
      out = out.replace(secret, "***");
    }
    return out;
  }

  /** Pieces of credentials this JVM was given, cut out of every {@link #message} wherever they appear. */
  private static final Set<String> SECRETS = ConcurrentHashMap.newKeySet();

  /** Where a password's pieces meet, for a client that cuts it there. */
  private static final Pattern PIECES = Pattern.compile("[:@]");

  /** Shorter pieces of a credential are not remembered: they would cut ordinary words out of messages. */
  private static final int SHORTEST_PIECE = 4;

  /**
   * Remembers the credentials in {@code uri} (its user-info's password, and its pieces on either
   * side of an {@code @} or {@code :}; its query string), so that a message quoting them in pieces (a client
   * that took the part after a password's {@code @} for a host name) is redacted too.
   */
  public static void rememberUri(String uri) {
    if (uri == null) {
      return;
    }
    Matcher m = USER_INFO.matcher(uri);
    if (m.find()) {
      String userInfo = m.group().substring(m.group().indexOf("//") + 2, m.group().length() - 1);
      // The user's name is no secret (and often an ordinary word): the password and its pieces are.
      String password = userInfo.substring(userInfo.indexOf(':') + 1);
      rememberSecret(password);
      for (String piece : PIECES.split(password, -1)) {
        rememberSecret(piece);
      }
    }
    Matcher q = QUERY.matcher(uri);
    if (q.find()) {
      rememberSecret(q.group().substring(1));
    }
  }

  /** Remembers {@code secret} (a password, a token), cut out of every {@link #message}. */
  public static void rememberSecret(String secret) {
    if (secret != null && secret.length() >= SHORTEST_PIECE) {
      SECRETS.add(secret);
    }
  }

  /**
   * {@code e} for a log: the same classes, stack traces and causes, every message passed through
   * {@link #message}. Null for null.
   */
  public static Throwable throwable(Throwable e) {
    return throwable(e, 0);
  }

  private static Throwable throwable(Throwable e, int depth) {
    if (e == null || depth > 16) {
      return null;
    }
    Throwable shown = new RedactedThrowable(e.getClass().getName() + ": " + message(e.getMessage()),
        throwable(e.getCause(), depth + 1));
    shown.setStackTrace(e.getStackTrace());
    return shown;
  }

  /** A throwable as logs show it, its message redacted; its text names the original class. */
  private static final class RedactedThrowable extends Throwable {
    private static final long serialVersionUID = 1L;

    RedactedThrowable(String message, Throwable cause) {
      super(message, cause, false, true);
    }

    // Logs print toString(): the original class and its redacted message, not this wrapper's name.
    @SuppressWarnings("OverrideThrowableToString")
    @Override
    public String toString() {
      return getMessage();
    }
  }
}
