package io.genaibatch.engine.loop;

import io.genaibatch.engine.GenAiConfig;
import io.genaibatch.engine.SearchOptions;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Chooses one completion's next token from its own logits with its own search options and its own
 * random stream, so rows whose options differ share decode steps and a sampled answer depends on
 * its row alone (prompt, options, seed, completion index), never on its neighbours.
 *
 * <p>Written by hand: the choice is a few lines over a float array, and onnxruntime-genai's
 * sampler cannot be called on logits the job holds. Greedy search takes the first largest logit,
 * as onnxruntime-genai does; the repetition penalty divides a positive logit of a token already in
 * the prompt or answer by the penalty and multiplies a negative one, as onnxruntime-genai does.
 */
public final class TokenChooser {
  private final boolean sample;
  private final float temperature;
  private final double topP;
  private final int topK;
  private final float penalty;
  private final SplittableRandom random;

  private TokenChooser(boolean sample, float temperature, double topP, int topK, float penalty, SplittableRandom random) {
    this.sample = sample;
    this.temperature = temperature;
    this.topP = topP;
    this.topK = topK;
    this.penalty = penalty;
    this.random = random;
  }

  /**
   * The chooser of completion {@code completion} of a prompt of {@code promptTokens} under {@code
   * o}, unset options taken from the model's {@code genai_config.json} search section. With a seed,
   * its stream is a function of the seed, the prompt's tokens and the completion index; without
   * one, it is random.
   */
  static TokenChooser of(GenAiConfig config, SearchOptions o, int[] promptTokens, int completion) {
    double penalty = o.repetitionPenalty() != null ? o.repetitionPenalty() : number(config, "repetition_penalty", 1.0);
    if (!config.samples(o)) {
      return new TokenChooser(false, 1f, 1.0, 1, (float) penalty, null);
    }
    double t = o.temperature() != null ? o.temperature() : number(config, "temperature", 1.0);
    double p = o.topP() != null ? o.topP() : number(config, "top_p", 1.0);
    SplittableRandom random = o.seed() == null ? new SplittableRandom()
        : new SplittableRandom(mix(o.seed(), Arrays.hashCode(promptTokens), completion));
    return new TokenChooser(true, (float) t, p, config.topK(o), (float) penalty, random);
  }

  private static double number(GenAiConfig config, String key, double otherwise) {
    return config.searchDefaults().get(key) instanceof Number n ? n.doubleValue() : otherwise;
  }

  /** A 64-bit seed from the job's seed, the row and the completion (SplitMix64's finaliser). */
  static long mix(long seed, int row, int completion) {
    long z = seed * 0x9E3779B97F4A7C15L + row * 0xBF58476D1CE4E5B9L + completion * 0x94D049BB133111EBL;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  /** The next token; {@code logits} may be changed. */
  int choose(float[] logits, int[] prompt, int[] answer, int answerLength) {
    if (penalty != 1f) {
      boolean[] seen = new boolean[logits.length];
      penalize(logits, seen, prompt, prompt.length);
      penalize(logits, seen, answer, answerLength);
    }
    if (!sample || topK == 1) {
      return argmax(logits);
    }
    return draw(logits);
  }

  /** Penalizes each token of {@code tokens} not {@code seen} yet: once, whether in the prompt, the answer or both. */
  private void penalize(float[] logits, boolean[] seen, int[] tokens, int count) {
    for (int i = 0; i < count; i++) {
      int t = tokens[i];
      if (t >= 0 && t < logits.length && !seen[t]) {
        seen[t] = true;
        logits[t] = logits[t] < 0 ? logits[t] * penalty : logits[t] / penalty;
      }
    }
  }

  static int argmax(float[] logits) {
    int best = 0;
    for (int i = 1; i < logits.length; i++) {
      if (logits[i] > logits[best]) {
        best = i;
      }
    }
    return best;
  }

  /**
   * Samples among the top_k tokens (all when 0), then the top_p nucleus, at the temperature. Only the
   * candidates are ordered: none when every token is one (top_k 0, top_p 1), the top_k by a bounded
   * selection, all of them for a nucleus of every token; each as primitives, this runs once per row
   * and step.
   */
  private int draw(float[] logits) {
    int[] order = candidates(logits);
    int count = order == null ? logits.length : order.length;
    float max = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < count; i++) {
      max = Math.max(max, logits[id(order, i)]);
    }
    double[] p = new double[count];
    double sum = 0;
    for (int i = 0; i < count; i++) {
      p[i] = Math.exp((logits[id(order, i)] - max) / temperature);
      sum += p[i];
    }
    int keep = count;
    if (topP < 1.0 && order != null) {
      double acc = 0;
      for (int i = 0; i < count; i++) {
        acc += p[i] / sum;
        if (acc >= topP) {
          keep = i + 1;
          break;
        }
      }
    }
    double total = 0;
    for (int i = 0; i < keep; i++) {
      total += p[i];
    }
    double u = random.nextDouble() * total;
    for (int i = 0; i < keep; i++) {
      u -= p[i];
      if (u < 0) {
        return id(order, i);
      }
    }
    return id(order, keep - 1);
  }

  private static int id(int[] order, int i) {
    return order == null ? i : order[i];
  }

  /**
   * Candidate token ids by logit, largest first (ties by id): the top_k when it limits them, every
   * token when a nucleus must be cut; null (every token, in id order) when neither limits them.
   */
  private int[] candidates(float[] logits) {
    boolean limitK = topK > 0 && topK < logits.length;
    if (!limitK && topP >= 1.0) {
      return null;
    }
    int k = limitK ? topK : logits.length;
    // A key per token that sorts largest logit first, then smallest id: the float's bits mapped to an
    // int of the same signed order, inverted, in the high half; the id in the low half.
    long[] keys = new long[logits.length];
    for (int i = 0; i < logits.length; i++) {
      int bits = Float.floatToIntBits(logits[i]);
      int ordered = bits >= 0 ? bits : bits ^ 0x7FFFFFFF;
      keys[i] = ((long) ~ordered << 32) | (i & 0xFFFFFFFFL);
    }
    if (limitK) {
      keys = smallest(keys, k);
    }
    Arrays.sort(keys);
    int[] out = new int[k];
    for (int i = 0; i < k; i++) {
      out[i] = (int) keys[i];
    }
    return out;
  }

  /** The {@code k} smallest keys, unordered: a bounded max-heap, one pass. */
  private static long[] smallest(long[] keys, int k) {
    java.util.PriorityQueue<Long> heap = new java.util.PriorityQueue<>(k, java.util.Comparator.reverseOrder());
    for (long key : keys) {
      if (heap.size() < k) {
        heap.add(key);
      } else if (key < heap.peek()) {
        heap.poll();
        heap.add(key);
      }
    }
    long[] out = new long[heap.size()];
    int i = 0;
    for (long key : heap) {
      out[i++] = key;
    }
    return out;
  }
}
