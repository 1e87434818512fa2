package io.genaibatch.engine.batches;

import ai.onnxruntime.genai.GenAIException;
import ai.onnxruntime.genai.Generator;
import ai.onnxruntime.genai.GeneratorParams;
import ai.onnxruntime.genai.Model;
import io.genaibatch.engine.Batching;
import io.genaibatch.engine.Choice;
import io.genaibatch.engine.Completion;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.ErrorKind;
import io.genaibatch.engine.GenAiConfig;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.PreparedRequest;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.engine.SlotUsage;
import io.genaibatch.engine.guidance.Guidance;
import io.genaibatch.engine.guidance.NativeGuidance;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BooleanSupplier;

/**
 * onnxruntime-genai's own generator, a static batch: the path of {@code --batching adaptive} and
 * {@code fixed}, of {@code --batch-size 1} (the seed wrapper's answers), of rows with a response
 * format (guidance), and of models whose decoder graph the continuous loop cannot run.
 *
 * <p>Requests whose native options differ (sampling, temperature, top_p, top_k, seed, repetition
 * penalty, guidance) go to different native batches, in the order each set of options first
 * appears in the window. Inside one set, requests are sorted by their own {@code max_new_tokens}
 * (unset last), then by prompt length, so a batch mixes few budgets and pads little; all {@code n}
 * completions of a request share one batch. A batch ends as soon as all of its rows have ended.
 */
public final class StaticBatches {
  private final java.util.function.Supplier<Model> models;
  private final GenAiConfig config;
  private final Set<Integer> eosIds;
  private final Completion.Decoder text;
  private final BatchPlanner planner = new BatchPlanner();
  /** Key/value bytes of one position of one row in the generator's cache; 0 when unknown. */
  private final long kvPerPosition;

  /**
   * @param models onnxruntime-genai's model with the weights, asked for at the first batch
   * @param kvPerPosition key/value bytes of one position of one row; 0 when unknown (no bound)
   */
  public StaticBatches(java.util.function.Supplier<Model> models, GenAiConfig config, Set<Integer> eosIds,
      Completion.Decoder text, long kvPerPosition) {
    this.models = models;
    this.kvPerPosition = kvPerPosition;
    this.config = config;
    this.eosIds = eosIds;
    this.text = text;
  }

  /** What a run computed: its slots and its native generator runs. */
  public record Run(SlotUsage slots, int batches) {}

  /**
   * The options that must be the same for every row of one native batch: all but the budget, and the
   * response format. Maps and records compare by value, so equal options from different rows land in
   * one group.
   */
  private record NativeKey(Map<String, Object> options, Guidance guidance) {
    static NativeKey of(GenerationRequest r) {
      return new NativeKey(r.options().batchOptions(), r.guidance());
    }
  }

  /**
   * Generates {@code requests} in native batches of about {@code batchSize}, filling {@code out}. The
   * generator holds key/value cache for each of its rows up to the batch's length limit: a batch that
   * would need more than {@code kvLimitBytes} runs as several smaller ones (each request is known to
   * fit alone, see {@code RequestCheck}).
   */
  public Run run(List<PreparedRequest> requests, int batchSize, Batching batching, Generation[] out,
      BooleanSupplier cancelled, long kvLimitBytes) {
    Bounded bounded = new Bounded(config.contextLength(), kvLimitBytes);
    Map<NativeKey, List<PreparedRequest>> groups = new LinkedHashMap<>();
    for (PreparedRequest r : requests) {
      groups.computeIfAbsent(NativeKey.of(r.request()), k -> new ArrayList<>()).add(r);
    }
    SlotUsage slots = SlotUsage.NONE;
    int batches = 0;
    for (List<PreparedRequest> good : groups.values()) {
      good.sort(Comparator.comparingInt(PreparedRequest::cap).thenComparingInt((PreparedRequest r) -> r.tokens().length)
          .thenComparingInt(PreparedRequest::index));
      if (good.get(0).request().guidance() != null) {
        for (PreparedRequest r : good) {
          GuidedRun run = runGuided(r, bounded, batchSize, out, cancelled);
          slots = slots.plus(run.slots());
          batches += run.batches();
        }
        continue;
      }
      boolean copies = good.stream().anyMatch(r -> r.n() > 1);
      int[] fixed = copies ? packed(good, batchSize) : batchSizes(good.size(), batchSize);
      int from = 0;
      int k = 0;
      while (from < good.size()) {
        // Adaptive: plan the rest of the window with what the batches so far measured, run the
        // first batch of the plan (the shortest prompts), then plan again.
        int size = batching == Batching.FIXED || batchSize == 1 || copies ? fixed[k] : nextAdaptive(good, from, batchSize);
        for (List<PreparedRequest> batch : bounded.split(good.subList(from, from + size))) {
          batches++;
          slots = slots.plus(runOrFail(batch, bounded, batchSize > 1, out, cancelled));
        }
        from += size;
        k++;
      }
    }
    return new Run(slots, batches);
  }

