package io.genaibatch.engine;

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
import io.genaibatch.engine.batches.StaticBatches;
import io.genaibatch.engine.loop.ContinuousBatches;
import io.genaibatch.engine.loop.DecodeLoop;
import io.genaibatch.engine.loop.OrtDecoder;
import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.engine.natives.NativeLibraries;
import io.genaibatch.engine.natives.TokenizerStub;
import io.genaibatch.engine.natives.Utf8Bridge;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A loaded model: its tokenizer and chat template (onnxruntime-genai), and the door to its two ways
 * of generating, the continuous-batching loop over the decoder graph ({@link ContinuousBatches}, the
 * default for windows) and onnxruntime-genai's own static batches ({@link StaticBatches}), which
 * {@link Generators} makes at first need. A window's requests are checked ({@link RequestCheck}) and
 * each good one goes down the path {@link Generators#takesLoop} chooses.
 *
 * <p>Sharing: one instance serves any number of threads at once; each call brings its own key/value
 * terms ({@link DecodeTerms}) to the model's one decode loop ({@link DecodeLoop}, whose thread and
 * key/value cache all callers share) or makes native generators, which live inside that call.
 * Lifetime: the model outlives everything made from it; {@link #close()} waits for running calls to
 * end, frees the decoder session, the tokenizer, then the models, removes the staging folder, and is idempotent. Any call after
 * close throws {@link IllegalStateException}.
 */
public final class LlmModel implements AutoCloseable {
  /** ASCII-only JSON, so JNI's modified UTF-8 cannot alter it on the way in. */
  private static final ObjectMapper JSON = new ObjectMapper()
      .configure(JsonWriteFeature.ESCAPE_NON_ASCII.mappedFeature(), true);

  private final GenAiConfig config;
  /** The folder onnxruntime-genai loaded: the checked config and links to the model folder's files. */
  private final StagedFolder staged;
  /** onnxruntime-genai's model: with the weights, or over the tokenizer stub when the loop runs the weights. */
  private final Model model;
  private final Tokenizer tokenizer;
  private final Utf8Bridge bridge;
  private final double loadMillis;
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  /** The two ways to generate and the choice between them. */
  private final Generators generators;
  private boolean closed;

  /**
   * Takes ownership of {@code model} and {@code tokenizer}; does nothing that can fail.
   *
   * @param decoder the decoder graph opened at load, or null to open it at first need
   * @param noDecoder why the loop cannot run the model, when known at load
   */
  private LlmModel(GenAiConfig config, StagedFolder staged, Model model, boolean stubbed, Tokenizer tokenizer,
      Set<Integer> eosIds, Utf8Bridge bridge, double loadMillis, int intraOpThreads, int loopThreads,
      Optional<OrtDecoder> decoder, String noDecoder, ExecutionProvider provider) {
    this.config = config;
    this.staged = staged;
    this.model = model;
    this.tokenizer = tokenizer;
    this.bridge = bridge;
    this.loadMillis = loadMillis;
    this.generators = new Generators(config, staged.dir(), eosIds, this::decodeTokens, this::encode, intraOpThreads,
        loopThreads, stubbed ? null : model, decoder, noDecoder, provider);
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
    return load(folder, intraOpThreads, loopThreads, continuous, provider, false);
  }

  /**
   * As {@link #load(Path, int, int, boolean, ExecutionProvider)}. The folder's {@code
   * genai_config.json} is read once: checked (a custom operator library refused unless {@code
   * allowCustomOps}, every file it names inside the folder), then loaded from a private staging
   * folder holding those very bytes ({@link StagedFolder}), so a config changed in between is not the
   * one loaded.
   *
   * @param allowCustomOps whether the config may name a custom operator library (native code)
   */
  public static LlmModel load(Path folder, int intraOpThreads, int loopThreads, boolean continuous,
      ExecutionProvider provider, boolean allowCustomOps) {
    byte[] checked = GenAiConfig.bytesOf(folder);
    GenAiConfig cfg = GenAiConfig.read(folder, checked, name -> Files.isRegularFile(folder.resolve(name)), allowCustomOps);
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
      decoder = Generators.openDecoder(cfg, loopThreads, reason);
      why = decoder.isPresent() ? null : reason.toString();
    }
    Model model = null;
    Tokenizer tok = null;
    StagedFolder staged = null;
    try {
      staged = StagedFolder.of(folder, checked);
      model = genaiModel(staged.dir(), intraOpThreads, decoder.isPresent(), provider);
      tok = new Tokenizer(model);
      Utf8Bridge bridge = Utf8Bridge.read(cfg.folder());
      // On another provider the decoder is never opened later either: the loop's graph runs on the CPU.
      Optional<OrtDecoder> known = loop ? decoder : provider.isCpu() ? null : Optional.empty();
      String noLoop = loop ? why
          : provider.isCpu() ? null : "on execution provider " + provider.name() + " onnxruntime-genai batches the rows";
      return new LlmModel(cfg, staged, model, decoder.isPresent(), tok, eosIds(cfg, tok), bridge,
          (System.nanoTime() - t0) / 1e6, intraOpThreads, loopThreads, known, noLoop, provider);
    } catch (GenAIException | RuntimeException e) {
      // Whatever failed, the native handles made so far are freed: the tokenizer before its model.
      EngineException failure = loadFailure(folder, provider, e);
      closeAfterFailure(tok, failure);
      closeAfterFailure(model, failure);
      decoder.ifPresent(d -> closeAfterFailure(d, failure));
      closeAfterFailure(staged, failure);
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
  static Model genaiModel(Path folder, int intraOpThreads, boolean stub, ExecutionProvider provider)
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

  /** The folder onnxruntime-genai loaded: the checked config and links to the model folder's files. */
  Path loadedFolder() {
    return staged.dir();
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
    return score(List.of(request), 2, generators.loadedForLoop() ? Batching.CONTINUOUS : Batching.FIXED)
        .generations().get(0);
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

  /** Why the continuous loop cannot run this model; empty when it can (or was not tried yet). */
  public Optional<String> continuousUnavailable() {
    return generators.continuousUnavailable();
  }

  /**
   * Checks each request ({@link RequestCheck}), sends each good one down its path (the one place
   * that decides it: {@link Generators#takesLoop}), runs both paths and gathers the window.
   */
  private ScoredWindow doScore(List<GenerationRequest> requests, int batchSize, Batching batching,
      DecodeTerms terms, RowLimits limits) throws GenAIException {
    RequestCheck check = new RequestCheck(config, this::encodeTokens, limits, generators.kvBytesPerPosition(),
        terms.limitBytes());
    Generation[] out = new Generation[requests.size()];
    List<PreparedRequest> continuous = new ArrayList<>();
    List<PreparedRequest> staticRows = new ArrayList<>();
    for (int i = 0; i < requests.size(); i++) {
      RequestCheck.Checked c = check.check(i, requests.get(i));
      if (c.failed() != null) {
        out[i] = c.failed();
      } else {
        (generators.takesLoop(c.good(), batching, batchSize) ? continuous : staticRows).add(c.good());
      }
    }
    StaticBatches.Run fixed = generators.staticBatches().run(staticRows, batchSize,
        batching.staticBatches() ? batching : Batching.FIXED, out, terms::isCancelled, terms.limitBytes());
    SlotUsage slots = fixed.slots();
    DecodeProfile profile = DecodeProfile.NONE;
    if (!continuous.isEmpty()) {
      ContinuousBatches.Run run = generators.continuous(continuous, batchSize, terms, out);
      slots = slots.plus(run.slots());
      profile = run.profile();
    }
    return new ScoredWindow(List.of(out), slots, fixed.batches() + (continuous.isEmpty() ? 0 : 1), profile);
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
      generators.close();
      tokenizer.close();
      generators.closeGeneratorModel(model);
      model.close();
      staged.close();
    } finally {
      lock.writeLock().unlock();
    }
  }
}
