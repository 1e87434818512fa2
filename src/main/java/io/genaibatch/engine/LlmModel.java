package io.genaibatch.engine;

import ai.onnxruntime.genai.Config;
import ai.onnxruntime.genai.GenAIException;
import ai.onnxruntime.genai.Generator;
import ai.onnxruntime.genai.GeneratorParams;
import ai.onnxruntime.genai.Model;
import ai.onnxruntime.genai.Sequences;
import ai.onnxruntime.genai.Tokenizer;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A loaded onnxruntime-genai model and its tokenizer.
 *
 * <p>Sharing: one instance serves any number of threads at once; each {@link #generate} call
 * makes its own native generator, which lives and dies inside that call. Lifetime: the model
 * outlives everything made from it; {@link #close()} waits for running calls to end, frees the
 * tokenizer then the model, and is idempotent. Any call after close throws {@link
 * IllegalStateException}.
 */
public final class LlmModel implements AutoCloseable {
  /** ASCII-only JSON, so JNI's modified UTF-8 cannot alter it on the way in. */
  private static final ObjectMapper JSON = new ObjectMapper()
      .configure(JsonWriteFeature.ESCAPE_NON_ASCII.mappedFeature(), true);

  private final GenAiConfig config;
  private final Model model;
  private final Tokenizer tokenizer;
  private final Set<Integer> eosIds;
  private final Utf8Bridge bridge;
  private final double loadMillis;
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  private final BatchPlanner planner = new BatchPlanner();
  private boolean closed;

  /** Takes ownership of {@code model} and {@code tokenizer}; does nothing that can fail. */
  private LlmModel(GenAiConfig config, Model model, Tokenizer tokenizer, Set<Integer> eosIds, Utf8Bridge bridge,
      double loadMillis) {
    this.config = config;
    this.model = model;
    this.tokenizer = tokenizer;
    this.eosIds = eosIds;
    this.bridge = bridge;
    this.loadMillis = loadMillis;
  }

  /** The end-of-sequence ids of genai_config.json and of the tokenizer, where it says. */
  private static Set<Integer> eosIds(GenAiConfig config, Tokenizer tokenizer) {
    Set<Integer> ids = new HashSet<>(config.eosTokenIds());
    try {
      for (int id : tokenizer.getEosTokenIds()) {
        ids.add(id);
      }
    } catch (GenAIException e) {
      // genai_config.json's list is enough.
    }
    return Set.copyOf(ids);
  }

  /** Loads with the runtime's default thread count. */
  public static LlmModel load(Path folder) {
    return load(folder, 0);
  }

  /**
   * Checks and loads a model folder.
   *
   * @param folder the folder that holds {@code genai_config.json}
   * @param intraOpThreads native threads per generation call; 0 keeps the runtime's default
   * @throws EngineException naming the folder when it is missing, not a model, or corrupt
   */
  public static LlmModel load(Path folder, int intraOpThreads) {
    GenAiConfig cfg = GenAiConfig.read(folder);
    NativeLibraries.ensureLoaded();
    long t0 = System.nanoTime();
    Model model = null;
    Tokenizer tok = null;
    try (Config c = new Config(folder.toString())) {
      if (intraOpThreads > 0) {
        c.overlay(
            "{\"model\":{\"decoder\":{\"session_options\":{\"intra_op_num_threads\":"
                + intraOpThreads
                + "}}}}");
      }
      model = new Model(c);
      tok = new Tokenizer(model);
      Utf8Bridge bridge = Utf8Bridge.read(cfg.folder());
      return new LlmModel(cfg, model, tok, eosIds(cfg, tok), bridge, (System.nanoTime() - t0) / 1e6);
    } catch (GenAIException | RuntimeException e) {
      // Whatever failed, the native handles made so far are freed: the tokenizer before its model.
      EngineException failure = new EngineException("Cannot load model " + folder + ": " + e.getMessage(), e);
      closeAfterFailure(tok, failure);
      closeAfterFailure(model, failure);
      throw failure;
    }
  }

  private static void closeAfterFailure(AutoCloseable handle, Exception failure) {
    if (handle == null) {
      return;
    }
    try {
      handle.close();
    } catch (Exception e) {
      failure.addSuppressed(e);
    }
  }

  public GenAiConfig config() {
    return config;
  }

  /** Wall time of the native load, milliseconds. */
  public double loadMillis() {
    return loadMillis;
  }

  /** Token ids of {@code text} as the model's tokenizer makes them (BOS included if it adds one). */
  public int[] encode(String text) {
    return read(() -> encodeTokens(text));
  }

  /** Encodes through the UTF-8 bridge when the text has characters beyond the BMP. */
  private int[] encodeTokens(String text) throws GenAIException {
    if (!Utf8Bridge.hasSupplementary(text)) {
      try (Sequences s = tokenizer.encode(text)) {
        return s.getSequence(0);
      }
    }
    String why = bridge.encodable(text);
    if (why != null) {
      throw new EngineException("Cannot encode the text: " + why);
    }
    Utf8Bridge.Swapped swapped = Utf8Bridge.swapOut(text);
    try (Sequences s = tokenizer.encode(swapped.text())) {
      return bridge.swapInTokens(s.getSequence(0), swapped);
    }
  }

  public int countTokens(String text) {
    return encode(text).length;
  }

  /** Text of {@code tokens}, special tokens dropped. */
  public String decode(int[] tokens) {
    return read(() -> decodeTokens(tokens));
  }

  /** The native decoder divides by the length: an empty array must never reach it. */
  private String decodeTokens(int[] tokens) throws GenAIException {
    if (tokens.length == 0) {
      return "";
    }
    Object[] swapped = bridge.swapOutTokens(tokens);
    if (swapped == null) {
      return tokenizer.decode(tokens);
    }
    @SuppressWarnings("unchecked")
    List<Integer> withHoles = (List<Integer>) swapped[0];
    int[] cps = (int[]) swapped[1];
    for (char sentinel = 0xE000; sentinel < 0xE100; sentinel++) {
      int[] sent = bridge.sentinelTokens(sentinel);
      List<Integer> ids = new ArrayList<>();
      for (int id : withHoles) {
        if (id == -1) {
          for (int t : sent) {
            ids.add(t);
          }
        } else {
          ids.add(id);
        }
      }
      String text = tokenizer.decode(ids.stream().mapToInt(Integer::intValue).toArray());
      final char probe = sentinel;
      if (text.chars().filter(c -> c == probe).count() == cps.length) {
        return Utf8Bridge.swapIn(text, probe, cps);
      }
    }
    return tokenizer.decode(tokens);
  }

  /**
   * The model's chat template applied to {@code messages}, as its tokenizer config defines it.
   *
   * @param addGenerationPrompt end with the assistant's turn marker, ready for generation
   */
  public String applyChatTemplate(List<ChatMessage> messages, boolean addGenerationPrompt) {
    if (messages == null || messages.isEmpty()) {
      throw new EngineException("Cannot apply the chat template: no messages");
    }
    StringBuilder all = new StringBuilder();
    for (int i = 0; i < messages.size(); i++) {
      ChatMessage m = messages.get(i);
      if (m == null || m.role() == null || m.content() == null) {
        throw new EngineException("Chat message " + i + " needs a role and a content");
      }
      all.append(m.content()).append('\u0000');
    }
    // Characters beyond the BMP would be mangled by the JNI layer on the way out: carry them
    // as a sentinel through the template (which copies contents verbatim) and put them back.
    Utf8Bridge.Swapped swapped = Utf8Bridge.swapOut(all.toString());
    String[] contents = swapped.text().split("\u0000", -1);
    ArrayNode arr = JSON.createArrayNode();
    for (int i = 0; i < messages.size(); i++) {
      ChatMessage m = messages.get(i);
      ObjectNode o = arr.addObject().put("role", m.role()).put("content", contents[i]);
      if (m.name() != null) {
        o.put("name", m.name());
      }
    }
    String json;
    try {
      json = JSON.writeValueAsString(arr);
    } catch (JsonProcessingException e) {
      throw new EngineException("Cannot write chat messages as JSON: " + e.getMessage(), e);
    }
    // The 0.12.0 JNI layer dereferences a null template (crash) and frees a non-null tools
    // string twice (crash): an empty template selects the tokenizer's own, tools stay null.
    String out = read(() -> tokenizer.applyChatTemplate("", json, null, addGenerationPrompt));
    return Utf8Bridge.swapIn(out, swapped.sentinel(), swapped.codePoints());
  }

  /**
   * Generates for every prompt and fails on the first bad one.
   *
   * @throws EngineException naming the prompt index and the limit it broke
   */
  public List<Generation> generate(List<String> prompts, SearchOptions options) {
    List<Generation> out = generateBatch(prompts, options);
    for (Generation g : out) {
      if (!g.ok()) {
        throw new EngineException("Cannot generate for prompt " + g.index() + " of " + out.size() + ": " + g.error());
      }
    }
    return out;
  }

  /**
   * Generates for one prompt (beside a stand-in copy of itself, see {@link #score}); a null, empty
   * or over-long prompt comes back as an error {@link Generation}.
   */
  public Generation generateOne(String prompt, SearchOptions options) {
    return generateOne(GenerationRequest.of(prompt, options));
  }

  /** Generates for one request, as {@link #generateOne(String, SearchOptions)}. */
  public Generation generateOne(GenerationRequest request) {
    return score(List.of(request), 2, Batching.FIXED).generations().get(0);
  }

  /**
   * Generates for a batch of prompts in one native call (its {@code batch_size} is the number of
   * good prompts; a lone good prompt gets a stand-in copy, see {@link #score}). A null, empty or
   * over-long prompt comes back as an error {@link Generation} at its index; the rest of the batch
   * is still generated.
   *
   * @throws EngineException for an empty batch
   */
  public List<Generation> generateBatch(List<String> prompts, SearchOptions options) {
    return score(prompts, options, Math.max(2, prompts == null ? 0 : prompts.size())).generations();
  }

  /**
   * Scores a window of prompts in native batches of about {@code batchSize}: the good prompts are
   * sorted by token count (ties by position) and cut into consecutive runs, so a batch pads little.
   *
   * <p>Which prompts share a batch depends on the window's prompts and {@code batchSize} alone.
   * With {@code batchSize} of 2 or more no prompt is ever generated alone: onnxruntime's int4
   * kernels take another path for a single row, whose greedy answers drift from the batched ones,
   * so a lone prompt runs beside a stand-in copy of itself (its slots count as waste) and a run
   * that would leave one prompt over is split evenly instead (a batch may then hold one prompt more
   * than {@code batchSize}). With {@code batchSize} 1 every prompt runs alone, as the one-prompt-at-
   * a-time pyfunc wrapper does, and gives its answers.
   *
   * <p>A native failure fails the rows of that batch only, as error generations.
   *
   * @param batchSize prompts per native batch, at least 1
   * @throws EngineException for an empty window
   */
  public ScoredWindow score(List<String> prompts, SearchOptions options, int batchSize) {
    return score(prompts, options, batchSize, Batching.FIXED);
  }

  /**
   * As {@link #score(List, SearchOptions, int)}, with {@link Batching#ADAPTIVE} batch sizes chosen
   * by measured cost instead of fixed ones: {@code batchSize} is then the largest batch. Either way
   * no prompt runs alone and a prompt's answer does not depend on which prompts share its batch.
   */
  public ScoredWindow score(List<String> prompts, SearchOptions options, int batchSize, Batching batching) {
    if (prompts == null || prompts.isEmpty()) {
      throw new EngineException("Cannot generate for an empty batch: pass at least one prompt");
    }
    SearchOptions opts = options == null ? SearchOptions.DEFAULTS : options;
    List<GenerationRequest> requests = new ArrayList<>(prompts.size());
    for (String p : prompts) {
      requests.add(GenerationRequest.of(p, opts));
    }
    return score(requests, batchSize, batching);
  }

  /**
   * Scores a window of requests, each with its own options, as {@link #score(List, SearchOptions,
   * int, Batching)} scores prompts that share theirs.
   *
   * <p>Requests whose native options differ (sampling, temperature, top_p, top_k, seed, repetition
   * penalty, guidance) go to different native batches, in the order each set of options first
   * appears in the window. Inside one set, requests are sorted by their own {@code max_new_tokens}
   * (unset last), then by prompt length, so a batch mixes few budgets and pads little; all {@code
   * n} completions of a request share one batch (with a fixed seed, copies in different batches would
   * repeat one another). A completion ends at an end-of-sequence token, at its own token budget or
   * at the first of its stop strings in its decoded text; a batch ends as soon as all of its rows have
   * ended, so a row that stopped early costs only the steps its batch still runs for others.
   *
   * @throws EngineException for an empty window or a batch size below 1
   */
  public ScoredWindow score(List<GenerationRequest> requests, int batchSize, Batching batching) {
    if (requests == null || requests.isEmpty()) {
      throw new EngineException("Cannot generate for an empty batch: pass at least one prompt");
    }
    if (batchSize < 1) {
      throw new EngineException("Batch size must be at least 1, got " + batchSize);
    }
    return read(() -> doScore(requests, batchSize, batching));
  }

  /**
   * The options that must be the same for every row of one native batch: all but the budget.
   * Records compare by value, so equal options from different rows land in one group.
   */
  private record NativeKey(Boolean doSample, Double temperature, Double topP, Integer topK, Long seed,
      Double repetitionPenalty, Guidance guidance) {
    static NativeKey of(GenerationRequest r) {
      SearchOptions o = r.options();
      return new NativeKey(o.doSample(), o.temperature(), o.topP(), o.topK(), o.seed(), o.repetitionPenalty(),
          r.guidance());
    }
  }

  /**
   * A good request: its position in the window, tokens, budget of new tokens per completion, and
   * the requested cap it was sorted by.
   */
  @SuppressWarnings("ArrayRecordComponent") // read, never compared
  private record Prepared(int index, int[] tokens, int budget, int cap, GenerationRequest request) {
    int n() {
      return request.n();
    }
  }

  private ScoredWindow doScore(List<GenerationRequest> requests, int batchSize, Batching batching)
      throws GenAIException {
    int n = requests.size();
    Generation[] out = new Generation[n];
    int context = config.contextLength();
    Map<NativeKey, List<Prepared>> groups = new LinkedHashMap<>();
    for (int i = 0; i < n; i++) {
      GenerationRequest req = requests.get(i);
      SearchOptions opts = req.options();
      String p = req.prompt();
      if (p == null) {
        out[i] = Generation.failed(i, 0, ErrorKind.NULL_PROMPT, "prompt is null");
        continue;
      }
      if (p.isBlank()) {
        out[i] = Generation.failed(i, 0, ErrorKind.EMPTY_PROMPT, "prompt is empty");
        continue;
      }
      Optional<String> same = config.sameAnswers(opts, req.n());
      if (same.isPresent()) {
        out[i] = Generation.failed(i, 0, ErrorKind.BAD_OPTION, same.get());
        continue;
      }
      int[] tokens;
      try {
        tokens = encodeTokens(p);
      } catch (GenAIException | EngineException e) {
        out[i] = Generation.failed(i, 0, ErrorKind.UNTOKENIZABLE, "prompt cannot be tokenized: " + e.getMessage());
        continue;
      }
      int len = tokens.length;
      int maxTotal = TokenBudget.totalLimit(context, opts.maxLength(), opts.maxNewTokens(), config.defaultMaxLength());
      if (len >= maxTotal) {
        out[i] = Generation.failed(i, len, ErrorKind.TOO_LONG, "prompt has " + len + " tokens, which leaves no room to"
            + " generate: the limit is " + (maxTotal - 1) + " prompt tokens (model context length "
            + context + (opts.maxLength() != null ? ", max_length " + opts.maxLength() : "") + ")");
        continue;
      }
      int cap = opts.maxNewTokens() == null ? Integer.MAX_VALUE : opts.maxNewTokens();
      groups.computeIfAbsent(NativeKey.of(req), k -> new ArrayList<>())
          .add(new Prepared(i, tokens, TokenBudget.newTokens(len, maxTotal, opts.maxNewTokens()), cap, req));
    }
    SlotUsage slots = SlotUsage.NONE;
    int batches = 0;
    for (List<Prepared> good : groups.values()) {
      good.sort(Comparator.comparingInt(Prepared::cap).thenComparingInt((Prepared r) -> r.tokens().length)
          .thenComparingInt(Prepared::index));
      if (good.get(0).request().guidance() != null) {
        for (Prepared r : good) {
          GuidedRun run = runGuided(r, context, batchSize, out);
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
        List<Prepared> batch = good.subList(from, from + size);
        from += size;
        k++;
        batches++;
        slots = slots.plus(runOrFail(batch, context, batchSize > 1, out));
      }
    }
    return new ScoredWindow(List.of(out), slots, batches);
  }

  /** {@link #runBatch}, its native failure turned into error generations of its rows. */
  private SlotUsage runOrFail(List<Prepared> batch, int context, boolean standIn, Generation[] out) {
    try {
      return runBatch(batch, context, standIn, out);
    } catch (GenAIException | RuntimeException e) {
      for (Prepared r : batch) {
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
  private GuidedRun runGuided(Prepared r, int context, int batchSize, Generation[] out) {
    boolean sampled = config.samples(r.request().options());
    if (!sampled || r.n() == 1) {
      return new GuidedRun(runOrFail(List.of(r), context, batchSize > 1 && !sampled, out), 1);
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
      slots = slots.plus(runOrFail(List.of(new Prepared(r.index(), r.tokens(), r.budget(), r.cap(), one)), context,
          false, single));
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
  private static int[] packed(List<Prepared> sorted, int batchSize) {
    List<Integer> sizes = new ArrayList<>();
    int count = 0;
    int rows = 0;
    for (Prepared r : sorted) {
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

  private int nextAdaptive(List<Prepared> sorted, int from, int maxBatch) {
    int[] lengths = new int[sorted.size() - from];
    int cap = 1;
    for (int k = 0; k < lengths.length; k++) {
      Prepared r = sorted.get(from + k);
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
  static int[] batchSizes(int count, int batchSize) {
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

  /** One completion being generated: a row of a native batch. */
  private static final class Slot {
    final Prepared request;
    int[] tokens;
    int count;
    boolean done;
    FinishReason finish;
    /** Where a stop string starts in the decoded text, when one ended the completion; else -1. */
    int cutAt = -1;
    String text;
    double latencyMs;

    Slot(Prepared request) {
      this.request = request;
      this.tokens = new int[Math.min(request.budget(), 64)];
    }

    void add(int token) {
      if (count == tokens.length) {
        tokens = Arrays.copyOf(tokens, Math.max(8, count * 2));
      }
      tokens[count++] = token;
    }

    int[] generated() {
      return Arrays.copyOf(tokens, count);
    }
  }

  /**
   * One native generator over {@code batch}, every request's completions as rows; fills {@code
   * out} at the requests' indexes. A lone row runs beside a stand-in copy of itself when {@code
   * standInAllowed} (batch size 2 or more), so it takes the batched kernel path.
   */
  private SlotUsage runBatch(List<Prepared> batch, int context, boolean standInAllowed, Generation[] out)
      throws GenAIException {
    long start = System.nanoTime();
    List<Slot> real = new ArrayList<>();
    for (Prepared r : batch) {
      for (int c = 0; c < r.n(); c++) {
        real.add(new Slot(r));
      }
    }
    boolean standIn = standInAllowed && real.size() == 1;
    int rows = real.size() + (standIn ? 1 : 0);
    int longest = 0;
    int steps = 0;
    long promptTokens = 0;
    for (Slot s : real) {
      longest = Math.max(longest, s.request.tokens().length);
      steps = Math.max(steps, s.request.budget());
      promptTokens += s.request.tokens().length;
    }
    // Shorter prompts are padded to the longest; the batch's length limit is counted on that.
    int maxLength = Math.min(context, longest + steps);
    GenerationRequest first = batch.get(0).request();
    int stepsRun = 0;
    long prefillEnd;
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
        // encoded once above (through the UTF-8 bridge where needed), not again here.
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
          gen.generateNextToken();
          stepsRun++;
          double atMs = (System.nanoTime() - start) / 1e6;
          // onnxruntime-genai 0.12 does not append the token of a step that ends the whole batch
          // by end-of-sequence (a step ending it by length keeps its token). The lost token is an
          // end token; the binding cannot say which, so the model's first one stands in.
          boolean endedByEos = gen.isDone() && longest + stepsRun < maxLength;
          for (int j = 0; j < real.size(); j++) {
            Slot s = real.get(j);
            if (s.done) {
              continue;
            }
            s.add(endedByEos ? firstEos() : gen.getLastTokenInSequence(j));
            if (finish(s)) {
              s.done = true;
              s.latencyMs = atMs;
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
    for (Prepared r : batch) {
      List<Choice> choices = new ArrayList<>(r.n());
      String incomplete = null;
      for (int c = 0; c < r.n(); c++) {
        Slot s = real.get(at++);
        if (!s.done) {
          // The native generator ended the batch (its length limit) before this row's own end.
          s.finish = FinishReason.LENGTH;
          s.latencyMs = endMillis;
        }
        answerTokens += s.count;
        planner.observeAnswer(s.count);
        int[] generated = s.generated();
        String text;
        if (s.cutAt >= 0) {
          text = s.text.substring(0, s.cutAt);
        } else {
          int[] answer = s.count > 0 && eosIds.contains(generated[s.count - 1])
              ? Arrays.copyOf(generated, s.count - 1) : generated;
          text = decodeTokens(answer);
        }
        if (r.request().guidance() != null && s.finish == FinishReason.LENGTH) {
          incomplete = "the answer reached its limit of " + r.budget() + " new tokens before its response format ("
              + r.request().guidance().type() + ") was complete; raise max_tokens";
        }
        choices.add(new Choice(text, generated, s.finish, s.latencyMs));
      }
      out[r.index()] = incomplete != null
          ? Generation.failed(r.index(), r.tokens().length, ErrorKind.INCOMPLETE_RESPONSE, incomplete)
          : Generation.of(r.index(), r.tokens().length, choices);
    }
    return new SlotUsage((long) rows * longest, promptTokens, (long) rows * stepsRun, answerTokens);
  }

  private int firstEos() {
    return config.eosTokenIds().isEmpty() ? eosIds.iterator().next() : config.eosTokenIds().get(0);
  }

  /**
   * Whether the completion in {@code s} has ended with the token just added: an end-of-sequence
   * token, its token budget, or the first appearance of one of its stop strings in its decoded text
   * (checked on the whole text, as a stop string can span tokens; decoding goes through the UTF-8
   * bridge like every answer).
   */
  private boolean finish(Slot s) throws GenAIException {
    int last = s.tokens[s.count - 1];
    if (eosIds.contains(last)) {
      s.finish = FinishReason.STOP;
      return true;
    }
    List<String> stop = s.request.request().stop();
    if (!stop.isEmpty()) {
      String text = decodeTokens(s.generated());
      int cut = -1;
      for (String str : stop) {
        int k = text.indexOf(str);
        if (k >= 0 && (cut < 0 || k < cut)) {
          cut = k;
        }
      }
      if (cut >= 0) {
        s.text = text;
        s.cutAt = cut;
        s.finish = FinishReason.STOP;
        return true;
      }
    }
    if (s.count >= s.request.budget()) {
      s.finish = FinishReason.LENGTH;
      return true;
    }
    return false;
  }

  private static void applySearch(GeneratorParams p, SearchOptions o) throws GenAIException {
    if (o.doSample() != null) {
      p.setSearchOption("do_sample", o.doSample());
    }
    if (o.temperature() != null) {
      p.setSearchOption("temperature", o.temperature());
    }
    if (o.topP() != null) {
      p.setSearchOption("top_p", o.topP());
    }
    if (o.topK() != null) {
      p.setSearchOption("top_k", o.topK());
    }
    if (o.seed() != null) {
      p.setSearchOption("random_seed", o.seed());
    }
    if (o.repetitionPenalty() != null) {
      p.setSearchOption("repetition_penalty", o.repetitionPenalty());
    }
  }

  private interface NativeCall<T> {
    T call() throws GenAIException;
  }

  private <T> T read(NativeCall<T> call) {
    lock.readLock().lock();
    try {
      if (closed) {
        throw new IllegalStateException("Model " + config.folder() + " is closed");
      }
      return call.call();
    } catch (GenAIException e) {
      throw new EngineException("Model " + config.folder() + ": " + e.getMessage(), e);
    } finally {
      lock.readLock().unlock();
    }
  }

  public boolean isClosed() {
    lock.readLock().lock();
    try {
      return closed;
    } finally {
      lock.readLock().unlock();
    }
  }

  @Override
  public void close() {
    lock.writeLock().lock();
    try {
      if (closed) {
        return;
      }
      closed = true;
      tokenizer.close();
      model.close();
    } finally {
      lock.writeLock().unlock();
    }
  }
}
