package io.genaibatch.spark;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Rows and completion tokens one job has scored so far in this JVM, updated after every window.
 * Accumulators reach the driver only when a task ends; in local mode (driver and executor in one
 * JVM) these counts give the progress log window-by-window figures instead.
 *
 * <p>Lifetime: the driver opens a job's counts when it registers the job's {@link
 * PartitionScorer.ScoringMetrics} and closes them when the job's scoring is over ({@link
 * PartitionScorer.ScoringMetrics#release()}). Tasks add to them only while they are open in their
 * JVM, that is in the driver's: an executor JVM of a cluster keeps nothing.
 */
final class LiveCounts {
  private static final Map<String, LiveCounts> OPEN = new ConcurrentHashMap<>();

  private final AtomicLong rows = new AtomicLong();
  private final AtomicLong completionTokens = new AtomicLong();

  private LiveCounts() {}

  /** Starts counting for the job {@code key}, from zero. */
  static void open(String key) {
    OPEN.put(key, new LiveCounts());
  }

  /** Stops counting for the job {@code key} and forgets its counts. */
  static void close(String key) {
    OPEN.remove(key);
  }

  /** Counts one scored row; a no-op where the job's counts are not open in this JVM. */
  static void addRow(String key, long completion) {
    LiveCounts c = OPEN.get(key);
    if (c != null) {
      c.rows.incrementAndGet();
      c.completionTokens.addAndGet(completion);
    }
  }

  /** Rows counted so far; 0 where the job's counts are not open. */
  static long rows(String key) {
    LiveCounts c = OPEN.get(key);
    return c == null ? 0 : c.rows.get();
  }

  /** Completion tokens counted so far; 0 where the job's counts are not open. */
  static long completionTokens(String key) {
    LiveCounts c = OPEN.get(key);
    return c == null ? 0 : c.completionTokens.get();
  }
}
