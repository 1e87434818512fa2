package io.genaibatch.spark;

import io.genaibatch.common.Redact;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.mlflow.ModelCache;
import io.genaibatch.mlflow.ModelFetcher;
import io.genaibatch.mlflow.TrackingConnection;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One loaded model per executor JVM, whatever the number of tasks: a static map keyed by model
 * identity and load options. A task {@link #acquire acquires} a lease, and a task-completion
 * listener closes it; the model stays loaded for the next task. Loading another model first
 * closes the models no task holds, so an executor keeps one model in memory unless its tasks
 * use two at once, or one per GPU its tasks were given (the same model on each); all are closed
 * at JVM exit.
 */
public final class ExecutorModelCache {
  private static final Logger LOG = LoggerFactory.getLogger(ExecutorModelCache.class);

  private static final Map<String, Entry> MODELS = new ConcurrentHashMap<>();
  private static final AtomicLong LOADS = new AtomicLong();

  static {
    Runtime.getRuntime().addShutdownHook(new Thread(ExecutorModelCache::closeAll, "genai-batch-model-close"));
  }

  private ExecutorModelCache() {}

  /** Native model loads made by this JVM so far. */
  public static long loadsInThisJvm() {
    return LOADS.get();
  }

  private static final class Entry {
    final String modelKey;
    final LlmModel model;
    final double fetchMillis;
    final long fetchBytes;
    int holders;

    Entry(String modelKey, LlmModel model, double fetchMillis, long fetchBytes) {
      this.modelKey = modelKey;
      this.model = model;
      this.fetchMillis = fetchMillis;
      this.fetchBytes = fetchBytes;
    }
  }

  /** A task's hold on a loaded model. Closing it is idempotent. */
  public static final class Lease implements AutoCloseable {
    private final String key;
    private final Entry entry;
    private final boolean loadedNow;
    private final double loadMillis;
    private boolean closed;

    private Lease(String key, Entry entry, boolean loadedNow, double loadMillis) {
      this.key = key;
      this.entry = entry;
      this.loadedNow = loadedNow;
      this.loadMillis = loadMillis;
    }

    public LlmModel model() {
      return entry.model;
    }

    /** Whether this acquire loaded the model (false: another task had already). */
    public boolean loadedNow() {
      return loadedNow;
    }

    /** Fetch plus native load time when {@link #loadedNow()}, else 0. */
    public double loadMillis() {
      return loadMillis;
    }

    /**
     * Time this acquire spent downloading the model into the host's cache: 0 when it did not load
     * the model, or when the model was read in place or was already in the cache.
     */
    public double fetchMillis() {
      return loadedNow ? entry.fetchMillis : 0;
    }

    /** Bytes this acquire downloaded into the host's cache, on the same terms as {@link #fetchMillis()}. */
    public long fetchBytes() {
      return loadedNow ? entry.fetchBytes : 0;
    }

    @Override
    @SuppressWarnings("LockOnNonEnclosingClassLiteral") // the cache's one lock, as in acquire()
    public void close() {
      synchronized (ExecutorModelCache.class) {
        if (!closed) {
          closed = true;
          entry.holders--;
        }
      }
    }

    @Override
    public String toString() {
      return "Lease[" + key + "]";
    }
  }

  /**
   * Returns a lease on the model of {@code spec}, fetching (once per host) and loading (once per
   * JVM) it on first use. Concurrent tasks asking for the same model wait for one load.
   */
  public static synchronized Lease acquire(ModelSpec spec) {
    String key = spec.cacheKey();
    Entry e = MODELS.get(key);
    if (e != null && !e.model.isClosed()) {
      e.holders++;
      return new Lease(key, e, false, 0);
    }
    evictIdle(spec.modelKey());
    long t0 = System.nanoTime();
    // This JVM (an executor's) learns the credentials here: what the driver remembered stays there.
    Redact.rememberUri(spec.model().uri().raw());
    Redact.rememberUri(spec.model().artifactUri());
    ModelFetcher.LocalModel local;
    LlmModel model;
    double fetchMillis;
    try {
      try (TrackingConnection tracking = spec.connect()) {
        JobHadoopConf.install();
        // No --cache-dir: this host's own default, computed here (the driver's may not exist here).
        Path cache = spec.cacheDir() != null ? Paths.get(spec.cacheDir()) : ModelCache.defaultRoot();
        local = ModelFetcher.fetch(spec.model(), tracking, new ModelCache(cache));
      }
      fetchMillis = (System.nanoTime() - t0) / 1e6;
      // Checked again here, as it is loaded: the executor loads its own copy of the folder, not the driver's.
      model = LlmModel.load(local.genaiDir(), spec.intraOpThreads(), spec.executorLoopThreads(),
          spec.continuous(), spec.provider(), spec.allowCustomOps());
    } catch (RuntimeException failed) {
      // Spark logs a task's failure on the executor and the driver: its messages quote no credential.
      throw Redact.unchecked(failed);
    }
    LOADS.incrementAndGet();
    // Only a download counts as a fetch: a cached copy or a folder read in place cost nothing to move.
    e = new Entry(spec.modelKey(), model, local.downloaded() ? local.fetchMillis() : 0, local.downloaded() ? local.fetchedBytes() : 0);
    e.holders = 1;
    MODELS.put(key, e);
    LOG.info("Loaded model {} from {} in {} ms (fetch {} ms, {} bytes downloaded)", Redact.uri(spec.model().uri().raw()),
        local.genaiDir(),
        Math.round(model.loadMillis()), Math.round(fetchMillis), e.fetchBytes);
    return new Lease(key, e, true, (System.nanoTime() - t0) / 1e6);
  }

  /** Closes the idle models other than {@code keep} (which may be loaded on another GPU). */
  private static void evictIdle(String keep) {
    List<String> idle = new ArrayList<>();
    MODELS.forEach((k, v) -> {
      if (v.holders == 0 && !v.modelKey.equals(keep)) {
        idle.add(k);
      }
    });
    for (String k : idle) {
      LOG.info("Closing idle model {} before loading another", Redact.message(k));
      MODELS.remove(k).model.close();
    }
  }

  /** Closes every model; for JVM exit and tests. */
  public static synchronized void closeAll() {
    MODELS.values().forEach(e -> e.model.close());
    MODELS.clear();
  }
}
