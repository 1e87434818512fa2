package io.genaibatch.mlflow;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * A directory in some artifact store, read (and, for run artifacts, written) from Java without
 * MLflow's Python CLI. Implementations: local paths, the tracking server's proxied {@code
 * mlflow-artifacts:} API, and Hadoop file systems ({@code dbfs:}, {@code s3a:}, {@code abfss:},
 * {@code gs:}, {@code hdfs:}).
 */
public interface ArtifactDirectory {

  /** The directory's URI, for messages and provenance. */
  String uri();

  /** Every file below the directory, recursively, with sizes. */
  List<ArtifactFile> listFiles() throws IOException;

  /** Copies one listed file to {@code target} (whose parent exists). */
  void download(ArtifactFile file, Path target) throws IOException;

  /** Writes {@code source} to {@code relativePath} under this directory. */
  void upload(Path source, String relativePath) throws IOException;

  /** True when {@code relativePath} exists as a file. */
  boolean exists(String relativePath) throws IOException;

  /** The sub-directory {@code relativePath}. */
  ArtifactDirectory resolve(String relativePath);

  /**
   * Opens the store behind {@code uri}.
   *
   * @param tracking the tracking server, needed for {@code mlflow-artifacts:} URIs; may be null
   */
  static ArtifactDirectory open(String uri, TrackingConnection tracking) {
    String lower = uri.toLowerCase(Locale.ROOT);
    if (lower.startsWith("mlflow-artifacts:")) {
      if (tracking == null) {
        throw new MlflowException("Artifact URI " + uri + " needs the tracking server that serves it:"
            + " pass --tracking-uri or set " + TrackingConnection.TRACKING_URI_ENV);
      }
      return ProxiedArtifactDirectory.of(uri, tracking);
    }
    ModelUri parsed = ModelUri.parse(uri);
    return switch (parsed.kind()) {
      case LOCAL -> LocalArtifactDirectory.of(uri);
      case HADOOP -> new HadoopArtifactDirectory(uri);
      default -> throw new MlflowException("Artifact URI " + uri + " is not a storage location");
    };
  }
}
