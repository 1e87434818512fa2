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
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
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
    return generateBatch(Collections.singletonList(prompt), options).get(0);
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
    if (batchSize < 1) {
      throw new EngineException("Batch size must be at least 1, got " + batchSize);
    }
    SearchOptions opts = options == null ? SearchOptions.DEFAULTS : options;
    return read(() -> doScore(prompts, opts, batchSize, batching));
  }

  /** A good prompt: its position in the window, tokens and budget of new tokens. */
  @SuppressWarnings("ArrayRecordComponent") // read, never compared
  private record Prepared(int index, int[] tokens, int budget) {}

  private ScoredWindow doScore(List<String> prompts, SearchOptions opts, int batchSize, Batching batching)
      throws GenAIException {
    int n = prompts.size();
    Generation[] out = new Generation[n];
    int context = config.contextLength();
    int maxTotal = TokenBudget.totalLimit(context, opts.maxLength(), opts.maxNewTokens(), config.defaultMaxLength());
    List<Prepared> good = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      String p = prompts.get(i);
      if (p == null) {
        out[i] = Generation.failed(i, 0, ErrorKind.NULL_PROMPT, "prompt is null");
        continue;
      }
      if (p.isBlank()) {
        out[i] = Generation.failed(i, 0, ErrorKind.EMPTY_PROMPT, "prompt is empty");
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
      if (len >= maxTotal) {
        out[i] = Generation.failed(i, len, ErrorKind.TOO_LONG, "prompt has " + len + " tokens, which leaves no room to"
            + " generate: the limit is " + (maxTotal - 1) + " prompt tokens (model context length "
            + context + (opts.maxLength() != null ? ", max_length " + opts.maxLength() : "") + ")");
        continue;
      }
      good.add(new Prepared(i, tokens, TokenBudget.newTokens(len, maxTotal, opts.maxNewTokens())));
    }
    good.sort(Comparator.comparingInt((Prepared r) -> r.tokens().length).thenComparingInt(Prepared::index));
    SlotUsage slots = SlotUsage.NONE;
    int from = 0;
    int batches = 0;
    int[] fixed = batchSizes(good.size(), batchSize);
    while (from < good.size()) {
      // Adaptive: plan the rest of the window with what the batches so far measured, run the
      // first batch of the plan (the shortest prompts), then plan again.
      int size = batching == Batching.FIXED || batchSize == 1 ? fixed[batches] : nextAdaptive(good, from, batchSize);
      List<Prepared> batch = good.subList(from, from + size);
      from += size;
      batches++;
      try {
        slots = slots.plus(runBatch(batch, opts, context, batchSize > 1 && size == 1, out));
      } catch (GenAIException | RuntimeException e) {
        for (Prepared r : batch) {
          out[r.index()] = Generation.failed(r.index(), r.tokens().length, ErrorKind.GENERATION_FAILED,
              "generation failed: " + e.getMessage());
        }
      }
    }
    return new ScoredWindow(List.of(out), slots, batches);
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

  /**
   * One native generator over {@code batch}; fills {@code out} at the rows' indexes.
   *
   * @param standIn run a copy of the lone row beside it, so it takes the batched kernel path
   */
  private SlotUsage runBatch(List<Prepared> batch, SearchOptions opts, int context, boolean standIn,
      Generation[] out) throws GenAIException {
    long start = System.nanoTime();
    int rows = batch.size() + (standIn ? 1 : 0);
    int longest = 0;
    int steps = 0;
    long promptTokens = 0;
    for (Prepared r : batch) {
      longest = Math.max(longest, r.tokens().length);
      steps = Math.max(steps, r.budget());
      promptTokens += r.tokens().length;
    }
    // Shorter prompts are padded to the longest; the batch's length limit is counted on that.
    int maxLength = Math.min(context, longest + steps);
    double[] stepMillis = new double[steps];
    int[][] sequences = new int[rows][];
    int[] startAt = new int[rows];
    int stepsRun = 0;
    long prefillEnd = start;
    try (GeneratorParams params = new GeneratorParams(model)) {
      params.setSearchOption("batch_size", rows);
      params.setSearchOption("max_length", maxLength);
      applySearch(params, opts);
      try (Generator gen = new Generator(model, params)) {
        // Token ids, right-padded with the pad token as encodeBatch would: the prompts were
        // encoded once above (through the UTF-8 bridge where needed), not again here.
        int[] flat = new int[rows * longest];
        Arrays.fill(flat, config.padTokenId());
        for (int j = 0; j < rows; j++) {
          int[] t = batch.get(Math.min(j, batch.size() - 1)).tokens();
          System.arraycopy(t, 0, flat, j * longest, t.length);
        }
        gen.appendTokens(flat);
        prefillEnd = System.nanoTime();
        for (int j = 0; j < rows; j++) {
          startAt[j] = gen.getSequence(j).length;
        }
        while (!gen.isDone()) {
          gen.generateNextToken();
          if (stepsRun < steps) {
            stepMillis[stepsRun] = (System.nanoTime() - start) / 1e6;
          }
          stepsRun++;
        }
        for (int j = 0; j < rows; j++) {
          sequences[j] = gen.getSequence(j);
        }
      }
    }
    long end = System.nanoTime();
    double endMillis = (end - start) / 1e6;
    planner.observeBatch(rows, (long) rows * longest, (prefillEnd - start) / 1e6, stepsRun, (end - prefillEnd) / 1e6);
    long answerTokens = 0;
    for (int j = 0; j < batch.size(); j++) {
      Prepared r = batch.get(j);
      int[] seq = sequences[j];
      if (seq.length - startAt[j] == stepsRun - 1 && !containsEos(seq, startAt[j])) {
        // onnxruntime-genai 0.12 does not append the token of a step that ends the whole batch
        // by end-of-sequence (a step ending it by length keeps its token). The lost token is an
        // end token; the binding cannot say which, so the model's first one stands in.
        seq = Arrays.copyOf(seq, seq.length + 1);
        seq[seq.length - 1] = config.eosTokenIds().isEmpty() ? eosIds.iterator().next() : config.eosTokenIds().get(0);
      }
      int from = Math.min(startAt[j], seq.length);
      int limit = Math.min(seq.length - from, r.budget());
      int stopAt = -1;
      for (int k = 0; k < limit; k++) {
        if (eosIds.contains(seq[from + k])) {
          stopAt = k;
          break;
        }
      }
      int count = stopAt >= 0 ? stopAt + 1 : limit;
      answerTokens += count;
      planner.observeAnswer(count);
      int[] generated = Arrays.copyOfRange(seq, from, from + count);
      int[] answer = stopAt >= 0 ? Arrays.copyOf(generated, stopAt) : generated;
      double latency = count > 0 && count <= stepMillis.length && stepMillis[count - 1] > 0
          ? stepMillis[count - 1] : endMillis;
      out[r.index()] = new Generation(r.index(), decodeTokens(answer), generated, r.tokens().length, count,
          stopAt >= 0 ? FinishReason.STOP : FinishReason.LENGTH, latency, null, null);
    }
    return new SlotUsage((long) rows * longest, promptTokens, (long) rows * stepsRun, answerTokens);
  }

  private boolean containsEos(int[] seq, int from) {
    for (int k = from; k < seq.length; k++) {
      if (eosIds.contains(seq[k])) {
        return true;
      }
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
