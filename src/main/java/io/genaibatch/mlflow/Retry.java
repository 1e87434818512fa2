package io.genaibatch.mlflow;

import io.genaibatch.common.Redact;
import java.time.Duration;
import java.util.function.Supplier;
import org.mlflow.tracking.MlflowClientException;
import org.mlflow.tracking.MlflowHttpException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bounded retry with exponential backoff for calls to a tracking server that is slow, restarting
 * or down. Retries what a wait can fix (no connection, timeouts, HTTP 429 and 5xx), never a
 * 4xx answer; gives up when the time budget is spent and rethrows the last failure with the
 * number of attempts and the time spent.
 */
public final class Retry {
  private static final Logger LOG = LoggerFactory.getLogger(Retry.class);

  private final Duration budget;

  public Retry(Duration budget) {
    this.budget = budget;
  }

  static boolean retryable(RuntimeException e) {
    if (e instanceof TrackingConnection.MlflowHttpError h) {
      return h.status() == 429 || h.status() >= 500;
    }
    if (e instanceof MlflowHttpException h) {
      return h.getStatusCode() == 429 || h.getStatusCode() >= 500;
    }
    return e instanceof MlflowException || e instanceof MlflowClientException;
  }

  public <T> T call(String what, Supplier<T> call) {
    long start = System.nanoTime();
    long deadline = start + budget.toNanos();
    long sleep = 500;
    int attempt = 0;
    while (true) {
      attempt++;
      try {
        return call.get();
      } catch (RuntimeException e) {
        long now = System.nanoTime();
        if (!retryable(e) || now + sleep * 1_000_000L > deadline) {
          if (attempt == 1 && !retryable(e)) {
            throw e;
          }
          throw new MlflowException(Redact.message(what) + " failed after " + attempt + " attempts in "
              + Math.round((now - start) / 1e9) + " s: " + Redact.message(e.getMessage()), e);
        }
        LOG.warn("{} failed (attempt {}), retrying in {} ms: {}", Redact.message(what), attempt, sleep,
            Redact.message(e.getMessage()));
        try {
          Thread.sleep(sleep);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw new MlflowException(what + " interrupted", ie);
        }
        sleep = Math.min(sleep * 2, 15_000);
      }
    }
  }

  public void run(String what, Runnable call) {
    call(what, () -> {
      call.run();
      return null;
    });
  }
}
