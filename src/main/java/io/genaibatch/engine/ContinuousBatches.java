package io.genaibatch.engine;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.genai.GenAIException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Set;
import java.util.function.BooleanSupplier;

/**
 * The continuous-batching decode loop: up to {@code batchSize} completions decode together, each
 * step runs every live row whatever its position, a completion that ends leaves its slot at once
 * and the next waiting one is prefilled into it.
 *
 * <p>Answers do not depend on which rows share a step: onnxruntime's int4 kernels give a row the
 * same numbers in any batch of two rows or more, so a step with one live row runs it beside a
 * stand-in row (one position in a free slot), and a one-token prompt is prefilled beside one too;
 * no row ever takes the single-row kernel path. Tokens are chosen per row ({@link TokenChooser}).
 *
 * <p>Rows live in slots {@code 0..k-1}; when a row ends, the last live row's cache region moves
 * into its slot, so a step's cache is always one contiguous view.
 */
final class ContinuousBatches {
  private final OrtDecoder decoder;
  private final GenAiConfig config;
  private final Set<Integer> eosIds;
  private final Completion.Decoder text;
  /** Whether the caller's task was cancelled, checked between steps. */
  private final BooleanSupplier cancelled;
  /** Masks for rows under a response format; null when the run has none. */
  private final Llguidance guides;

  ContinuousBatches(OrtDecoder decoder, GenAiConfig config, Set<Integer> eosIds, Completion.Decoder text,
      BooleanSupplier cancelled, Llguidance guides) {
    this.guides = guides;
    this.decoder = decoder;
    this.config = config;
    this.eosIds = eosIds;
    this.text = text;
    this.cancelled = cancelled;
  }

  /** What one run computed and where its time went. */
  record Run(SlotUsage slots, DecodeProfile profile) {}

  /**
   * Generates every completion of {@code requests} (admitted in their order) and fills {@code out}
   * at their indexes.
   *
   * @param batchSize live rows per step, at least 2
   */
  Run run(List<PreparedRequest> requests, int batchSize, DecodeBuffers buffers, Generation[] out)
      throws OrtException, GenAIException {
    long start = System.nanoTime();
    Deque<Completion> waiting = new ArrayDeque<>();
    List<List<Completion>> byRequest = new ArrayList<>(requests.size());
    int positions = 1;
    try {
      for (PreparedRequest r : requests) {
        List<Completion> cs = new ArrayList<>(r.n());
        Guidance g = r.request().guidance();
        for (int c = 0; c < r.n(); c++) {
          Completion completion = new Completion(r, TokenChooser.of(config, r.request().options(), r.tokens(), c),
              g == null ? null : guides.matcher(g));
          cs.add(completion);
          waiting.add(completion);
        }
        byRequest.add(cs);
        positions = Math.max(positions, r.positions());
      }
      return run(requests, batchSize, buffers, out, start, waiting, byRequest, positions);
    } finally {
      byRequest.forEach(cs -> cs.forEach(c -> {
        if (c.guide != null) {
          c.guide.close();
        }
      }));
    }
  }

  private Run run(List<PreparedRequest> requests, int batchSize, DecodeBuffers buffers, Generation[] out, long start,
      Deque<Completion> waiting, List<List<Completion>> byRequest, int positions) throws OrtException, GenAIException {
    // A window whose batch would pass the task's cache limit runs fewer rows at a time.
    int rows = buffers.rowsWithin(decoder.graph(), batchSize, positions);
    KvCache cache = buffers.cache(decoder.graph(), rows + 1, positions);
    Loop loop = new Loop(cache, rows, start);
    loop.drain(waiting);
    for (int i = 0; i < requests.size(); i++) {
      PreparedRequest r = requests.get(i);
      out[r.index()] = Completion.result(r, byRequest.get(i), eosIds, text);
    }
    return new Run(loop.slots, loop.profile.withTotal((System.nanoTime() - start) / 1e6, cache.bytes()));
  }

  /** One run's state: the live rows in slot order, the counts, the clock. */
  private final class Loop {
    final KvCache cache;
    final int batchSize;
    final long start;
    final Completion[] live;
    int k;
    SlotUsage slots = SlotUsage.NONE;
    DecodeProfile profile = DecodeProfile.NONE;

    Loop(KvCache cache, int batchSize, long start) {
      this.cache = cache;
      this.batchSize = batchSize;
      this.start = start;
      this.live = new Completion[batchSize];
    }

    void drain(Deque<Completion> waiting) throws OrtException, GenAIException {
      while (!waiting.isEmpty() || k > 0) {
        if (cancelled.getAsBoolean()) {
          throw new EngineException("The task was cancelled: generation stopped between decode steps");
        }
        while (k < batchSize && !waiting.isEmpty()) {
          Completion c = waiting.poll();
          if (!prefill(c)) {
            live[k++] = c;
          }
        }
        if (k > 0) {
          step();
          compact();
        }
      }
    }

    /** Prefills {@code c} into slot {@code k}; true when its first token already ends it. */
    boolean prefill(Completion c) throws OrtException, GenAIException {
      long t0 = System.nanoTime();
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
      boolean ended = choose(c, logits[0]);
      slots = slots.plus(new SlotUsage((long) rows * prompt.length, prompt.length, 1, 1));
      profile = profile.plusPrefill(t1 - t0, System.nanoTime() - t1);
      return ended;
    }

    /** One decode step of the live rows (beside a stand-in when one is left). */
    void step() throws OrtException, GenAIException {
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
        choose(live[r], logits[r]);
      }
      slots = slots.plus(new SlotUsage(0, 0, rows, k));
      profile = profile.plusStep(t1 - t0, System.nanoTime() - t1);
    }

    boolean choose(Completion c, float[] logits) throws GenAIException {
      if (c.guide != null) {
        c.guide.mask(logits);
      }
      int token = c.chooser.choose(logits, c.request.tokens(), c.buffer(), c.count());
      if (c.guide != null) {
        c.guide.consume(token);
      }
      c.add(token);
      return c.ends(eosIds, text, (System.nanoTime() - start) / 1e6);
    }

    /** Drops ended rows, moving the last live row into each freed slot. */
    void compact() {
      long t0 = System.nanoTime();
      for (int i = k - 1; i >= 0; i--) {
        if (live[i].done()) {
          k--;
          if (i != k) {
            cache.move(k, i, live[k].cached);
            live[i] = live[k];
          }
          live[k] = null;
        }
      }
      profile = profile.plusMove(System.nanoTime() - t0);
    }
  }
}
