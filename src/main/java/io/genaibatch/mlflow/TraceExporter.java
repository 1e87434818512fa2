package io.genaibatch.mlflow;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.ByteString;
import io.genaibatch.common.Redact;
import io.genaibatch.common.Sha256;
import io.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
import io.opentelemetry.proto.common.v1.AnyValue;
import io.opentelemetry.proto.common.v1.ArrayValue;
import io.opentelemetry.proto.common.v1.KeyValue;
import io.opentelemetry.proto.common.v1.KeyValueList;
import io.opentelemetry.proto.resource.v1.Resource;
import io.opentelemetry.proto.trace.v1.ResourceSpans;
import io.opentelemetry.proto.trace.v1.ScopeSpans;
import io.opentelemetry.proto.trace.v1.Span;
import io.opentelemetry.proto.trace.v1.Status;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * Sends scored rows to an MLflow 3 server as traces, one trace of one span per row, a batch at a
 * time: the spans through the server's OpenTelemetry endpoint ({@code POST /v1/traces}, OTLP
 * protobuf, many traces in one request; the server makes each trace's record from its span), then
 * the batch's traces linked to the run ({@code traces/link-to-run}, at most {@value #BATCH} ids a
 * call). Two calls per {@value #BATCH} rows, where MLflow's own exporter makes two per trace.
 *
 * <p>A trace's id is a hash of the run and the row id, so a batch sent twice (a retry) makes the
 * same traces again rather than new ones. What lives here is what no library does: MLflow's Java
 * client has no tracing and the OpenTelemetry SDK traces live code, not rows already scored.
 */
public final class TraceExporter {
  /** Rows per request: the most that {@code traces/link-to-run} takes at once. */
  public static final int BATCH = 100;
  static final String OTLP_PATH = "/v1/traces";
  static final String EXPERIMENT_HEADER = "x-mlflow-experiment-id";
  /** MLflow's span attributes (mlflow/tracing/constant.py, SpanAttributeKey), MLflow 3.6. */
  static final String SPAN_TYPE = "mlflow.spanType";
  static final String SPAN_INPUTS = "mlflow.spanInputs";
  static final String SPAN_OUTPUTS = "mlflow.spanOutputs";
  static final String TOKEN_USAGE = "mlflow.chat.tokenUsage";
  private static final ObjectMapper JSON = new ObjectMapper();

  /**
   * One scored row as a span.
   *
   * @param rowId the row's id (the id column, else a hash of its input), also what the trace id is made from
   * @param chat whether the inputs are chat messages (a CHAT_MODEL span) or a prompt (an LLM span)
   * @param inputs the span's inputs, a JSON object ({@code {"prompt": ...}} or {@code {"messages": [...]}})
   * @param outputs the span's outputs as JSON, or null for an error row
   * @param endEpochMs when the row's answer was done; the span starts {@code latencyMs} before
   * @param error the row's error, or null
   * @param attributes further attributes (finish reason, the model), each a string
   */
  public record Row(String rowId, boolean chat, String inputs, String outputs, int promptTokens,
      int completionTokens, double latencyMs, long endEpochMs, String error, Map<String, String> attributes) {}

  private final TrackingConnection tracking;
  private final String experimentId;
  private final String runId;
  private final Retry retry;
  private long sent;

  public TraceExporter(TrackingConnection tracking, String experimentId, String runId, Retry retry) {
    this.tracking = tracking;
    this.experimentId = experimentId;
    this.runId = runId;
    this.retry = retry;
  }

  /** The traces sent so far. */
  public long sent() {
    return sent;
  }

  /** Sends one batch of at most {@value #BATCH} rows and links its traces to the run. */
  public void export(List<Row> batch) {
    ScopeSpans.Builder scope = ScopeSpans.newBuilder();
    List<String> traceIds = new ArrayList<>(batch.size());
    for (Row r : batch) {
      byte[] id = ids(r.rowId());
      traceIds.add(traceId(id));
      scope.addSpans(span(r, id));
    }
    byte[] body = ExportTraceServiceRequest.newBuilder().addResourceSpans(ResourceSpans.newBuilder()
        .setResource(Resource.newBuilder().addAttributes(kv("service.name", AnyValue.newBuilder()
            .setStringValue("genai-batch").build())))
        .addScopeSpans(scope)).build().toByteArray();
    retry.run("Sending " + batch.size() + " traces", () -> send(body));
    // Not the OTLP header x-mlflow-run-id, which would save this call: MLflow 3.17's endpoint takes it,
    // but 3.6.0's (mlflow/server/otel_api.py) reads no such header, and 3.17 logs a failed link and
    // answers 200, where this call's failure is retried and, past the budget, ends the job with exit 4.
    retry.call("Linking traces to the run", () -> tracking.post("traces/link-to-run",
        Map.of("run_id", runId, "trace_ids", traceIds)));
    sent += batch.size();
  }

  private void send(byte[] body) {
    try {
      tracking.postBytes(OTLP_PATH, "application/x-protobuf", body, Map.of(EXPERIMENT_HEADER, experimentId));
    } catch (TrackingConnection.MlflowHttpError e) {
      // 404/405: no such endpoint (MLflow 2.x, or an app without it); 501: a file store behind the server.
      if (e.status() == 404 || e.status() == 405 || e.status() == 501) {
        throw new Unsupported("The tracking server " + Redact.uri(tracking.trackingUri()) + " takes no traces at " + OTLP_PATH
            + " (MLflow 3.6 or newer with a database backend does): " + e.getMessage());
      }
      throw e;
    }
  }

  /** The server has no trace endpoint that takes spans: not retried, the job goes on without traces. */
  public static final class Unsupported extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Unsupported(String message) {
      super(message);
    }
  }

  /** The id of the trace a row of this run was (or will be) sent as: the same for the same run and row id. */
  public String traceId(String rowId) {
    return traceId(ids(rowId));
  }

  private static String traceId(byte[] ids) {
    return "tr-" + HexFormat.of().formatHex(ids, 0, 16);
  }

  /** The trace id (16 bytes) then the span id (8 bytes): a hash of the run and the row id. */
  private byte[] ids(String rowId) {
    return HexFormat.of().parseHex(Sha256.hexPrefix(runId + "\u0000" + rowId, 48));
  }

  private static Span span(Row r, byte[] ids) {
    long end = r.endEpochMs() * 1_000_000L;
    long start = end - Math.round(r.latencyMs() * 1_000_000.0);
    Span.Builder s = Span.newBuilder().setTraceId(ByteString.copyFrom(ids, 0, 16))
        .setSpanId(ByteString.copyFrom(ids, 16, 8)).setName(r.chat() ? "chat" : "generate")
        .setKind(Span.SpanKind.SPAN_KIND_INTERNAL).setStartTimeUnixNano(start).setEndTimeUnixNano(end);
    s.addAttributes(kv(SPAN_TYPE, text(r.chat() ? "CHAT_MODEL" : "LLM")));
    s.addAttributes(kv(SPAN_INPUTS, any(parse(r.inputs()))));
    if (r.outputs() != null) {
      s.addAttributes(kv(SPAN_OUTPUTS, any(parse(r.outputs()))));
    }
    ObjectNode usage = JsonNodeFactory.instance.objectNode().put("input_tokens", r.promptTokens())
        .put("output_tokens", r.completionTokens()).put("total_tokens", r.promptTokens() + r.completionTokens());
    s.addAttributes(kv(TOKEN_USAGE, any(usage)));
    s.addAttributes(kv("genai_batch.row_id", text(r.rowId())));
    s.addAttributes(kv("genai_batch.latency_ms", AnyValue.newBuilder().setDoubleValue(r.latencyMs()).build()));
    r.attributes().forEach((k, v) -> {
      if (v != null) {
        s.addAttributes(kv(k, text(v)));
      }
    });
    s.setStatus(r.error() == null ? Status.newBuilder().setCode(Status.StatusCode.STATUS_CODE_OK)
        : Status.newBuilder().setCode(Status.StatusCode.STATUS_CODE_ERROR).setMessage(r.error()));
    return s.build();
  }

  private static JsonNode parse(String json) {
    try {
      return JSON.readTree(json);
    } catch (IOException e) {
      return JsonNodeFactory.instance.textNode(json);
    }
  }

  private static KeyValue kv(String key, AnyValue value) {
    return KeyValue.newBuilder().setKey(key).setValue(value).build();
  }

  private static AnyValue text(String s) {
    return AnyValue.newBuilder().setStringValue(s).build();
  }

  /** A JSON value as OTLP's AnyValue; MLflow's server turns it back into the same JSON. */
  static AnyValue any(JsonNode n) {
    AnyValue.Builder b = AnyValue.newBuilder();
    if (n == null || n.isNull() || n.isMissingNode()) {
      return b.build();
    } else if (n.isObject()) {
      KeyValueList.Builder kvs = KeyValueList.newBuilder();
      n.fields().forEachRemaining(e -> kvs.addValues(kv(e.getKey(), any(e.getValue()))));
      return b.setKvlistValue(kvs).build();
    } else if (n.isArray()) {
      ArrayValue.Builder a = ArrayValue.newBuilder();
      n.forEach(v -> a.addValues(any(v)));
      return b.setArrayValue(a).build();
    } else if (n.isBoolean()) {
      return b.setBoolValue(n.booleanValue()).build();
    } else if (n.isIntegralNumber()) {
      return b.setIntValue(n.longValue()).build();
    } else if (n.isNumber()) {
      return b.setDoubleValue(n.doubleValue()).build();
    }
    return b.setStringValue(n.asText()).build();
  }
}
