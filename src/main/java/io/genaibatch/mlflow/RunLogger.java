package io.genaibatch.mlflow;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.mlflow.api.proto.Service.CreateRun;
import org.mlflow.api.proto.Service.Metric;
import org.mlflow.api.proto.Service.Param;
import org.mlflow.api.proto.Service.RunStatus;
import org.mlflow.api.proto.Service.RunTag;

/**
 * One MLflow run: created in an experiment (made if missing), params, tags and metrics in
 * batches, and a terminal status. Values are cut to MLflow's limits rather than refused.
 */
public final class RunLogger {
  private static final int PARAM_MAX = 6000;
  private static final int TAG_MAX = 8000;

  private static final ObjectMapper JSON = new ObjectMapper();

  private final TrackingConnection tracking;
  private final String runId;
  private final String experimentId;
  private final Retry retry;
  private String artifactUri;

  private RunLogger(TrackingConnection tracking, String runId, String experimentId, Retry retry) {
    this.tracking = tracking;
    this.runId = runId;
    this.experimentId = experimentId;
    this.retry = retry;
  }

  /**
   * Starts a run in {@code experimentName}, creating the experiment when it does not exist;
   * every call to the server is retried with backoff within {@code retry}'s budget.
   */
  public static RunLogger start(TrackingConnection tracking, String experimentName, String runName,
      Map<String, String> tags, Retry retry) {
    return retry.call("Starting the MLflow run at " + tracking.trackingUri(),
        () -> startOnce(tracking, experimentName, runName, tags, retry));
  }

  private static RunLogger startOnce(TrackingConnection tracking, String experimentName, String runName,
      Map<String, String> tags, Retry retry) {
    String expId;
    try {
      // The REST call, not the Java client's getExperimentByName: that one retries a plain
      // "not found" as if it were rate limiting, and logs warnings for a normal first run.
      String found;
      try {
        found = tracking.get("experiments/get-by-name", "experiment_name", experimentName)
            .path("experiment").path("experiment_id").asText(null);
      } catch (TrackingConnection.MlflowHttpError e) {
        if (!e.notFound()) {
          throw e;
        }
        found = null;
      }
      expId = found != null ? found : tracking.client().createExperiment(experimentName);
    } catch (TrackingConnection.MlflowHttpError e) {
      throw e;
    } catch (RuntimeException e) {
      throw new MlflowException("Cannot open MLflow experiment '" + experimentName + "' at "
          + tracking.trackingUri() + ": " + TrackingConnection.rootMessage(e), e);
    }
    CreateRun.Builder req = CreateRun.newBuilder().setExperimentId(expId).setRunName(runName)
        .setStartTime(System.currentTimeMillis());
    tags.forEach((k, v) -> req.addTags(RunTag.newBuilder().setKey(k).setValue(cut(v, TAG_MAX))));
    String runId = tracking.client().createRun(req.build()).getRunId();
    return new RunLogger(tracking, runId, expId, retry);
  }

  public String runId() {
    return runId;
  }

  public String experimentId() {
    return experimentId;
  }

  public TrackingConnection tracking() {
    return tracking;
  }

  public void logParams(Map<String, String> params) {
    List<Param> ps = new ArrayList<>();
    params.forEach((k, v) -> ps.add(Param.newBuilder().setKey(k).setValue(cut(v == null ? "" : v, PARAM_MAX)).build()));
    for (int i = 0; i < ps.size(); i += 100) {
      List<Param> chunk = ps.subList(i, Math.min(ps.size(), i + 100));
      retry.run("Logging params", () -> tracking.client().logBatch(runId, List.of(), chunk, List.of()));
    }
  }

  public void setTags(Map<String, String> tags) {
    List<RunTag> ts = new ArrayList<>();
    tags.forEach((k, v) -> ts.add(RunTag.newBuilder().setKey(k).setValue(cut(v == null ? "" : v, TAG_MAX)).build()));
    retry.run("Setting tags", () -> tracking.client().logBatch(runId, List.of(), List.of(), ts));
  }

  /** Logs metrics at {@code step}; non-finite values are skipped (MLflow refuses them). */
  public void logMetrics(Map<String, Double> metrics, long step) {
    logMetrics(metrics, step, retry);
  }

  /** Logs metrics once, without retries: for live progress, where a late value is worthless. */
  public void logMetricsOnce(Map<String, Double> metrics, long step) {
    logMetrics(metrics, step, NO_RETRY);
  }

  private static final Retry NO_RETRY = new Retry(Duration.ZERO);

  /**
   * Links the run to the MLflow 3 logged model it scored with ({@code runs/log-inputs} with the
   * model), and from now on logs the run's metrics against that model too, with the prompt set they
   * were measured on: the model's page then shows each run's numbers.
   */
  public void attachModel(String modelId, String datasetName, String datasetDigest) {
    retry.call("Linking the run to logged model " + modelId, () -> tracking.post("runs/log-inputs",
        Map.of("run_id", runId, "models", List.of(Map.of("model_id", modelId)))));
    this.modelId = modelId;
    this.datasetName = datasetName;
    this.datasetDigest = datasetDigest;
  }

  private String modelId;
  private String datasetName;
  private String datasetDigest;

