package io.genaibatch.spark;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/** The output columns of DESIGN.md "Output rows", appended to the input's. */
public final class OutputSchema {
  public static final String RESPONSE = "response";
  public static final String FINISH_REASON = "finish_reason";
  public static final String PROMPT_TOKENS = "prompt_tokens";
  public static final String COMPLETION_TOKENS = "completion_tokens";
  public static final String TOTAL_TOKENS = "total_tokens";
  public static final String LATENCY_MS = "latency_ms";
  public static final String ERROR = "error";
  public static final String MODEL_URI = "model_uri";
  public static final String MODEL_VERSION = "model_version";
  public static final String RUN_ID = "run_id";
  public static final String SCORED_AT = "scored_at";
  public static final String CHAT_COMPLETION = "chat_completion";

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
    Set<String> s = new java.util.LinkedHashSet<>();
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
