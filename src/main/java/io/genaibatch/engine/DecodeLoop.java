package io.genaibatch.engine;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.genai.GenAIException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.IntPredicate;

/**
 * The continuous-batching decode loop of one model, shared by every task of the JVM that scores
 * with it: the tasks hand in their windows ({@link Ticket}s) and one thread decodes the rows of
 * all of them together over the executor's cores (the decoder session's intra-op threads). Up to
 * the tickets' batch sizes summed are live at once, each in a slot; each step runs every live row
 * whatever its position or task; a completion that ends leaves its slot at once and the next
 * waiting one (in arrival order) is prefilled into it.
 *
 * <p>Why one loop per executor and not one per task: a task's loop drains at its end (its last
 * rows decode in small batches, the last one beside a stand-in) and runs on the task's core
 * alone; the executor's loop keeps the other tasks' rows in the same steps, so steps stay full
 * until the executor's last rows, and the one tail left uses every core. Answers do not change:
 * onnxruntime's kernels give a row the same numbers in any batch of two rows or more and with any
 * number of threads, so a step with one live row runs it beside a stand-in row (one position in a
 * free slot), a one-token prompt is prefilled beside one too, and no row ever takes the single-row
 * kernel path.
 *
 * <p>Rows live in slots {@code 0..k-1} of one key/value cache ({@link KvCache}); when a row ends,
 * the last live row's region moves into its slot, so a step's cache is one contiguous view. The
 * cache is shaped for the tickets in the loop (their longest prompt and budget, their batch sizes,
 * within their key/value limits summed), grown with the live regions copied when a ticket needs
 * more, and freed when the loop has had nothing to do for {@link #IDLE_NANOS}; the thread ends then
 * too and starts again with the next ticket.
 */
final class DecodeLoop implements AutoCloseable {
  /** How long the loop's thread waits for another window before it frees the cache and ends. */
  static final long IDLE_NANOS = TimeUnit.SECONDS.toNanos(2);

  private final OrtDecoder decoder;
  private final GenAiConfig config;
  private final Set<Integer> eosIds;
  private final Completion.Decoder text;

  // Guarded by this.
  private final Deque<Ticket> arrivals = new ArrayDeque<>();
  private Thread thread;
  private boolean closed;

  // The loop thread's own (handed from one thread to the next under this's lock).
  private final List<Ticket> tickets = new ArrayList<>();
  private final Deque<Waiting> waiting = new ArrayDeque<>();
  private Completion[] live = new Completion[0];
  private Ticket[] owners = new Ticket[0];
  private int k;
  private KvCache cache;

  DecodeLoop(OrtDecoder decoder, GenAiConfig config, Set<Integer> eosIds, Completion.Decoder text) {
    this.decoder = decoder;
    this.config = config;
    this.eosIds = eosIds;
    this.text = text;
  }

  private record Waiting(Ticket ticket, Completion completion) {}

  /**
   * One window's completions in the loop, with its caller's terms: its batch size, its key/value
   * cache limit, its cancellation. What the loop computed for it is counted here (a step's time and
   * slots split among the tickets by their rows in it).
   */
  static final class Ticket {
    final List<Completion> completions;
    final int batchSize;
    final long limitBytes;
    final int positions;
    private final DecodeTerms terms;
    private final Thread owner = Thread.currentThread();
    private final long start = System.nanoTime();
    private volatile boolean abandoned;
    private int open;
    private long prefillNanos;
    private long stepNanos;
    private long chooseNanos;
    private long moveNanos;
    private long prefills;
    private long steps;
    private long kvBytes;
    private SlotUsage slots = SlotUsage.NONE;
    // Guarded by this.
    private boolean finished;
    private Throwable failure;

