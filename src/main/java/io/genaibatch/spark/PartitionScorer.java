package io.genaibatch.spark;

import io.genaibatch.common.ProcessMemory;
import io.genaibatch.common.Redact;
import io.genaibatch.engine.DecodeProfile;
import io.genaibatch.engine.DecodeTerms;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.ScoredWindow;
import io.genaibatch.engine.SlotUsage;
import io.genaibatch.engine.guidance.ResponseFormat;
import java.io.Serializable;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.TreeMap;
import java.util.UUID;
import org.apache.spark.SparkContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.AccumulatorV2;
import org.apache.spark.util.CollectionAccumulator;
import org.apache.spark.util.LongAccumulator;
import org.apache.spark.util.TaskCompletionListener;

/**
 * Scores one partition: takes a lease on the executor's model, pulls rows in windows of {@code
 * lookaheadRows}, lets the engine sort each window's prompts by length and cut them into native
 * batches ({@link LlmModel#score}), and emits every input row exactly once, in input order, with
 * its answer, usage and error. Streams: at most one window of rows is held. The lease is released
 * by a task-completion listener, so the model stays loaded for the next task.
 */
public final class PartitionScorer implements MapPartitionsFunction<Row, Row> {
  private static final long serialVersionUID = 1L;

  private final ModelSpec spec;
  private final ScoringOptions options;
  private final String modelUri;
  private final String modelVersion;
  private final String runId;
  private final boolean java8Time;
  private final ScoringMetrics metrics;
  private final RowShape shape;

  /** Scores the job's and the Transformer's rows, of {@code inputSchema}. */
  public PartitionScorer(ModelSpec spec, ScoringOptions options, StructType inputSchema, String runId,
      boolean java8Time, ScoringMetrics metrics) {
    this(spec, options, new JobRows(options, inputSchema), runId, java8Time, metrics);
  }

  /** Scores rows of {@code shape}. */
  PartitionScorer(ModelSpec spec, ScoringOptions options, RowShape shape, String runId, boolean java8Time,
      ScoringMetrics metrics) {
    this.spec = spec;
    this.options = options;
    this.shape = shape;
    this.modelUri = Redact.uri(spec.model().uri().raw());
    this.modelVersion = spec.model().versionLabel();
    this.runId = runId;
    this.java8Time = java8Time;
    this.metrics = metrics;
  }

  /**
   * The task's terms for the executor's decode loop: its cancellation ({@code ctx} null outside a
   * task), the key/value cache and prefix store bounds of {@code options}.
   */
  static DecodeTerms terms(TaskContext ctx, ScoringOptions options) {
    return new DecodeTerms(() -> ctx != null && ctx.isInterrupted(), options.kvCacheMb() * 1024L * 1024L,
        options.prefixCacheMb() * 1024L * 1024L);
  }

