package io.genaibatch.engine;

/**
 * The key/value cache a task keeps across its windows: allocated at the first window that needs
 * one, reused while a window fits in it, replaced by one of the window's own shape when it does not
 * (more positions or slots), always within the task's limit. Close it when the task ends. One task
 * (thread) at a time.
 */
public final class DecodeBuffers implements AutoCloseable {
  private final java.util.function.BooleanSupplier cancelled;
  private KvCache cache;
  private long largestBytes;

  /** The default limit of {@link #DecodeBuffers(java.util.function.BooleanSupplier, long)}: 4 GiB. */
  public static final long DEFAULT_LIMIT_BYTES = 4L << 30;

  private final long limitBytes;

  /** Buffers of a caller that is never cancelled, within the default limit. */
  public DecodeBuffers() {
    this(() -> false, DEFAULT_LIMIT_BYTES);
  }

  /**
   * @param cancelled whether the owning task was cancelled, checked between decode steps
   * @param limitBytes most bytes of cache; a window needing more runs fewer rows at a time
   */
  public DecodeBuffers(java.util.function.BooleanSupplier cancelled, long limitBytes) {
    this.cancelled = cancelled;
    this.limitBytes = limitBytes;
  }

  /** Most bytes of key/value cache this task may hold. */
  long limitBytes() {
    return limitBytes;
  }

  /**
   * Live rows a window may run at once: {@code batchSize}, fewer when {@code batchSize + 1} regions
   * of {@code positions} would pass the limit, never fewer than two (the batched kernel path).
   */
  int rowsWithin(DecoderGraph graph, int batchSize, int positions) {
    long perSlot = KvCache.bytes(graph, 1, positions);
    long fit = limitBytes / Math.max(1, perSlot) - 1;
    return (int) Math.max(2, Math.min(batchSize, fit));
  }

  boolean cancelled() {
    return cancelled.getAsBoolean() || Thread.currentThread().isInterrupted();
  }

  /** A cache of at least {@code slots} regions of {@code positions} positions each. */
  KvCache cache(DecoderGraph graph, int slots, int positions) {
    if (cache != null && cache.slots() >= slots && cache.capacity() >= positions) {
      return cache;
    }
    // Exactly what this window asks for: a union of two windows' shapes could pass the limit.
    close();
    cache = new KvCache(graph, slots, positions);
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
