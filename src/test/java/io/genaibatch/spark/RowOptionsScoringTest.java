package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.SparkTestBase;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A row's own options from its columns, through the scorer on local[2], read back from Parquet. */
class RowOptionsScoringTest extends SparkTestBase {

  private BatchScorer scorer(Path cache, Object... keyValues) {
    return Fixtures.tinyScorer(spark, cache, keyValues);
  }

  /** JSON lines as a user's input file would hold them: Spark infers each column's type. */
  private Dataset<Row> json(String... lines) {
    return spark.read().json(spark.createDataset(List.of(lines), Encoders.STRING()));
  }

  private static Map<Long, Row> byId(Dataset<Row> back) {
    Map<Long, Row> m = new HashMap<>();
    for (Row r : back.collectAsList()) {
      m.put(r.getLong(r.fieldIndex("id")), r);
    }
    return m;
  }

  /** Scores {@code in}, writes the output as Parquet to {@code out} and reads it back by id. */
  private Map<Long, Row> scoredById(BatchScorer scorer, Dataset<Row> in, PartitionScorer.ScoringMetrics metrics,
      Path out) {
    scorer.score(in, null, metrics).write().parquet(out.toString());
    return byId(spark.read().parquet(out.toString()));
  }

  @Test
  void aJobWideNThatNoRowCanChangeFailsOnTheDriverWhenItsAnswersWouldBeTheSame(@TempDir Path tmp) {
    Dataset<Row> in = json("{\"id\": 0, \"prompt\": \"Hello world\"}");
    // Greedy search: every row would be an error row, so the job stops before any task runs.
    assertThatThrownBy(() -> scorer(tmp.resolve("cache"), "n", 2, "do_sample", false).score(in, null, null))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("n applies to every row")
        .hasMessageContaining("n = 2 needs sampling");
    // Sampling from the one most likely token (the tiny model's genai_config.json has top_k 1).
    assertThatThrownBy(() -> scorer(tmp.resolve("cache"), "n", 2, "do_sample", true).score(in, null, null))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("with top_k 1");
    // With top_k above 1 the completions can differ: the job runs.
    List<Row> rows = scorer(tmp.resolve("cache"), "n", 2, "do_sample", true, "top_k", 50, "max_new_tokens", 3)
        .score(in, null, null).collectAsList();
    assertThat(rows.get(0).<String>getAs("error")).isNull();
    assertThat(rows.get(0).getList(rows.get(0).fieldIndex("responses"))).hasSize(2);
  }

  @Test
  void promptModeReadsTheColumnsTheFlagsNameRowByRow(@TempDir Path tmp) {
    Dataset<Row> in = json(
        "{\"id\": 0, \"prompt\": \"Hello world\", \"max_tokens\": 2}",
        "{\"id\": 1, \"prompt\": \"The capital of Spain is\", \"max_tokens\": 7}",
        "{\"id\": 2, \"prompt\": \"Hello world\", \"max_tokens\": -3}",
        "{\"id\": 3, \"prompt\": \"ok\", \"temp\": \"hot\"}",
        "{\"id\": 4, \"prompt\": \"emoji time\", \"n\": 3, \"temp\": 0.9, \"max_tokens\": 4}",
        "{\"id\": 5, \"prompt\": \"Hello world\", \"n\": 2}",
        "{\"id\": 6, \"prompt\": \"Tell me about atoms\", \"stop\": [\"a\", \"e\"], \"max_tokens\": 12}",
        "{\"id\": 7, \"prompt\": \"Tell me about atoms\", \"max_tokens\": 12}");
    BatchScorer scorer = scorer(tmp.resolve("cache"), "max_new_tokens", 5, "do_sample", false,
        "max_tokens_column", "max_tokens", "temperature_column", "temp", "n_column", "n", "stop_column", "stop");
    PartitionScorer.ScoringMetrics metrics = PartitionScorer.ScoringMetrics.register(spark.sparkContext());
    Map<Long, Row> rows = scoredById(scorer, in, metrics, tmp.resolve("out"));
    assertThat(rows).hasSize(8);

    assertThat(rows.get(0L).<Integer>getAs("completion_tokens")).isEqualTo(2);
    assertThat(rows.get(1L).<Integer>getAs("completion_tokens")).isEqualTo(7);
    assertThat(rows.get(7L).<Integer>getAs("completion_tokens")).isEqualTo(12);
    assertThat(rows.get(2L).<String>getAs("error")).contains("max_tokens must be a whole number >= 1, got '-3'");
    assertThat(rows.get(3L).<String>getAs("error")).contains("column temp").contains("got 'hot'");
    assertThat(rows.get(5L).<String>getAs("error")).contains("n = 2 needs sampling");
    for (long bad : new long[] {2, 3, 5}) {
      assertThat(rows.get(bad).<String>getAs("finish_reason")).isEqualTo("error");
    }

    // n = 3 with its own temperature: three sampled completions, usage over all of them.
    Row many = rows.get(4L);
    assertThat(many.<String>getAs("error")).isNull();
    List<String> texts = many.getList(many.fieldIndex("responses"));
    assertThat(texts).hasSize(3);
    assertThat(many.<String>getAs("response")).isEqualTo(texts.get(0));
    assertThat(many.<Integer>getAs("completion_tokens")).isBetween(3, 12);
    assertThat(rows.get(0L).getList(rows.get(0L).fieldIndex("responses"))).hasSize(1);

    // Stop strings: the answer ends before the first of them, which it does not contain.
    String full = rows.get(7L).getAs("response");
    Row stopped = rows.get(6L);
    int cut = firstOf(full, "a", "e");
    if (cut >= 0) {
      assertThat(stopped.<String>getAs("response")).isEqualTo(full.substring(0, cut));
      assertThat(stopped.<String>getAs("finish_reason")).isEqualTo("stop");
    } else {
      assertThat(stopped.<String>getAs("response")).isEqualTo(full);
    }
    assertThat(metrics.rowsFailed().value()).isEqualTo(3L);
  }