  @Override
  public Iterator<Row> call(Iterator<Row> rows) {
    if (!rows.hasNext()) {
      return rows;
    }
    TaskContext ctx = TaskContext.get();
    // On an accelerator, the GPU Spark gave this task: one model per executor and GPU.
    Optional<String> gpu = GpuScheduling.taskAddress(ctx);
    ExecutorModelCache.Lease lease = ExecutorModelCache.acquire(
        spec.provider().isCpu() ? spec : gpu.map(spec::onDevice).orElse(spec));
    if (metrics != null) {
      gpu.ifPresent(metrics::recordGpu);
    }
    if (ctx != null) {
      ctx.addTaskCompletionListener((TaskCompletionListener) c -> lease.close());
    }
    if (metrics != null && lease.loadedNow()) {
      metrics.loads().add(1);
      metrics.loadMillis().add(Math.round(lease.loadMillis()));
      metrics.recordFetch(lease.fetchBytes(), lease.fetchMillis());
    }
    LlmModel model = lease.model();
    DecodeTerms terms = terms(ctx, options);
    DecodeProfile[] profile = {DecodeProfile.NONE};
    Runnable report = () -> {
      if (metrics != null && profile[0].totalMs() > 0) {
        metrics.profiles().add(profile[0]);
      }
    };
    if (ctx != null) {
      ctx.addTaskCompletionListener((TaskCompletionListener) c -> report.run());
    }
    return new Iterator<>() {
      private final List<Row> out = new ArrayList<>();
      private int pos;

      @Override
      public boolean hasNext() {
        if (pos < out.size()) {
          return true;
        }
        out.clear();
        pos = 0;
        if (!rows.hasNext()) {
          if (metrics != null) {
            metrics.recordExecutorMemory();
          }
          if (ctx == null) {
            report.run();
            lease.close();
          }
          return false;
        }
        List<Row> batch = new ArrayList<>(options.windowRows());
        while (rows.hasNext() && batch.size() < options.windowRows()) {
          batch.add(rows.next());
        }
        profile[0] = profile[0].plus(score(model, terms, batch, out));
        return true;
      }

      @Override
      public Row next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        return out.get(pos++);
      }
    };
  }

  /** Scores one window into {@code out}; returns where the continuous loop's time went. */
  private DecodeProfile score(LlmModel model, DecodeTerms terms, List<Row> batch, List<Row> out) {
    List<GenerationRequest> requests = new ArrayList<>(batch.size());
    RowShape.Prepared[] prepared = new RowShape.Prepared[batch.size()];
    for (int k = 0; k < batch.size(); k++) {
      prepared[k] = shape.prepare(batch.get(k), k, model);
      // A failed row has nothing to generate: the engine answers a null prompt at once, and the row
      // keeps its own error.
      GenerationRequest request = prepared[k].request();
      requests.add(request != null ? request : GenerationRequest.of(null, options.search()));
    }
    List<Generation> gens;
    DecodeProfile profile = DecodeProfile.NONE;
    RowResult windowFailure = null;
    try {
      long startMs = System.currentTimeMillis();
      ScoredWindow scored = model.score(requests, options.batchSize(), options.batching(), terms, options.limits());
      gens = scored.generations();
      profile = scored.profile();
      if (metrics != null) {
        metrics.recordSlots(scored.slots());
        metrics.recordWindow(startMs, System.currentTimeMillis());
      }
    } catch (RuntimeException e) {
      // The window failed as a whole (the model was closed under it): every row of it becomes an
      // error row, and the partition goes on with the next window.
      gens = null;
      windowFailure = RowResult.generationFailed(e);
    }
    Timestamp now = new Timestamp(System.currentTimeMillis());
    Object scoredAt = java8Time ? now.toInstant() : now;
    for (int k = 0; k < batch.size(); k++) {
      Generation failure = prepared[k].failure();
      Generation g = failure != null ? failure : gens == null ? null : gens.get(k);
      RowResult result = g == null ? windowFailure : RowResult.of(g);
      OutputSchema.Scored scored = new OutputSchema.Scored(result, g, modelUri, modelVersion, runId, scoredAt,
          now.getTime() / 1000);
      if (metrics != null) {
        metrics.record(result.ok(), result.promptTokens(), result.completionTokens());
        ResponseFormat format = prepared[k].format();
        if (result.ok() && format != null) {
          metrics.recordFormatted(g.choices().stream().allMatch(c -> format.accepts(c.text())));
        }
      }
      out.add(shape.output(batch.get(k), scored));
    }
    return profile;
  }

  /** Accumulators the driver reads: model loads, rows, tokens. Registered on the driver. */
  public record ScoringMetrics(LongAccumulator loads, LongAccumulator loadMillis, LongAccumulator rowsOk,
      LongAccumulator rowsFailed, LongAccumulator promptTokens, LongAccumulator completionTokens,
      LongAccumulator prefillSlots, LongAccumulator prefillUseful, LongAccumulator decodeSlots,
      LongAccumulator decodeUseful, CollectionAccumulator<String> executorMemory,
      CollectionAccumulator<long[]> windows, String liveKey, LongAccumulator fetchBytes,
      LongAccumulator fetchMillis, LongAccumulator formatted, LongAccumulator formattedOk,
      CollectionAccumulator<DecodeProfile> profiles, CollectionAccumulator<String> gpus)
      implements Serializable {

    /** Registers the accumulators on the driver and opens this job's {@link LiveCounts}. */
    public static ScoringMetrics register(SparkContext sc) {
      String liveKey = UUID.randomUUID().toString();
      LiveCounts.open(liveKey);
      return new ScoringMetrics(countingFailedTasks(sc, new LongAccumulator(), "genai-batch model loads"),
          countingFailedTasks(sc, new LongAccumulator(), "genai-batch model load ms"),
          sc.longAccumulator("genai-batch rows ok"),
          sc.longAccumulator("genai-batch rows failed"), sc.longAccumulator("genai-batch prompt tokens"),
          sc.longAccumulator("genai-batch completion tokens"),
          sc.longAccumulator("genai-batch prefill slots"), sc.longAccumulator("genai-batch prefill useful"),
          sc.longAccumulator("genai-batch decode slots"), sc.longAccumulator("genai-batch decode useful"),
          countingFailedTasks(sc, new CollectionAccumulator<>(), "genai-batch executor peak RSS"),
          sc.collectionAccumulator("genai-batch generation windows"), liveKey,
          countingFailedTasks(sc, new LongAccumulator(), "genai-batch executor fetch bytes"),
          countingFailedTasks(sc, new LongAccumulator(), "genai-batch executor fetch ms"),
          sc.longAccumulator("genai-batch answers with a response format"),
          sc.longAccumulator("genai-batch answers that parse under their response format"),
          sc.collectionAccumulator("genai-batch continuous batching profiles"),
          sc.collectionAccumulator("genai-batch task GPUs"));
    }

    /**
     * {@code a}, registered to keep what failed and killed task attempts added too: a model that a task
     * loaded stays loaded in its executor when the task then fails, is killed as a speculative copy's
     * loser, or is retried, so its load is counted, and so is that executor's memory (executors_used
     * counts the executors that ran the model). Rows and tokens count successful attempts only.
     * Spark's Java API has no such accumulator; its {@code register} with {@code countFailedValues}
     * is Scala-{@code private[spark]}, which is public to Java, and unchanged from Spark 3.0 to 4.x.
     * A load in an executor that is lost whole (its JVM killed) is not counted: no attempt of it
     * reports anything.
     */
    private static <A extends AccumulatorV2<?, ?>> A countingFailedTasks(SparkContext sc, A a, String name) {
      a.register(sc, scala.Option.apply(name), true);
      return a;
    }

    /** What an executor's load downloaded into its host's cache (0 and 0 for a cached or local model). */
    void recordFetch(long bytes, double millis) {
      fetchBytes.add(bytes);
      fetchMillis.add(Math.round(millis));
    }

    /** MB/s of the executors' downloads, summed over hosts; NaN when none downloaded. */
    public double fetchMbPerSecond() {
      long bytes = fetchBytes.value();
      long ms = fetchMillis.value();
      return bytes > 0 && ms > 0 ? bytes / 1e6 / (ms / 1e3) : Double.NaN;
    }

    /** A window's generation, wall clock: start and end, epoch milliseconds. */
    void recordWindow(long startMs, long endMs) {
      windows.add(new long[] {startMs, endMs});
    }

    /**
     * First generation start and last generation end over every window of every task, epoch
     * milliseconds; null when nothing was generated.
     */
    public long[] generationSpan() {
      long first = Long.MAX_VALUE;
      long last = Long.MIN_VALUE;
      for (long[] w : windows.value()) {
        first = Math.min(first, w[0]);
        last = Math.max(last, w[1]);
      }
      return first == Long.MAX_VALUE ? null : new long[] {first, last};
    }

    /** A row answered under a response format: whether every completion of it parses under the format. */
    void recordFormatted(boolean parses) {
      formatted.add(1);
      if (parses) {
        formattedOk.add(1);
      }
    }

    void recordSlots(SlotUsage s) {
      prefillSlots.add(s.prefillSlots());
      prefillUseful.add(s.prefillUseful());
      decodeSlots.add(s.decodeSlots());
      decodeUseful.add(s.decodeUseful());
    }

    /** Where the continuous loop's time went, summed over the finished tasks (the largest KV cache). */
    public DecodeProfile profile() {
      DecodeProfile sum = DecodeProfile.NONE;
      for (DecodeProfile p : profiles.value()) {
        sum = sum.plus(p);
      }
      return sum;
    }

    /** Token slots the finished tasks computed and used. */
    public SlotUsage slots() {
      return new SlotUsage(prefillSlots.value(), prefillUseful.value(), decodeSlots.value(), decodeUseful.value());
    }

    /** Adds "EXECUTOR_ID PEAK_RSS_KB" of this JVM (Linux VmHWM), after a partition. */
    void recordExecutorMemory() {
      long kb = ProcessMemory.peakRssKb();
      SparkEnv env = SparkEnv.get();
      if (kb > 0 && env != null) {
        executorMemory.add(env.executorId() + " " + kb);
      }
    }

    /** Adds "EXECUTOR_ID GPU_ADDRESS" of a task Spark gave a GPU. */
    void recordGpu(String address) {
      SparkEnv env = SparkEnv.get();
      gpus.add((env == null ? "?" : env.executorId()) + " " + address);
    }

    /** Tasks per GPU Spark gave them ("executor EXECUTOR_ID gpu ADDRESS"); empty without GPU scheduling. */
    public Map<String, Long> tasksByGpu() {
      Map<String, Long> m = new TreeMap<>();
      for (String s : gpus.value()) {
        String[] p = s.split(" ", -1);
        m.merge("executor " + p[0] + " gpu " + p[1], 1L, Long::sum);
      }
      return m;
    }

    /** Peak resident memory per executor id, in MB, from what the tasks reported. */
    public Map<String, Double> peakRssMbByExecutor() {
      Map<String, Double> m = new TreeMap<>();
      for (String s : executorMemory.value()) {
        String[] p = s.split(" ", -1);
        m.merge(p[0], Long.parseLong(p[1]) / 1024.0, Math::max);
      }
      return m;
    }

    void record(boolean ok, int prompt, int completion) {
      (ok ? rowsOk : rowsFailed).add(1);
      promptTokens.add(prompt);
      completionTokens.add(completion);
      LiveCounts.addRow(liveKey, completion);
    }

    /** Rows scored so far: finished tasks', or this JVM's window-by-window count when larger. */
    public long rows() {
      return Math.max(rowsOk.value() + rowsFailed.value(), LiveCounts.rows(liveKey));
    }

    /** Completion tokens so far, on the same terms as {@link #rows()}. */
    public long generatedTokens() {
      return Math.max(completionTokens.value(), LiveCounts.completionTokens(liveKey));
    }

    /** Closes this job's live counts (the accumulators stay). */
    public void release() {
      LiveCounts.close(liveKey);
    }
  }
}
