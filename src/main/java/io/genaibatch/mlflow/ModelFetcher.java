package io.genaibatch.mlflow;

import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;
import org.apache.hadoop.conf.Configuration;

/**
 * Turns a resolved model into local folders: the MLflow model directory (fetched into the
 * per-host {@link ModelCache} unless it is already local) and the onnxruntime-genai folder in it.
 */
public final class ModelFetcher {
  private ModelFetcher() {}

  /**
   * Where models in Hadoop-backed stores ({@code s3a:}, {@code abfss:}, {@code gs:}, {@code dbfs:})
   * take their Hadoop configuration from now on: the job's, so its {@code spark.hadoop.*} settings
   * and credentials hold on executors as on the driver.
   */
  public static void useHadoopConfigurations(Supplier<Configuration> supplier) {
    HadoopArtifactDirectory.useConfigurations(supplier);
  }

  /**
   * A model ready to load on this host.
   *
   * @param modelDir the MLflow model directory (or the plain onnxruntime-genai folder)
   * @param genaiDir the folder holding {@code genai_config.json}
   * @param mlModel the parsed {@code MLmodel}, or null for a plain onnxruntime-genai folder
   * @param downloaded whether this call downloaded it
   * @param fetchMillis time spent fetching
   * @param fetchedBytes bytes this call downloaded (0 for a local folder or a cached copy)
   * @param listed for a metadata-only copy, every file of the model relative to {@code modelDir},
   *     fetched or not; empty for a whole copy or a local folder
   */
  public record LocalModel(Path modelDir, Path genaiDir, MlModel mlModel, boolean downloaded, double fetchMillis,
      long fetchedBytes, List<String> listed) implements Serializable {

    /**
     * Whether the model has {@code file} (a path relative to {@code genaiDir}): on disk, or, in a
     * metadata-only copy, in the store's listing.
     */
    public boolean has(String file) {
      Path p = genaiDir.resolve(file).normalize();
      return Files.isRegularFile(p) || listed.contains(modelDir.relativize(p).toString().replace('\\', '/'));
    }

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
    return fetch(model, tracking, cache, false);
  }

  /**
   * What the driver reads to check a model and the input before scoring: {@code MLmodel},
   * {@code genai_config.json}, the tokenizer and chat template files and other small files, never
   * the weights ({@link #isMetadata}). A local folder is read where it is.
   */
  public static LocalModel fetchMetadata(ResolvedModel model, TrackingConnection tracking, ModelCache cache) {
    return fetch(model, tracking, cache, true);
  }

  /** Weights are ONNX graphs and their external data; anything else above 64 MB is treated as weights too. */
  static boolean isMetadata(ArtifactFile f) {
    String name = f.path().toLowerCase(Locale.ROOT);
    boolean weights = name.endsWith(".onnx") || name.endsWith(".onnx.data") || name.endsWith(".onnx_data")
        || name.endsWith(".data") || name.endsWith(".bin") || name.endsWith(".safetensors");
    return !weights && f.size() <= METADATA_MAX_BYTES;
  }

  static final long METADATA_MAX_BYTES = 64L << 20;

  private static LocalModel fetch(ResolvedModel model, TrackingConnection tracking, ModelCache cache,
      boolean metadataOnly) {
    ArtifactDirectory dir = ArtifactDirectory.open(model.artifactUri(), tracking);
    Path local;
    boolean downloaded = false;
    double millis = 0;
    long bytes = 0;
    List<String> listed = List.of();
    if (dir instanceof LocalArtifactDirectory l) {
      local = l.root();
      if (!Files.isDirectory(local)) {
        throw new MlflowException("Model " + model.uri() + ": folder " + local + " does not exist");
      }
    } else {
      ModelCache.Fetched f = metadataOnly
          ? cache.fetchPart(model.identity(), "metadata", dir, ModelFetcher::isMetadata)
          : cache.fetch(model.identity(), dir);
      if (metadataOnly) {
        listed = ModelCache.listing(f);
      }
      local = f.dir();
      downloaded = f.downloaded();
      millis = f.millis();
      bytes = f.bytes();
    }
    if (Files.isRegularFile(local.resolve(MlModel.FILE_NAME))) {
      MlModel ml = MlModel.read(local);
      return new LocalModel(local, ml.findGenaiFolder(local), ml, downloaded, millis, bytes, listed);
    }
    if (MlModel.isGenaiFolder(local)) {
      return new LocalModel(local, local, null, downloaded, millis, bytes, listed);
    }
    throw new MlflowException("Model " + model.uri() + " at " + local + " has neither an MLmodel file nor a "
        + MlModel.GENAI_CONFIG_FILE + ": pass an MLflow model (models:/..., runs:/...) or an onnxruntime-genai folder");
  }
}