  private static int firstOf(String text, String... stops) {
    int cut = -1;
    for (String s : stops) {
      int k = text.indexOf(s);
      if (k >= 0 && (cut < 0 || k < cut)) {
        cut = k;
      }
    }
    return cut;
  }

  @Test
  void chatModeTakesTheRequestFieldsFromColumnsOfTheirNames(@TempDir Path tmp) {
    String msg = "[{\"role\": \"user\", \"content\": \"Tell me a joke about atoms\"}]";
    Dataset<Row> in = json(
        "{\"id\": 0, \"messages\": " + msg + ", \"max_tokens\": 3}",
        "{\"id\": 1, \"messages\": " + msg + ", \"max_tokens\": 6, \"n\": 2, \"temperature\": 1.2}",
        "{\"id\": 2, \"messages\": " + msg + "}");
    BatchScorer scorer = scorer(tmp.resolve("cache"), "chat", true, "max_new_tokens", 5, "do_sample", false);
    Map<Long, Row> rows = scoredById(scorer, in, null, tmp.resolve("out"));
    assertThat(rows.get(0L).<Integer>getAs("completion_tokens")).isEqualTo(3);
    assertThat(rows.get(2L).<Integer>getAs("completion_tokens")).isEqualTo(5);
    Row two = rows.get(1L);
    Row cc = two.getAs("chat_completion");
    List<Row> choices = cc.getList(cc.fieldIndex("choices"));
    assertThat(choices).hasSize(2);
    assertThat(choices.get(1).<Long>getAs("index")).isEqualTo(1L);
    Row usage = cc.getAs("usage");
    assertThat(usage.<Long>getAs("completion_tokens")).isEqualTo((long) two.<Integer>getAs("completion_tokens"))
        .isLessThanOrEqualTo(12L);
    assertThat(two.<String>getAs("response")).isEqualTo(choices.get(0).<Row>getAs("message").<String>getAs("content"));
  }

  @Test
  void chatModeReadsAWholeRequestStructItsMessagesAndItsOptions(@TempDir Path tmp) {
    String msg = "[{\"role\": \"user\", \"content\": \"Tell me a joke about atoms\"}]";
    Dataset<Row> in = json(
        "{\"id\": 0, \"request\": {\"messages\": " + msg + ", \"max_tokens\": 3}}",
        "{\"id\": 1, \"request\": {\"messages\": " + msg + ", \"max_tokens\": 4, \"n\": 2, \"temperature\": 1.2}}",
        "{\"id\": 2, \"request\": {\"messages\": " + msg + ", \"max_tokens\": -2}}",
        "{\"id\": 3, \"request\": null}");
    BatchScorer scorer = scorer(tmp.resolve("cache"), "chat", true, "messages_column", "request",
        "max_new_tokens", 5, "do_sample", false);
    Map<Long, Row> rows = scoredById(scorer, in, null, tmp.resolve("out"));
    assertThat(rows.get(0L).<Integer>getAs("completion_tokens")).isEqualTo(3);
    Row cc = rows.get(1L).getAs("chat_completion");
    assertThat(cc.getList(cc.fieldIndex("choices"))).hasSize(2);
    assertThat(rows.get(1L).<Integer>getAs("completion_tokens")).isBetween(2, 8);
    assertThat(rows.get(2L).<String>getAs("error")).contains("column request.max_tokens: max_tokens must be");
    assertThat(rows.get(3L).<String>getAs("error")).contains("messages: is null");
  }

