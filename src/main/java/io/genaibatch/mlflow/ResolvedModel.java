package io.genaibatch.mlflow;

import java.io.Serializable;

/**
 * Where a model URI points, with its provenance.
 *
 * @param uri what the user gave
 * @param artifactUri the directory holding {@code MLmodel} (or the model folder itself)
 * @param registeredName registered model name, or null
 * @param version registered model version, or null
 * @param modelId MLflow 3 logged model id ({@code m-...}), or null
 * @param runId the run that logged it, or null
 */
public record ResolvedModel(
    ModelUri uri, String artifactUri, String registeredName, String version, String modelId, String runId)
    implements Serializable {

  /** A stable key for the local cache: the same model, the same key, on every host. */
  public String identity() {
    StringBuilder sb = new StringBuilder();
    if (registeredName != null) {
      sb.append("registry:").append(registeredName).append('/').append(version).append('|');
    }
    if (modelId != null) {
      sb.append("logged:").append(modelId).append('|');
    }
    return sb.append(artifactUri).toString();
  }

  /** What the output's {@code model_version} column holds: the version, else the logged model id. */
  public String versionLabel() {
    if (version != null) {
      return version;
    }
    return modelId;
  }
}
