package io.genaibatch.mlflow;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import org.mlflow.api.proto.ModelRegistry.ModelVersion;

/**
 * Resolves every model URI form to the artifact directory holding its {@code MLmodel}, as MLflow's
 * own {@code mlflow.pyfunc.load_model} would: registry versions, aliases and {@code latest},
 * MLflow 3 logged models (whose artifacts live under the experiment, not the run), runs, and
 * storage paths.
 */
public final class ModelResolver {
  private final TrackingConnection tracking;

  /** @param tracking the tracking server; may be null when only storage paths are resolved */
  public ModelResolver(TrackingConnection tracking) {
    this.tracking = tracking;
  }

  /**
   * Resolves {@code uri} to where its artifacts are, asking the tracking server where needed.
   *
   * @throws MlflowException naming the URI and what was not found
   */
  public ResolvedModel resolve(ModelUri uri) {
    if (uri.needsTracking() && tracking == null) {
      throw new MlflowException("Model URI " + uri + " needs an MLflow tracking server: pass --tracking-uri or set "
          + TrackingConnection.TRACKING_URI_ENV);
    }
    try {
      return switch (uri.kind()) {
        case REGISTRY_VERSION -> version(uri, uri.name(), uri.ref());
        case REGISTRY_ALIAS -> alias(uri);
        case REGISTRY_LATEST -> latest(uri);
        case LOGGED_MODEL -> logged(uri, uri.ref());
        case RUN -> run(uri);
        case MLFLOW_ARTIFACTS, HADOOP -> new ResolvedModel(uri, uri.path(), null, null, null, null);
        case LOCAL -> new ResolvedModel(uri, LocalArtifactDirectory.of(uri.path()).uri(), null, null, null, null);
      };
    } catch (MlflowException e) {
      // Every step below says what it did not find; the URI is named here, once.
      throw new MlflowException("Cannot resolve model " + uri + ": " + e.getMessage(), e);
    }
  }

  private ResolvedModel version(ModelUri uri, String name, String version) {
    ModelVersion mv;
    try {
      mv = tracking.client().getModelVersion(name, version);
    } catch (RuntimeException e) {
      throw new MlflowException("registered model '" + name + "' has no version "
          + version + " at " + tracking.trackingUri() + " (" + TrackingConnection.rootMessage(e) + ")", e);
    }
    String download = tracking.get("model-versions/get-download-uri", "name", name, "version", version)
        .path("artifact_uri").asText(null);
    if (download == null || download.isEmpty()) {
      download = mv.getSource();
    }
    String modelId = null;
    String source = mv.getSource();
    if (source != null && source.startsWith("models:/m-")) {
      modelId = source.substring("models:/".length()).replaceAll("/+$", "");
    }
    JsonNode raw = tracking.get("model-versions/get", "name", name, "version", version).path("model_version");
    if (raw.hasNonNull("model_id")) {
      modelId = raw.get("model_id").asText();
    }
    return new ResolvedModel(uri, download, name, version, modelId, mv.getRunId().isEmpty() ? null : mv.getRunId());
  }

  private ResolvedModel alias(ModelUri uri) {
    JsonNode mv;
    try {
      mv = tracking.get("registered-models/alias", "name", uri.name(), "alias", uri.ref()).path("model_version");
    } catch (TrackingConnection.MlflowHttpError e) {
      if (e.notFound()) {
        throw new MlflowException("registered model '" + uri.name()
            + "' has no alias '" + uri.ref() + "' at " + tracking.trackingUri()
            + ". Set it with MlflowClient().set_registered_model_alias(name, alias, version).", e);
      }
      throw e;
    }
    return version(uri, uri.name(), mv.path("version").asText());
  }

  private ResolvedModel latest(ModelUri uri) {
    JsonNode res = tracking.get("model-versions/search", "filter", "name='" + uri.name().replace("'", "\\'") + "'",
        "max_results", "1000");
    long best = -1;
    for (JsonNode v : res.path("model_versions")) {
      best = Math.max(best, v.path("version").asLong(-1));
    }
    if (best < 0) {
      throw new MlflowException("registered model '" + uri.name()
          + "' has no versions at " + tracking.trackingUri());
    }
    return version(uri, uri.name(), Long.toString(best));
  }

  private ResolvedModel logged(ModelUri uri, String id) {
    JsonNode info;
    try {
      info = tracking.get("logged-models/" + id).path("model").path("info");
    } catch (TrackingConnection.MlflowHttpError e) {
      if (e.notFound() || e.status() == 400) {
        throw new MlflowException("no logged model " + id + " at "
            + tracking.trackingUri() + " (MLflow 3 logged models need an MLflow 3 server)", e);
      }
      throw e;
    }
    String artifact = info.path("artifact_uri").asText(null);
    if (artifact == null) {
      throw new MlflowException("logged model " + id + " has no artifact_uri");
    }
    return new ResolvedModel(uri, artifact, null, null, id, info.path("source_run_id").asText(null));
  }

  private ResolvedModel run(ModelUri uri) {
    String runId = uri.ref();
    JsonNode run;
    try {
      run = tracking.get("runs/get", "run_id", runId).path("run");
    } catch (TrackingConnection.MlflowHttpError e) {
      if (e.notFound()) {
        throw new MlflowException("no run " + runId + " at " + tracking.trackingUri(), e);
      }
      throw e;
    }
    String artifactRoot = run.path("info").path("artifact_uri").asText();
    String path = uri.path();
    ArtifactDirectory inRun = ArtifactDirectory.open(artifactRoot, tracking).resolve(path);
    try {
      if (inRun.exists(MlModel.FILE_NAME)) {
        return new ResolvedModel(uri, inRun.uri(), null, null, null, runId);
      }
    } catch (IOException | MlflowException e) {
      // Not in the run's own artifacts: MLflow 3 keeps logged models under the experiment.
    }
    String experimentId = run.path("info").path("experiment_id").asText();
    JsonNode found = tracking.post("logged-models/search", Map.of(
        "experiment_ids", List.of(experimentId),
        "filter", "source_run_id = '" + runId + "' AND name = '" + path.replace("'", "") + "'",
        "max_results", 1));
    JsonNode models = found.path("models");
    if (models.isArray() && models.size() > 0) {
      JsonNode info = models.get(0).path("info");
      return new ResolvedModel(uri, info.path("artifact_uri").asText(), null, null, info.path("model_id").asText(null), runId);
    }
    throw new MlflowException("run " + runId + " has no MLmodel under '" + path
        + "' and no logged model named '" + path + "'");
  }
}
