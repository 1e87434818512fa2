package io.genaibatch.eval;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.genaibatch.testing.SparkTestBase;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

class EvaluationTest extends SparkTestBase {
  private static final Offset<Double> CLOSE = within(1e-9);

  /** The job's output columns that evaluation reads, plus a reference column of the given type. */
  private static Dataset<Row> scored(DataType referenceType, Row... rows) {
    StructType schema = new StructType()
        .add("id", DataTypes.StringType, false)
        .add("prompt", DataTypes.StringType, true)
        .add("expected", referenceType, true)
        .add("response", DataTypes.StringType, true)
        .add("error", DataTypes.StringType, true)
        .add("completion_tokens", DataTypes.IntegerType, false)
        .add("latency_ms", DataTypes.DoubleType, false);
    return spark.createDataFrame(Arrays.asList(rows), schema);
  }

  private static Row row(String id, Object expected, String response, String error) {
    return RowFactory.create(id, "prompt " + id, expected, response, error, 5, 12.5);
  }

  private static Map<String, Row> byId(Dataset<Row> rows) {
    return rows.collectAsList().stream().collect(Collectors.toMap(r -> r.getString(0), r -> r));
  }

  @Test
  void scoresEachRowAndAveragesOverRowsWithAReference() {
    Dataset<Row> out = scored(DataTypes.StringType,
        row("exact", "eiffel tower", "The Eiffel Tower", null),
        row("partial", "Eiffel Tower", "the Eiffel Tower in Paris", null),
        row("failed", "Paris", null, "generation failed: out of memory"),
        row("unlabelled", null, "Something", null));

    Evaluation.Result result = Evaluation.evaluate(out, "id");

    assertThat(result.rows().columns())
        .containsExactly("id", "exact_match", "token_f1", "rouge_l", "answer_length");
    Map<String, Row> rows = byId(result.rows());
    assertThat(rows.get("exact").toSeq().toList().toString()).isEqualTo("List(exact, 1.0, 1.0, 1.0, 2)");
    // [eiffel, tower, in, paris] against [eiffel, tower]: F1 and ROUGE-L are both 2/3.
    assertThat(rows.get("partial").getDouble(1)).isEqualTo(0.0);
    assertThat(rows.get("partial").getDouble(2)).isCloseTo(2.0 / 3, CLOSE);
    assertThat(rows.get("partial").getDouble(3)).isCloseTo(2.0 / 3, CLOSE);
    assertThat(rows.get("partial").getInt(4)).isEqualTo(4);
    assertThat(rows.get("failed").toSeq().toList().toString()).isEqualTo("List(failed, 0.0, 0.0, 0.0, 0)");
    Row unlabelled = rows.get("unlabelled");
    assertThat(unlabelled.isNullAt(1) && unlabelled.isNullAt(2) && unlabelled.isNullAt(3)).isTrue();
    assertThat(unlabelled.getInt(4)).isEqualTo(1);

    // Three rows have a reference; the failed one counts as 0, the unlabelled one is left out.
    Map<String, Double> m = result.metrics();
    assertThat(m).containsOnlyKeys("eval_exact_match", "eval_token_f1", "eval_rouge_l",
        "eval_answer_length_mean", "eval_rows_with_reference");
    assertThat(m.get("eval_exact_match")).isCloseTo(1.0 / 3, CLOSE);
    assertThat(m.get("eval_token_f1")).isCloseTo((1 + 2.0 / 3 + 0) / 3, CLOSE);
    assertThat(m.get("eval_rouge_l")).isCloseTo((1 + 2.0 / 3 + 0) / 3, CLOSE);
    assertThat(m.get("eval_rows_with_reference")).isEqualTo(3.0);
    // Length is averaged over the rows that have an answer: (2 + 4 + 1) / 3.
    assertThat(m.get("eval_answer_length_mean")).isCloseTo(7.0 / 3, CLOSE);
  }

  @Test
  void aRowWithAnErrorScoresZeroEvenIfItHasText() {
    Dataset<Row> out = scored(DataTypes.StringType, row("1", "Paris", "Paris", "truncated: prompt too long"));

    Evaluation.Result result = Evaluation.evaluate(out, "id");

    assertThat(result.metrics().get("eval_exact_match")).isEqualTo(0.0);
    assertThat(result.metrics()).doesNotContainKey("eval_answer_length_mean");
  }

  @Test
  void chineseAnswersGetPartialCredit() {
    Dataset<Row> out = scored(DataTypes.StringType, row("1", "北京", "首都是北京。", null));

    Evaluation.Result result = Evaluation.evaluate(out, "id");

    // [首, 都, 是, 北, 京] against [北, 京]: precision 2/5, recall 1, F1 4/7.
    assertThat(result.metrics().get("eval_token_f1")).isCloseTo(4.0 / 7, CLOSE);
  }

  @Test
  void numericReferencesAreComparedAsText() {
    Dataset<Row> out = scored(DataTypes.LongType, row("1", 42L, "42", null), row("2", 7L, "It is 7.", null));

    Evaluation.Result result = Evaluation.evaluate(out, "id");

    assertThat(result.metrics().get("eval_exact_match")).isEqualTo(0.5);
  }

  @Test
  void withoutReferencesOnlyTheCountAndLengthAreReported() {
    Dataset<Row> out = scored(DataTypes.StringType, row("1", null, "a b c", null));

    Evaluation.Result result = Evaluation.evaluate(out, null);

    assertThat(result.metrics()).containsExactly(
        Map.entry("eval_answer_length_mean", 2.0), Map.entry("eval_rows_with_reference", 0.0));
    assertThat(result.rows().columns()).containsExactly("exact_match", "token_f1", "rouge_l", "answer_length");
  }

  @Test
  void anotherReferenceColumnCanBeNamed() {
    Dataset<Row> out = scored(DataTypes.StringType, row("1", null, "Paris", null))
        .withColumn("gold.answer", org.apache.spark.sql.functions.lit("paris"));

    assertThat(Evaluation.evaluate(out, "id", "gold.answer").metrics().get("eval_exact_match")).isEqualTo(1.0);
  }

  @Test
  void aMissingReferenceColumnIsNamedWithTheColumnsThereAre() {
    Dataset<Row> out = scored(DataTypes.StringType, row("1", "x", "x", null));

    assertThatThrownBy(() -> Evaluation.evaluate(out, "id", "answer"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("no column 'answer'")
        .hasMessageContaining("[id, prompt, expected, response, error, completion_tokens, latency_ms]");
  }

  @Test
  void aListOfReferencesIsRefused() {
    Dataset<Row> out = scored(DataTypes.createArrayType(DataTypes.StringType), row("1", List.of("x"), "x", null));

    assertThatThrownBy(() -> Evaluation.evaluate(out, "id"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("Reference column 'expected' is array<string>");
  }
}
