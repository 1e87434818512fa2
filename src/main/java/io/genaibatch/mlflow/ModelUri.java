package io.genaibatch.mlflow;

import java.io.Serializable;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A parsed model URI, one of the forms the job accepts.
 *
 * @param raw the URI as the user gave it
 * @param kind which form
 * @param name registered model name (registry forms)
 * @param ref version number, alias, or "latest" (registry forms); logged model id; run id
 * @param path artifact path inside the run ({@code runs:/}), or the location (path forms)
 */
public record ModelUri(String raw, Kind kind, String name, String ref, String path) implements Serializable {

  public enum Kind {
    /** {@code models:/NAME/VERSION}. */
    REGISTRY_VERSION,
    /** {@code models:/NAME@ALIAS}. */
    REGISTRY_ALIAS,
    /** {@code models:/NAME/latest}. */
    REGISTRY_LATEST,
    /** {@code models:/m-ID}: an MLflow 3 logged model. */
    LOGGED_MODEL,
    /** {@code runs:/RUN_ID/PATH}. */
    RUN,
    /** {@code mlflow-artifacts:/...}: the tracking server's proxied artifact store. */
    MLFLOW_ARTIFACTS,
    /** A local path, {@code file:}, or a Databricks {@code /Volumes/...} path. */
    LOCAL,
    /** {@code dbfs:}, {@code s3a:}, {@code abfss:}, {@code gs:}, {@code hdfs:}: through Hadoop. */
    HADOOP
  }

  private static final Pattern LOGGED = Pattern.compile("models:/(m-[0-9a-fA-F]+)/?");
  private static final Pattern ALIAS = Pattern.compile("models:/([^/@]+)@([^/]+)/?");
  private static final Pattern VERSION = Pattern.compile("models:/([^/@]+)/([^/]+)/?");
  private static final Pattern RUN = Pattern.compile("runs:/([^/]+)/(.+?)/?");

  /**
   * Parses a model URI.
   *
   * @throws IllegalArgumentException naming the URI and the accepted forms
   */
  public static ModelUri parse(String uri) {
    if (uri == null || uri.isBlank()) {
      throw new IllegalArgumentException("No model URI given: " + FORMS);
    }
    String u = uri.trim();
    String lower = u.toLowerCase(Locale.ROOT);
    if (lower.startsWith("models:")) {
      Matcher logged = LOGGED.matcher(u);
      if (logged.matches()) {
        return new ModelUri(u, Kind.LOGGED_MODEL, null, logged.group(1), null);
      }
      Matcher alias = ALIAS.matcher(u);
      if (alias.matches()) {
        return new ModelUri(u, Kind.REGISTRY_ALIAS, alias.group(1), alias.group(2), null);
      }
      Matcher m = VERSION.matcher(u);
      if (m.matches()) {
        String ref = m.group(2);
        if (ref.equalsIgnoreCase("latest")) {
          return new ModelUri(u, Kind.REGISTRY_LATEST, m.group(1), "latest", null);
        }
        if (!ref.matches("[0-9]+")) {
          throw new IllegalArgumentException("Cannot parse model URI " + u + ": version '" + ref
              + "' is not a number; use models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest");
        }
        return new ModelUri(u, Kind.REGISTRY_VERSION, m.group(1), ref, null);
      }
      throw new IllegalArgumentException("Cannot parse model URI " + u + ": " + FORMS);
    }
    if (lower.startsWith("runs:")) {
      Matcher m = RUN.matcher(u);
      if (m.matches()) {
        return new ModelUri(u, Kind.RUN, null, m.group(1), m.group(2));
      }
      throw new IllegalArgumentException("Cannot parse model URI " + u + ": use runs:/RUN_ID/ARTIFACT_PATH");
    }
    if (lower.startsWith("mlflow-artifacts:")) {
      return new ModelUri(u, Kind.MLFLOW_ARTIFACTS, null, null, u);
    }
    if (lower.startsWith("file:") || u.startsWith("/") || !u.matches("^[a-zA-Z][a-zA-Z0-9+.-]*:.*")) {
      return new ModelUri(u, Kind.LOCAL, null, null, u);
    }
    String scheme = lower.substring(0, lower.indexOf(':'));
    return switch (scheme) {
      case "dbfs", "s3a", "s3", "abfss", "abfs", "wasbs", "gs", "hdfs" -> new ModelUri(u, Kind.HADOOP, null, null, u);
      default -> throw new IllegalArgumentException("Cannot parse model URI " + u + ": scheme '" + scheme
          + "' is not supported; " + FORMS);
    };
  }

  static final String FORMS = "use models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/latest,"
      + " models:/m-ID, runs:/RUN_ID/PATH, mlflow-artifacts:/..., or a local, file:, dbfs:,"
      + " /Volumes/..., s3a:, abfss: or gs: model directory";

  /** True for the forms that need a tracking server. */
  public boolean needsTracking() {
    return switch (kind) {
      case REGISTRY_VERSION, REGISTRY_ALIAS, REGISTRY_LATEST, LOGGED_MODEL, RUN, MLFLOW_ARTIFACTS -> true;
      default -> false;
    };
  }

  @Override
  public String toString() {
    return raw;
  }
}
