package io.genaibatch.engine;

import java.util.function.BooleanSupplier;

/**
 * A task's terms for the model's decode loop ({@link DecodeLoop}), which the executor's tasks
 * share: whether the task was cancelled (checked between decode steps, and the calling thread's
 * interrupt too), and the most key/value cache it brings (the loop's cache stays within its
 * tasks' limits summed; a window needing more runs fewer rows at a time).
 *
 * @param cancelled whether the owning task was cancelled
 * @param limitBytes most bytes of key/value cache this task may account for
 */
public record DecodeTerms(BooleanSupplier cancelled, long limitBytes) {

  /** The default limit: 4 GiB. */
  public static final long DEFAULT_LIMIT_BYTES = 4L << 30;

  /** Terms of a caller that is never cancelled, within the default limit. */
  public static final DecodeTerms DEFAULT = new DecodeTerms(() -> false, DEFAULT_LIMIT_BYTES);

  /** Whether the task was cancelled or the calling thread interrupted. */
  boolean isCancelled() {
    return isCancelled(Thread.currentThread());
  }

  /** Whether the task was cancelled or {@code owner}, the task's thread, interrupted. */
  boolean isCancelled(Thread owner) {
    return cancelled.getAsBoolean() || owner.isInterrupted();
  }
}
