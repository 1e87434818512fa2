package io.genaibatch.mlflow;

import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Assessments on a trace through MLflow 3's REST API ({@code POST
 * /api/3.0/mlflow/traces/{trace_id}/assessments}): an expectation (what the row should have
 * answered) or feedback (a score of its answer), each from the source {@code CODE}/{@value
 * #SOURCE_ID}. The server (3.6) takes one assessment a call and has no batch form, so a row with
 * a reference and four scores costs five calls.
 */
public final class TraceAssessments {
  /** The expectation's name MLflow's own scorers read the expected answer from (Correctness, the evaluation UI). */
  public static final String EXPECTED_RESPONSE = "expected_response";
  /** Who gave the assessments: the job's own code. */
  public static final String SOURCE_ID = "genai-batch";
  static final String API = "/api/3.0/mlflow/traces/";

  private final TrackingConnection tracking;
  private final Retry retry;
  private long sent;

  public TraceAssessments(TrackingConnection tracking, Retry retry) {
    this.tracking = tracking;
    this.retry = retry;
  }

  /** Logs what the trace's row should have answered, as the expectation {@code name}. */
  public void expectation(String traceId, String name, Object value) {
    create(traceId, name, "expectation", value);
  }

  /** Logs a score of the trace's answer as the feedback {@code name}: a number, a boolean or a string. */
  public void feedback(String traceId, String name, Object value) {
    create(traceId, name, "feedback", value);
  }

  /** The assessments logged so far. */
  public long sent() {
    return sent;
  }

  private void create(String traceId, String name, String kind, Object value) {
    String now = Instant.now().toString();
    Map<String, Object> a = new LinkedHashMap<>();
    a.put("assessment_name", name);
    a.put("trace_id", traceId);
    a.put("source", Map.of("source_type", "CODE", "source_id", SOURCE_ID));
    a.put("create_time", now);
    a.put("last_update_time", now);
    a.put(kind, Map.of("value", value));
    retry.call("Logging " + kind + " '" + name + "' on trace " + traceId,
        () -> tracking.postJson(API + traceId + "/assessments", Map.of("assessment", a)));
    sent++;
  }
}
