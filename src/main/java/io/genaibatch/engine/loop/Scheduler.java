package io.genaibatch.engine.loop;

import io.genaibatch.engine.Completion;
import io.genaibatch.engine.EngineException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.Iterator;
import java.util.List;
import java.util.function.IntPredicate;

/**
 * The decode loop's scheduling, in plain Java (no model, no onnxruntime): the tickets in the loop,
 * the queue of completions waiting for a slot, the live completions in slots {@code 0..k-1} with
 * their tickets, identical completions routed through {@link Duplicates}, and the cache shape the
 * tickets ask for. The runner ({@link DecodeLoop}) asks it what to admit next, tells it what it placed
 * in a slot and what ended, and moves the cache regions it names ({@link Regions}). Owned by the
 * loop's thread.
 *
 * <p>Order: a ticket's completions queue in the order of their prompts' tokens (rows that share a
 * prefix are prefilled one after the other, while the prefix is cached), tickets in the order they
 * arrived. Slots stay contiguous: when a live completion leaves, the last live one moves into its
 * slot.
 */
final class Scheduler {
  /** The runner's cache regions, one per slot. */
  interface Regions {
    /** Moves the first {@code positions} of slot {@code from}'s region into slot {@code to}'s. */
    void move(int from, int to, int positions);
  }

  private final List<Ticket> tickets = new ArrayList<>();
  private final Deque<Queued> waiting = new ArrayDeque<>();
  private final Duplicates duplicates;
  private Completion[] live = new Completion[0];
  private Ticket[] owners = new Ticket[0];
  private int k;

  /** @param answersKeptBytes bytes of answers kept for later identical completions, estimated */
  Scheduler(long answersKeptBytes) {
    this.duplicates = new Duplicates(answersKeptBytes);
  }

  /**
   * Takes {@code t} in: its completions queue in prompt-token order; with reuse on (its prefix bound
   * above 0) one identical to a completion in the loop follows it, and one whose answer is kept is
   * answered at once.
   */
  void enter(Ticket t) {
    tickets.add(t);
    List<Completion> ordered = new ArrayList<>(t.completions);
    ordered.sort((a, b) -> Arrays.compare(a.request.tokens(), b.request.tokens()));
    for (Completion c : ordered) {
      Queued q = new Queued(t, c);
      if (t.prefixBytes <= 0 || duplicates.arrive(q, t.sinceStartMs()) == Duplicates.Route.COMPUTE) {
        waiting.add(q);
      }
    }
  }

  boolean isEmpty() {
    return tickets.isEmpty();
  }

  /** Live completions, in slots {@code 0..live()-1}. */
  int live() {
    return k;
  }

  Completion completion(int slot) {
    return live[slot];
  }

  Ticket owner(int slot) {
    return owners[slot];
  }

  /** The next completion to admit, or null when none waits or the tickets' batch sizes are full. */
  Queued next() {
    return waiting.isEmpty() || k >= maxRows() ? null : waiting.peek();
  }

  /** Takes the next completion off the queue ({@link #next()} said which). */
  Queued take() {
    return waiting.poll();
  }

  /** Puts {@code q}, prefilled, into slot {@link #live()}; the slots must have room ({@link #slots(int)}). */
  void place(Queued q) {
    live[k] = q.completion();
    owners[k] = q.ticket();
    k++;
  }

  /** {@code q} ended at its prefill (its first token ended it): its ticket and followers are told. */
  void endedAtPrefill(Queued q) {
    q.ticket().open--;
    duplicates.ended(q.completion());
  }

  /** Slots this scheduler can place into: at least {@code count} (a larger cache's). */
  void slots(int count) {
    if (count > live.length) {
      live = Arrays.copyOf(live, count);
      owners = Arrays.copyOf(owners, count);
    }
  }

  /** Live rows the tickets in the loop bring together: their batch sizes summed. */
  int maxRows() {
    return tickets.stream().mapToInt(t -> t.batchSize).sum();
  }

  /** The longest completion (prompt and budget) of the tickets in the loop. */
  int positions() {
    return tickets.stream().mapToInt(t -> t.positions).max().orElse(1);
  }

  /**
   * The cache the tickets in the loop ask for, {@code {slots, positions}}: slots for their batch
   * sizes and a spare region (for a stand-in), positions for their longest completion; fewer slots
   * when that would pass their key/value limits summed, never fewer than three (two rows, the batched
   * kernel path, and the spare).
   */
  int[] shape(long bytesPerPosition) {
    int positions = positions();
    long perSlot = bytesPerPosition * positions;
    long limit = tickets.stream().mapToLong(t -> t.limitBytes).sum();
    long fit = limit / Math.max(1, perSlot);
    return new int[] {(int) Math.max(3, Math.min(maxRows() + 1, fit)), positions};
  }

  /** The prefix store bound the newest ticket asks for; 0 with no ticket. */
  long prefixBytes() {
    return tickets.isEmpty() ? 0 : tickets.get(tickets.size() - 1).prefixBytes;
  }

  /**
   * Drops the live completions that have ended, moving the last live one into each freed slot;
   * returns the ticket charged for the moves (the last whose row left), or null when none left.
   */
  Ticket dropEnded(Regions regions) {
    return compact(i -> live[i].done(), regions);
  }

  /** Drops the rows of cancelled tickets, live or waiting, and lets their callers go. */
  void dropCancelled(Regions regions) {
    for (Iterator<Ticket> it = tickets.iterator(); it.hasNext();) {
      Ticket t = it.next();
      if (t.cancelled()) {
        List<Queued> promoted = duplicates.drop(t);
        waiting.removeIf(w -> w.ticket() == t);
        compact(i -> owners[i] == t, regions);
        for (int i = promoted.size() - 1; i >= 0; i--) {
          waiting.addFirst(promoted.get(i));
        }
        it.remove();
        t.finish(new EngineException("The task was cancelled: generation stopped between decode steps"));
      }
    }
  }

  private Ticket compact(IntPredicate gone, Regions regions) {
    Ticket paying = null;
    for (int i = k - 1; i >= 0; i--) {
      if (gone.test(i)) {
        paying = owners[i];
        if (live[i].done()) {
          owners[i].open--;
          duplicates.ended(live[i]);
        }
        k--;
        if (i != k) {
          regions.move(k, i, live[k].cached);
          live[i] = live[k];
          owners[i] = owners[k];
        }
        live[k] = null;
        owners[k] = null;
      }
    }
    return paying;
  }

  /** Lets go the tickets whose every completion has ended. */
  void finishDone() {
    for (Iterator<Ticket> it = tickets.iterator(); it.hasNext();) {
      Ticket t = it.next();
      if (t.open == 0) {
        it.remove();
        t.finish(null);
      }
    }
  }

  /** Fails every ticket in the loop with {@code why}; the loop is empty after (kept answers stay). */
  void failAll(Throwable why) {
    tickets.forEach(t -> t.finish(why));
    tickets.clear();
    waiting.clear();
    duplicates.clearLive();
    Arrays.fill(live, null);
    Arrays.fill(owners, null);
    k = 0;
  }

  /** Forgets the kept answers. */
  void forgetAnswers() {
    duplicates.clear();
  }
}