    /**
     * @param batchSize live rows this ticket brings to a step, at least 2
     * @param terms the caller's cancellation (checked between steps) and key/value cache limit
     */
    Ticket(List<Completion> completions, int batchSize, DecodeTerms terms) {
      this.completions = completions;
      this.batchSize = Math.max(2, batchSize);
      this.limitBytes = terms.limitBytes();
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

    /** Where the loop's time for this ticket went: its prefills, its share of each step. */
    DecodeProfile profile() {
      double total = (prefillNanos + stepNanos + chooseNanos + moveNanos) / 1e6;
      return new DecodeProfile(prefillNanos / 1e6, stepNanos / 1e6, chooseNanos / 1e6, moveNanos / 1e6, total,
          prefills, steps, kvBytes);
    }

    private synchronized void finish(Throwable why) {
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

  /** Hands {@code t} to the loop, starting its thread when none runs. */
  synchronized void submit(Ticket t) {
    if (closed) {
      throw new IllegalStateException("The decode loop of " + config.folder() + " is closed");
    }
    arrivals.add(t);
    if (thread == null) {
      thread = new Thread(this::run, "genai-batch-decode");
      thread.setDaemon(true);
      thread.start();
    }
    notifyAll();
  }

  private void run() {
    boolean ended = false;
    try {
      while (takeArrivals()) {
        try {
          dropCancelled();
          admit();
          if (k > 0) {
            step();
            compact(i -> live[i].done());
          }
          finishDone();
        } catch (OrtException | GenAIException | RuntimeException | Error e) {
          // A native call failed: every ticket in the loop fails with it (their rows become error
          // rows); the loop itself goes on with the next ticket.
          failAll(e);
        }
      }
      ended = true;
    } finally {
      if (!ended) {
        synchronized (this) {
          endThread(new EngineException("The decode loop of " + config.folder() + " stopped unexpectedly"));
        }
      }
    }
  }

  /**
   * Ends this thread's turn, holding this's lock: every caller still in or bound for the loop is
   * let go with {@code why} (none may wait forever), the cache is freed, and the next ticket starts
   * a new thread.
   */
  private void endThread(EngineException why) {
    failAll(why);
    arrivals.forEach(t -> t.finish(why));
    arrivals.clear();
    freeCache();
    thread = null;
    notifyAll();
  }

  /**
   * Moves new tickets into the loop; waits for one when the loop is empty. False when the loop
   * was closed or idle for {@link #IDLE_NANOS}: the cache is freed and this thread ends.
   */
  private synchronized boolean takeArrivals() {
    long deadline = System.nanoTime() + IDLE_NANOS;
    while (!closed && arrivals.isEmpty() && tickets.isEmpty()) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        break;
      }
      try {
        TimeUnit.NANOSECONDS.timedWait(this, left);
      } catch (InterruptedException e) {
        break; // nobody interrupts this thread but close()
      }
    }
    while (!arrivals.isEmpty()) {
      Ticket t = arrivals.poll();
      tickets.add(t);
      t.completions.forEach(c -> waiting.add(new Waiting(t, c)));
    }
    if (closed || tickets.isEmpty()) {
      endThread(new EngineException("The decode loop of " + config.folder() + " was closed"));
      return false;
    }
    return true;
  }

  /** Drops the rows of cancelled tickets, live or waiting, and lets their callers go. */
  private void dropCancelled() {
    for (Iterator<Ticket> it = tickets.iterator(); it.hasNext();) {
      Ticket t = it.next();
      if (t.cancelled()) {
        waiting.removeIf(w -> w.ticket == t);
        compact(i -> owners[i] == t);
        it.remove();
        t.finish(new EngineException("The task was cancelled: generation stopped between decode steps"));
      }
    }
  }

  /** Prefills waiting completions into free slots while the tickets' batch sizes and the cache allow. */
  private void admit() throws OrtException, GenAIException {
    int maxRows = tickets.stream().mapToInt(t -> t.batchSize).sum();
    while (!waiting.isEmpty() && k < maxRows && fits(waiting.peek(), maxRows)) {
      Waiting w = waiting.poll();
      if (prefill(w)) {
        w.ticket.open--;
      } else {
        live[k] = w.completion;
        owners[k] = w.ticket;
        k++;
      }
    }
  }

  /**
   * Whether {@code w} can take slot {@code k} now, reshaping the cache when it must: for the
   * tickets in the loop (their longest completion, their batch sizes, within their limits), with
   * the live rows' regions copied. False while the live rows leave no room for the shape needed.
   */
  private boolean fits(Waiting w, int maxRows) {
    int need = w.completion.request.positions();
    int[] shape = shape(maxRows);
    if (cache != null && cache.capacity() >= need && k + 2 <= cache.slots()) {
      // With no live row the cache takes the loop's shape exactly: a larger one an earlier window
      // needed is not kept past the limits of the tickets now in the loop.
      if (k > 0 || (cache.slots() == shape[0] && cache.capacity() == shape[1])) {
        return true;
      }
    }
    if (shape[0] < k + 2 || shape[1] < need) {
      return false;
    }
    KvCache next = new KvCache(decoder.graph(), shape[0], shape[1]);
    if (cache != null) {
      for (int i = 0; i < k; i++) {
        cache.copyTo(next, i, live[i].cached);
      }
      cache.close();
    }
    cache = next;
    live = Arrays.copyOf(live, shape[0]);
    owners = Arrays.copyOf(owners, shape[0]);
    return true;
  }

  /** Key/value bytes the tickets in the loop may hold together. */
  private long limit() {
    return tickets.stream().mapToLong(t -> t.limitBytes).sum();
  }

  /**
   * The cache the tickets in the loop ask for: slots for their batch sizes and a spare region
   * (for a stand-in), positions for their longest completion; fewer slots when that would pass
   * their limit, never fewer than three (two rows, the batched kernel path, and the spare).
   */
  private int[] shape(int maxRows) {
    int positions = tickets.stream().mapToInt(t -> t.positions).max().orElse(1);
    long perSlot = KvCache.bytes(decoder.graph(), 1, positions);
    long fit = limit() / Math.max(1, perSlot);
    return new int[] {(int) Math.max(3, Math.min(maxRows + 1, fit)), positions};
  }