  private void logMetrics(Map<String, Double> metrics, long step, Retry how) {
    // Live progress (NO_RETRY) stays the run's own: the model's page shows what each run ended with.
    if (modelId != null && how != NO_RETRY) {
      logModelMetrics(metrics, step, how);
      return;
    }
    long now = System.currentTimeMillis();
    List<Metric> ms = new ArrayList<>();
    metrics.forEach((k, v) -> {
      if (v != null && Double.isFinite(v)) {
        ms.add(Metric.newBuilder().setKey(k).setValue(v).setTimestamp(now).setStep(step).build());
      }
    });
    for (int i = 0; i < ms.size(); i += 500) {
      List<Metric> chunk = ms.subList(i, Math.min(ms.size(), i + 500));
      how.run("Logging metrics", () -> tracking.client().logBatch(runId, chunk, List.of(), List.of()));
    }
  }

  /** As {@link #logMetrics}, through the REST call: the Java client's Metric has no {@code model_id}. */
  private void logModelMetrics(Map<String, Double> metrics, long step, Retry how) {
    long now = System.currentTimeMillis();
    List<Map<String, Object>> ms = new ArrayList<>();
    metrics.forEach((k, v) -> {
      if (v != null && Double.isFinite(v)) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("key", k);
        m.put("value", v);
        m.put("timestamp", now);
        m.put("step", step);
        m.put("model_id", modelId);
        m.put("dataset_name", datasetName);
        m.put("dataset_digest", datasetDigest);
        ms.add(m);
      }
    });
    for (int i = 0; i < ms.size(); i += 500) {
      List<Map<String, Object>> chunk = ms.subList(i, Math.min(ms.size(), i + 500));
      how.call("Logging metrics", () -> tracking.post("runs/log-batch", Map.of("run_id", runId, "metrics", chunk)));
    }
  }

  public void finish(boolean ok) {
    retry.run("Ending the run", () -> tracking.client().setTerminated(runId,
        ok ? RunStatus.FINISHED : RunStatus.FAILED, System.currentTimeMillis()));
  }

  /** The run's artifact root, e.g. {@code mlflow-artifacts:/1/RUN_ID/artifacts}. */
  public synchronized String artifactUri() {
    if (artifactUri == null) {
      artifactUri = retry.call("Reading the run", () -> tracking.get("runs/get", "run_id", runId))
          .path("run").path("info").path("artifact_uri").asText();
    }
    return artifactUri;
  }

  /** Uploads a local file to {@code relativePath} under the run's artifacts, in Java. */
  public void logArtifact(Path file, String relativePath) {
    retry.run("Uploading artifact " + relativePath, () -> {
      try {
        ArtifactDirectory.open(artifactUri(), tracking).upload(file, relativePath);
      } catch (IOException e) {
        throw new MlflowException("Cannot upload " + relativePath + " to " + artifactUri() + ": " + e.getMessage(), e);
      }
    });
  }

  /**
   * Logs a table as MLflow's {@code log_table} does: a JSON file with {@code columns} and
   * {@code data}, and the run tag {@code mlflow.loggedArtifacts} that the UI and {@code
   * mlflow.load_table} read.
   */
  public void logTable(List<String> columns, List<List<Object>> rows, String artifactFile, Path tmpDir) {
    try {
      Path f = tmpDir.resolve(artifactFile.replace('/', '_'));
      Map<String, Object> table = new LinkedHashMap<>();
      table.put("columns", columns);
      table.put("data", rows);
      JSON.writeValue(f.toFile(), table);
      logArtifact(f, artifactFile);
    } catch (IOException e) {
      throw new MlflowException("Cannot write table " + artifactFile + ": " + e.getMessage(), e);
    }
    tableArtifacts.add(artifactFile);
    List<Map<String, String>> tag = new ArrayList<>();
    for (String t : tableArtifacts) {
      // "path" before "type": mlflow.load_table finds tables with a LIKE on this exact order.
      Map<String, String> entry = new LinkedHashMap<>();
      entry.put("path", t);
      entry.put("type", "table");
      tag.add(entry);
    }
    try {
      setTags(Map.of("mlflow.loggedArtifacts", JSON.writeValueAsString(tag)));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private final List<String> tableArtifacts = new ArrayList<>();

  /**
   * Logs the input as an MLflow dataset ({@code runs/log-inputs}).
   *
   * @param source JSON of the dataset source, e.g. {@code {"uri": "..."}}
   * @param schema the columns as MLflow colspecs: name and type
   */
  public void logInput(String name, String digest, String sourceType, String source,
      List<Map<String, Object>> schema, long rows, String context) {
    try {
      Map<String, Object> dataset = new LinkedHashMap<>();
      dataset.put("name", name);
      dataset.put("digest", digest);
      dataset.put("source_type", sourceType);
      dataset.put("source", source);
      dataset.put("schema", JSON.writeValueAsString(Map.of("mlflow_colspec", schema)));
      dataset.put("profile", JSON.writeValueAsString(Map.of("num_rows", rows)));
      Map<String, Object> body = Map.of("run_id", runId, "datasets", List.of(Map.of(
          "tags", List.of(Map.of("key", "mlflow.data.context", "value", context)), "dataset", dataset)));
      retry.call("Logging the input dataset", () -> tracking.post("runs/log-inputs", body));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private static String cut(String s, int max) {
    return s.length() <= max ? s : s.substring(0, max - 3) + "...";
  }
}
