package io.genaibatch.common;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Keeps secrets out of logs, params, tags, outputs and messages: the one place a URI's credentials
 * are cut out before it is shown or written.
 */
public final class Redact {
  /** A host and port as they follow a user-info's last {@code @}: a name, an IPv4 or an IPv6 literal. */
  private static final String HOST = "(?:[A-Za-z0-9._~%-]+|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]*)?";
  /** Azure's {@code abfss://container@account}: the part before the {@code @} names the container. */
  private static final String NOT_AZURE = "(?!(?i:abfss?|wasbs?)://[^:@/\\s]*@)";
  /**
   * {@code scheme://user:pass@} up to the last {@code @} that a host follows (a password may hold
   * {@code /}, {@code #}, {@code ?} and {@code @}); when a path holds an {@code @} too, more is cut, never less.
   */
  private static final Pattern USER_INFO =
      Pattern.compile("^" + NOT_AZURE + "([A-Za-z][A-Za-z0-9+.-]*:)?//(?s:.*)@(?=" + HOST + "(?:[/?#]|$))");
  /** A query string: a presigned URL's signature, a SAS token, an access key. */
  private static final Pattern QUERY = Pattern.compile("\\?[^#]*");

  private Redact() {}

  /**
   * {@code uri} without its user-info part and its query string ({@code
   * https://user:pass@host/p?sig=x} -> {@code https://***@host/p?***}); null for null. Pass URIs and
   * paths only: any {@code ?} starts a query.
   */
  public static String uri(String uri) {
    if (uri == null) {
      return null;
    }
    String out = USER_INFO.matcher(uri).replaceFirst(m -> (m.group(1) == null ? "" : m.group(1)) + "//***@");
    return QUERY.matcher(out).replaceFirst("?***");
  }

  /** A URI's user-info inside free text (an exception's message), up to the last {@code @} a host follows. */
  private static final Pattern TEXT_USER_INFO = Pattern.compile("\\b" + NOT_AZURE
      + "([A-Za-z][A-Za-z0-9+.-]*:)//\\S*@(?=" + HOST + "(?![A-Za-z0-9._~%@-]))");
  /** A URI's query string inside free text ({@code dbfs:/} and {@code file:/} URIs too). */
  private static final Pattern TEXT_QUERY = Pattern.compile("(\\b[A-Za-z][A-Za-z0-9+.-]*:/[^\\s?#]*)\\?[^\\s#'\"]*");
  /** A parameter's name that says it holds a credential: {@code sig}, {@code X-Amz-Security-Token}, {@code api_key}. */
  private static final String SECRET_NAME =
      "(?:[\\w.-]*[_.-])?(?:sig|signature|token|secret|password|passwd|pwd|credential|apikey|key)";
  /**
   * A parameter that names a credential, wherever it stands ({@code sig=}, {@code X-Amz-Signature=},
   * {@code access_token=}, {@code password=}): its value, to the next {@code &}, blank or quote.
   */
  private static final Pattern SECRET_PARAM = Pattern.compile("(?i)((?:^|[?&;\\s])" + SECRET_NAME + "=)[^&;\\s'\"#]*");

  /**
   * A regular expression that finds a URI's password or a credential parameter in a text, for
   * another redactor's pattern (Spark's {@code spark.redaction.regex}, which hides a value it finds).
   */
  public static final String CREDENTIAL_REGEX = "://[^\\s/@]*:\\S*@|(?i:[?&]" + SECRET_NAME + "=)";

  /**
   * {@code text} (a message that may quote URIs: an exception's, a server's answer) with every URI's
   * user-info and query string cut out as {@link #uri} does, every credential parameter's value and
   * every credential this JVM remembered too; null for null.
   */
  public static String message(String text) {
    if (text == null) {
      return null;
    }
    String out = TEXT_USER_INFO.matcher(text).replaceAll("$1//***@");
    out = TEXT_QUERY.matcher(out).replaceAll("$1?***");
    out = SECRET_PARAM.matcher(out).replaceAll("$1***");
    // The longest first: a piece of a password must not leave the rest of it standing.
    for (String secret : SECRETS.stream().sorted(Comparator.comparingInt(String::length).reversed()).toList()) {
      out = out.replace(secret, "***");
    }
    return out;
  }

  /** Pieces of credentials this JVM was given, cut out of every {@link #message} wherever they appear. */
  private static final Set<String> SECRETS = ConcurrentHashMap.newKeySet();

  /** Where a password's pieces meet, for a client that cuts it there. */
  private static final Pattern PIECES = Pattern.compile("[:@/?#]");

  /** Shorter pieces of a credential are not remembered: they would cut ordinary words out of messages. */
  private static final int SHORTEST_PIECE = 4;

  /**
   * Remembers the credentials in {@code uri} (its user-info's password as given and decoded, and its
   * pieces on either side of an {@code @}, {@code :}, {@code /}, {@code ?} or {@code #}; its query
   * string and each credential parameter's value), so that a message quoting them in pieces (a client
   * that took the part after a password's {@code @} for a host name) is redacted too.
   */
  public static void rememberUri(String uri) {
    if (uri == null) {
      return;
    }
    Matcher m = USER_INFO.matcher(uri);
    String rest = uri;
    if (m.find()) {
      String userInfo = m.group().substring(m.group().indexOf("//") + 2, m.group().length() - 1);
      // The user's name is no secret (and often an ordinary word): the password and its pieces are.
      String password = userInfo.substring(userInfo.indexOf(':') + 1);
      for (String whole : List.of(password, decoded(password))) {
        rememberSecret(whole);
        for (String piece : PIECES.split(whole, -1)) {
          rememberSecret(piece);
        }
      }
      rest = uri.substring(m.end());
    }
    Matcher q = QUERY.matcher(rest);
    if (q.find()) {
      rememberSecret(q.group().substring(1));
      Matcher p = SECRET_PARAM.matcher(q.group());
      while (p.find()) {
        rememberSecret(q.group().substring(p.end(1), p.end()));
      }
    }
  }

  /** {@code text} percent-decoded as a URI's user-info is ({@code +} stays); as given when it is no valid encoding. */
  private static String decoded(String text) {
    try {
      return URLDecoder.decode(text.replace("+", "%2B"), StandardCharsets.UTF_8);
    } catch (IllegalArgumentException e) {
      return text;
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

  /**
   * {@code e} to throw where another process logs it (an executor's task failure, which Spark logs
   * and sends to the driver): {@code e} itself when no message of it or its causes quotes a
   * credential, else an exception that shows as {@code e} would, every message passed through
   * {@link #message}.
   */
  public static RuntimeException unchecked(RuntimeException e) {
    for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
      if (t.getMessage() != null && !t.getMessage().equals(message(t.getMessage()))) {
        RuntimeException shown = new RedactedException(e.getClass().getName() + ": " + message(e.getMessage()),
            throwable(e.getCause()));
        shown.setStackTrace(e.getStackTrace());
        return shown;
      }
    }
    return e;
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

  /** An unchecked exception as logs show it, its message redacted; its text names the original class. */
  private static final class RedactedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    RedactedException(String message, Throwable cause) {
      super(message, cause, false, true);
    }

    @SuppressWarnings("OverrideThrowableToString") // as RedactedThrowable's
    @Override
    public String toString() {
      return getMessage();
    }
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
