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
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;

class RunComparisonTest extends SparkTestBase {
  private static final StructType OUTPUT = new StructType()
      .add("id", DataTypes.LongType, false)
      .add("prompt", DataTypes.StringType, true)
      .add("response", DataTypes.StringType, true)
      .add("error", DataTypes.StringType, true)
      .add("completion_tokens", DataTypes.IntegerType, false)
      .add("latency_ms", DataTypes.DoubleType, false);

  private static Row row(long id, String response, int tokens, double latency) {
    return RowFactory.create(id, "prompt " + id, response, response == null ? "failed" : null, tokens, latency);
  }

  private static Dataset<Row> run(Row... rows) {
    return spark.createDataFrame(Arrays.asList(rows), OUTPUT);
  }

  private static Dataset<Row> previous() {
    return run(
        row(1, "gone tomorrow", 3, 10.0),
        row(2, "Paris", 2, 20.0),
        row(3, "blue", 2, 30.0),
        row(4, null, 0, 40.0),
        row(6, null, 0, 50.0));
  }

  private static Dataset<Row> current() {
    return run(
        row(2, "Paris", 2, 25.0),
        row(3, "Blue", 3, 28.5),
        row(4, "recovered", 4, 41.0),
        row(5, "brand new", 3, 12.0),
        row(6, null, 0, 55.0));
  }

  @Test
  void namesExactlyThePromptsWhoseAnswerChanged() {
    RunComparison.Result result = RunComparison.compare(previous(), current(), "id", "prompt");

    // 3: a change of case is a change; 4: an error row that now has an answer is a change;
    // 6: two error rows are not; 2 is the same text.
    List<Long> changed = result.prompts().filter("changed").select("id").orderBy("id")
        .collectAsList().stream().map(r -> r.getLong(0)).toList();
    assertThat(changed).containsExactly(3L, 4L);
    assertThat(result.metrics()).containsExactly(
        Map.entry("compare_answers_changed", 2.0),
        Map.entry("compare_prompts_compared", 4.0),
        Map.entry("compare_prompts_new", 1.0),
        Map.entry("compare_prompts_missing", 1.0));
    assertThat(result.answersChanged()).isEqualTo(2L);
  }

  @Test
  void eachPromptShowsBothAnswersAndTheDeltas() {
    RunComparison.Result result = RunComparison.compare(previous(), current(), "id", "prompt");

    assertThat(result.prompts().columns()).containsExactly("id", "prompt", "previous_response",
        "current_response", "changed", "completion_tokens_delta", "latency_ms_delta");
    Map<Long, Row> rows = result.prompts().collectAsList().stream()
        .collect(Collectors.toMap(r -> r.getLong(0), r -> r));
    assertThat(rows).containsOnlyKeys(1L, 2L, 3L, 4L, 5L, 6L);
    assertThat(rows.get(3L).toSeq().toList().toString()).isEqualTo("List(3, prompt 3, blue, Blue, true, 1, -1.5)");
    assertThat(rows.get(2L).toSeq().toList().toString()).isEqualTo("List(2, prompt 2, Paris, Paris, false, 0, 5.0)");
    // Only in one run: no verdict, no deltas.
    assertThat(rows.get(5L).toSeq().toList().toString())
        .isEqualTo("List(5, prompt 5, null, brand new, null, null, null)");
    assertThat(rows.get(1L).toSeq().toList().toString())
        .isEqualTo("List(1, prompt 1, gone tomorrow, null, null, null, null)");
  }

  @Test
  void evaluationMetricsOfBothRunsBecomeDeltas() {
    Map<String, Double> before = Map.of("eval_token_f1", 0.70, "eval_exact_match", 0.5, "tokens_per_second", 10.0);
    Map<String, Double> now = Map.of("eval_token_f1", 0.58, "eval_exact_match", 0.5, "eval_rouge_l", 0.6,
        "tokens_per_second", 12.0);

    RunComparison.Result result = RunComparison.compare(previous(), current(), "id", null, before, now);

    assertThat(result.metrics().get("compare_delta_eval_token_f1")).isCloseTo(-0.12, within(1e-9));
    assertThat(result.metrics().get("compare_delta_eval_exact_match")).isEqualTo(0.0);
    // eval_rouge_l is new in this run and tokens_per_second is not an evaluation metric.
    assertThat(result.metrics()).doesNotContainKeys("compare_delta_eval_rouge_l", "compare_delta_tokens_per_second");
    assertThat(result.prompts().columns()).doesNotContain("prompt");
  }

  @Test
  void aRunWithTwoRowsForOneIdIsRefused() {
    Dataset<Row> appended = current().union(run(row(3, "again", 1, 1.0)));

    assertThatThrownBy(() -> RunComparison.compare(previous(), appended, "id", "prompt"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("Current run's output has more than one row for an id in column 'id': 3 (2 rows)");
  }

  @Test
  void comparingNeedsTheIdColumn() {
    assertThatThrownBy(() -> RunComparison.compare(previous(), current().drop("id"), "id", "prompt"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("Current run's output has no column 'id'");
    assertThatThrownBy(() -> RunComparison.compare(previous(), current(), null, "prompt"))
        .hasMessageContaining("needs an id column");
  }
}