  /**
   * The generator's length limit and key/value bound: a batch of {@code rows} rows to {@code
   * maxLength} positions holds {@code rows * maxLength} positions of cache.
   */
  private final class Bounded {
    final int context;
    final long limitBytes;

    Bounded(int context, long limitBytes) {
      this.context = context;
      this.limitBytes = limitBytes;
    }

    /** The batch's length limit: its longest prompt (shorter ones are padded to it) and its largest budget. */
    int maxLength(List<PreparedRequest> batch) {
      int longest = 0;
      int steps = 0;
      for (PreparedRequest r : batch) {
        longest = Math.max(longest, r.tokens().length);
        steps = Math.max(steps, r.budget());
      }
      return Math.min(context, longest + steps);
    }

    boolean fits(int rows, int maxLength) {
      return (long) rows * maxLength * kvPerPosition <= limitBytes;
    }

    /** {@code batch} cut, in order, into the longest runs whose cache fits (a request alone always runs). */
    List<List<PreparedRequest>> split(List<PreparedRequest> batch) {
      List<List<PreparedRequest>> runs = new ArrayList<>();
      List<PreparedRequest> run = new ArrayList<>();
      int rows = 0;
      for (PreparedRequest r : batch) {
        run.add(r);
        if (run.size() > 1 && !fits(rows + r.n(), maxLength(run))) {
          run.remove(run.size() - 1);
          runs.add(run);
          run = new ArrayList<>(List.of(r));
          rows = 0;
        }
        rows += r.n();
      }
      runs.add(run);
      return runs;
    }
  }

  private SlotUsage runOrFail(List<PreparedRequest> batch, Bounded bounded, boolean standIn, Generation[] out,
      BooleanSupplier cancelled) {
    if (cancelled.getAsBoolean()) {
      throw new EngineException("The task was cancelled: generation stopped between batches");
    }
    try {
      return runBatch(batch, bounded, standIn, out, cancelled);
    } catch (GenAIException | RuntimeException e) {
      // As in the continuous loop: a cancelled task stops, its rows are not answered as failures.
      if (cancelled.getAsBoolean()) {
        throw new EngineException("The task was cancelled: " + e.getMessage(), e);
      }
      for (PreparedRequest r : batch) {
        out[r.index()] = Generation.failed(r.index(), r.tokens().length, ErrorKind.GENERATION_FAILED,
            "generation failed: " + e.getMessage());
      }
      return SlotUsage.NONE;
    }
  }

  private record GuidedRun(SlotUsage slots, int batches) {}

