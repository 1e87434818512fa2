package io.genaibatch.eval;

import static org.apache.spark.sql.functions.avg;
import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.count;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.when;

import io.genaibatch.common.OutputColumns;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.AtomicType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * Scores a run's output against expected answers: {@link TextMetrics} per row, then their means
 * as run metrics ready to log to MLflow.
 *
 * <p>An error row (a non-null {@code error}, or no {@code response}) is scored as an empty answer
 * that earns 0, so a run that fails more also scores lower; a row whose reference is null is not
 * scored and leaves the means alone. The per-row metrics are computed by one UDF returning all
 * four, so each text is normalised once per row.
 */
public final class Evaluation {
  /** The column holding the expected answer when the caller names none. */
  public static final String REFERENCE_COLUMN_DEFAULT = "expected";

  /** Per-row columns. */
  public static final String EXACT_MATCH = "exact_match";
  public static final String TOKEN_F1 = "token_f1";
  public static final String ROUGE_L = "rouge_l";
  public static final String ANSWER_LENGTH = "answer_length";

  /** Run metrics: means over the rows with a reference (error rows count as 0). */
  public static final String EVAL_EXACT_MATCH = "eval_exact_match";
  public static final String EVAL_TOKEN_F1 = "eval_token_f1";
  public static final String EVAL_ROUGE_L = "eval_rouge_l";
  /** Mean normalised tokens per answer, over the rows that have an answer (not error rows). */
  public static final String EVAL_ANSWER_LENGTH_MEAN = "eval_answer_length_mean";
  public static final String EVAL_ROWS_WITH_REFERENCE = "eval_rows_with_reference";

  /** The prefix of every run metric here; {@link RunComparison} compares the metrics that have it. */
  public static final String METRIC_PREFIX = "eval_";

  static final StructType SCORES_TYPE = new StructType()
      .add(EXACT_MATCH, DataTypes.DoubleType, true)
      .add(TOKEN_F1, DataTypes.DoubleType, true)
      .add(ROUGE_L, DataTypes.DoubleType, true)
      .add(ANSWER_LENGTH, DataTypes.IntegerType, false);

  private static final String SCORES = "__genai_batch_scores";
  private static final String ANSWERED = "__genai_batch_answered";

  private Evaluation() {}

  /**
   * The per-row metrics and the run metrics of one run's output.
   *
   * @param rows the id column (when one was given), then {@code exact_match}, {@code token_f1},
   *     {@code rouge_l} (doubles, null where the reference is null) and {@code answer_length}
   *     (int); lazy, computed again by each action on it
   * @param metrics {@code eval_rows_with_reference} always; {@code eval_exact_match}, {@code
   *     eval_token_f1} and {@code eval_rouge_l} only when some row has a reference, and {@code
   *     eval_answer_length_mean} only when some row has an answer: a mean of nothing is left out
   *     rather than logged as 0 or NaN
   */
  public record Result(Dataset<Row> rows, Map<String, Double> metrics) {
    public Result {
      metrics = Collections.unmodifiableMap(new LinkedHashMap<>(metrics));
    }
  }

  /** {@link #evaluate(Dataset, String, String)} with the reference in {@code expected}. */
  public static Result evaluate(Dataset<Row> scored, String idColumn) {
    return evaluate(scored, idColumn, REFERENCE_COLUMN_DEFAULT);
  }

