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
 * The names are {@link OutputColumns}'s, repeated here for the Spark layer's callers.
 */
public final class OutputSchema {
  public static final String RESPONSE = OutputColumns.RESPONSE;
  public static final String FINISH_REASON = OutputColumns.FINISH_REASON;
  public static final String PROMPT_TOKENS = OutputColumns.PROMPT_TOKENS;
  public static final String COMPLETION_TOKENS = OutputColumns.COMPLETION_TOKENS;
  public static final String TOTAL_TOKENS = OutputColumns.TOTAL_TOKENS;
  public static final String LATENCY_MS = OutputColumns.LATENCY_MS;
  public static final String ERROR = OutputColumns.ERROR;
  public static final String MODEL_URI = OutputColumns.MODEL_URI;
  public static final String MODEL_VERSION = OutputColumns.MODEL_VERSION;
  public static final String RUN_ID = OutputColumns.RUN_ID;
  public static final String SCORED_AT = OutputColumns.SCORED_AT;
  public static final String CHAT_COMPLETION = OutputColumns.CHAT_COMPLETION;

  static final List<StructField> FIELDS = List.of(
      DataTypes.createStructField(RESPONSE, DataTypes.StringType, true),
      DataTypes.createStructField(FINISH_REASON, DataTypes.StringType, false),
      DataTypes.createStructField(PROMPT_TOKENS, DataTypes.IntegerType, false),
      DataTypes.createStructField(COMPLETION_TOKENS, DataTypes.IntegerType, false),
      DataTypes.createStructField(TOTAL_TOKENS, DataTypes.IntegerType, false),
      DataTypes.createStructField(LATENCY_MS, DataTypes.DoubleType, false),
      DataTypes.createStructField(ERROR, DataTypes.StringType, true),
      DataTypes.createStructField(MODEL_URI, DataTypes.StringType, false),
      DataTypes.createStructField(MODEL_VERSION, DataTypes.StringType, true),
      DataTypes.createStructField(RUN_ID, DataTypes.StringType, true),
      DataTypes.createStructField(SCORED_AT, DataTypes.TimestampType, false));

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
      s.add(CHAT_COMPLETION);
    }
    return s;
  }

  public static StructType of(StructType input, boolean chat) {
    List<StructField> all = new ArrayList<>(List.of(input.fields()));
    all.addAll(FIELDS);
    if (chat) {
      all.add(DataTypes.createStructField(CHAT_COMPLETION, CHAT_COMPLETION_TYPE, true));
    }
    return DataTypes.createStructType(all);
  }
}
