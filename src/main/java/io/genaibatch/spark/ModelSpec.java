package io.genaibatch.spark;

import io.genaibatch.common.Redact;
import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.mlflow.ResolvedModel;
import io.genaibatch.mlflow.TrackingConnection;
import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * What an executor needs to fetch and load a model: the resolved model, the tracking server
 * (for {@code mlflow-artifacts:} locations) with the driver's MLflow credentials, the cache
 * folder, and native threads. Shipped inside tasks; {@link #toString()} never shows a secret.
 *
 * @param model where the model is, from the driver's resolution
 * @param trackingUri the tracking server, or null
 * @param mlflowEnv the driver's {@code MLFLOW_TRACKING_*} variables, for executors that lack them
 * @param cacheDir the per-host model cache folder; null for each host's own default
 * @param intraOpThreads native threads per generation call (onnxruntime-genai's batches)
 * @param loopThreads native threads of the decode loop an executor's tasks share: the executor's
 *     cores; 0 when the driver cannot know them (each executor counts its own processors)
 * @param continuous whether windows run through the continuous-batching loop (the model loads for it)
 * @param allowCustomOps whether a model folder may name a custom operator library (native code)
 * @param provider where the model runs; on an accelerator, the task's own device is set by {@link #onDevice}
 */
public record ModelSpec(ResolvedModel model, String trackingUri, Map<String, String> mlflowEnv, String cacheDir,
    int intraOpThreads, int loopThreads, boolean continuous, boolean allowCustomOps, ExecutionProvider provider)
    implements Serializable {

  /** This spec on the accelerator at {@code address}: its own entry in the executor's cache. */
  ModelSpec onDevice(String address) {
    return new ModelSpec(model, trackingUri, mlflowEnv, cacheDir, intraOpThreads, loopThreads, continuous,
        allowCustomOps, provider.onDevice(address));
  }

  /**
   * The decode loop's threads on this executor: {@link #loopThreads}, or this host's processors;
   * never more than the host has (onnxruntime's threads spin while they wait for work, so more
   * threads than processors, say under {@code local[8]} on two cores, would slow every step).
   */
  int executorLoopThreads() {
    int host = Runtime.getRuntime().availableProcessors();
    return loopThreads > 0 ? Math.min(loopThreads, host) : host;
  }

  /** The driver's MLflow credential variables, copied for the executors. */
  public static Map<String, String> driverMlflowEnv() {
    Map<String, String> m = new LinkedHashMap<>();
    for (String k : new String[] {"MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_INSECURE_TLS"}) {
      String v = System.getenv(k);
      if (v != null) {
        m.put(k, v);
      }
    }
    return m;
  }

  /** The key of the executor-wide cache: same model, same load options, same device, same entry. */
  String cacheKey() {
    return modelKey() + "|device=" + provider.options().getOrDefault(ExecutionProvider.DEVICE_ID, "-");
  }

  /** The model and its load options whatever the device: an executor keeps one per GPU it was given. */
  String modelKey() {
    Map<String, String> options = new TreeMap<>(provider.options());
    options.remove(ExecutionProvider.DEVICE_ID);
    return model.identity() + "|threads=" + intraOpThreads + "|loop-threads=" + loopThreads + "|continuous=" + continuous + "|provider="
        + provider.name() + options;
  }

  TrackingConnection connect() {
    if (trackingUri == null) {
      return null;
    }
    Map<String, String> env = new LinkedHashMap<>(System.getenv());
    mlflowEnv.forEach(env::putIfAbsent);
    return TrackingConnection.connect(trackingUri, env);
  }

  @Override
  public String toString() {
    return "ModelSpec[" + Redact.uri(model.uri().raw()) + " -> " + Redact.uri(model.artifactUri()) + ", tracking="
        + Redact.uri(trackingUri)
        + ", credentials=" + (mlflowEnv.isEmpty() ? "none" : "<redacted>") + ", cache=" + cacheDir
        + ", threads=" + intraOpThreads + ", loopThreads=" + loopThreads + ", continuous=" + continuous + ", allowCustomOps=" + allowCustomOps
        + ", provider=" + provider + "]";
  }
}
