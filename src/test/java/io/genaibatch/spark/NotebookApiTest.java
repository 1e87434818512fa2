package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.Settings;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.SparkTestBase;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Transformer and the SQL function, as a notebook uses them. */
class NotebookApiTest extends SparkTestBase {
  static final StructType SCHEMA = new StructType().add("id", DataTypes.IntegerType).add("question", DataTypes.StringType);

  private Dataset<Row> questions() {
    return spark.createDataFrame(List.of(RowFactory.create(1, "Hello world"), RowFactory.create(2, "It stops here."),
        RowFactory.create(3, null)), SCHEMA);
  }

  @Test
  void transformerAddsTheAnswerColumnsAndAgreesWithTheEngine() {
    GenAiTransformer t = new GenAiTransformer().setModelUri(Fixtures.tinyModel().toString())
        .setInputCol("question").setOutputCol("answer").setMaxNewTokens(5).setDoSample(false).setBatchSize(2);
    Dataset<Row> out = t.transform(questions());
    assertThat(out.schema()).isEqualTo(t.transformSchema(questions().schema()));
    List<Row> rows = out.orderBy("id").collectAsList();
    assertThat(rows).hasSize(3);
    try (LlmModel model = LlmModel.load(Fixtures.tinyModel())) {
      var ref = model.generate(List.of("Hello world"), SearchOptions.greedy(5)).get(0);
      assertThat(rows.get(0).<String>getAs("answer")).isEqualTo(ref.text());
      assertThat(rows.get(0).<Integer>getAs("completion_tokens")).isEqualTo(5);
    }
    assertThat(rows.get(1).<String>getAs("finish_reason")).isEqualTo("stop");
    assertThat(rows.get(2).<String>getAs("error")).isEqualTo("prompt is null");
    assertThatThrownBy(() -> new GenAiTransformer().transform(questions()))
        .hasMessageContaining("setModelUri");
    // The job's scheduling options: three partitions asked, three given, the same answers.
    List<Row> spread = t.setPartitions("3").setLookaheadRows(1).transform(questions()).orderBy("id").collectAsList();
    assertThat(t.setPartitions("3").transform(questions()).rdd().getNumPartitions()).isEqualTo(3);
    assertThat(spread.get(0).<String>getAs("answer")).isEqualTo(rows.get(0).<String>getAs("answer"));
    assertThatThrownBy(() -> t.setPartitions("many"))
        .hasMessage("GenAiTransformer: 'partitions' must be auto, input or a whole number >= 1, got 'many'");
  }

