package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.loop.PrefixReuseTest;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.Settings;
import io.genaibatch.spark.BatchScorer;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.Slow;
import io.genaibatch.testing.SparkTestBase;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;
import java.util.HashMap;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line, run in-process on the shared local[2] session (and once in a child JVM). */
class BatchScoringJobTest extends SparkTestBase {
  static final StructType SCHEMA = new StructType().add("id", DataTypes.LongType).add("prompt", DataTypes.StringType);

  static String writePrompts(Path dir, int n, boolean withBadRows) {
    List<Row> rows = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      String p = "Prompt number " + i + (i % 4 == 0 ? " ends." : " goes on");
      if (withBadRows && i == 1) {
        p = null;
      } else if (withBadRows && i == 2) {
        p = "";
      } else if (withBadRows && i == 3) {
        p = "word ".repeat(5000);
      }
      rows.add(RowFactory.create((long) i, p));
    }
    String path = dir.resolve("prompts.parquet").toString();
    spark.createDataFrame(rows, SCHEMA).repartition(4).write().parquet(path);
    return path;
  }

  record Result(int code, String out, String err) {}

  static Result run(String... args) {
    PrintStream oldOut = System.out;
    PrintStream oldErr = System.err;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
    System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
    try {
      int code = BatchScoringJob.execute(args);
      return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    } finally {
      System.setOut(oldOut);
      System.setErr(oldErr);
    }
  }

  /** The flags of the README's structured-output example, after --model-uri. */
  static final String[] STRUCTURED_FLAGS = {"--input", "jobs/data/structured_prompts.jsonl",
      "--max-tokens-column", "max_tokens", "--temperature-column", "temperature", "--stop-column", "stop",
      "--n-column", "n", "--response-format-column", "response_format",
      "--response-format", "@jobs/data/sentiment_schema.json", "--parse-response"};

  /**
   * {@code --batch-size 1} runs every row alone through onnxruntime-genai's own generator, whose
   * key/value cache is bounded by {@code --kv-cache-mb} as the loop's is: the tiny model holds 512
   * bytes a position, so a row asking for 3000 tokens needs about 1.5 MiB, over a limit of 1.
   */
  @Test
  void aBatchSizeOneJobKeepsEveryRowWithinKvCacheMb(@TempDir Path tmp) throws Exception {
    Path input = tmp.resolve("rows.jsonl");
    Files.writeString(input, "{\"id\": 0, \"prompt\": \"Tell a long story\", \"max_tokens\": 3000}\n"
        + "{\"id\": 1, \"prompt\": \"Say hello\", \"max_tokens\": 5}\n"
        + "{\"id\": 2, \"prompt\": \"Say goodbye\", \"max_tokens\": 5}\n");
    String output = tmp.resolve("out").toString();
    Result r = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input.toString(), "--input-format",
        "json", "--output", output, "--no-tracking", "--batch-size", "1", "--kv-cache-mb", "1", "--max-length",
        "4096", "--max-tokens-column", "max_tokens", "--max-error-rate", "0.5");
    assertThat(r.code()).as(r.err()).isZero();
    Map<Long, Row> rows = new HashMap<>();
    for (Row row : spark.read().parquet(output).collectAsList()) {
      rows.put(row.getLong(row.fieldIndex("id")), row);
    }
    assertThat(rows.get(0L).<String>getAs("error")).contains("key/value cache").contains("--kv-cache-mb 1");
    for (long id = 1; id <= 2; id++) {
      assertThat(rows.get(id).<String>getAs("error")).isNull();
      assertThat(rows.get(id).<Integer>getAs("completion_tokens")).isEqualTo(5);
    }
  }

  @Test
  void thePromptSetMixingRowOptionsAndASchemaRunsInOneJob(@TempDir Path tmp) throws Exception {
    String output = tmp.resolve("out").toString();
    List<String> args = new ArrayList<>(List.of("--config", "conf/local.yaml", "--model-uri",
        Fixtures.tinyModel().toString(), "--output", output, "--no-tracking"));
    args.addAll(List.of(STRUCTURED_FLAGS));
    Result r = run(args.toArray(String[]::new));
    Map<Long, Row> rows = new HashMap<>();
    Map<Long, String> errors = new HashMap<>();
    for (Row row : spark.read().parquet(output).collectAsList()) {
      rows.put(row.getLong(row.fieldIndex("id")), row);
      if (row.getAs("error") != null) {
        errors.put(row.getLong(row.fieldIndex("id")), row.getAs("error"));
      }
    }
    assertThat(rows).hasSize(10);
    assertThat(errors).as("the two bad rows only").containsOnlyKeys(9L, 10L);
    assertThat(r.code()).as(r.err()).isZero();
    for (long id = 1; id <= 3; id++) {
      Row parsed = rows.get(id).getAs("response_parsed");
      assertThat(parsed.<String>getAs("label")).as("row %d: %s", id, rows.get(id).getAs("response"))
          .isIn("positive", "negative", "neutral");
      assertThat(parsed.<Long>getAs("confidence")).isBetween(0L, 100L);
    }
    assertThat(rows.get(4L).<String>getAs("response")).isIn("yes", "no");
    assertThat(rows.get(5L).getList(rows.get(5L).fieldIndex("responses"))).hasSize(2);
    assertThat(rows.get(5L).<Row>getAs("response_parsed")).isNull();
    assertThat(rows.get(6L).<String>getAs("response")).doesNotContain(".");
    assertThat(rows.get(7L).<Integer>getAs("completion_tokens")).isLessThanOrEqualTo(4);
    assertThat(rows.get(9L).<String>getAs("error")).contains("max_tokens must be a whole number >= 1, got '-1'");
    assertThat(rows.get(10L).<String>getAs("error")).contains("temperature").contains("got 'warm'");
    JsonNode m = new ObjectMapper().readTree(Paths.get(output, BatchScoringJob.METRICS_FILE).toFile());
    assertThat(m.path("responses_formatted").asDouble()).isEqualTo(4.0);
    assertThat(m.path("responses_parsed").asDouble()).isEqualTo(4.0);
  }

  @Test
  void scoresAPromptSetWithBadRowsKeepingEveryRow(@TempDir Path tmp) throws Exception {
    String input = writePrompts(tmp, 24, true);
    String output = tmp.resolve("out").toString();
    Result r = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output,
        "--no-tracking", "--max-tokens", "4", "--batch-size", "3", "--id-column", "id", "--max-error-rate", "0.2");
    assertThat(r.code()).as(r.err()).isZero();
    assertThat(r.out()).contains("wrote 24 rows (21 ok, 3 errors) to " + output);
    Dataset<Row> back = spark.read().parquet(output);
    assertThat(back.count()).isEqualTo(24);
    assertThat(back.select("id").distinct().count()).isEqualTo(24);
    assertThat(back.filter("error is not null").count()).isEqualTo(3);
    assertThat(back.filter("error is null and completion_tokens > 4").count()).isZero();

    // The run's scheduling metrics, beside the output: useful slots are the ok rows' own tokens.
    JsonNode m = new ObjectMapper().readTree(Paths.get(output, BatchScoringJob.METRICS_FILE).toFile());
    Row ok = back.filter("error is null").agg(functions.sum("prompt_tokens"), functions.sum("completion_tokens")).first();
    double prefillSlots = m.path("prefill_slots").asDouble();
    double decodeSlots = m.path("decode_slots").asDouble();
    assertThat(m.path("prefill_slot_efficiency").asDouble() * prefillSlots).isCloseTo(ok.getLong(0), within(1e-6));
    assertThat(m.path("decode_slot_efficiency").asDouble() * decodeSlots).isCloseTo(ok.getLong(1), within(1e-6));
    assertThat(m.path("slot_efficiency").asDouble() * (prefillSlots + decodeSlots))
        .isCloseTo(ok.getLong(0) + ok.getLong(1), within(1e-6));
    assertThat(m.path("slot_efficiency").asDouble()).isBetween(0.0, 1.0);
    int inputPartitions = spark.read().parquet(input).rdd().getNumPartitions();
    assertThat(m.path("partitions").asInt()).as("the input's partitions, at least the two task slots")
        .isEqualTo(BatchScorer.autoPartitions(inputPartitions, 2));
    assertThat(m.path("task_slots").asInt()).isEqualTo(2);
    assertThat(m.path("threads_per_task").asInt()).isEqualTo(1);
    assertThat(r.out()).contains("slot efficiency").contains(" partitions on 2 task slots x 1 native threads");
  }

  @Test
  void oneInputFileIsSpreadOverEveryTaskSlot(@TempDir Path tmp) throws Exception {
    List<Row> rows = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      rows.add(RowFactory.create((long) i, "Prompt number " + i + " goes on"));
    }
    String input = tmp.resolve("one.parquet").toString();
    spark.createDataFrame(rows, SCHEMA).coalesce(1).write().parquet(input);
    String output = tmp.resolve("out").toString();
    Result r = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output,
        "--no-tracking", "--max-tokens", "3");
    assertThat(r.code()).as(r.err()).isZero();
    JsonNode m = new ObjectMapper().readTree(Paths.get(output, BatchScoringJob.METRICS_FILE).toFile());
    assertThat(m.path("partitions").asInt()).isEqualTo(2);
    assertThat(spark.read().parquet(output).count()).isEqualTo(12);

    Result kept = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output,
        "--no-tracking", "--max-tokens", "3", "--partitions", "input");
    assertThat(kept.code()).as(kept.err()).isZero();
    assertThat(new ObjectMapper().readTree(Paths.get(output, BatchScoringJob.METRICS_FILE).toFile()).path("partitions").asInt())
        .isEqualTo(1);
    assertThat(run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output,
        "--no-tracking", "--partitions", "many").err()).contains("'partitions' must be auto, input or a whole number >= 1, got 'many'");
  }

  /**
   * A nightly evaluation's shape: rows of three long templates, every seventh a copy of an earlier
   * one, in two partitions (two tasks on the executor's one loop). With reuse on each template is
   * computed about once and the copies never; the answers are reuse-off's, row for row.
   */
  @Test
  void sharedPrefixesAndDuplicateRowsAreComputedOnceWithTheAnswersOfReuseOff(@TempDir Path tmp) throws Exception {
    List<Row> rows = new ArrayList<>();
    List<GenerationRequest> requests = PrefixReuseTest.sharedPrefixRows("job", 28);
    for (int i = 0; i < requests.size(); i++) {
      rows.add(RowFactory.create((long) i, requests.get(i).prompt()));
    }
    String input = tmp.resolve("shared.parquet").toString();
    spark.createDataFrame(rows, SCHEMA).repartition(2).write().parquet(input);
    Map<Long, String> answers = new HashMap<>();
    JsonNode[] metrics = new JsonNode[2];
    for (int on = 0; on < 2; on++) {
      String output = tmp.resolve("out-" + on).toString();
      Result r = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output,
          "--no-tracking", "--max-tokens", "12", "--prefix-cache-mb", on == 1 ? "64" : "0", "--id-column", "id");
      assertThat(r.code()).as(r.err()).isZero();
      List<Row> back = spark.read().parquet(output).collectAsList();
      assertThat(back).hasSize(28);
      for (Row row : back) {
        long id = row.getLong(row.fieldIndex("id"));
        String answer = row.getAs("response");
        assertThat(answer).as("row %d", id).isNotNull();
        if (on == 0) {
          answers.put(id, answer);
        } else {
          assertThat(answer).as("row %d with reuse on against off", id).isEqualTo(answers.get(id));
        }
      }
      metrics[on] = new ObjectMapper().readTree(Paths.get(output, BatchScoringJob.METRICS_FILE).toFile());
      if (on == 1) {
        assertThat(r.out()).contains("genai-batch: prefix store: ");
      }
    }
    double prompts = metrics[0].path("prompt_tokens_computed").asDouble();
    assertThat(metrics[0].path("prefix_tokens_reused").asDouble()).as("reuse off").isZero();
    assertThat(metrics[0].path("duplicate_completions").asDouble()).isZero();
    JsonNode m = metrics[1];
    assertThat(m.path("duplicate_completions").asInt()).as("the four copied rows").isEqualTo(4);
    assertThat(m.path("prompt_tokens_computed").asDouble()).as("prompt tokens computed with reuse on")
        .isLessThan(prompts / 3);
    assertThat(m.path("prefix_hit_rate").asDouble()).isGreaterThan(0.6);
    assertThat(m.path("prefix_cache_bytes").asDouble()).isPositive().isLessThanOrEqualTo(64 << 20);
    // tokens/s counts every token served, read from the store or copied from a duplicate too: the
    // same tokens as with reuse off, in whatever time they took.
    assertThat(m.path("tokens_per_s").asDouble() * m.path("scoring_wall_s").asDouble()).as("tokens served")
        .isCloseTo(metrics[0].path("tokens_per_s").asDouble() * metrics[0].path("scoring_wall_s").asDouble(),
            within(1.0));
  }

  @Test
  void tooManyErrorRowsExitWithThreeButKeepTheOutput(@TempDir Path tmp) {
    String input = writePrompts(tmp, 12, true);
    String output = tmp.resolve("out").toString();
    Result r = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output,
        "--no-tracking", "--max-tokens", "2");
    assertThat(r.code()).isEqualTo(3);
    assertThat(r.err()).contains("25.00% of rows are errors, above --max-error-rate 5.00%");
    assertThat(spark.read().parquet(output).count()).isEqualTo(12);
  }

  @Test
  void aMissingColumnFailsBeforeScoringWithExitTwo(@TempDir Path tmp) {
    String input = writePrompts(tmp, 4, false);
    Path output = tmp.resolve("out");
    Result r = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output.toString(),
        "--no-tracking", "--prompt-column", "question");
    assertThat(r.code()).isEqualTo(2);
    assertThat(r.err()).contains("Input has no column 'question'").contains("id, prompt");
    assertThat(output).doesNotExist();
  }

  @Test
  void aBadModelFolderFailsOnTheDriverNamingIt(@TempDir Path tmp) {
    String input = writePrompts(tmp, 4, false);
    Result r = run("--model-uri", tmp.resolve("no-model").toString(), "--input", input, "--output",
        tmp.resolve("out").toString(), "--no-tracking");
    assertThat(r.code()).isEqualTo(2);
    assertThat(r.err()).contains(tmp.resolve("no-model").toString());
  }

  @Test
  void aModelFolderNamingACustomOperatorLibraryIsRefusedOnTheDriverUnlessAllowed(@TempDir Path tmp) throws Exception {
    Path model = tmp.resolve("model");
    try (Stream<Path> files = Files.list(Fixtures.tinyModel())) {
      Files.createDirectories(model);
      for (Path f : files.toList()) {
        Files.copy(f, model.resolve(f.getFileName()));
      }
    }
    ObjectNode config = (ObjectNode) new ObjectMapper().readTree(model.resolve("genai_config.json").toFile());
    ((ObjectNode) config.path("model").path("decoder")).putObject("session_options")
        .put("custom_ops_library", "libcarried.so");
    Files.writeString(model.resolve("genai_config.json"), config.toString());
    String input = writePrompts(tmp, 4, false);
    Result r = run("--model-uri", model.toString(), "--input", input, "--output", tmp.resolve("out").toString(),
        "--no-tracking");
    assertThat(r.code()).isEqualTo(2);
    assertThat(r.err()).contains(model.resolve("genai_config.json").toString()).contains("\"libcarried.so\"")
        .contains("--allow-custom-ops");
    assertThat(Files.exists(tmp.resolve("out"))).as("nothing scored").isFalse();
  }

  @Test
  void anAcceleratorThisBuildLacksFailsOnTheDriverNamingWhatToInstall(@TempDir Path tmp) throws Exception {
    String input = writePrompts(tmp, 4, false);
    Result r = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output",
        tmp.resolve("out").toString(), "--no-tracking", "--execution-provider", "cuda", "--provider-options",
        "enable_cuda_graph=1");
    assertThat(r.code()).isEqualTo(2);
    assertThat(r.err()).contains("execution_provider cuda needs libonnxruntime_providers_cuda.so")
        .contains("onnxruntime-gpu").contains("onnxruntime-genai-cuda");
    assertThat(Files.exists(tmp.resolve("out"))).as("nothing scored").isFalse();

    Result unknown = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output",
        tmp.resolve("out").toString(), "--no-tracking", "--execution-provider", "tpu");
    assertThat(unknown.code()).isEqualTo(2);
    assertThat(unknown.err()).contains("execution_provider").contains("cuda");
  }

  @Test
  void configFileAndFlagsFollowThePrecedence(@TempDir Path tmp) throws Exception {
    String input = writePrompts(tmp, 6, false);
    Path conf = tmp.resolve("job.yaml");
    Files.writeString(conf, "model_uri: " + Fixtures.tinyModel() + "\ninput: " + input + "\noutput: "
        + tmp.resolve("out") + "\ntracking: false\nsearch:\n  max_new_tokens: 7\n  do_sample: false\n");
    Result r = run("--config", conf.toString(), "--max-tokens", "3");
    assertThat(r.code()).as(r.err()).isZero();
    Dataset<Row> back = spark.read().parquet(tmp.resolve("out").toString());
    assertThat(back.filter("finish_reason = 'length' and completion_tokens != 3").count()).isZero();
    assertThat(back.filter("finish_reason = 'length'").count()).isPositive();

    Files.writeString(conf, "model_uri: x\nbatchsize: 3\n");
    Result bad = run("--config", conf.toString());
    assertThat(bad.code()).isEqualTo(2);
    assertThat(bad.err()).contains("unknown key 'batchsize'").contains("batch_size");
  }

  @Test
  void helpListsEverySettingWithItsDefaultAndTheExitCodes() {
    Result r = run("--help");
    assertThat(r.code()).isZero();
    assertThat(r.out()).contains("--config");
    for (Setting<?> s : Settings.all()) {
      assertThat(r.out()).contains(s.flags().get(0));
    }
    assertThat(r.out()).contains("--batch-size=N").contains("(default 8)").contains("(default continuous)")
        .contains("(default auto)");
    for (ExitCode c : ExitCode.values()) {
      assertThat(r.out()).contains(c.meaning());
    }
  }

  @Test
  void theSessionsSparkConfSitsBelowFlagsAndAnUnknownKeyIsRefused(@TempDir Path tmp) throws Exception {
    String input = writePrompts(tmp, 4, false);
    String output = tmp.resolve("out").toString();
    spark.conf().set("spark.genaibatch.max_new_tokens", "2");
    try {
      Result r = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output,
          "--no-tracking", "--do-sample", "false");
      assertThat(r.code()).as(r.err()).isZero();
      assertThat(spark.read().parquet(output).filter("completion_tokens > 2").count()).isZero();
      spark.conf().set("spark.genaibatch.cacheDir", tmp.resolve("cache").toString());
      Result bad = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output,
          "--no-tracking");
      assertThat(bad.code()).isEqualTo(2);
      assertThat(bad.err()).contains("unknown key 'cacheDir'; did you mean 'cache_dir'?");
    } finally {
      spark.conf().unset("spark.genaibatch.max_new_tokens");
      spark.conf().unset("spark.genaibatch.cacheDir");
    }
  }

  @Slow
  @Test
  void aJobKilledHalfwayThenResumedScoresEveryRowExactlyOnce(@TempDir Path tmp) throws Exception {
    String input = writePrompts(tmp, 40, true);
    Path output = tmp.resolve("out");
    List<String> cmd = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString()));
    cmd.addAll(List.of(System.getProperty("genaibatch.test.jvmargs", "").split(" ")));
    cmd.removeIf(String::isBlank);
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "-Dgenaibatch.project.dir=" + Fixtures.projectDir(),
        BatchScoringJob.class.getName(), "--model-uri", Fixtures.tinyModel().toString(), "--input", input,
        "--output", output.toString(), "--no-tracking", "--id-column", "id", "--commit-rows", "5",
        "--max-tokens", "40", "--batch-size", "2"));
    Process child = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(tmp.resolve("child.log").toFile()).start();
    // Wait until at least one wave is committed, then kill the job mid-run.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
    while (System.nanoTime() < deadline && committedFiles(output) < 2 && child.isAlive()) {
      Thread.sleep(100);
    }
    assertThat(child.isAlive()).as("the child finished before it could be killed: " + Files.readString(tmp.resolve("child.log"))).isTrue();
    child.destroyForcibly().waitFor();
    long partial = spark.read().parquet(output.toString()).count();
    assertThat(partial).isBetween(1L, 39L);

    Result r = run("--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output.toString(),
        "--no-tracking", "--id-column", "id", "--mode", "resume", "--max-tokens", "40", "--max-error-rate", "0.2");
    assertThat(r.code()).as(r.err()).isZero();
    Dataset<Row> back = spark.read().parquet(output.toString());
    assertThat(back.count()).isEqualTo(40);
    assertThat(back.select("id").distinct().count()).isEqualTo(40);
  }

  private static long committedFiles(Path output) {
    if (!Files.isDirectory(output)) {
      return 0;
    }
    try (Stream<Path> s = Files.list(output)) {
      return s.filter(p -> p.getFileName().toString().endsWith(".parquet")).count();
    } catch (Exception e) {
      return 0;
    }
  }
}