  /**
   * A request with guidance, alone: in onnxruntime-genai 0.12.0 a guided batch fails as soon as one
   * of its rows ends before another (the ended row's grammar is handed a pad token and refuses it;
   * the same happens in Python), so no two different completions share a generator. A greedy
   * request runs beside a stand-in copy of itself, which ends at the same step; a sampled one runs
   * alone, each of its {@code n} completions in a generator of its own, copy {@code c} seeded
   * {@code seed + c} when a seed is set (the same seed would repeat the first answer).
   */
  private GuidedRun runGuided(PreparedRequest r, Bounded bounded, int batchSize, Generation[] out,
      BooleanSupplier cancelled) {
    boolean sampled = config.samples(r.request().options());
    if (!sampled || r.n() == 1) {
      return new GuidedRun(runOrFail(List.of(r), bounded, batchSize > 1 && !sampled, out, cancelled), 1);
    }
    SlotUsage slots = SlotUsage.NONE;
    List<Choice> choices = new ArrayList<>();
    Generation failed = null;
    for (int c = 0; c < r.n(); c++) {
      GenerationRequest req = r.request();
      Long seed = req.options().seed();
      GenerationRequest one = new GenerationRequest(req.prompt(),
          seed == null ? req.options() : req.options().withSeed(seed + c), req.stop(), 1, req.guidance());
      Generation[] single = new Generation[out.length];
      slots = slots.plus(runOrFail(List.of(new PreparedRequest(r.index(), r.tokens(), r.budget(), r.cap(), one)), bounded,
          false, single, cancelled));
      Generation g = single[r.index()];
      if (!g.ok()) {
        failed = g;
        break;
      }
      choices.addAll(g.choices());
    }
    out[r.index()] = failed != null ? failed : Generation.of(r.index(), r.tokens().length, choices);
    return new GuidedRun(slots, choices.size() + (failed != null ? 1 : 0));
  }

  /**
   * Batch sizes, in requests, for a sorted group where some requests want several completions:
   * consecutive requests fill a batch up to {@code batchSize} rows, and a request never splits.
   */
  private static int[] packed(List<PreparedRequest> sorted, int batchSize) {
    List<Integer> sizes = new ArrayList<>();
    int count = 0;
    int rows = 0;
    for (PreparedRequest r : sorted) {
      if (count > 0 && rows + r.n() > batchSize) {
        sizes.add(count);
        count = 0;
        rows = 0;
      }
      count++;
      rows += r.n();
    }
    sizes.add(count);
    return sizes.stream().mapToInt(Integer::intValue).toArray();
  }

  private int nextAdaptive(List<PreparedRequest> sorted, int from, int maxBatch) {
    int[] lengths = new int[sorted.size() - from];
    int cap = 1;
    for (int k = 0; k < lengths.length; k++) {
      PreparedRequest r = sorted.get(from + k);
      lengths[k] = r.tokens().length;
      cap = Math.max(cap, r.budget());
    }
    return planner.plan(lengths, maxBatch, cap)[0];
  }

  /**
   * Sizes of the consecutive runs {@code count} sorted prompts are cut into: as few runs of at
   * most {@code batchSize} as can be, sizes as even as can be; with {@code batchSize} of 2 or
   * more, never a run of one when there are two prompts or more (one run may then exceed {@code
   * batchSize} by one).
   */
  public static int[] batchSizes(int count, int batchSize) {
    if (count == 0) {
      return new int[0];
    }
    int k = (count + batchSize - 1) / batchSize;
    if (batchSize > 1 && k > 1 && count / k < 2) {
      k--;
    }
    int[] sizes = new int[k];
    for (int j = 0; j < k; j++) {
      sizes[j] = count / k + (j < count % k ? 1 : 0);
    }
    return sizes;
  }

