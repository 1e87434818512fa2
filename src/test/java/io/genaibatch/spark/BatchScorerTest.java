package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.engine.ChatMessage;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import io.genaibatch.testing.Slow;
import io.genaibatch.testing.SparkTestBase;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** local[2] end to end: input Parquet to output Parquet, read back. */
class BatchScorerTest extends SparkTestBase {

  static final StructType SCHEMA = new StructType().add("id", DataTypes.LongType).add("prompt", DataTypes.StringType);

  private Dataset<Row> prompts(List<String> texts) {
    List<Row> rows = new ArrayList<>();
    for (int i = 0; i < texts.size(); i++) {
      rows.add(RowFactory.create((long) i, texts.get(i)));
    }
    return spark.createDataFrame(rows, SCHEMA).repartition(3);
  }

  private BatchScorer scorer(Path cache, Object... keyValues) {
    return Fixtures.tinyScorer(spark, cache, keyValues);
  }

  @Test
  void scoresEveryRowToParquetWithTheContractsColumnsAndTokenCounts(@TempDir Path tmp) {
    List<String> texts = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      texts.add(i % 5 == 0 ? "Question " + i + " ends here." : "Tell me about number " + i);
    }
    texts.set(3, null);
    texts.set(7, "");
    texts.set(11, "word ".repeat(5000));
    BatchScorer scorer = scorer(tmp.resolve("cache"), "max_new_tokens", 6, "do_sample", false);
    PartitionScorer.ScoringMetrics metrics = PartitionScorer.ScoringMetrics.register(spark.sparkContext());
    String out = tmp.resolve("out").toString();
    scorer.score(prompts(texts), "run-123", metrics).write().parquet(out);

    Dataset<Row> back = spark.read().parquet(out);
    assertThat(back.count()).isEqualTo(20);
    assertThat(back.select("id").distinct().count()).isEqualTo(20);
    Map<String, String> types = Arrays.stream(back.schema().fields())
        .collect(Collectors.toMap(f -> f.name(), f -> f.dataType().simpleString()));
    assertThat(types).containsEntry("response", "string").containsEntry("finish_reason", "string")
        .containsEntry("prompt_tokens", "int").containsEntry("completion_tokens", "int")
        .containsEntry("total_tokens", "int").containsEntry("latency_ms", "double")
        .containsEntry("error", "string").containsEntry("model_uri", "string")
        .containsEntry("model_version", "string").containsEntry("run_id", "string")
        .containsEntry("scored_at", "timestamp").containsEntry("id", "bigint").containsEntry("prompt", "string");

