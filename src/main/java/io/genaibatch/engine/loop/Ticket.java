package io.genaibatch.engine.loop;

import ai.onnxruntime.OrtException;
import io.genaibatch.engine.Completion;
import io.genaibatch.engine.DecodeProfile;
import io.genaibatch.engine.DecodeTerms;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.SlotUsage;
import java.util.List;

/**
 * One window's completions in the model's {@link DecodeLoop}, with its caller's terms: its batch
 * size, its key/value cache limit, its prefix store limit, its cancellation. What the loop computed
 * for it is counted here (a step's time and slots split among the tickets by their rows in it); the
 * loop's thread writes the counts, the caller reads them after {@link #await()}.
 */
final class Ticket {
  final List<Completion> completions;
  final int batchSize;
  final long limitBytes;
  final long prefixBytes;
  final int positions;
  private final DecodeTerms terms;
  private final Thread owner = Thread.currentThread();
  private final long start = System.nanoTime();
  private volatile boolean abandoned;
  /** Completions not ended yet. */
  int open;
  long prefillNanos;
  long stepNanos;
  long chooseNanos;
  long moveNanos;
  long prefills;
  long steps;
  long kvBytes;
  long promptComputed;
  long promptReused;
  long duplicates;
  long duplicateTokens;
  long storeBytes;
  SlotUsage slots = SlotUsage.NONE;
  // Guarded by this.
  private boolean finished;
  private Throwable failure;

  /**
   * @param batchSize live rows this ticket brings to a step, at least 2
   * @param terms the caller's cancellation (checked between steps), key/value cache and prefix store limits
   */
  Ticket(List<Completion> completions, int batchSize, DecodeTerms terms) {
    this.completions = completions;
    this.batchSize = Math.max(2, batchSize);
    this.limitBytes = terms.limitBytes();
    this.prefixBytes = terms.prefixBytes();
    this.terms = terms;
    this.open = completions.size();
    this.positions = completions.stream().mapToInt(c -> c.request.positions()).max().orElse(1);
  }

  boolean cancelled() {
    return abandoned || terms.isCancelled(owner);
  }

  double sinceStartMs() {
    return (System.nanoTime() - start) / 1e6;
  }

  SlotUsage slots() {
    return slots;
  }

  /** Where the loop's time for this ticket went: its prefills, its share of each step; the work it was spared. */
  DecodeProfile profile() {
    double total = (prefillNanos + stepNanos + chooseNanos + moveNanos) / 1e6;
    return new DecodeProfile(prefillNanos / 1e6, stepNanos / 1e6, chooseNanos / 1e6, moveNanos / 1e6, total,
        prefills, steps, kvBytes, promptComputed, promptReused, duplicates, duplicateTokens, storeBytes);
  }

  /** Counts {@code c}, answered from an identical completion, and ends it for this ticket. */
  void answeredByDuplicate(Completion c) {
    duplicates++;
    duplicateTokens += c.request.tokens().length + c.count();
    open--;
  }

  synchronized void finish(Throwable why) {
    finished = true;
    failure = why;
    notifyAll();
  }

  /**
   * Waits until the loop has ended every completion, or dropped them all (cancelled, failed).
   * An interrupt abandons the ticket; the wait goes on until the loop has let go of its
   * completions, and the interrupt is kept.
   *
   * @throws OrtException when a native call of the loop failed while this ticket was in it
   */
  void await() throws OrtException {
    boolean interrupted = false;
    synchronized (this) {
      while (!finished) {
        try {
          wait();
        } catch (InterruptedException e) {
          interrupted = true;
          abandoned = true;
        }
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    if (failure instanceof OrtException e) {
      throw e;
    } else if (failure instanceof RuntimeException e) {
      throw e;
    } else if (failure instanceof Error e) {
      throw e;
    } else if (failure != null) {
      throw new EngineException(failure.getMessage(), failure);
    }
  }
}
