package io.genaibatch.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.genaibatch.common.AtomicFiles;
import io.genaibatch.common.ProcessMemory;
import io.genaibatch.engine.FinishReason;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.ScoredWindow;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.engine.SlotUsage;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The engine alone, no Spark: system (c) of {@code jobs/benchmark.sh}, which runs it from the
 * test classes with the project's runtime class path ({@code genai_batch.bench.run}); a benchmark,
 * not part of the job jar.
 *
 * <pre>
 * java -cp target/test-classes:target/classes:RUNTIME_CLASSPATH io.genaibatch.bench.EngineBenchmark \
 *   --model DIR --prompts FILE --out RESULT.json [--new-tokens 16] [--batch-size 8] [--workers 2] [--threads 1]
 * </pre>
 *
 * <p>It does what the job's tasks do, without Spark: one model loaded once with {@code --threads}
 * native threads per generation call ({@code spark.task.cpus} in the job), the prompts (one per
 * line of {@code --prompts}) cut into {@code --workers} contiguous slices as the job's input
 * files are cut into partitions, each slice scored by its own thread in batches of {@code
 * --batch-size} with greedy search and at most {@code --new-tokens} new tokens. Each batch is one
 * {@link LlmModel#score} call with that batch size, so batch 1 runs every prompt alone (no
 * stand-in row) and larger batches run the slice's consecutive prompts together. It writes one
 * JSON object to {@code --out}: load time, the generation window (first batch start to last batch
 * end, epoch milliseconds), rows, prompt and generated tokens, the token slots the native batches
 * computed (prefill and decode, with the useful share), finish reasons and this JVM's peak RSS.
 */
@Command(name = "EngineBenchmark", mixinStandardHelpOptions = true,
    description = "Scores prompts with the engine alone, no Spark, and writes the numbers as JSON.")
public final class EngineBenchmark implements Callable<Integer> {
  @Option(names = "--model", required = true, paramLabel = "DIR", description = "The onnxruntime-genai model folder")
  Path model;

  @Option(names = "--prompts", required = true, paramLabel = "FILE", description = "Prompts, one per line")
  Path prompts;

  @Option(names = "--out", required = true, paramLabel = "FILE", description = "Where the result JSON goes")
  Path out;

  @Option(names = "--new-tokens", paramLabel = "N", description = "Most new tokens per prompt (default 16)")
  int newTokens = 16;

  @Option(names = "--batch-size", paramLabel = "N", description = "Prompts per engine call (default 8)")
  int batchSize = 8;

  @Option(names = "--workers", paramLabel = "N", description = "Threads, each scoring one slice (default 2)")
  int workers = 2;

  @Option(names = "--threads", paramLabel = "N", description = "Native threads per call; 0: the runtime's (default 1)")
  int threads = 1;

  public static void main(String[] args) {
    System.exit(new CommandLine(new EngineBenchmark()).execute(args));
  }

  @Override
  public Integer call() throws Exception {
    List<String> texts = readPrompts(prompts);
    if (texts.isEmpty() || newTokens < 1 || batchSize < 1 || workers < 1 || threads < 0) {
      throw new CommandLine.ParameterException(new CommandLine(this), "Need at least one prompt, and --new-tokens,"
          + " --batch-size, --workers >= 1 and --threads >= 0; got " + texts.size() + " prompts");
    }
    SearchOptions search = SearchOptions.greedy(newTokens);

    long wallStart = System.currentTimeMillis();
    try (LlmModel llm = LlmModel.load(model, threads)) {
      ExecutorService pool = Executors.newFixedThreadPool(workers);
      List<Future<Slice>> futures = new ArrayList<>();
      int n = texts.size();
      for (int w = 0; w < workers; w++) {
        List<String> slice = texts.subList((int) ((long) w * n / workers), (int) ((long) (w + 1) * n / workers));
        futures.add(pool.submit(() -> score(llm, slice, batchSize, search)));
      }
      Slice all = new Slice();
      all.startMillis = Long.MAX_VALUE;
      all.endMillis = Long.MIN_VALUE;
      for (Future<Slice> f : futures) {
        all.add(f.get());
      }
      pool.shutdown();

      ObjectNode result = new ObjectMapper().createObjectNode();
      result.put("system", "engine");
      result.put("model", model.toString());
      result.put("load_ms", llm.loadMillis());
      result.put("rows", all.rows);
      result.put("errors", all.errors);
      result.put("generated_tokens", all.tokens);
      result.put("prompt_tokens", all.promptTokens);
      result.put("prefill_slots", all.slots.prefillSlots());
      result.put("prefill_useful", all.slots.prefillUseful());
      result.put("decode_slots", all.slots.decodeSlots());
      result.put("decode_useful", all.slots.decodeUseful());
      result.put("prefill_slot_efficiency", all.slots.prefillEfficiency());
      result.put("decode_slot_efficiency", all.slots.decodeEfficiency());
      result.put("slot_efficiency", all.slots.efficiency());
      result.put("batches", all.batches);
      result.put("gen_start_ms", all.startMillis);
      result.put("gen_end_ms", all.endMillis);
      result.put("gen_seconds", (all.endMillis - all.startMillis) / 1e3);
      result.put("wall_seconds_in_jvm", (System.currentTimeMillis() - wallStart) / 1e3);
      ObjectNode fr = result.putObject("finish_reasons");
      all.finish.forEach((k, v) -> fr.put(k.wire(), v));
      result.put("batch_size", batchSize);
      result.put("workers", workers);
      result.put("threads", threads);
      result.put("new_tokens", newTokens);
      result.put("peak_rss_kb", ProcessMemory.peakRssKb());
      AtomicFiles.write(out, tmp -> Files.writeString(tmp, result.toString(), StandardCharsets.UTF_8));
    }
    return 0;
  }

  /** What one worker scored; {@link #add} sums slices. */
  private static final class Slice {
    long startMillis;
    long endMillis;
    long rows;
    long tokens;
    long promptTokens;
    long errors;
    int batches;
    SlotUsage slots = SlotUsage.NONE;
    final Map<FinishReason, Long> finish = new EnumMap<>(FinishReason.class);

    void add(Slice s) {
      if (s.rows == 0) {
        return;
      }
      startMillis = Math.min(startMillis, s.startMillis);
      endMillis = Math.max(endMillis, s.endMillis);
      rows += s.rows;
      tokens += s.tokens;
      promptTokens += s.promptTokens;
      slots = slots.plus(s.slots);
      errors += s.errors;
      batches += s.batches;
      s.finish.forEach((k, v) -> finish.merge(k, v, Long::sum));
    }
  }

  private static Slice score(LlmModel model, List<String> prompts, int batchSize, SearchOptions search) {
    Slice s = new Slice();
    s.startMillis = System.currentTimeMillis();
    for (int i = 0; i < prompts.size(); i += batchSize) {
      ScoredWindow w = model.score(prompts.subList(i, Math.min(prompts.size(), i + batchSize)), search, batchSize);
      s.batches += w.batches();
      s.slots = s.slots.plus(w.slots());
      for (Generation g : w.generations()) {
        s.rows++;
        s.tokens += g.completionTokens();
        s.promptTokens += g.promptTokens();
        if (!g.ok()) {
          s.errors++;
        }
        s.finish.merge(g.finishReason(), 1L, Long::sum);
      }
    }
    s.endMillis = System.currentTimeMillis();
    return s;
  }

  private static List<String> readPrompts(Path file) throws IOException {
    List<String> lines = new ArrayList<>();
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      if (!line.isEmpty()) {
        lines.add(line);
      }
    }
    return lines;
  }
}
