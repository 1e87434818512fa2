package io.genaibatch.mlflow;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionService;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorCompletionService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Assessments on traces through MLflow 3's REST API ({@code POST
 * /api/3.0/mlflow/traces/{trace_id}/assessments}): an expectation (what the row should have
 * answered) or feedback (a score of its answer), each from the source {@code CODE}/{@value
 * #SOURCE_ID}. The server takes one assessment a call and has no batch form, so a row with a
 * reference and four scores costs five calls; {@link #log} sends a batch of them with up to {@code
 * parallelism} calls in flight, for a server with several workers to take in parallel.
 *
 * <p>One caller thread at a time; holds a pool of {@code parallelism} threads until {@link #close}.
 * The connection must outlive it.
 */
public final class TraceAssessments implements AutoCloseable {
  /** The expectation's name MLflow's own scorers read the expected answer from (Correctness, the evaluation UI). */
  public static final String EXPECTED_RESPONSE = "expected_response";
  /** Who gave the assessments: the job's own code. */
  public static final String SOURCE_ID = "genai-batch";
  static final String API = "/api/3.0/mlflow/traces/";
  /** How long {@link #close} waits for calls still in flight after a failure (a stopped server refuses at once). */
  private static final long CLOSE_WAIT_SECONDS = 10;

  private final TrackingConnection tracking;
  private final Retry retry;
  private final ExecutorService pool;
  private final AtomicLong sent = new AtomicLong();

  /** One assessment of a trace: an expectation or feedback {@code name} with its value (a string, number or boolean). */
  public record Assessment(String traceId, String name, String kind, Object value) {
    /** What the trace's row should have answered, as the expectation {@code name}. */
    public static Assessment expectation(String traceId, String name, Object value) {
      return new Assessment(traceId, name, "expectation", value);
    }

    /** A score of the trace's answer, as the feedback {@code name}. */
    public static Assessment feedback(String traceId, String name, Object value) {
      return new Assessment(traceId, name, "feedback", value);
    }
  }

  /**
   * @param parallelism calls in flight at most (1: one at a time), up to {@link TrackingConnection#MAX_PARALLEL_CALLS}
   */
  public TraceAssessments(TrackingConnection tracking, Retry retry, int parallelism) {
    if (parallelism < 1 || parallelism > TrackingConnection.MAX_PARALLEL_CALLS) {
      throw new IllegalArgumentException("parallelism " + parallelism + " is not within 1.."
          + TrackingConnection.MAX_PARALLEL_CALLS);
    }
    this.tracking = tracking;
    this.retry = retry;
    this.pool = Executors.newFixedThreadPool(parallelism, r -> {
      Thread t = new Thread(r, "genai-batch-assessments");
      t.setDaemon(true); // a failed job's exit never waits for a call still in flight
      return t;
    });
  }

  /**
   * Logs {@code batch}, each call with its retries, and returns when all of them have ended. The first
   * call to fail past its retry budget cancels the rest and is thrown as it failed.
   *
   * @throws MlflowException when a call fails past its retry budget, or the caller is interrupted
   */
  public void log(List<Assessment> batch) {
    CompletionService<Void> done = new ExecutorCompletionService<>(pool);
    List<Future<Void>> calls = new ArrayList<>(batch.size());
    for (Assessment a : batch) {
      calls.add(done.submit(() -> {
        create(a);
        return null;
      }));
    }
    try {
      for (int i = 0; i < calls.size(); i++) {
        done.take().get();
      }
    } catch (ExecutionException e) {
      calls.forEach(f -> f.cancel(true));
      throw unwrap(e.getCause());
    } catch (InterruptedException e) {
      calls.forEach(f -> f.cancel(true));
      Thread.currentThread().interrupt();
      throw new MlflowException("Logging assessments on traces was interrupted", e);
    }
  }

  private static RuntimeException unwrap(Throwable cause) {
    if (cause instanceof RuntimeException r) {
      return r;
    }
    if (cause instanceof Error err) {
      throw err;
    }
    return new MlflowException("Logging assessments on traces failed: " + cause, cause);
  }

  /** The assessments logged so far. */
  public long sent() {
    return sent.get();
  }

  private void create(Assessment x) {
    String now = Instant.now().toString();
    Map<String, Object> a = new LinkedHashMap<>();
    a.put("assessment_name", x.name());
    a.put("trace_id", x.traceId());
    a.put("source", Map.of("source_type", "CODE", "source_id", SOURCE_ID));
    a.put("create_time", now);
    a.put("last_update_time", now);
    a.put(x.kind(), Map.of("value", x.value()));
    retry.call("Logging " + x.kind() + " '" + x.name() + "' on trace " + x.traceId(),
        () -> tracking.postJson(API + x.traceId() + "/assessments", Map.of("assessment", a)));
    sent.incrementAndGet();
  }

  /** Stops the pool, interrupting calls still in flight (only after a failure) and waiting a little for them. Idempotent. */
  @Override
  public void close() {
    pool.shutdownNow();
    try {
      pool.awaitTermination(CLOSE_WAIT_SECONDS, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
