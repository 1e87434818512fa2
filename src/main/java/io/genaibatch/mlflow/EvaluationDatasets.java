package io.genaibatch.mlflow;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.common.Redact;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * MLflow 3 evaluation datasets ({@code mlflow.genai.datasets}) through the server's REST API
 * ({@code /api/3.0/mlflow/datasets/...}, MLflow 3.4 and newer): a prompt set registered once under
 * a name that carries its content digest, found again by that name on later nights, its records
 * (inputs and expectations) sent {@value #BATCH} at a time. MLflow's Java client has no such calls.
 */
public final class EvaluationDatasets {
  /** Records per upsert call: one call's body stays small whatever the prompt set's size. */
  public static final int BATCH = 500;
  /** The source type MLflow gives an evaluation dataset logged as a run's input (EvaluationDatasetSource). */
  public static final String SOURCE_TYPE = "mlflow_evaluation_dataset";
  static final String API = "/api/3.0/mlflow/datasets";
  private static final ObjectMapper JSON = new ObjectMapper();

  /**
   * A registered dataset: its id, name, MLflow's own digest of it (what a run's input names), and
   * how many records it holds (the server's count, its profile's {@code num_records}).
   */
  public record Registered(String id, String name, String digest, long records, boolean created) {
    /** The dataset's source as a run's input names it: {@code {"dataset_id": ...}}. */
    public String source() {
      return json(Map.of("dataset_id", id));
    }
  }

  private final TrackingConnection tracking;
  private final Retry retry;

  public EvaluationDatasets(TrackingConnection tracking, Retry retry) {
    this.tracking = tracking;
    this.retry = retry;
  }

  /**
   * The dataset named {@code name} in the experiment, or a new one holding {@code records} when
   * there is none. The caller puts the content's digest in the name, so the same prompts find the
   * same dataset and changed prompts make a new one.
   *
   * @param newRecords each a map with {@code inputs} and {@code expectations}; asked for and read only when
   *     the dataset is new, so a dataset found again costs no read of the rows
   * @throws MlflowException when the server refuses or cannot be reached within the retry budget
   * @throws Unsupported when the server has no evaluation datasets (MLflow before 3.4, or a file store)
   */
  public Registered findOrCreate(String experimentId, String name, Map<String, String> tags,
      Supplier<Iterator<Map<String, Object>>> newRecords) {
    JsonNode found = search(experimentId, name);
    if (found != null) {
      return registered(found, false);
    }
    JsonNode created = call("Creating evaluation dataset " + name, "/create", Map.of("name", name,
        "experiment_ids", List.of(experimentId), "tags", json(tags))).path("dataset");
    String id = created.path("dataset_id").asText();
    List<Map<String, Object>> batch = new ArrayList<>(BATCH);
    Iterator<Map<String, Object>> records = newRecords.get();
    while (records.hasNext()) {
      batch.add(records.next());
      if (batch.size() == BATCH || !records.hasNext()) {
        String body = json(batch);
        call("Adding records to evaluation dataset " + name, "/" + id + "/records", Map.of("records", body));
        batch.clear();
      }
    }
    // The digest changes with the records: read it back after the last upsert.
    JsonNode again = search(experimentId, name);
    return registered(again != null ? again : created, true);
  }

  /** The experiment's dataset of that name, or null. */
  private JsonNode search(String experimentId, String name) {
    JsonNode found = call("Searching evaluation datasets", "/search", Map.of("experiment_ids", List.of(experimentId),
        "filter_string", "name = '" + name.replace("'", "\\'") + "'", "max_results", 1)).path("datasets");
    return found.size() > 0 ? found.get(0) : null;
  }

  private static Registered registered(JsonNode d, boolean created) {
    long records;
    try {
      // The profile is a JSON string, {"num_records": N}, set by each upsert (MLflow 3.6 and 3.17 alike).
      records = JSON.readTree(d.path("profile").asText("{}")).path("num_records").asLong(0);
    } catch (JsonProcessingException e) {
      records = 0;
    }
    return new Registered(d.path("dataset_id").asText(), d.path("name").asText(), d.path("digest").asText(), records,
        created);
  }

  private JsonNode call(String what, String path, Map<String, Object> body) {
    return retry.call(what, () -> {
      try {
        return tracking.postJson(API + path, body);
      } catch (TrackingConnection.MlflowHttpError e) {
        if (e.status() == 404 || e.status() == 405 || e.status() == 501) {
          throw new Unsupported("The tracking server " + Redact.uri(tracking.trackingUri()) + " has no evaluation datasets at " + API
              + " (MLflow 3.4 or newer with a database backend has): " + e.getMessage());
        }
        throw e;
      }
    });
  }

  static String json(Object o) {
    try {
      return JSON.writeValueAsString(o);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The server has no evaluation datasets: not retried, the job goes on without one. */
  public static final class Unsupported extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Unsupported(String message) {
      super(message);
    }
  }

  /** A record: the row's inputs and its expected answer under MLflow's {@code expected_response}. */
  public static Map<String, Object> record(Map<String, Object> inputs, Object expected) {
    Map<String, Object> r = new LinkedHashMap<>();
    r.put("inputs", inputs);
    r.put("expectations", Map.of(TraceAssessments.EXPECTED_RESPONSE, expected));
    return r;
  }
}
