package io.genaibatch.mlflow;

import java.util.ArrayList;
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

  private final TrackingConnection tracking;
  private final String runId;
  private final String experimentId;

  private RunLogger(TrackingConnection tracking, String runId, String experimentId) {
    this.tracking = tracking;
    this.runId = runId;
    this.experimentId = experimentId;
  }

  /** Starts a run in {@code experimentName}, creating the experiment when it does not exist. */
  public static RunLogger start(TrackingConnection tracking, String experimentName, String runName,
      Map<String, String> tags) {
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
    } catch (RuntimeException e) {
      throw new MlflowException("Cannot open MLflow experiment '" + experimentName + "' at "
          + tracking.trackingUri() + ": " + TrackingConnection.rootMessage(e), e);
    }
    CreateRun.Builder req = CreateRun.newBuilder().setExperimentId(expId).setRunName(runName)
        .setStartTime(System.currentTimeMillis());
    tags.forEach((k, v) -> req.addTags(RunTag.newBuilder().setKey(k).setValue(cut(v, TAG_MAX))));
    String runId = tracking.client().createRun(req.build()).getRunId();
    return new RunLogger(tracking, runId, expId);
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
      tracking.client().logBatch(runId, List.of(), ps.subList(i, Math.min(ps.size(), i + 100)), List.of());
    }
  }

  public void setTags(Map<String, String> tags) {
    List<RunTag> ts = new ArrayList<>();
    tags.forEach((k, v) -> ts.add(RunTag.newBuilder().setKey(k).setValue(cut(v == null ? "" : v, TAG_MAX)).build()));
    tracking.client().logBatch(runId, List.of(), List.of(), ts);
  }

  /** Logs metrics at {@code step}; non-finite values are skipped (MLflow refuses them). */
  public void logMetrics(Map<String, Double> metrics, long step) {
    long now = System.currentTimeMillis();
    List<Metric> ms = new ArrayList<>();
    metrics.forEach((k, v) -> {
      if (v != null && Double.isFinite(v)) {
        ms.add(Metric.newBuilder().setKey(k).setValue(v).setTimestamp(now).setStep(step).build());
      }
    });
    for (int i = 0; i < ms.size(); i += 500) {
      tracking.client().logBatch(runId, ms.subList(i, Math.min(ms.size(), i + 500)), List.of(), List.of());
    }
  }

  public void finish(boolean ok) {
    tracking.client().setTerminated(runId, ok ? RunStatus.FINISHED : RunStatus.FAILED, System.currentTimeMillis());
  }

  private static String cut(String s, int max) {
    return s.length() <= max ? s : s.substring(0, max - 3) + "...";
  }
}
