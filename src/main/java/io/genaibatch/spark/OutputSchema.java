package io.genaibatch.spark;

import io.genaibatch.common.OutputColumns;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The output columns of DESIGN.md "Output rows", appended to the input's: their types and order.
 * The names are {@link OutputColumns}'s.
 */
public final class OutputSchema {

  static final List<StructField> FIELDS = List.of(
      DataTypes.createStructField(OutputColumns.RESPONSE, DataTypes.StringType, true),
      DataTypes.createStructField(OutputColumns.FINISH_REASON, DataTypes.StringType, false),
      DataTypes.createStructField(OutputColumns.PROMPT_TOKENS, DataTypes.IntegerType, false),
      DataTypes.createStructField(OutputColumns.COMPLETION_TOKENS, DataTypes.IntegerType, false),
      DataTypes.createStructField(OutputColumns.TOTAL_TOKENS, DataTypes.IntegerType, false),
      DataTypes.createStructField(OutputColumns.LATENCY_MS, DataTypes.DoubleType, false),
      DataTypes.createStructField(OutputColumns.ERROR, DataTypes.StringType, true),
      DataTypes.createStructField(OutputColumns.MODEL_URI, DataTypes.StringType, false),
      DataTypes.createStructField(OutputColumns.MODEL_VERSION, DataTypes.StringType, true),
      DataTypes.createStructField(OutputColumns.RUN_ID, DataTypes.StringType, true),
      DataTypes.createStructField(OutputColumns.SCORED_AT, DataTypes.TimestampType, false));

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

  /** Names the scorer adds; an input already holding one of them is refused on the driver. */
  public static Set<String> addedNames(boolean chat) {
    Set<String> s = new LinkedHashSet<>();
    FIELDS.forEach(f -> s.add(f.name()));
    if (chat) {
      s.add(OutputColumns.CHAT_COMPLETION);
    }
    return s;
  }

  public static StructType of(StructType input, boolean chat) {
    List<StructField> all = new ArrayList<>(List.of(input.fields()));
    all.addAll(FIELDS);
    if (chat) {
      all.add(DataTypes.createStructField(OutputColumns.CHAT_COMPLETION, CHAT_COMPLETION_TYPE, true));
    }
    return DataTypes.createStructType(all);
  }
}