    try (LlmModel model = LlmModel.load(Fixtures.tinyModel())) {
      for (Row r : back.collectAsList()) {
        int id = (int) r.getLong(r.fieldIndex("id"));
        String error = r.getAs("error");
        assertThat(r.<String>getAs("run_id")).isEqualTo("run-123");
        if (id == 3 || id == 7 || id == 11) {
          assertThat(error).as("row %d", id).isNotNull();
          assertThat(r.<String>getAs("finish_reason")).isEqualTo("error");
          assertThat(r.<String>getAs("response")).isNull();
          continue;
        }
        assertThat(error).as("row %d", id).isNull();
        String prompt = r.getAs("prompt");
        assertThat(r.<Integer>getAs("prompt_tokens")).isEqualTo(model.countTokens(prompt));
        assertThat(r.<Integer>getAs("total_tokens"))
            .isEqualTo(r.<Integer>getAs("prompt_tokens") + r.<Integer>getAs("completion_tokens"));
        if (prompt.endsWith(".")) {
          assertThat(r.<String>getAs("finish_reason")).isEqualTo("stop");
        } else {
          assertThat(r.<String>getAs("finish_reason")).isEqualTo("length");
          assertThat(r.<Integer>getAs("completion_tokens")).isEqualTo(6);
        }
      }
    }
    Row row3 = back.filter("id = 3").first();
    assertThat(row3.<String>getAs("error")).isEqualTo("prompt is null");
    assertThat(back.filter("id = 7").first().<String>getAs("error")).isEqualTo("prompt is empty");
    assertThat(back.filter("id = 11").first().<String>getAs("error")).startsWith("prompt has ").contains("context length 4096");
    assertThat(metrics.rowsOk().value()).isEqualTo(17);
    assertThat(metrics.rowsFailed().value()).isEqualTo(3);
    // What the progress line reads: the same rows, before and after the job's live counts close.
    assertThat(metrics.rows()).isEqualTo(20);
    metrics.release();
    assertThat(metrics.rows()).isEqualTo(20);
  }

  @Slow
  @Test
  void aChatModelLoggedByPythonIsScoredInChatModeAndAnswersLikeItsPyfunc(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    JsonNode logged = server.python("log_model", null, "--model-dir",
        Fixtures.tinyModel().toString(), "--chat", "--register", "tiny-chat", "--alias", "champion",
        "--experiment", "chat-models", "--max-new-tokens", "7");
    String uri = "models:/tiny-chat@champion";
    StructType msg = new StructType().add("role", DataTypes.StringType).add("content", DataTypes.StringType);
    StructType schema = new StructType().add("id", DataTypes.LongType).add("messages", DataTypes.createArrayType(msg));
    List<List<Map<String, String>>> chats = List.of(
        List.of(Map.of("role", "user", "content", "What is the capital of Spain?")),
        List.of(Map.of("role", "system", "content", "You are terse"), Map.of("role", "user", "content", "Hello there")));
    List<Row> rows = new ArrayList<>();
    for (int i = 0; i < chats.size(); i++) {
      List<Row> ms = new ArrayList<>();
      chats.get(i).forEach(m -> ms.add(RowFactory.create(m.get("role"), m.get("content"))));
      rows.add(RowFactory.create((long) i, ms));
    }
    // No chat flag: the model's llm/v1/chat signature puts the scorer in chat mode.
    BatchScorer scorer = BatchScorer.create(spark, Fixtures.settings("model_uri", uri, "tracking_uri",
        server.uri(), "cache_dir", tmp.toString()));
    assertThat(scorer.options().chat()).isTrue();
    // The driver's fetch reports what it downloaded: every byte of its copy, and a rate.
    long onDisk;
    try (var files = Files.walk(scorer.localModel().modelDir())) {
      onDisk = files.filter(Files::isRegularFile).filter(f -> !f.getFileName().toString().startsWith("."))
          .mapToLong(f -> f.toFile().length()).sum();
    }
    assertThat(scorer.localModel().fetchedBytes()).isPositive().isEqualTo(onDisk);
    assertThat(scorer.localModel().fetchMbPerSecond()).isPositive();
    // ... which is the metadata only: the weights are listed, not fetched (executors fetch them).
    assertThat(scorer.localModel().listed()).anyMatch(f -> f.endsWith(".onnx"));
    try (var files = Files.walk(scorer.localModel().modelDir())) {
      assertThat(files.map(Path::toString)).noneMatch(f -> f.endsWith(".onnx") || f.endsWith(".onnx.data"));
    }
    assertThat(scorer.spec().model().version()).isEqualTo(logged.get("version").asText());
    List<Row> out = scorer.score(spark.createDataFrame(rows, schema), null, null).orderBy("id").collectAsList();
    JsonNode py = server.python("predict_reference",
        new ObjectMapper().writeValueAsString(Map.of("model_uri", uri, "messages", chats)));
    for (int i = 0; i < chats.size(); i++) {
      Row cc = out.get(i).getAs("chat_completion");
      JsonNode ref = py.get(i);
      Row choice = cc.<Row>getList(cc.fieldIndex("choices")).get(0);
      assertThat(choice.<Row>getAs("message").<String>getAs("content"))
          .isEqualTo(ref.path("choices").get(0).path("message").path("content").asText());
      assertThat(choice.<String>getAs("finish_reason")).isEqualTo(ref.path("choices").get(0).path("finish_reason").asText());
      Row usage = cc.getAs("usage");
      assertThat(usage.<Long>getAs("prompt_tokens")).isEqualTo(ref.path("usage").path("prompt_tokens").asLong());
      assertThat(usage.<Long>getAs("completion_tokens")).isEqualTo(ref.path("usage").path("completion_tokens").asLong());
    }
  }

  @Test
  void aSettingSetOnTheRunningSessionTakesEffect(@TempDir Path tmp) {
    spark.conf().set("spark.genaibatch.max_new_tokens", "2");
    try {
      BatchScorer scorer = scorer(tmp.resolve("cache"));
      assertThat(scorer.options().search().maxNewTokens()).isEqualTo(2);
      Row r = scorer.score(prompts(List.of("Tell me about the sea")), null, null).first();
      assertThat(r.<Integer>getAs("completion_tokens")).isEqualTo(2);
      // A flag (or config file) still wins over the session's conf.
      assertThat(scorer(tmp.resolve("cache"), "max_new_tokens", 3)
          .options().search().maxNewTokens()).isEqualTo(3);
    } finally {
      spark.conf().unset("spark.genaibatch.max_new_tokens");
    }
  }

  @Test
  void aMissingColumnFailsOnTheDriverBeforeScoring(@TempDir Path tmp) {
    BatchScorer scorer = scorer(tmp, "prompt_column", "question", "batch_size", 4,
        "max_new_tokens", 2);
    long loads = ExecutorModelCache.loadsInThisJvm();
    assertThatThrownBy(() -> scorer.score(prompts(List.of("a", "b")), null, null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("Input has no column 'question'").hasMessageContaining("id, prompt")
        .hasMessageContaining("--prompt-column");
    assertThat(ExecutorModelCache.loadsInThisJvm()).isEqualTo(loads);
  }

  @Test
  void aMistypedPromptColumnFailsOnTheDriverNamingTheType(@TempDir Path tmp) {
    Dataset<Row> ints = spark.range(3).withColumnRenamed("id", "prompt");
    BatchScorer scorer = scorer(tmp, "max_new_tokens", 2);
    assertThatThrownBy(() -> scorer.score(ints, null, null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("Input column 'prompt' has type bigint").hasMessageContaining("string");
  }

  @Test
  void chatMessagesGetTheTemplateAndAnOpenAiStyleCompletion(@TempDir Path tmp) {
    StructType msg = new StructType().add("role", DataTypes.StringType).add("content", DataTypes.StringType);
    StructType schema = new StructType().add("id", DataTypes.LongType)
        .add("messages", DataTypes.createArrayType(msg));
    List<Row> rows = List.of(
        RowFactory.create(1L, List.of(RowFactory.create("user", "What is the capital of Spain?"))),
        RowFactory.create(2L, List.of(RowFactory.create("system", "Be brief"), RowFactory.create("user", "Hello there"))),
        RowFactory.create(3L, null),
        RowFactory.create(4L, List.of(RowFactory.create("user", null))));
    Dataset<Row> df = spark.createDataFrame(rows, schema);
    BatchScorer scorer = scorer(tmp, "batch_size", 4, "chat", true, "max_new_tokens", 5, "do_sample", false);
    List<Row> out = scorer.score(df, null, null).orderBy("id").collectAsList();
    assertThat(out).hasSize(4);
    Row first = out.get(0);
    Row cc = first.getAs("chat_completion");
    assertThat(cc.<String>getAs("object")).isEqualTo("chat.completion");
    Row choice = cc.<Row>getList(cc.fieldIndex("choices")).get(0);
    assertThat(choice.<Row>getAs("message").<String>getAs("content")).isEqualTo(first.<String>getAs("response"));
    Row usage = cc.getAs("usage");
    assertThat(usage.<Long>getAs("total_tokens")).isEqualTo((long) first.<Integer>getAs("total_tokens"));
    try (LlmModel model = LlmModel.load(Fixtures.tinyModel())) {
      String templated = model.applyChatTemplate(List.of(new ChatMessage("user", "What is the capital of Spain?")), true);
      assertThat(first.<Integer>getAs("prompt_tokens")).isEqualTo(model.countTokens(templated));
    }
    assertThat(out.get(2).<String>getAs("error")).contains("messages").contains("null");
    assertThat(out.get(3).<String>getAs("error")).contains("message 0 needs a role and a content");
    assertThat(out.get(3).<Row>getAs("chat_completion")).isNull();
  }
}