  /** Prefills {@code w} into slot {@code k}; true when its first token already ends it. */
  private boolean prefill(Waiting w) throws OrtException, GenAIException {
    long t0 = System.nanoTime();
    Completion c = w.completion;
    int[] prompt = c.request.tokens();
    int rows = prompt.length == 1 ? 2 : 1;
    long[] ids = new long[rows * prompt.length];
    for (int t = 0; t < prompt.length; t++) {
      ids[t] = prompt[t];
    }
    if (rows == 2) {
      ids[1] = config.padTokenId();
    }
    int[] cached = new int[rows];
    int[] fed = rows == 2 ? new int[] {1, 1} : new int[] {prompt.length};
    float[][] logits = decoder.run(cache, k, rows, ids, prompt.length, cached, fed);
    long t1 = System.nanoTime();
    c.cached = prompt.length;
    boolean ended = choose(w.ticket, c, logits[0]);
    Ticket t = w.ticket;
    t.kvBytes = Math.max(t.kvBytes, cache.bytes());
    t.slots = t.slots.plus(new SlotUsage((long) rows * prompt.length, prompt.length, 1, 1));
    t.prefillNanos += t1 - t0;
    t.chooseNanos += System.nanoTime() - t1;
    t.prefills++;
    return ended;
  }

  /** One decode step of the live rows (beside a stand-in when one is left). */
  private void step() throws OrtException, GenAIException {
    long t0 = System.nanoTime();
    int rows = Math.max(k, 2);
    long[] ids = new long[rows];
    int[] cached = new int[rows];
    int[] fed = new int[rows];
    for (int r = 0; r < rows; r++) {
      fed[r] = 1;
      ids[r] = r < k ? live[r].last() : config.padTokenId();
      cached[r] = r < k ? live[r].cached : 0;
    }
    float[][] logits = decoder.run(cache, 0, rows, ids, 1, cached, fed);
    long t1 = System.nanoTime();
    for (int r = 0; r < k; r++) {
      live[r].cached++;
      choose(owners[r], live[r], logits[r]);
    }
    long run = (t1 - t0) / k;
    long chose = (System.nanoTime() - t1) / k;
    owners[0].steps++;
    for (int r = 0; r < k; r++) {
      Ticket t = owners[r];
      // The stand-in beside a lone row is that row's cost.
      t.slots = t.slots.plus(new SlotUsage(0, 0, k == 1 ? 2 : 1, 1));
      t.stepNanos += run;
      t.chooseNanos += chose;
    }
  }

  private boolean choose(Ticket t, Completion c, float[] logits) throws GenAIException {
    if (c.guide != null) {
      c.guide.mask(logits);
    }
    int token = c.chooser.choose(logits, c.request.tokens(), c.buffer(), c.count());
    if (c.guide != null) {
      c.guide.consume(token);
    }
    c.add(token);
    return c.ends(eosIds, text, t.sinceStartMs());
  }

  /** Drops the live rows {@code gone} picks, moving the last live row into each freed slot. */
  private void compact(IntPredicate gone) {
    long t0 = System.nanoTime();
    Ticket paying = null;
    for (int i = k - 1; i >= 0; i--) {
      if (gone.test(i)) {
        paying = owners[i];
        if (live[i].done()) {
          owners[i].open--;
        }
        k--;
        if (i != k) {
          cache.move(k, i, live[k].cached);
          live[i] = live[k];
          owners[i] = owners[k];
        }
        live[k] = null;
        owners[k] = null;
      }
    }
    if (paying != null) {
      paying.moveNanos += System.nanoTime() - t0;
    }
  }

  /** Lets go the tickets whose every completion has ended. */
  private void finishDone() {
    for (Iterator<Ticket> it = tickets.iterator(); it.hasNext();) {
      Ticket t = it.next();
      if (t.open == 0) {
        it.remove();
        t.finish(null);
      }
    }
  }

  /** Fails every ticket in the loop with {@code why}; the loop is empty after. */
  private void failAll(Throwable why) {
    tickets.forEach(t -> t.finish(why));
    tickets.clear();
    waiting.clear();
    Arrays.fill(live, null);
    Arrays.fill(owners, null);
    k = 0;
  }

  private void freeCache() {
    if (cache != null) {
      cache.close();
      cache = null;
    }
  }

  /** Stops the loop's thread (waiting for it) and frees the cache; callers have left by then. */
  @Override
  public void close() {
    Thread t;
    synchronized (this) {
      closed = true;
      t = thread;
      notifyAll();
    }
    if (t != null) {
      boolean interrupted = false;
      while (t.isAlive()) {
        try {
          t.join();
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