  /**
   * Scores each row's {@code response} against its reference and averages; runs one Spark job for
   * the run metrics.
   *
   * @param scored the job's output (or anything with a {@code response} column; {@code error} is
   *     used when present)
   * @param idColumn the column that identifies a row, kept in the per-row frame; null for none
   * @param referenceColumn the column with the expected answer: a string, or a number or boolean
   *     compared as its string form
   * @throws IllegalArgumentException if a column is missing or the reference is not a single value
   */
  public static Result evaluate(Dataset<Row> scored, String idColumn, String referenceColumn) {
    Column scores = rowScores(scored, referenceColumn);
    List<String> names = Arrays.asList(scored.columns());
    List<Column> keep = new ArrayList<>();
    if (idColumn != null) {
      require("Scored output", names, idColumn, "the id column");
      keep.add(column(idColumn));
    }
    keep.add(scores.as(SCORES));
    keep.add(prediction(names).isNotNull().as(ANSWERED));
    Dataset<Row> withScores = scored.select(keep.toArray(Column[]::new));

    List<Column> out = new ArrayList<>();
    if (idColumn != null) {
      out.add(column(idColumn));
    }
    for (StructField f : SCORES_TYPE.fields()) {
      out.add(col(SCORES + "." + f.name()).as(f.name()));
    }
    Dataset<Row> rows = withScores.select(out.toArray(Column[]::new));

    Row agg = withScores.agg(
        avg(col(SCORES + "." + EXACT_MATCH)),
        avg(col(SCORES + "." + TOKEN_F1)),
        avg(col(SCORES + "." + ROUGE_L)),
        avg(when(col(ANSWERED), col(SCORES + "." + ANSWER_LENGTH))),
        count(col(SCORES + "." + EXACT_MATCH)))
        .first();
    Map<String, Double> metrics = new LinkedHashMap<>();
    putIfPresent(metrics, EVAL_EXACT_MATCH, agg, 0);
    putIfPresent(metrics, EVAL_TOKEN_F1, agg, 1);
    putIfPresent(metrics, EVAL_ROUGE_L, agg, 2);
    putIfPresent(metrics, EVAL_ANSWER_LENGTH_MEAN, agg, 3);
    metrics.put(EVAL_ROWS_WITH_REFERENCE, (double) agg.getLong(4));
    return new Result(rows, metrics);
  }

  /**
   * A row's scores as one struct column of {@code scored}: {@code exact_match}, {@code token_f1},
   * {@code rouge_l} (null where the reference is null) and {@code answer_length}, the values
   * {@link #evaluate} averages. For a caller that needs them beside the row's other columns, in the
   * same read of the output.
   *
   * @throws IllegalArgumentException if a column is missing or the reference is not a single value
   */
  public static Column rowScores(Dataset<Row> scored, String referenceColumn) {
    List<String> names = Arrays.asList(scored.columns());
    require("Scored output", names, OutputColumns.RESPONSE, "the model's answers");
    require("Scored output", names, referenceColumn, "the expected answers; pass the column that holds them");
    DataType refType = scored.schema().apply(referenceColumn).dataType();
    if (!(refType instanceof AtomicType) || refType.equals(DataTypes.BinaryType)) {
      throw new IllegalArgumentException("Reference column '" + referenceColumn + "' is " + refType.simpleString()
          + "; evaluation needs one expected answer per row, as a string");
    }
    return scoresUdf().apply(prediction(names), column(referenceColumn).cast(DataTypes.StringType));
  }

  /** The answer a row is scored on: its response, none for an error row. */
  private static Column prediction(List<String> names) {
    Column response = column(OutputColumns.RESPONSE);
    return names.contains(OutputColumns.ERROR) ? when(column(OutputColumns.ERROR).isNull(), response) : response;
  }

  /** Deterministic: the same texts always give the same scores, so Spark may reorder it freely. */
  private static UserDefinedFunction scoresUdf() {
    UDF2<String, String, Row> f = (prediction, reference) -> {
      TextMetrics.Scores s = TextMetrics.score(prediction, reference);
      return RowFactory.create(s.exactMatch(), s.tokenF1(), s.rougeL(), s.answerLength());
    };
    return functions.udf(f, SCORES_TYPE).withName("genai_batch_text_metrics");
  }

  private static void putIfPresent(Map<String, Double> metrics, String name, Row agg, int i) {
    if (!agg.isNullAt(i)) {
      metrics.put(name, agg.getDouble(i));
    }
  }

  /** A top-level column by its exact name, even one with a dot or a backtick in it. */
  static Column column(String name) {
    return col("`" + name.replace("`", "``") + "`");
  }

  static void require(String frame, List<String> names, String column, String what) {
    if (column == null || !names.contains(column)) {
      throw new IllegalArgumentException(frame + " has no column '" + column + "' (" + what
          + "); its columns are " + names);
    }
  }
}
