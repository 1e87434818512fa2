package io.genaibatch.spark;

import io.genaibatch.common.OutputColumns;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Function;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The output columns of DESIGN.md "Output rows", appended to the input's: their types and order.
 * The names are {@link OutputColumns}'s.
 */
public final class OutputSchema {

  /** What a scored row's output columns are made of: its result and the job's metadata. */
  record Scored(RowResult result, String modelUri, String modelVersion, String runId, Object scoredAt) {}

  /** One output column: its name, type and nullability, and its value for a scored row. */
  record Field(String name, DataType type, boolean nullable, Function<Scored, Object> value) {
    StructField struct() {
      return DataTypes.createStructField(name, type, nullable);
    }
  }

  /** The output columns, in order: each declared here once, with how its value is had. */
  static final List<Field> FIELDS = List.of(
      new Field(OutputColumns.RESPONSE, DataTypes.StringType, true, s -> s.result().response()),
      new Field(OutputColumns.FINISH_REASON, DataTypes.StringType, false, s -> s.result().finishReason()),
      new Field(OutputColumns.PROMPT_TOKENS, DataTypes.IntegerType, false, s -> s.result().promptTokens()),
      new Field(OutputColumns.COMPLETION_TOKENS, DataTypes.IntegerType, false, s -> s.result().completionTokens()),
      new Field(OutputColumns.TOTAL_TOKENS, DataTypes.IntegerType, false, s -> s.result().totalTokens()),
      new Field(OutputColumns.LATENCY_MS, DataTypes.DoubleType, false, s -> s.result().latencyMs()),
      new Field(OutputColumns.ERROR, DataTypes.StringType, true, s -> s.result().error()),
      new Field(OutputColumns.MODEL_URI, DataTypes.StringType, false, Scored::modelUri),
      new Field(OutputColumns.MODEL_VERSION, DataTypes.StringType, true, Scored::modelVersion),
      new Field(OutputColumns.RUN_ID, DataTypes.StringType, true, Scored::runId),
      new Field(OutputColumns.SCORED_AT, DataTypes.TimestampType, false, Scored::scoredAt));

  /** Every completion's text, in prompt mode when rows may ask for several. */
  static final StructField RESPONSES = DataTypes.createStructField(OutputColumns.RESPONSES,
      DataTypes.createArrayType(DataTypes.StringType, false), true);

  /** The output columns named {@code names}, in that order, as {@link #FIELDS} declares them. */
  static List<Field> pick(String... names) {
    List<Field> out = new ArrayList<>(names.length);
    for (String n : names) {
      out.add(FIELDS.stream().filter(f -> f.name().equals(n)).findFirst().orElseThrow());
    }
    return out;
  }

  private static final StructType MESSAGE = new StructType()
      .add("role", DataTypes.StringType, false)
      .add("content", DataTypes.StringType, true);

  /** The seed's llm/v1/chat output object as a struct. */
  public static final StructType CHAT_COMPLETION_TYPE = new StructType()
      .add("id", DataTypes.StringType, false)
      .add("object", DataTypes.StringType, false)
      .add("created", DataTypes.LongType, false)
      .add("model", DataTypes.StringType, false)
      .add("choices", DataTypes.createArrayType(new StructType()
          .add("index", DataTypes.LongType, false)
          .add("message", MESSAGE, false)
          .add("finish_reason", DataTypes.StringType, false), false), false)
      .add("usage", new StructType()
          .add("prompt_tokens", DataTypes.LongType, false)
          .add("completion_tokens", DataTypes.LongType, false)
          .add("total_tokens", DataTypes.LongType, false), false);

  private OutputSchema() {}

  /**
   * Names the scorer adds; an input already holding one of them is refused on the driver.
   *
   * @param manyCompletions rows may ask for more than one completion: prompt mode adds {@code responses}
   * @param parsed the answer is parsed into {@code response_parsed}
   */
  public static Set<String> addedNames(boolean chat, boolean manyCompletions, boolean parsed) {
    Set<String> s = new LinkedHashSet<>();
    for (StructField f : added(chat, manyCompletions, parsed ? new StructType() : null)) {
      s.add(f.name());
    }
    return s;
  }

  /**
   * The output schema: {@code input}'s columns, then the output columns; {@code responses} (every
   * completion's text) in prompt mode when rows may ask for several, {@code chat_completion} in chat
   * mode, and {@code response_parsed} of type {@code parsed} when not null.
   */
  public static StructType of(StructType input, boolean chat, boolean manyCompletions, StructType parsed) {
    List<StructField> all = new ArrayList<>(List.of(input.fields()));
    all.addAll(added(chat, manyCompletions, parsed));
    return DataTypes.createStructType(all);
  }

  private static List<StructField> added(boolean chat, boolean manyCompletions, StructType parsed) {
    List<StructField> all = new ArrayList<>();
    FIELDS.forEach(f -> all.add(f.struct()));
    if (!chat && manyCompletions) {
      all.add(RESPONSES);
    }
    if (chat) {
      all.add(DataTypes.createStructField(OutputColumns.CHAT_COMPLETION, CHAT_COMPLETION_TYPE, true));
    }
    if (parsed != null) {
      all.add(DataTypes.createStructField(OutputColumns.RESPONSE_PARSED, parsed, true));
    }
    return all;
  }
}