  @Test
  void aSavedTransformerKeepsNoCredentialOfItsUris(@TempDir Path tmp) throws Exception {
    String secret = "s3cret-" + System.nanoTime();
    GenAiTransformer t = new GenAiTransformer().setModelUri(Fixtures.tinyModel().toString())
        .setTrackingUri("http://genai:" + secret + "@127.0.0.1:5000");
    t.write().save(tmp.resolve("t").toString());
    try (var files = Files.walk(tmp.resolve("t"))) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        assertThat(Files.readString(f, StandardCharsets.ISO_8859_1)).as(f.toString())
            .doesNotContain(secret);
      }
    }
    GenAiTransformer back = GenAiTransformer.load(tmp.resolve("t").toString());
    assertThat(back.getOrDefault(back.getParam(Settings.TRACKING_URI.paramName()))).isEqualTo("http://***@127.0.0.1:5000");
    assertThat(t.getOrDefault(t.getParam(Settings.TRACKING_URI.paramName()))).as("the live one keeps it")
        .isEqualTo("http://genai:" + secret + "@127.0.0.1:5000");
  }

  @Test
  void transformerHasEveryScoringOptionOfTheJobAndSurvivesAPipelineSaveAndLoad(@TempDir Path tmp) throws Exception {
    GenAiTransformer t = new GenAiTransformer();
    for (Setting<?> s : Settings.within(Setting.Scope.SCORING)) {
      if (s != Settings.PROMPT_COLUMN && s != Settings.MESSAGES_COLUMN) {
        assertThat(t.hasParam(s.paramName())).as("param for %s", s.key()).isTrue();
      }
    }
    assertThatThrownBy(() -> t.setOption("max_tokes", 3)).hasMessageContaining("did you mean 'max_new_tokens'?");

    t.setModelUri(Fixtures.tinyModel().toString()).setInputCol("question").setOutputCol("answer")
        .setOption("max_new_tokens", "4").setDoSample(false).setBatching("fixed").setRepetitionPenalty(1.0);
    Pipeline pipeline = new Pipeline().setStages(new PipelineStage[] {t});
    String path = tmp.resolve("pipeline").toString();
    pipeline.fit(questions()).write().overwrite().save(path);
    PipelineModel loaded = PipelineModel.load(path);
    GenAiTransformer back = (GenAiTransformer) loaded.stages()[0];
    assertThat(back.getOrDefault(back.getParam("maxNewTokens"))).isEqualTo(4);
    assertThat(back.getOrDefault(back.getParam("batching"))).isEqualTo("fixed");
    List<Row> before = t.transform(questions()).orderBy("id").collectAsList();
    List<Row> after = loaded.transform(questions()).orderBy("id").collectAsList();
    assertThat(after.get(0).<String>getAs("answer")).isEqualTo(before.get(0).<String>getAs("answer"));
    assertThat(after.get(0).<Integer>getAs("completion_tokens")).isEqualTo(4);
  }

  @Test
  void sqlFunctionTakesOptionalOptionsAndIsNonDeterministic() {
    GenAiFunctions.register(spark, Fixtures.tinyModel().toString());
    questions().createOrReplaceTempView("questions");
    List<Row> rows = spark.sql("SELECT id, genai_generate(question, map('max_new_tokens', '3')) AS g,"
        + " genai_generate(question) AS d FROM questions ORDER BY id").collectAsList();
    Row g = rows.get(0).getAs("g");
    assertThat(g.<Integer>getAs("completion_tokens")).isEqualTo(3);
    assertThat(g.<Integer>getAs("total_tokens")).isEqualTo(g.<Integer>getAs("prompt_tokens") + 3);
    Row d = rows.get(0).getAs("d");
    // No options: the model's genai_config search max_length applies.
    assertThat(d.<String>getAs("finish_reason")).isEqualTo("length");
    assertThat(d.<Integer>getAs("total_tokens")).isEqualTo(256);
    assertThat(rows.get(2).<Row>getAs("g").<String>getAs("error")).isEqualTo("prompt is null");
    // Non-deterministic all the way up, so the optimizer never duplicates or re-orders the call.
    assertThat(spark.sql("SELECT genai_generate(question) FROM questions").queryExecution().analyzed()
        .deterministic()).isFalse();
  }

  @Test
  void theTransformerAndTheSqlFunctionTakeStopNAndResponseFormatLikeTheJob() {
    GenAiTransformer t = new GenAiTransformer().setModelUri(Fixtures.tinyModel().toString())
        .setInputCol("question").setOption("max_new_tokens", 6).setOption("response_format", "regex:(yes|no)")
        .setOption("n", 2).setOption("do_sample", true).setOption("top_k", 40).setOption("seed", 3);
    Dataset<Row> out = t.transform(questions());
    assertThat(out.schema()).isEqualTo(t.transformSchema(questions().schema()));
    Row first = out.orderBy("id").first();
    assertThat(first.getList(first.fieldIndex("responses"))).hasSize(2).allMatch(a -> a.equals("yes") || a.equals("no"));

    GenAiFunctions.register(spark, Fixtures.tinyModel().toString());
    questions().createOrReplaceTempView("questions");
    List<Row> rows = spark.sql("SELECT id, genai_generate(question, map('response_format', 'regex:(yes|no)',"
        + " 'max_new_tokens', '6', 'n', '2', 'do_sample', 'true', 'top_k', '40')) AS g,"
        + " genai_generate(question, map('n', '2', 'max_new_tokens', '3')) AS greedy,"
        + " genai_generate(question, map('max_new_tokens', '-1')) AS bad,"
        + " genai_generate(question, map('stop', '[\"l\"]', 'max_new_tokens', '8')) AS stopped"
        + " FROM questions ORDER BY id").collectAsList();
    Row g = rows.get(0).getAs("g");
    assertThat(g.getList(g.fieldIndex("responses"))).hasSize(2).allMatch(a -> a.equals("yes") || a.equals("no"));
    assertThat(rows.get(0).<Row>getAs("greedy").<String>getAs("error")).contains("n = 2 needs sampling");
    assertThat(rows.get(0).<Row>getAs("bad").<String>getAs("error")).contains("'max_new_tokens' must be a whole number");
    assertThat(rows.get(0).<Row>getAs("stopped").<String>getAs("response")).doesNotContain("l");
  }
}
