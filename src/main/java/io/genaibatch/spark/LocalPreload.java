package io.genaibatch.spark;

import io.genaibatch.common.Redact;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Loads the model into the executor-wide cache while the driver is still checking and counting the
 * input, when the driver is the executor (a {@code local[N]} master): the tasks then find it loaded,
 * and a job's fixed cost loses the model's load time (about 1 s for a 4-layer model, 7-13 s for a
 * full-size Phi-3-mini). A failed preload only logs: the first task loads again and reports the
 * error as it always does. The preload's load counts in the run's metrics as the tasks' would.
 */
public final class LocalPreload {
  private static final Logger LOG = LoggerFactory.getLogger(LocalPreload.class);

  /** What the preload loaded: load and fetch time and bytes, as a task's lease would say. */
  public record Loaded(boolean loadedNow, double loadMillis, double fetchMillis, long fetchBytes) {}

  private final CompletableFuture<Loaded> load;

  private LocalPreload(CompletableFuture<Loaded> load) {
    this.load = load;
  }

  /** Starts loading {@code spec}'s model on a daemon thread. */
  public static LocalPreload start(ModelSpec spec) {
    CompletableFuture<Loaded> f = new CompletableFuture<>();
    Thread t = new Thread(() -> {
      try (ExecutorModelCache.Lease lease = ExecutorModelCache.acquire(spec)) {
        f.complete(new Loaded(lease.loadedNow(), lease.loadMillis(), lease.fetchMillis(), lease.fetchBytes()));
      } catch (RuntimeException | LinkageError e) {
        LOG.info("Loading the model ahead of the tasks failed; the tasks will load it: {}", Redact.message(e.getMessage()));
        f.complete(null);
      }
    }, "genai-batch-model-preload");
    t.setDaemon(true);
    t.start();
    return new LocalPreload(f);
  }

  /** Waits for the preload and adds its load to {@code metrics}; nothing when it failed or found the model loaded. */
  public void record(PartitionScorer.ScoringMetrics metrics) {
    Loaded l;
    try {
      l = load.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return;
    } catch (ExecutionException e) {
      return;
    }
    if (l != null && l.loadedNow() && metrics != null) {
      metrics.loads().add(1);
      metrics.loadMillis().add(Math.round(l.loadMillis()));
      metrics.recordFetch(l.fetchBytes(), l.fetchMillis());
    }
  }
}
