package io.genaibatch.spark;

import io.genaibatch.common.OutputColumns;
import io.genaibatch.engine.Choice;
import io.genaibatch.engine.Generation;
import io.genaibatch.spark.compat.SparkCompat;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.function.Function;
import java.util.stream.Stream;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The output columns of DESIGN.md "Output rows", appended to the input's: their types, order and
 * values, the optional ones ({@code responses}, {@code chat_completion}, {@code response_parsed})
 * included, each declared here once. The names are {@link OutputColumns}'s.
 */
public final class OutputSchema {

  /**
   * What a scored row's output columns are made of: its result, the engine's generation (null when
   * the engine never answered it), and the job's metadata.
   *
   * @param createdSeconds when it was scored, epoch seconds (the chat completion's {@code created})
   */
  record Scored(RowResult result, Generation generation, String modelUri, String modelVersion, String runId,
      Object scoredAt, long createdSeconds) {

    /** The generation, when the row was answered; null for an error row. */
    Generation answered() {
      return result.ok() ? generation : null;
    }
  }

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

  /** Every completion's text: in prompt mode when rows may ask for several, and in the SQL function's result. */
  static final Field RESPONSES = new Field(OutputColumns.RESPONSES,
      DataTypes.createArrayType(DataTypes.StringType, false), true, OutputSchema::responses);

  /** The output columns named {@code names}, in that order, as {@link #FIELDS} and the optional ones declare them. */
  static List<Field> pick(String... names) {
    List<Field> out = new ArrayList<>(names.length);
    for (String n : names) {
      out.add(Stream.concat(FIELDS.stream(), Stream.of(RESPONSES, CHAT_COMPLETION)).filter(f -> f.name().equals(n))
          .findFirst().orElseThrow());
    }
    return out;
  }

  /**
   * The output columns each scored row's values fill, in order: {@link #FIELDS}, then {@code
   * responses} in prompt mode when rows may ask for several completions, or {@code chat_completion} in
   * chat mode. ({@code response_parsed} is derived from {@code response} afterwards: {@link #parsed}.)
   */
  static List<Field> rowFields(boolean chat, boolean manyCompletions) {
    List<Field> all = new ArrayList<>(FIELDS);
    if (chat) {
      all.add(CHAT_COMPLETION);
    } else if (manyCompletions) {
      all.add(RESPONSES);
    }
    return all;
  }

  /**
   * {@code response_parsed}: the answer read by Spark's own JSON reader under {@code parsedType}.
   * It reads text that is no JSON object (an error row, a row under its own regex) as a struct of
   * nulls: that, which holds nothing, becomes null.
   */
  static Column parsed(StructType parsedType) {
    Column parsed = functions.from_json(functions.col(OutputColumns.RESPONSE), parsedType);
    return functions.when(functions.to_json(parsed).notEqual(functions.lit("{}")), parsed);
  }

  private static Object responses(Scored s) {
    Generation g = s.answered();
    return g == null ? null : SparkCompat.asSeq(g.choices().stream().map(Choice::text).toList());
  }

  /** The seed's llm/v1/chat output object of an answered row; usage counts every completion, as OpenAI's does for n > 1. */
  private static Row chatCompletion(Scored s) {
    Generation g = s.answered();
    if (g == null) {
      return null;
    }
    List<Row> choices = new ArrayList<>(g.choices().size());
    for (int c = 0; c < g.choices().size(); c++) {
      Choice choice = g.choices().get(c);
      Row message = RowFactory.create("assistant", choice.text());
      choices.add(RowFactory.create((long) c, message, choice.finishReason().wire()));
    }
    Row usage = RowFactory.create((long) g.promptTokens(), (long) g.completionTokens(), (long) g.totalTokens());
    return RowFactory.create("chatcmpl-" + UUID.randomUUID(), "chat.completion", s.createdSeconds(), s.modelUri(),
        SparkCompat.asSeq(choices), usage);
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

  /** The seed's llm/v1/chat output object, in chat mode. */
  static final Field CHAT_COMPLETION = new Field(OutputColumns.CHAT_COMPLETION, CHAT_COMPLETION_TYPE, true,
      OutputSchema::chatCompletion);

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
    rowFields(chat, manyCompletions).forEach(f -> all.add(f.struct()));
    if (parsed != null) {
      all.add(DataTypes.createStructField(OutputColumns.RESPONSE_PARSED, parsed, true));
    }
    return all;
  }
}
