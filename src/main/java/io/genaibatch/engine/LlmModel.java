package io.genaibatch.engine;

import io.genaibatch.engine.batches.StaticBatches;
import io.genaibatch.engine.guidance.Guidance;
import io.genaibatch.engine.guidance.Llguidance;
import io.genaibatch.engine.guidance.NativeGuidance;
import io.genaibatch.engine.loop.ContinuousBatches;
import io.genaibatch.engine.loop.DecodeLoop;
import io.genaibatch.engine.loop.DecoderGraph;
import io.genaibatch.engine.loop.OrtDecoder;
import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.engine.natives.NativeLibraries;
import io.genaibatch.engine.natives.TokenizerStub;
import io.genaibatch.engine.natives.Utf8Bridge;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.genai.Config;
import ai.onnxruntime.genai.GenAIException;
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
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A loaded model: its tokenizer and chat template (onnxruntime-genai), and the two ways it
 * generates: the continuous-batching loop over the decoder graph ({@link ContinuousBatches}, the
 * default for windows) and onnxruntime-genai's own static batches ({@link StaticBatches}). It checks
 * each window's requests and sends each good one to a loop.
 *
 * <p>Sharing: one instance serves any number of threads at once; each call brings its own key/value
 * terms ({@link DecodeTerms}) to the model's one decode loop ({@link DecodeLoop}, whose thread and
 * key/value cache all callers share) or makes native generators, which live inside that call.
 * Lifetime: the model outlives everything made from it; {@link #close()} waits for running calls to
 * end, frees the decoder session, the tokenizer, then the models, and is idempotent. Any call after
 * close throws {@link IllegalStateException}.
 */
public final class LlmModel implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(LlmModel.class);
  /** ASCII-only JSON, so JNI's modified UTF-8 cannot alter it on the way in. */
  private static final ObjectMapper JSON = new ObjectMapper()
      .configure(JsonWriteFeature.ESCAPE_NON_ASCII.mappedFeature(), true);

  private final GenAiConfig config;
  /** onnxruntime-genai's model: with the weights, or over the tokenizer stub (then {@link #generatorModel} starts null). */
  private final Model model;
  /** onnxruntime-genai's model with the weights, for its generator; loaded at first need when stubbed. */
  private Model generatorModel;
  private final Tokenizer tokenizer;
  private final Set<Integer> eosIds;
  private final Utf8Bridge bridge;
  private final double loadMillis;
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  private final StaticBatches staticBatches;
  private final int intraOpThreads;
  /** Intra-op threads of the decode loop's session: the executor's cores, as the loop serves all its tasks. */
  private final int loopThreads;
  /** The decode loop every caller's continuous windows share; made at first use. */
  private DecodeLoop decodeLoop;
  /** The decoder graph run by the continuous loop: opened at its first use, empty when it cannot run it. */
  private Optional<OrtDecoder> decoder;
  private String noDecoder;
  /**
   * Formats checked against llguidance, and whether the loop can serve them: each is compiled once
   * here, not once per window; the last {@value #GUIDABLE_KEPT} are kept.
   */
  private final Map<Guidance, Boolean> guidable = new java.util.LinkedHashMap<>(16, 0.75f, true) {
    @Override
    protected boolean removeEldestEntry(Map.Entry<Guidance, Boolean> eldest) {
      return size() > GUIDABLE_KEPT;
    }
  };
  private static final int GUIDABLE_KEPT = 64;
  /** llguidance for the continuous loop's guided rows; null until first asked. */
  private Optional<Llguidance> guides;
  private boolean warned;
  private boolean closed;

  /** Takes ownership of {@code model} and {@code tokenizer}; does nothing that can fail. */
  private LlmModel(GenAiConfig config, Model model, boolean stubbed, Tokenizer tokenizer, Set<Integer> eosIds,
      Utf8Bridge bridge, double loadMillis, int intraOpThreads, int loopThreads) {
    this.config = config;
    this.model = model;
    this.generatorModel = stubbed ? null : model;
    this.tokenizer = tokenizer;
    this.eosIds = eosIds;
    this.bridge = bridge;
    this.loadMillis = loadMillis;
    this.intraOpThreads = intraOpThreads;
    this.loopThreads = loopThreads;
    this.staticBatches = new StaticBatches(this::generatorModel, config, eosIds, this::decodeTokens);
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

  /** Loads for onnxruntime-genai's static batches, as {@link #load(Path, int, boolean)} with false. */
  public static LlmModel load(Path folder, int intraOpThreads) {
    return load(folder, intraOpThreads, false);
  }

  /**
   * Checks and loads a model folder.
   *
   * <p>For continuous batching the decoder graph is opened through onnxruntime itself, and
   * onnxruntime-genai gets a stub graph in place of the model's (it is needed for the tokenizer
   * and the chat template only), so the process holds one copy of the weights. Rows that need
   * onnxruntime-genai's generator (a response format) load its own copy of the weights at their first
   * window. When the decoder graph is not one the loop can run, the model loads as for static batches.
   *
   * @param folder the folder that holds {@code genai_config.json}
   * @param intraOpThreads native threads per generation call; 0 keeps the runtime's default
   * @param continuous whether windows will run through the continuous-batching loop
   * @throws EngineException naming the folder when it is missing, not a model, or corrupt
   */
  public static LlmModel load(Path folder, int intraOpThreads, boolean continuous) {
    return load(folder, intraOpThreads, continuous, ExecutionProvider.cpu());
  }

  /**
   * As {@link #load(Path, int, boolean)}, on {@code provider}. Any provider but the CPU generates
   * through onnxruntime-genai's own batches: the continuous loop runs on the CPU only.
   *
   * @throws EngineException naming what to install when the loaded onnxruntime lacks the provider
   */
  public static LlmModel load(Path folder, int intraOpThreads, boolean continuous, ExecutionProvider provider) {
    return load(folder, intraOpThreads, intraOpThreads, continuous, provider);
  }

  /**
   * As {@link #load(Path, int, boolean, ExecutionProvider)}, the continuous loop's session on
   * {@code loopThreads} threads: the loop serves every task of the JVM, so it gets their cores.
   *
   * @param loopThreads intra-op threads of the decode loop; 0 keeps the runtime's default
   */
  public static LlmModel load(Path folder, int intraOpThreads, int loopThreads, boolean continuous,
      ExecutionProvider provider) {
    GenAiConfig cfg = GenAiConfig.read(folder);
    NativeLibraries.ensureLoaded();
    if (!provider.isCpu()) {
      NativeLibraries.onnxRuntimeDir().flatMap(provider::missingIn).ifPresent(why -> {
        throw new EngineException(why);
      });
    }
    boolean loop = continuous && provider.isCpu();
    long t0 = System.nanoTime();
    Optional<OrtDecoder> decoder = Optional.empty();
    String why = null;
    if (loop) {
      StringBuilder reason = new StringBuilder();
      decoder = openDecoder(cfg, loopThreads, reason);
      why = decoder.isPresent() ? null : reason.toString();
    }
    Model model = null;
    Tokenizer tok = null;
    try {
      model = genaiModel(folder, intraOpThreads, decoder.isPresent(), provider);
      tok = new Tokenizer(model);
      Utf8Bridge bridge = Utf8Bridge.read(cfg.folder());
      LlmModel m = new LlmModel(cfg, model, decoder.isPresent(), tok, eosIds(cfg, tok), bridge,
          (System.nanoTime() - t0) / 1e6, intraOpThreads, loopThreads);
      if (loop) {
        m.decoder = decoder;
        m.noDecoder = why;
      } else if (!provider.isCpu()) {
        m.decoder = Optional.empty(); // never opened later either: the loop's graph runs on the CPU
        m.noDecoder = "on execution provider " + provider.name() + " onnxruntime-genai batches the rows";
      }
      return m;
    } catch (GenAIException | RuntimeException e) {
      // Whatever failed, the native handles made so far are freed: the tokenizer before its model.
      EngineException failure = loadFailure(folder, provider, e);
      closeAfterFailure(tok, failure);
      closeAfterFailure(model, failure);
      decoder.ifPresent(d -> closeAfterFailure(d, failure));
      throw failure;
    }
  }

  /** Why {@code folder} did not load, with what to install when an accelerator was asked for. */
  private static EngineException loadFailure(Path folder, ExecutionProvider provider, Exception e) {
    String why = String.valueOf(e.getMessage()).strip();
    if (!provider.isCpu()) {
      why = (why.endsWith(".") ? why.substring(0, why.length() - 1) : why) + ". " + provider.installHint();
    }
    return new EngineException("Cannot load model " + folder
        + (provider.isCpu() ? "" : " on execution provider " + provider) + ": " + why, e);
  }

  /**
   * onnxruntime-genai's model of {@code folder}: with its weights, or with the tokenizer stub graph
   * as its decoder ({@link TokenizerStub}; the folder is named by its real path, so the stub's
   * relative path from it holds).
   */
  private static Model genaiModel(Path folder, int intraOpThreads, boolean stub, ExecutionProvider provider)
      throws GenAIException {
    Path real;
    try {
      real = folder.toRealPath();
    } catch (java.io.IOException e) {
      throw new EngineException("Cannot read model folder " + folder + ": " + e.getMessage(), e);
    }
    try (Config c = new Config(real.toString())) {
      ObjectNode decoder = JSON.createObjectNode();
      if (intraOpThreads > 0) {
        decoder.putObject("session_options").put("intra_op_num_threads", intraOpThreads);
      }
      if (stub) {
        decoder.put("filename", real.relativize(TokenizerStub.file()).toString());
      }
      if (!decoder.isEmpty()) {
        ObjectNode root = JSON.createObjectNode();
        root.putObject("model").set("decoder", decoder);
        c.overlay(root.toString());
      }
      provider.applyTo(c);
      return new Model(c);
    }
  }

  private static Optional<OrtDecoder> openDecoder(GenAiConfig cfg, int threads, StringBuilder why) {
    try {
      return DecoderGraph.read(cfg, why).flatMap(g -> {
        try {
          return OrtDecoder.open(g, threads, why);
        } catch (OrtException e) {
          why.append(e.getMessage());
          return Optional.empty();
        }
      });
    } catch (RuntimeException | LinkageError e) {
      why.append(e);
      return Optional.empty();
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
    return score(List.of(request), 2, loadedForLoop() ? Batching.CONTINUOUS : Batching.FIXED).generations().get(0);
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
    return score(requests, batchSize, batching, DecodeTerms.DEFAULT);
  }

  /**
   * As {@link #score(List, int, Batching)}, the continuous loop's key/value cache kept in {@code
   * terms} (a task's): its cancellation checked between steps, its key/value cache limit.
   */
  public ScoredWindow score(List<GenerationRequest> requests, int batchSize, Batching batching, DecodeTerms terms) {
    return score(requests, batchSize, batching, terms, RowLimits.NONE);
  }

  /**
   * As {@link #score(List, int, Batching, DecodeTerms)}, a row that asks for more than {@code
   * limits} allow (new tokens in all, key/value cache against {@code terms}' limit) coming back as
   * its error instead of running.
   */
  public ScoredWindow score(List<GenerationRequest> requests, int batchSize, Batching batching, DecodeTerms terms,
      RowLimits limits) {
    if (requests == null || requests.isEmpty()) {
      throw new EngineException("Cannot generate for an empty batch: pass at least one prompt");
    }
    if (batchSize < 1) {
      throw new EngineException("Batch size must be at least 1, got " + batchSize);
    }
    return read(() -> doScore(requests, batchSize, batching, terms, limits));
  }

  /**
   * The decoder graph for the continuous loop, opened once (a second session over the model's
   * weights, on the same native onnxruntime); empty, with the reason logged once, when the graph
   * is not one the loop can run: onnxruntime-genai's generator serves every row then.
   */
  private synchronized Optional<OrtDecoder> decoder() {
    if (decoder == null) {
      StringBuilder why = new StringBuilder();
      decoder = openDecoder(config, loopThreads, why);
      noDecoder = decoder.isPresent() ? null : why.toString();
    }
    if (noDecoder != null && !warned) {
      warned = true;
      LOG.warn("Continuous batching is off for {}: {}; onnxruntime-genai's static batches serve every row",
          config.folder(), noDecoder);
    }
    return decoder;
  }

  /** The decode loop over the decoder graph, made once; call only when {@link #decoder()} has one. */
  private synchronized DecodeLoop decodeLoop() {
    if (decodeLoop == null) {
      decodeLoop = new DecodeLoop(decoder().orElseThrow(), config, eosIds, this::decodeTokens);
    }
    return decodeLoop;
  }

  /**
   * llguidance for rows under a response format in the continuous loop, made once; empty (said
   * once) when this library cannot: such rows take onnxruntime-genai's generator then.
   */
  private synchronized Optional<Llguidance> guides() {
    if (guides == null) {
      try {
        Optional<String> missing = NativeGuidance.unavailable();
        guides = missing.isPresent() ? Optional.empty() : Optional.of(Llguidance.forModel(config, this::encode));
      } catch (RuntimeException | LinkageError e) {
        LOG.warn("Rows under a response format take onnxruntime-genai's generator, one at a time: {}", e.getMessage());
        guides = Optional.empty();
      }
    }
    return guides;
  }

  /** Whether the continuous loop can serve rows under {@code g}; a format llguidance refuses cannot. */
  private boolean loopCanGuide(Guidance g) {
    synchronized (guidable) {
      Boolean known = guidable.get(g);
      if (known != null) {
        return known;
      }
    }
    boolean can = compilesForLoop(g);
    synchronized (guidable) {
      guidable.put(g, can);
    }
    return can;
  }

  /** Whether llguidance compiles {@code g} (made and dropped once per format, see {@link #guidable}). */
  private boolean compilesForLoop(Guidance g) {
    Optional<Llguidance> llg = guides();
    if (llg.isEmpty()) {
      return false;
    }
    try (Llguidance.Matcher m = llg.get().matcher(g)) {
      return true;
    } catch (EngineException e) {
      return false; // the generator's path reports the error, as for any row
    }
  }

  /**
   * onnxruntime-genai's model with the weights, for rows its generator serves; loaded at the first
   * such row when the model was loaded for the continuous loop (a second copy of the weights from
   * then on, logged).
   */
  private synchronized Model generatorModel() {
    if (generatorModel == null) {
      try {
        long t0 = System.nanoTime();
        // The continuous loop, and so this copy beside it, runs on the CPU only.
        generatorModel = genaiModel(config.folder(), intraOpThreads, false, ExecutionProvider.cpu());
        LOG.info("Loaded onnxruntime-genai's own copy of {} for rows its generator serves (response formats) in {} ms",
            config.folder(), Math.round((System.nanoTime() - t0) / 1e6));
      } catch (GenAIException e) {
        throw new EngineException("Cannot load model " + config.folder() + ": " + e.getMessage(), e);
      }
    }
    return generatorModel;
  }

  /** Whether the model was loaded for the continuous loop and the loop can run it. */
  private synchronized boolean loadedForLoop() {
    return decoder != null && decoder.isPresent();
  }

  /** Why the continuous loop cannot run this model; empty when it can (or was not tried yet). */
  public Optional<String> continuousUnavailable() {
    return Optional.ofNullable(noDecoder);
  }

  /** Key/value bytes of one position of one row; 0 when the continuous loop's graph is not loaded. */
  private synchronized long kvBytesPerPosition() {
    return loadedForLoop() ? decoder.get().graph().bytesPerPosition() : 0;
  }

  private ScoredWindow doScore(List<GenerationRequest> requests, int batchSize, Batching batching,
      DecodeTerms terms, RowLimits limits) throws GenAIException {
    long kvPerPosition = kvBytesPerPosition();
    int n = requests.size();
    Generation[] out = new Generation[n];
    int context = config.contextLength();
    List<PreparedRequest> good = new ArrayList<>();
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
      int budget = TokenBudget.newTokens(len, maxTotal, opts.maxNewTokens());
      Optional<String> breach = limits.tokensBreach(req.n(), len, budget, kvPerPosition, terms.limitBytes());
      if (breach.isPresent()) {
        out[i] = Generation.failed(i, len, ErrorKind.OVER_LIMIT, breach.get());
        continue;
      }
      good.add(new PreparedRequest(i, tokens, budget, cap, req));
    }
    List<PreparedRequest> continuous = new ArrayList<>();
    List<PreparedRequest> staticRows = new ArrayList<>();
    boolean loop = !batching.staticBatches() && batchSize > 1 && decoder().isPresent();
    for (PreparedRequest r : good) {
      Guidance g = r.request().guidance();
      (loop && (g == null || loopCanGuide(g)) ? continuous : staticRows).add(r);
    }
    StaticBatches.Run fixed = staticBatches.run(staticRows, batchSize,
        batching.staticBatches() ? batching : Batching.FIXED, out, terms::isCancelled);
    SlotUsage slots = fixed.slots();
    DecodeProfile profile = DecodeProfile.NONE;
    if (!continuous.isEmpty()) {
      ContinuousBatches.Run run = continuousRun(continuous, batchSize, terms, out);
      slots = slots.plus(run.slots());
      profile = run.profile();
    }
    return new ScoredWindow(List.of(out), slots, fixed.batches() + (continuous.isEmpty() ? 0 : 1), profile);
  }

  /** The continuous loop over {@code rows}; a failure of onnxruntime fails those rows only. */
  private ContinuousBatches.Run continuousRun(List<PreparedRequest> rows, int batchSize, DecodeTerms terms,
      Generation[] out) throws GenAIException {
    boolean guided = rows.stream().anyMatch(r -> r.request().guidance() != null);
    ContinuousBatches windows = new ContinuousBatches(decodeLoop(), config, eosIds, this::decodeTokens,
        guided ? guides().orElseThrow() : null);
    try {
      return windows.run(rows, batchSize, terms, out);
    } catch (OrtException | RuntimeException e) {
      if (terms.isCancelled()) {
        throw new EngineException("The task was cancelled: " + e.getMessage(), e);
      }
      for (PreparedRequest r : rows) {
        out[r.index()] = Generation.failed(r.index(), r.tokens().length, ErrorKind.GENERATION_FAILED,
            "generation failed: " + e.getMessage());
      }
      return new ContinuousBatches.Run(SlotUsage.NONE, DecodeProfile.NONE);
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
      synchronized (this) {
        if (decodeLoop != null) {
          decodeLoop.close();
        }
        if (decoder != null) {
          decoder.ifPresent(OrtDecoder::close);
        }
        if (guides != null) {
          guides.ifPresent(Llguidance::close);
        }
      }
      tokenizer.close();
      synchronized (this) {
        if (generatorModel != null && generatorModel != model) {
          generatorModel.close();
        }
      }
      model.close();
    } finally {
      lock.writeLock().unlock();
    }
  }
}