  /**
   * One native generator over {@code batch}, every request's completions as rows; fills {@code
   * out} at the requests' indexes. A lone row runs beside a stand-in copy of itself when {@code
   * standInAllowed} (batch size 2 or more), so it takes the batched kernel path.
   */
  private SlotUsage runBatch(List<PreparedRequest> batch, Bounded bounded, boolean standInAllowed, Generation[] out,
      BooleanSupplier cancelled)
      throws GenAIException {
    long start = System.nanoTime();
    List<Completion> real = new ArrayList<>();
    for (PreparedRequest r : batch) {
      for (int c = 0; c < r.n(); c++) {
        real.add(new Completion(r, null));
      }
    }
    // Shorter prompts are padded to the longest; the batch's length limit is counted on that.
    int maxLength = bounded.maxLength(batch);
    boolean standIn = standInAllowed && real.size() == 1;
    if (standIn && !bounded.fits(2, maxLength)) {
      // Alone it would take the single-row kernel path, whose greedy answers differ: in a batched job
      // a row never does, so one whose stand-in does not fit is its own error.
      PreparedRequest r = batch.get(0);
      out[r.index()] = Generation.failed(r.index(), r.tokens().length, ErrorKind.OVER_LIMIT, "the row needs "
          + ((2L * maxLength * kvPerPosition) >> 20) + " MiB of key/value cache beside the stand-in copy that keeps"
          + " it on the batched kernel path, above the limit of --kv-cache-mb " + (bounded.limitBytes >> 20)
          + ": raise --kv-cache-mb, or lower the row's max_tokens");
      return SlotUsage.NONE;
    }
    int rows = real.size() + (standIn ? 1 : 0);
    int longest = 0;
    long promptTokens = 0;
    for (Completion s : real) {
      longest = Math.max(longest, s.request.tokens().length);
      promptTokens += s.request.tokens().length;
    }
    GenerationRequest first = batch.get(0).request();
    int stepsRun = 0;
    long prefillEnd;
    Model model = models.get();
    try (GeneratorParams params = new GeneratorParams(model)) {
      params.setSearchOption("batch_size", rows);
      params.setSearchOption("max_length", maxLength);
      applySearch(params, first.options());
      if (first.guidance() != null) {
        NativeGuidance.apply(params, first.guidance());
      }
      // With guidance the native side compiles the grammar here: a bad one fails this batch's rows.
      try (Generator gen = first.guidance() == null ? new Generator(model, params)
          : NativeGuidance.newGenerator(model, params, first.guidance())) {
        // Token ids, right-padded with the pad token as encodeBatch would: the prompts were
        // encoded once by the caller (through the UTF-8 bridge where needed), not again here.
        int[] flat = new int[rows * longest];
        Arrays.fill(flat, config.padTokenId());
        for (int j = 0; j < rows; j++) {
          int[] t = real.get(Math.min(j, real.size() - 1)).request.tokens();
          System.arraycopy(t, 0, flat, j * longest, t.length);
        }
        gen.appendTokens(flat);
        prefillEnd = System.nanoTime();
        int active = real.size();
        while (active > 0 && !gen.isDone()) {
          if (cancelled.getAsBoolean()) {
            throw new EngineException("The task was cancelled: generation stopped between decode steps");
          }
          gen.generateNextToken();
          stepsRun++;
          double atMs = (System.nanoTime() - start) / 1e6;
          // onnxruntime-genai 0.12 does not append the token of a step that ends the whole batch
          // by end-of-sequence (a step ending it by length keeps its token). The lost token is an
          // end token; the binding cannot say which, so the model's first one stands in.
          boolean endedByEos = gen.isDone() && longest + stepsRun < maxLength;
          for (int j = 0; j < real.size(); j++) {
            Completion s = real.get(j);
            if (s.done()) {
              continue;
            }
            s.add(endedByEos ? firstEos() : gen.getLastTokenInSequence(j));
            if (s.ends(eosIds, text, atMs)) {
              active--;
            }
          }
        }
      }
    }
    long end = System.nanoTime();
    double endMillis = (end - start) / 1e6;
    planner.observeBatch(rows, (long) rows * longest, (prefillEnd - start) / 1e6, stepsRun, (end - prefillEnd) / 1e6);
    long answerTokens = 0;
    int at = 0;
    for (PreparedRequest r : batch) {
      List<Completion> mine = real.subList(at, at + r.n());
      at += r.n();
      for (Completion s : mine) {
        // The native generator may end the batch (its length limit) before a row's own end.
        s.cutOff(endMillis);
        answerTokens += s.count();
        planner.observeAnswer(s.count());
      }
      out[r.index()] = Completion.result(r, mine, eosIds, text);
    }
    return new SlotUsage((long) rows * longest, promptTokens, (long) rows * stepsRun, answerTokens);
  }

  private int firstEos() {
    return config.eosTokenIds().isEmpty() ? eosIds.iterator().next() : config.eosTokenIds().get(0);
  }

  private static void applySearch(GeneratorParams p, SearchOptions o) throws GenAIException {
    for (Map.Entry<String, Object> e : o.batchOptions().entrySet()) {
      if (e.getValue() instanceof Boolean b) {
        p.setSearchOption(e.getKey(), b);
      } else {
        p.setSearchOption(e.getKey(), ((Number) e.getValue()).doubleValue());
      }
    }
  }
}
