package io.genaibatch.mlflow;

/**
 * One file of an artifact directory listing.
 *
 * @param path relative to the listed directory, '/'-separated, checked never to leave it
 * @param size bytes, or -1 when the store does not say
 */
public record ArtifactFile(String path, long size) {
  public ArtifactFile {
    path = checkRelative(path);
  }

  /**
   * Refuses a listing entry that would escape the target directory.
   *
   * @throws MlflowException naming the entry
   */
  static String checkRelative(String path) {
    if (path == null || path.isEmpty()) {
      throw new MlflowException("Artifact listing has an entry with an empty path");
    }
    String p = path.replace('\\', '/');
    if (p.startsWith("/") || p.matches("^[A-Za-z]:.*")) {
      throw new MlflowException("Artifact listing entry '" + path + "' is an absolute path; refusing to write outside the model directory");
    }
    for (String part : p.split("/", -1)) {
      if (part.equals("..")) {
        throw new MlflowException("Artifact listing entry '" + path + "' contains '..'; refusing to write outside the model directory");
      }
    }
    return p;
  }
}
