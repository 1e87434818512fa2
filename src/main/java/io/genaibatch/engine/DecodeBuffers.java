package io.genaibatch.engine;

/**
 * The key/value cache a task keeps across its windows: allocated at the first window that needs
 * one, reused while a window fits in it, replaced by a larger one when a window needs more
 * positions or slots. Close it when the task ends. One task (thread) at a time.
 */
public final class DecodeBuffers implements AutoCloseable {
  private final java.util.function.BooleanSupplier cancelled;
  private KvCache cache;
  private long largestBytes;

  /** Buffers of a caller that is never cancelled. */
  public DecodeBuffers() {
    this(() -> false);
  }

  /** @param cancelled whether the owning task was cancelled, checked between decode steps */
  public DecodeBuffers(java.util.function.BooleanSupplier cancelled) {
    this.cancelled = cancelled;
  }

  boolean cancelled() {
    return cancelled.getAsBoolean() || Thread.currentThread().isInterrupted();
  }

  /** A cache of at least {@code slots} regions of {@code positions} positions each. */
  KvCache cache(DecoderGraph graph, int slots, int positions) {
    if (cache != null && cache.slots() >= slots && cache.capacity() >= positions) {
      return cache;
    }
    int capacity = Math.max(positions, cache == null ? 0 : cache.capacity());
    int regions = Math.max(slots, cache == null ? 0 : cache.slots());
    close();
    cache = new KvCache(graph, regions, capacity);
    largestBytes = Math.max(largestBytes, cache.bytes());
    return cache;
  }

  /** Bytes of the largest cache held so far; 0 when none was needed. */
  public long largestBytes() {
    return largestBytes;
  }

  @Override
  public void close() {
    if (cache != null) {
      cache.close();
      cache = null;
    }
  }
}
