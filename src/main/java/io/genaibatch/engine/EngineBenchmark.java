package io.genaibatch.engine;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.genaibatch.common.ProcessMemory;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The engine alone, no Spark: system (c) of {@code jobs/benchmark.sh}.
 *
 * <pre>
 * java -cp target/genai-batch.jar:JACKSON_AND_SLF4J_JARS io.genaibatch.engine.EngineBenchmark \
 *   --model DIR --prompts FILE [--new-tokens 16] [--batch-size 8] [--workers 2] [--threads 1]
 * </pre>
 *
 * <p>It does what the job's tasks do, without Spark: one model loaded once with {@code --threads}
 * native threads per generation call ({@code spark.task.cpus} in the job), the prompts (one per
 * line of {@code --prompts}) cut into {@code --workers} contiguous slices as the job's input
 * files are cut into partitions, each slice scored by its own thread in batches of {@code
 * --batch-size} with greedy search and at most {@code --new-tokens} new tokens. Each batch is one
 * {@link LlmModel#score} call with that batch size, so batch 1 runs every prompt alone (no
 * stand-in row) and larger batches run the slice's consecutive prompts together. The last line
 * on stdout is one JSON object: load time, the generation window (first batch start to last
 * batch end, epoch milliseconds), rows, prompt and generated tokens, the token slots the native
 * batches computed (prefill and decode, with the useful share), finish reasons and this JVM's
 * peak RSS.
 */
public final class EngineBenchmark {
  private EngineBenchmark() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> a = parse(args);
    Path folder = Paths.get(require(a, "--model"));
    List<String> prompts = readPrompts(Paths.get(require(a, "--prompts")));
    int newTokens = Integer.parseInt(a.getOrDefault("--new-tokens", "16"));
    int batchSize = Integer.parseInt(a.getOrDefault("--batch-size", "8"));
    int workers = Integer.parseInt(a.getOrDefault("--workers", "2"));
    int threads = Integer.parseInt(a.getOrDefault("--threads", "1"));
    if (prompts.isEmpty() || newTokens < 1 || batchSize < 1 || workers < 1 || threads < 0) {
      throw new IllegalArgumentException("Need at least one prompt, and --new-tokens, --batch-size, --workers >= 1"
          + " and --threads >= 0; got " + prompts.size() + " prompts, " + a);
    }
    SearchOptions search = SearchOptions.greedy(newTokens);

    long wallStart = System.currentTimeMillis();
    try (LlmModel model = LlmModel.load(folder, threads)) {
      ExecutorService pool = Executors.newFixedThreadPool(workers);
      List<Future<Slice>> futures = new ArrayList<>();
      int n = prompts.size();
      for (int w = 0; w < workers; w++) {
        List<String> slice = prompts.subList((int) ((long) w * n / workers), (int) ((long) (w + 1) * n / workers));
        futures.add(pool.submit(() -> score(model, slice, batchSize, search)));
      }
      long start = Long.MAX_VALUE;
      long end = Long.MIN_VALUE;
      long rows = 0;
      long tokens = 0;
      long promptTokens = 0;
      long errors = 0;
      int batches = 0;
      SlotUsage slots = SlotUsage.NONE;
      Map<FinishReason, Long> finish = new EnumMap<>(FinishReason.class);
      for (Future<Slice> f : futures) {
        Slice s = f.get();
        if (s.rows == 0) {
          continue;
        }
        start = Math.min(start, s.startMillis);
        end = Math.max(end, s.endMillis);
        rows += s.rows;
        tokens += s.tokens;
        promptTokens += s.promptTokens;
        slots = slots.plus(s.slots);
        errors += s.errors;
        batches += s.batches;
        s.finish.forEach((k, v) -> finish.merge(k, v, Long::sum));
      }
      pool.shutdown();

      ObjectNode out = new ObjectMapper().createObjectNode();
      out.put("system", "engine");
      out.put("model", folder.toString());
      out.put("load_ms", model.loadMillis());
      out.put("rows", rows);
      out.put("errors", errors);
      out.put("generated_tokens", tokens);
      out.put("prompt_tokens", promptTokens);
      out.put("prefill_slots", slots.prefillSlots());
      out.put("prefill_useful", slots.prefillUseful());
      out.put("decode_slots", slots.decodeSlots());
      out.put("decode_useful", slots.decodeUseful());
      out.put("prefill_slot_efficiency", slots.prefillEfficiency());
      out.put("decode_slot_efficiency", slots.decodeEfficiency());
      out.put("slot_efficiency", slots.efficiency());
      out.put("batches", batches);
      out.put("gen_start_ms", start);
      out.put("gen_end_ms", end);
      out.put("gen_seconds", (end - start) / 1e3);
      out.put("wall_seconds_in_jvm", (System.currentTimeMillis() - wallStart) / 1e3);
      ObjectNode fr = out.putObject("finish_reasons");
      finish.forEach((k, v) -> fr.put(k.wire(), v));
      out.put("batch_size", batchSize);
      out.put("workers", workers);
      out.put("threads", threads);
      out.put("new_tokens", newTokens);
      out.put("peak_rss_kb", ProcessMemory.peakRssKb());
      System.out.println(out);
    }
  }

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
    List<String> out = new ArrayList<>();
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      if (!line.isEmpty()) {
        out.add(line);
      }
    }
    return out;
  }

  private static Map<String, String> parse(String[] args) {
    Map<String, String> m = new java.util.LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("Expected --flag value pairs, got '" + args[i] + "'. Usage: EngineBenchmark"
            + " --model DIR --prompts FILE [--new-tokens N] [--batch-size N] [--workers N] [--threads N]");
      }
      m.put(args[i], args[++i]);
    }
    return m;
  }

  private static String require(Map<String, String> a, String flag) {
    String v = a.get(flag);
    if (v == null) {
      throw new IllegalArgumentException("Missing " + flag);
    }
    return v;
  }
}
