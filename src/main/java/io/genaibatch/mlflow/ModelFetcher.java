package io.genaibatch.mlflow;

import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Turns a resolved model into local folders: the MLflow model directory (fetched into the
 * per-host {@link ModelCache} unless it is already local) and the onnxruntime-genai folder in it.
 */
public final class ModelFetcher {
  private ModelFetcher() {}

  /**
   * A model ready to load on this host.
   *
   * @param modelDir the MLflow model directory (or the plain onnxruntime-genai folder)
   * @param genaiDir the folder holding {@code genai_config.json}
   * @param mlModel the parsed {@code MLmodel}, or null for a plain onnxruntime-genai folder
   * @param downloaded whether this call downloaded it
   * @param fetchMillis time spent fetching
   * @param fetchedBytes bytes this call downloaded (0 for a local folder or a cached copy)
   */
  public record LocalModel(Path modelDir, Path genaiDir, MlModel mlModel, boolean downloaded, double fetchMillis,
      long fetchedBytes) implements Serializable {

    /** Download throughput in MB/s, NaN when nothing was downloaded. */
    public double fetchMbPerSecond() {
      return fetchedBytes > 0 && fetchMillis > 0 ? fetchedBytes / 1e6 / (fetchMillis / 1e3) : Double.NaN;
    }
  }

  /**
   * Fetches (once per host) and inspects a model.
   *
   * @param tracking needed for {@code mlflow-artifacts:} locations; may be null otherwise
   */
  public static LocalModel fetch(ResolvedModel model, TrackingConnection tracking, ModelCache cache) {
    ArtifactDirectory dir = ArtifactDirectory.open(model.artifactUri(), tracking);
    Path local;
    boolean downloaded = false;
    double millis = 0;
    long bytes = 0;
    if (dir instanceof LocalArtifactDirectory l) {
      local = l.root();
      if (!Files.isDirectory(local)) {
        throw new MlflowException("Model " + model.uri() + ": folder " + local + " does not exist");
      }
    } else {
      ModelCache.Fetched f = cache.fetch(model.identity(), dir);
      local = f.dir();
      downloaded = f.downloaded();
      millis = f.millis();
      bytes = f.bytes();
    }
    if (Files.isRegularFile(local.resolve(MlModel.FILE_NAME))) {
      MlModel ml = MlModel.read(local);
      return new LocalModel(local, ml.findGenaiFolder(local), ml, downloaded, millis, bytes);
    }
    if (MlModel.isGenaiFolder(local)) {
      return new LocalModel(local, local, null, downloaded, millis, bytes);
    }
    throw new MlflowException("Model " + model.uri() + " at " + local + " has neither an MLmodel file nor a "
        + MlModel.GENAI_CONFIG_FILE + ": pass an MLflow model (models:/..., runs:/...) or an onnxruntime-genai folder");
  }
}
