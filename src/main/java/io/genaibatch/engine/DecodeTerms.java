package io.genaibatch.engine;

import io.genaibatch.engine.loop.DecodeLoop;
import java.util.function.BooleanSupplier;

/**
 * A task's terms for the model's decode loop ({@link DecodeLoop}), which the executor's tasks
 * share: whether the task was cancelled (checked between decode steps, and the calling thread's
 * interrupt too), the most key/value cache it brings (the loop's cache stays within its tasks'
 * limits summed; a window needing more runs fewer rows at a time), and the bound of the loop's
 * prefix store (the last window's bound holds; 0 turns prefix reuse and duplicate answering off).
 *
 * @param cancelled whether the owning task was cancelled
 * @param limitBytes most bytes of key/value cache this task may account for
 * @param prefixBytes most bytes the executor's prefix store may hold; 0 for no reuse
 */
public record DecodeTerms(BooleanSupplier cancelled, long limitBytes, long prefixBytes) {

  /** The default key/value limit: 4 GiB. */
  public static final long DEFAULT_LIMIT_BYTES = 4L << 30;

  /** The default prefix store bound: 2 GiB. */
  public static final long DEFAULT_PREFIX_BYTES = 2L << 30;

  /** Terms of a caller that is never cancelled, within the default limits. */
  public static final DecodeTerms DEFAULT = new DecodeTerms(() -> false, DEFAULT_LIMIT_BYTES, DEFAULT_PREFIX_BYTES);

  /** Terms with the default prefix store bound. */
  public DecodeTerms(BooleanSupplier cancelled, long limitBytes) {
    this(cancelled, limitBytes, DEFAULT_PREFIX_BYTES);
  }

  /** These terms with prefix store bound {@code bytes}. */
  public DecodeTerms withPrefixBytes(long bytes) {
    return new DecodeTerms(cancelled, limitBytes, bytes);
  }

  /** Whether the task was cancelled or the calling thread interrupted. */
  public boolean isCancelled() {
    return isCancelled(Thread.currentThread());
  }

  /** Whether the task was cancelled or {@code owner}, the task's thread, interrupted. */
  public boolean isCancelled(Thread owner) {
    return cancelled.getAsBoolean() || owner.isInterrupted();
  }
}
