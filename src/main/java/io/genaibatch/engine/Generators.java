package io.genaibatch.engine;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.genai.GenAIException;
import ai.onnxruntime.genai.Model;
import io.genaibatch.engine.batches.StaticBatches;
import io.genaibatch.engine.guidance.Guidance;
import io.genaibatch.engine.guidance.Llguidance;
import io.genaibatch.engine.guidance.NativeGuidance;
import io.genaibatch.engine.loop.ContinuousBatches;
import io.genaibatch.engine.loop.DecodeLoop;
import io.genaibatch.engine.loop.DecoderGraph;
import io.genaibatch.engine.loop.OrtDecoder;
import io.genaibatch.engine.natives.ExecutionProvider;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A loaded model's two ways to generate, each made at its first need and kept: the continuous
 * loop (the decoder graph's session, the {@link DecodeLoop}, llguidance for guided rows) and
 * onnxruntime-genai's static batches (its generator's model, {@link StaticBatches}); and the one
 * place that decides which way a row goes ({@link #takesLoop}). Thread-safe; closed by its model.
 */
final class Generators implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Generators.class);
  private static final int GUIDABLE_KEPT = 64;

  private final GenAiConfig config;
  /** The folder onnxruntime-genai loads, with the checked config ({@link StagedFolder}). */
  private final java.nio.file.Path loadDir;
  /** Where onnxruntime-genai's generator keeps its key/value cache: its element size follows. */
  private final ExecutionProvider provider;
  private final Set<Integer> eosIds;
  private final Completion.Decoder text;
  private final Function<String, int[]> encode;
  private final int intraOpThreads;
  /** Intra-op threads of the decode loop's session: the executor's cores, as the loop serves all its tasks. */
  private final int loopThreads;
  private final StaticBatches staticBatches;
  /** onnxruntime-genai's model with the weights, for its generator; null until needed when the loop loaded the model. */
  private Model generatorModel;
  /** The decoder graph run by the continuous loop: opened at its first use, empty when it cannot run it. */
  private Optional<OrtDecoder> decoder;
  private String noDecoder;
  private boolean warned;
  /** The decode loop every caller's continuous windows share; made at first use. */
  private DecodeLoop decodeLoop;
  /** llguidance for the continuous loop's guided rows; null until first asked. */
  private Optional<Llguidance> guides;
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

  /**
   * @param loadDir the folder onnxruntime-genai loads the model from
   * @param generatorModel onnxruntime-genai's model with the weights, or null when the loop loaded the
   *     model over the tokenizer stub (then loaded at the first row its generator serves)
   * @param decoder the decoder graph opened at load, or null to open it at first need
   * @param noDecoder why the loop cannot run the model, when known at load
   * @param provider where onnxruntime-genai's generator runs
   */
  Generators(GenAiConfig config, java.nio.file.Path loadDir, Set<Integer> eosIds, Completion.Decoder text,
      Function<String, int[]> encode, int intraOpThreads, int loopThreads, Model generatorModel,
      Optional<OrtDecoder> decoder, String noDecoder, ExecutionProvider provider) {
    this.config = config;
    this.loadDir = loadDir;
    this.provider = provider;
    this.eosIds = eosIds;
    this.text = text;
    this.encode = encode;
    this.intraOpThreads = intraOpThreads;
    this.loopThreads = loopThreads;
    this.generatorModel = generatorModel;
    this.decoder = decoder;
    this.noDecoder = noDecoder;
    this.staticBatches = new StaticBatches(this::generatorModel, config, eosIds, text, kvBytesPerPosition());
  }

  /**
   * Whether {@code r} goes to the continuous loop: when its window does ({@link Batching#continuous};
   * the provider is the CPU where a decoder graph is open), the graph is one the loop can run, and
   * the row has no response format or one llguidance compiles. Every other row takes
   * onnxruntime-genai's static batches.
   */
  boolean takesLoop(PreparedRequest r, Batching batching, int batchSize) {
    if (!batching.continuous(batchSize, true) || decoder().isEmpty()) {
      return false;
    }
    Guidance g = r.request().guidance();
    return g == null || loopCanGuide(g);
  }

  StaticBatches staticBatches() {
    return staticBatches;
  }

  /** The continuous loop over {@code rows}; a failure of onnxruntime fails those rows only. */
  ContinuousBatches.Run continuous(List<PreparedRequest> rows, int batchSize, DecodeTerms terms, Generation[] out)
      throws GenAIException {
    boolean guided = rows.stream().anyMatch(r -> r.request().guidance() != null);
    ContinuousBatches windows = new ContinuousBatches(decodeLoop(), config, eosIds, text,
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

  /**
   * The decoder graph for the continuous loop, opened once (a second session over the model's
   * weights, on the same native onnxruntime); empty, with the reason logged once, when the graph
   * is not one the loop can run: onnxruntime-genai's generator serves every row then.
   */
  synchronized Optional<OrtDecoder> decoder() {
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

  /** The decoder graph of {@code cfg} on {@code threads} intra-op threads, or why the loop cannot run it. */
  static Optional<OrtDecoder> openDecoder(GenAiConfig cfg, int threads, StringBuilder why) {
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

  /** Whether the model was loaded for the continuous loop and the loop can run it. */
  synchronized boolean loadedForLoop() {
    return decoder != null && decoder.isPresent();
  }

  /** Why the continuous loop cannot run this model; empty when it can (or was not tried yet). */
  synchronized Optional<String> continuousUnavailable() {
    return Optional.ofNullable(noDecoder);
  }

  /**
   * Key/value bytes of one position of one row, on either path: the config's layers, key/value heads
   * and head size, float32 on the CPU (the loop's cache, and the CPU models' own) and float16 on an
   * accelerator (as onnxruntime-genai's model builder writes GPU models); 0 when the config lacks them.
   */
  long kvBytesPerPosition() {
    return config.kvBytesPerPosition(provider.isCpu() ? Float.BYTES : 2);
  }

  /** The decode loop over the decoder graph, made once; call only when {@link #decoder()} has one. */
  private synchronized DecodeLoop decodeLoop() {
    if (decodeLoop == null) {
      decodeLoop = new DecodeLoop(decoder().orElseThrow(), config, eosIds, text);
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
        guides = missing.isPresent() ? Optional.empty() : Optional.of(Llguidance.forModel(config, encode));
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
        generatorModel = LlmModel.genaiModel(loadDir, intraOpThreads, false, ExecutionProvider.cpu());
        LOG.info("Loaded onnxruntime-genai's own copy of {} for rows its generator serves (response formats) in {} ms",
            config.folder(), Math.round((System.nanoTime() - t0) / 1e6));
      } catch (GenAIException e) {
        throw new EngineException("Cannot load model " + config.folder() + ": " + e.getMessage(), e);
      }
    }
    return generatorModel;
  }

  /**
   * Stops the loop and frees the decoder session and llguidance; the generator's own model is freed
   * later, by {@link #closeGeneratorModel}, once the tokenizer made over the model is gone.
   */
  @Override
  public synchronized void close() {
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

  /** Frees the generator's own model, after the tokenizer over the model it was made with is gone. */
  synchronized void closeGeneratorModel(Model owned) {
    if (generatorModel != null && generatorModel != owned) {
      generatorModel.close();
    }
  }
}