  @Test
  void aColumnThatCannotHoldItsOptionFailsOnTheDriver(@TempDir Path tmp) {
    Dataset<Row> in = json("{\"id\": 0, \"prompt\": \"Hello\", \"stop\": 5, \"n\": [1]}");
    assertThatThrownBy(() -> scorer(tmp, "stop_column", "stop").score(in, null, null))
        .hasMessageContaining("Input column 'stop' (a row's own stop) has type bigint; it needs array<string> or string");
    assertThatThrownBy(() -> scorer(tmp, "n_column", "n").score(in, null, null))
        .hasMessageContaining("has type array<bigint>; it needs a number");
    assertThatThrownBy(() -> scorer(tmp, "max_tokens_column", "budget").score(in, null, null))
        .hasMessageContaining("Input has no column 'budget' (named by --max-tokens-column)");
  }

  static final String SCHEMA = "{\"type\":\"object\",\"properties\":{\"label\":{\"type\":\"string\","
      + "\"enum\":[\"pos\",\"neg\"]},\"score\":{\"type\":\"integer\"}},\"required\":[\"label\",\"score\"],"
      + "\"additionalProperties\":false}";

  @Test
  void aJsonSchemaFromAFileIsParsedIntoAStructAndARowMayBringItsOwnFormat(@TempDir Path tmp) throws Exception {
    Path schema = tmp.resolve("sentiment.json");
    Files.writeString(schema, SCHEMA);
    Dataset<Row> in = json(
        "{\"id\": 0, \"prompt\": \"Review: great phone, love it. Sentiment:\"}",
        "{\"id\": 1, \"prompt\": \"Review: broke after a day. Sentiment:\"}",
        "{\"id\": 2, \"prompt\": \"Is water wet?\", \"fmt\": \"regex:(yes|no)\"}",
        "{\"id\": 3, \"prompt\": \"Hello\", \"fmt\": \"{\\\"type\\\": \\\"objekt\\\"}\"}",
        "{\"id\": 4, \"prompt\": \"Hello world\", \"max_tokens\": 3}");
    BatchScorer scorer = scorer(tmp.resolve("cache"), "max_new_tokens", 60, "response_format", "@" + schema,
        "parse_response", true, "response_format_column", "fmt", "max_tokens_column", "max_tokens");
    PartitionScorer.ScoringMetrics metrics = PartitionScorer.ScoringMetrics.register(spark.sparkContext());
    String out = tmp.resolve("out").toString();
    scorer.score(in, null, metrics).write().parquet(out);
    Dataset<Row> back = spark.read().parquet(out);
    assertThat(back.schema().apply("response_parsed").dataType().simpleString())
        .isEqualTo("struct<label:string,score:bigint>");
    Map<Long, Row> rows = byId(back);
    for (long id : new long[] {0, 1}) {
      Row r = rows.get(id);
      assertThat(r.<String>getAs("error")).as("row %d", id).isNull();
      Row parsed = r.getAs("response_parsed");
      assertThat(parsed.<String>getAs("label")).as("row %d: %s", id, r.getAs("response")).isIn("pos", "neg");
      assertThat(parsed.<Long>getAs("score")).isNotNull();
    }
    assertThat(rows.get(2L).<String>getAs("response")).isIn("yes", "no");
    assertThat(rows.get(3L).<String>getAs("error")).contains("column fmt has an invalid JSON Schema").contains("/type");
    assertThat(rows.get(4L).<String>getAs("error")).contains("before its response format (json_schema) was complete");
    assertThat(metrics.formatted().value()).isEqualTo(3L);
    assertThat(metrics.formattedOk().value()).isEqualTo(3L);
  }

  @Test
  void aBadSchemaOrParsingWithoutOneFailsOnTheDriverNamingIt(@TempDir Path tmp) {
    assertThatThrownBy(() -> scorer(tmp, "response_format", "{\"type\": \"objekt\"}"))
        .hasMessageContaining("response_format (from test) has an invalid JSON Schema").hasMessageContaining("/type");
    assertThatThrownBy(() -> scorer(tmp, "response_format", "@" + tmp.resolve("missing.json")))
        .hasMessageContaining("Cannot read the response format file");
    assertThatThrownBy(() -> scorer(tmp, "parse_response", true))
        .hasMessageContaining("no response_format is set");
    assertThatThrownBy(() -> scorer(tmp, "parse_response", true, "response_format", "regex:(yes|no)"))
        .hasMessageContaining("response_format is a regex");
  }
}
