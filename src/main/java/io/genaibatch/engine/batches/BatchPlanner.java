package io.genaibatch.engine.batches;

import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;

/**
 * Chooses how a window of prompts, sorted by length, is cut into native batches, by expected cost.
 *
 * <p>A batch of {@code n} rows whose longest prompt has {@code L} tokens costs {@code cp * n * L}
 * to prefill and {@code (a + b * n)} per generation step, for as many steps as its longest answer
 * needs, because a row that has stopped keeps its slot. Bigger batches make a step cheaper per
 * row; they also pad more and wait longer for their longest answer. Which wins depends on the CPU
 * (how much int4 kernels gain from batching) and on the prompt set (how answer lengths spread), so
 * both are measured as the job runs: {@code cp}, {@code a} and {@code b} from the time each batch's
 * prefill and steps took, the expected longest answer of {@code n} rows from the answer lengths
 * seen so far in this JVM. Before anything is measured the ratios measured on an AVX2 server
 * ({@code a = 2b}, {@code cp = 1.3b}) and a heavy-tailed guess of the answer lengths (log-spread
 * from 1 to the budget) stand in; they favour small batches, which cost least when answers spread.
 *
 * <p>Batch composition never changes a row's answer (no row runs alone; see {@link
 * LlmModel#score}), so this choice may depend on timing. Thread-safe: one planner per loaded model
 * serves all tasks of the executor.
 */
final class BatchPlanner {
  /** Answer lengths remembered, newest first out. */
  private static final int SAMPLE = 1024;
  /** Pseudo-answers of the prior, outweighed once this many real ones are seen. */
  private static final int PRIOR = 8;
  private static final double EWMA = 0.3;

  private final int[] answers = new int[SAMPLE];
  private int seen;
  private double prefillMsPerSlot = Double.NaN;
  /** Per native batch size: EWMA of milliseconds per generation step. */
  private final Map<Integer, Double> stepMs = new TreeMap<>();

  /** A finished row's answer length (its budget when it ran out). */
  synchronized void observeAnswer(int tokens) {
    answers[seen % SAMPLE] = Math.max(1, tokens);
    seen++;
  }

  /** A native batch's timings. */
  synchronized void observeBatch(int rows, long prefillSlots, double prefillMs, int steps, double decodeMs) {
    if (prefillSlots > 0 && prefillMs > 0) {
      double v = prefillMs / prefillSlots;
      prefillMsPerSlot = Double.isNaN(prefillMsPerSlot) ? v : (1 - EWMA) * prefillMsPerSlot + EWMA * v;
    }
    if (steps > 1 && decodeMs > 0) {
      double v = decodeMs / steps;
      stepMs.merge(rows, v, (old, now) -> (1 - EWMA) * old + EWMA * now);
    }
  }

  /** The cost model's three numbers: prefill per slot, step cost intercept and slope per row. */
  synchronized double[] costs() {
    double a;
    double b;
    if (stepMs.size() >= 2) {
      // Least squares line through (rows, ms per step) over the batch sizes seen.
      double sn = 0;
      double st = 0;
      double snn = 0;
      double snt = 0;
      for (Map.Entry<Integer, Double> e : stepMs.entrySet()) {
        sn += e.getKey();
        st += e.getValue();
        snn += (double) e.getKey() * e.getKey();
        snt += e.getKey() * e.getValue();
      }
      int k = stepMs.size();
      b = (k * snt - sn * st) / (k * snn - sn * sn);
      a = (st - b * sn) / k;
      if (!(b > 0) || a < 0) {
        // Noise: keep the measured level with the prior's shape.
        double mean = st / k;
        double n = sn / k;
        b = mean / (n + 2);
        a = 2 * b;
      }
    } else if (stepMs.size() == 1) {
      Map.Entry<Integer, Double> e = stepMs.entrySet().iterator().next();
      b = e.getValue() / (e.getKey() + 2);
      a = 2 * b;
    } else {
      b = 1;
      a = 2;
    }
    double cp = Double.isNaN(prefillMsPerSlot) || stepMs.isEmpty() ? 1.3 * b : prefillMsPerSlot;
    return new double[] {cp, a, b};
  }

  /** Expected longest answer of {@code n} rows, each capped at {@code cap}, from the sample and the prior. */
  synchronized double[] expectedLongest(int maxRows, int cap) {
    int real = Math.min(seen, SAMPLE);
    int prior = Math.max(0, PRIOR - real);
    double[] v = new double[real + prior];
    for (int i = 0; i < real; i++) {
      v[i] = Math.min(answers[i], cap);
    }
    for (int i = 0; i < prior; i++) {
      v[real + i] = Math.max(1, Math.round(Math.pow(cap, (i + 0.5) / prior)));
    }
    Arrays.sort(v);
    int m = v.length;
    double[] out = new double[maxRows + 1];
    for (int n = 1; n <= maxRows; n++) {
      double e = 0;
      double prev = 0;
      for (int i = 1; i <= m; i++) {
        double f = Math.pow((double) i / m, n);
        e += v[i - 1] * (f - prev);
        prev = f;
      }
      out[n] = e;
    }
    return out;
  }

  /**
   * Sizes of the consecutive batches that {@code lengths} (ascending, or ascending runs) are cut into at least
   * expected cost: every batch has 2 to {@code maxBatch} rows (2 or 3 when {@code maxBatch} is 2),
   * a single prompt excepted.
   *
   * @param cap the most new tokens any of these rows may generate
   */
  int[] plan(int[] lengths, int maxBatch, int cap) {
    int m = lengths.length;
    if (m <= 1) {
      return m == 0 ? new int[0] : new int[] {1};
    }
    int largest = Math.max(maxBatch, 3);
    double[] c = costs();
    double[] longest = expectedLongest(largest, cap);
    double[] best = new double[m + 1];
    int[] cut = new int[m + 1];
    Arrays.fill(best, Double.POSITIVE_INFINITY);
    best[0] = 0;
    for (int j = 2; j <= m; j++) {
      int padTo = lengths[j - 1];
      for (int n = 2; n <= Math.min(j, largest); n++) {
        // The batch's rows pad to its longest prompt (lengths ascend within one budget, not across).
        padTo = Math.max(padTo, Math.max(lengths[j - n], lengths[j - n + 1]));
        if (n > maxBatch && !(maxBatch == 2 && n == 3)) {
          continue;
        }
        double prev = best[j - n];
        if (prev == Double.POSITIVE_INFINITY) {
          continue;
        }
        double cost = prev + c[0] * n * padTo + (c[1] + c[2] * n) * longest[n];
        if (cost < best[j]) {
          best[j] = cost;
          cut[j] = n;
        }
      }
    }
    int count = 0;
    for (int j = m; j > 0; j -= cut[j]) {
      count++;
    }
    int[] sizes = new int[count];
    for (int j = m, k = count - 1; j > 0; j -= cut[j], k--) {
      sizes[k] = cut[j];
    }
    return sizes;
  }
}
