package io.genaibatch.engine.loop;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.genai.GenAIException;
import com.sun.jna.Memory;
import io.genaibatch.engine.Completion;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.GenAiConfig;
import io.genaibatch.engine.SlotUsage;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The runner of the continuous-batching decode loop of one model, shared by every task of the JVM
 * that scores with it: the tasks hand in their windows ({@link Ticket}s) and one thread decodes the
 * rows of all of them together over the executor's cores (the decoder session's intra-op threads).
 * What runs when is the {@link Scheduler}'s (plain Java): up to the tickets' batch sizes summed are
 * live at once, each in a slot; each step runs every live row whatever its position or task; a
 * completion that ends leaves its slot at once and the next waiting one is prefilled into it, after
 * the longest prefix of its prompt the {@link PrefixStore} holds.
 *
 * <p>Why one loop per executor and not one per task: a task's loop drains at its end (its last
 * rows decode in small batches, the last one beside a stand-in) and runs on the task's core
 * alone; the executor's loop keeps the other tasks' rows in the same steps, so steps stay full
 * until the executor's last rows, and the one tail left uses every core. Answers do not change:
 * onnxruntime's kernels give a row the same numbers in any batch of two rows or more and with any
 * number of threads, so a step with one live row runs it beside a stand-in row (one position in a
 * free slot), a prefill of one token (a one-token prompt, or all but the last token cached) runs
 * beside one too, and no row ever takes the single-row kernel path.
 *
 * <p>Rows live in slots {@code 0..k-1} of one key/value cache ({@link KvCache}); when a row ends,
 * the last live row's region moves into its slot, so a step's cache is one contiguous view. The
 * cache is shaped for the tickets in the loop (their longest prompt and budget, their batch sizes,
 * within their key/value limits summed), grown with the live regions copied when a ticket needs
 * more, and freed when the loop has had nothing to do for {@link #IDLE_NANOS}; the prefix store and
 * the kept answers after {@link #STORE_IDLE_NANOS}, when the thread ends too and starts again with
 * the next ticket.
 */
public final class DecodeLoop implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(DecodeLoop.class);
  /** How long the loop's thread waits for another window before it frees the cache. */
  static final long IDLE_NANOS = TimeUnit.SECONDS.toNanos(2);
  /** How long the prefix store and the kept answers outlive the last window: then the thread ends. */
  static final long STORE_IDLE_NANOS = TimeUnit.SECONDS.toNanos(30);
  /** Prompt tokens per prefix block: a row reuses its longest cached prefix in whole blocks. */
  static final int BLOCK_TOKENS = 16;
  /** Bytes of answers kept for later identical completions (beyond those in the loop), estimated. */
  static final long ANSWERS_KEPT_BYTES = 16L << 20;

  private final OrtDecoder decoder;
  private final GenAiConfig config;
  private final Set<Integer> eosIds;
  private final Completion.Decoder text;

  // Guarded by this.
  private final Deque<Ticket> arrivals = new ArrayDeque<>();
  private Thread thread;
  private boolean closed;

  // The loop thread's own (handed from one thread to the next under this's lock).
  private final Scheduler slots = new Scheduler(ANSWERS_KEPT_BYTES);
  private KvCache cache;
  /** Prompt prefixes' key/value blocks, kept across windows; null until a ticket allows one. */
  private PrefixStore<Memory> store;

  public DecodeLoop(OrtDecoder decoder, GenAiConfig config, Set<Integer> eosIds, Completion.Decoder text) {
    this.decoder = decoder;
    this.config = config;
    this.eosIds = eosIds;
    this.text = text;
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
          slots.dropCancelled(this::moveRegion);
          admit();
          if (slots.live() > 0) {
            step();
            long t0 = System.nanoTime();
            Ticket paying = slots.dropEnded(this::moveRegion);
            if (paying != null) {
              paying.moveNanos += System.nanoTime() - t0;
            }
          }
          slots.finishDone();
        } catch (OrtException | GenAIException | RuntimeException | Error e) {
          // A native call failed: every ticket in the loop fails with it (their rows become error
          // rows); the loop itself goes on with the next ticket.
          slots.failAll(e);
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

  private void moveRegion(int from, int to, int positions) {
    cache.move(from, to, positions);
  }

  /**
   * Ends this thread's turn, holding this's lock: every caller still in or bound for the loop is
   * let go with {@code why} (none may wait forever), the cache and the prefix store are freed, and
   * the next ticket starts a new thread.
   */
  private void endThread(EngineException why) {
    slots.failAll(why);
    arrivals.forEach(t -> t.finish(why));
    arrivals.clear();
    freeCache();
    freeStore();
    thread = null;
    notifyAll();
  }

  /**
   * Moves new tickets into the loop; waits for one when the loop is empty, freeing the cache after
   * {@link #IDLE_NANOS} idle. False when the loop was closed or idle for {@link #STORE_IDLE_NANOS}:
   * the prefix store is freed too and this thread ends.
   */
  private synchronized boolean takeArrivals() {
    long since = System.nanoTime();
    while (!closed && arrivals.isEmpty() && slots.isEmpty()) {
      long idle = System.nanoTime() - since;
      if (idle >= STORE_IDLE_NANOS) {
        break;
      }
      if (idle >= IDLE_NANOS) {
        freeCache();
      }
      try {
        TimeUnit.NANOSECONDS.timedWait(this, (cache != null ? IDLE_NANOS : STORE_IDLE_NANOS) - idle);
      } catch (InterruptedException e) {
        break; // nobody interrupts this thread but close()
      }
    }
    while (!arrivals.isEmpty()) {
      slots.enter(arrivals.poll());
      boundStore();
    }
    if (closed || slots.isEmpty()) {
      endThread(new EngineException("The decode loop of " + config.folder() + " was closed"));
      return false;
    }
    return true;
  }

  /** Makes the prefix store at the first ticket that allows one; bounds it as the newest ticket asks. */
  private void boundStore() {
    long bytes = slots.prefixBytes();
    if (store == null && bytes > 0) {
      long blockBytes = KvCache.bytes(decoder.graph(), 1, BLOCK_TOKENS);
      store = new PrefixStore<>(BLOCK_TOKENS, blockBytes, bytes);
      LOG.info("Prefix store of {}: at most {} MiB in blocks of {} tokens ({} KiB each), kept {} s after the last window",
          config.folder(), bytes >> 20, BLOCK_TOKENS, blockBytes >> 10, TimeUnit.NANOSECONDS.toSeconds(STORE_IDLE_NANOS));
    } else if (store != null) {
      store.limit(bytes);
    }
  }

  /** Prefills waiting completions into free slots while the tickets' batch sizes and the cache allow. */
  private void admit() throws OrtException, GenAIException {
    for (Queued next = slots.next(); next != null && fits(next); next = slots.next()) {
      Queued w = slots.take();
      if (prefill(w)) {
        slots.endedAtPrefill(w);
      } else {
        slots.place(w);
      }
    }
  }

  /**
   * Whether {@code w} can take the next slot now, reshaping the cache when it must, as the scheduler
   * asks ({@link Scheduler#shape}), with the live rows' regions copied. False while the live rows
   * leave no room for the shape needed.
   */
  private boolean fits(Queued w) {
    int need = w.completion().request.positions();
    int k = slots.live();
    int[] shape = slots.shape(decoder.graph().bytesPerPosition());
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
        cache.copyTo(next, i, slots.completion(i).cached);
      }
      cache.close();
    }
    cache = next;
    slots.slots(shape[0]);
    return true;
  }

  /**
   * Prefills {@code w} into the next slot: its longest cached prefix is copied from the store (all
   * but its last token at most) and only the rest is computed, then its whole blocks not yet stored
   * are added. True when its first token already ends it.
   */
  private boolean prefill(Queued w) throws OrtException, GenAIException {
    long t0 = System.nanoTime();
    Completion c = w.completion();
    Ticket t = w.ticket();
    int slot = slots.live();
    int[] prompt = c.request.tokens();
    boolean reuse = store != null && t.prefixBytes > 0;
    List<PrefixStore.Block<Memory>> hit = reuse ? store.match(prompt, prompt.length) : List.of();
    int reused = Math.min(hit.size() * BLOCK_TOKENS, prompt.length - 1);
    for (int b = 0; b * BLOCK_TOKENS < reused; b++) {
      cache.load(hit.get(b).data, Math.min(BLOCK_TOKENS, reused - b * BLOCK_TOKENS), slot, b * BLOCK_TOKENS);
    }
    float[] logits = prefillFrom(slot, prompt, reused);
    if (reuse) {
      store.add(prompt, hit, () -> KvCache.newBlock(decoder.graph(), BLOCK_TOKENS),
          (block, index) -> cache.save(slot, index * BLOCK_TOKENS, BLOCK_TOKENS, block));
      t.storeBytes = Math.max(t.storeBytes, store.bytes());
    }
    long t1 = System.nanoTime();
    c.cached = prompt.length;
    boolean ended = choose(t, c, logits);
    int fresh = prompt.length - reused;
    t.kvBytes = Math.max(t.kvBytes, cache.bytes());
    t.slots = t.slots.plus(new SlotUsage(fresh == 1 ? 2 : fresh, fresh, 1, 1));
    t.promptComputed += fresh;
    t.promptReused += reused;
    t.prefillNanos += t1 - t0;
    t.chooseNanos += System.nanoTime() - t1;
    t.prefills++;
    return ended;
  }

  /**
   * Computes {@code prompt} after its first {@code reused} positions, which region {@code slot}
   * holds, and returns the logits of its last token. One token to compute runs beside a stand-in row
   * (one position in the next free slot), never on the single-row kernel path.
   */
  private float[] prefillFrom(int slot, int[] prompt, int reused) throws OrtException {
    int fresh = prompt.length - reused;
    int rows = fresh == 1 ? 2 : 1;
    long[] ids = new long[rows * fresh];
    for (int i = 0; i < fresh; i++) {
      ids[i] = prompt[reused + i];
    }
    if (rows == 2) {
      ids[1] = config.padTokenId();
    }
    int[] cached = rows == 2 ? new int[] {reused, 0} : new int[] {reused};
    int[] fed = rows == 2 ? new int[] {1, 1} : new int[] {fresh};
    return decoder.run(cache, slot, rows, ids, fresh, cached, fed)[0];
  }

  /** One decode step of the live rows (beside a stand-in when one is left). */
  private void step() throws OrtException, GenAIException {
    long t0 = System.nanoTime();
    int k = slots.live();
    int rows = Math.max(k, 2);
    long[] ids = new long[rows];
    int[] cached = new int[rows];
    int[] fed = new int[rows];
    for (int r = 0; r < rows; r++) {
      fed[r] = 1;
      ids[r] = r < k ? slots.completion(r).last() : config.padTokenId();
      cached[r] = r < k ? slots.completion(r).cached : 0;
    }
    float[][] logits = decoder.run(cache, 0, rows, ids, 1, cached, fed);
    long t1 = System.nanoTime();
    for (int r = 0; r < k; r++) {
      slots.completion(r).cached++;
      choose(slots.owner(r), slots.completion(r), logits[r]);
    }
    long run = (t1 - t0) / k;
    long chose = (System.nanoTime() - t1) / k;
    slots.owner(0).steps++;
    for (int r = 0; r < k; r++) {
      Ticket t = slots.owner(r);
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

  /** Frees the prefix store's blocks and forgets the kept answers. */
  private void freeStore() {
    if (store != null) {
      store.clear();
      store = null;
    }
    slots.forgetAnswers();
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
