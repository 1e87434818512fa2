package io.genaibatch.engine.loop;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.natives.NativeLibraries;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The model's decoder graph run through onnxruntime's Java API, on the same native onnxruntime
 * library the onnxruntime-genai library loaded (one copy in the process), with the key/value cache
 * owned by the caller ({@link KvCache}). onnxruntime-genai's {@code Generator} is a static batch:
 * this is what lets a finished row leave its slot and a waiting row take it.
 *
 * <p>Thread-safe: onnxruntime sessions take concurrent runs; each caller brings its own cache.
 */
public final class OrtDecoder implements AutoCloseable {
  private final DecoderGraph graph;
  private final OrtEnvironment env;
  private final OrtSession session;
  private final boolean positions;
  private final Set<String> logitsOnly;

  private OrtDecoder(DecoderGraph graph, OrtEnvironment env, OrtSession session, boolean positions) {
    this.graph = graph;
    this.env = env;
    this.session = session;
    this.positions = positions;
    this.logitsOnly = Set.of(graph.logits());
  }

  /**
   * Opens the decoder graph of {@code graph}, or says in {@code why} why this loop cannot run it
   * (inputs it does not know, a cache type other than float32), leaving the caller to
   * onnxruntime-genai's own generator.
   *
   * @param threads intra-op threads; 0 keeps onnxruntime's default
   */
  public static Optional<OrtDecoder> open(DecoderGraph graph, int threads, StringBuilder why) throws OrtException {
    NativeLibraries.shareOnnxRuntime();
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    OrtSession.SessionOptions so = new OrtSession.SessionOptions();
    OrtSession session = null;
    try {
      if (threads > 0) {
        so.setIntraOpNumThreads(threads);
      }
      so.setInterOpNumThreads(1);
      so.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
      session = env.createSession(graph.file().toString(), so);
      Optional<String> bad = unsupported(graph, session.getInputInfo());
      if (bad.isPresent()) {
        why.append(bad.get());
        session.close();
        return Optional.empty();
      }
      boolean positions = session.getInputNames().contains(graph.positionIds());
      return Optional.of(new OrtDecoder(graph, env, session, positions));
    } catch (OrtException | RuntimeException e) {
      if (session != null) {
        session.close();
      }
      throw e;
    } finally {
      so.close();
    }
  }

  private static Optional<String> unsupported(DecoderGraph g, Map<String, NodeInfo> inputs) {
    Set<String> known = new HashSet<>(Set.of(g.inputIds(), g.attentionMask(), g.positionIds()));
    for (int l = 0; l < g.layers(); l++) {
      known.add(g.pastKey(l));
      known.add(g.pastValue(l));
    }
    for (Map.Entry<String, NodeInfo> e : inputs.entrySet()) {
      if (!known.contains(e.getKey())) {
        return Optional.of("the decoder graph has an input this loop does not feed: " + e.getKey());
      }
    }
    if (!inputs.containsKey(g.pastKey(0)) || !inputs.containsKey(g.inputIds())
        || !inputs.containsKey(g.attentionMask())) {
      return Optional.of("the decoder graph lacks " + g.inputIds() + ", " + g.attentionMask() + " or " + g.pastKey(0));
    }
    if (inputs.get(g.pastKey(0)).getInfo() instanceof TensorInfo t
        && t.type != ai.onnxruntime.OnnxJavaType.FLOAT) {
      return Optional.of("its key/value cache is " + t.type + ", not float32");
    }
    return Optional.empty();
  }

  public DecoderGraph graph() {
    return graph;
  }

  /**
   * One forward pass of {@code rows} rows over cache regions {@code from..from+rows-1}: row {@code
   * r} feeds {@code width} tokens ({@code ids[r*width..]}, its first {@code fed[r]} real) after the
   * {@code cached[r]} positions its region holds. Returns the logits of each row's last real token,
   * {@code rows x vocab}.
   */
  float[][] run(KvCache cache, int from, int rows, long[] ids, int width, int[] cached, int[] fed)
      throws OrtException {
    int total = 0;
    for (int r = 0; r < rows; r++) {
      total = Math.max(total, cached[r] + fed[r]);
    }
    long[] mask = new long[rows * total];
    for (int r = 0; r < rows; r++) {
      for (int t = 0; t < cached[r] + fed[r]; t++) {
        mask[r * total + t] = 1;
      }
    }
    OnnxTensor[] kv = cache.view(env, from, rows);
    Map<String, OnnxTensor> in = new HashMap<>();
    Map<String, OnnxValue> pinned = new HashMap<>();
    try (OnnxTensor idT = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {rows, width});
        OnnxTensor maskT = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {rows, total});
        OnnxTensor posT = positions ? OnnxTensor.createTensor(env, LongBuffer.wrap(positionIds(rows, width, cached, fed)),
            new long[] {rows, width}) : null) {
      in.put(graph.inputIds(), idT);
      in.put(graph.attentionMask(), maskT);
      if (posT != null) {
        in.put(graph.positionIds(), posT);
      }
      for (int l = 0; l < graph.layers(); l++) {
        in.put(graph.pastKey(l), kv[2 * l]);
        in.put(graph.pastValue(l), kv[2 * l + 1]);
        pinned.put(graph.presentKey(l), kv[2 * l]);
        pinned.put(graph.presentValue(l), kv[2 * l + 1]);
      }
      try (OrtSession.Result result = session.run(in, logitsOnly, pinned)) {
        OnnxTensor logits = (OnnxTensor) result.get(graph.logits()).orElseThrow();
        return lastLogits(logits, rows, width, fed);
      }
    }
  }

  /** Position ids, for graphs that take them: each row's own, padding repeating its last. */
  private static long[] positionIds(int rows, int width, int[] cached, int[] fed) {
    long[] pos = new long[rows * width];
    for (int r = 0; r < rows; r++) {
      for (int t = 0; t < width; t++) {
        pos[r * width + t] = Math.min(cached[r] + t, cached[r] + fed[r] - 1);
      }
    }
    return pos;
  }

  /** Each row's logits at its last real token; the graph gives all positions or only the last. */
  private float[][] lastLogits(OnnxTensor logits, int rows, int width, int[] fed) {
    long[] shape = logits.getInfo().getShape();
    int positionsOut = (int) shape[1];
    int vocab = (int) shape[2];
    FloatBuffer all = logits.getFloatBuffer();
    float[][] out = new float[rows][vocab];
    for (int r = 0; r < rows; r++) {
      int p = positionsOut == width ? fed[r] - 1 : positionsOut - 1;
      all.get((r * positionsOut + p) * vocab, out[r]);
    }
    return out;
  }

  @Override
  public void close() {
    try {
      session.close();
    } catch (OrtException e) {
      throw new EngineException("Cannot close the decoder session: " + e.getMessage(), e);
    }
  }
}
