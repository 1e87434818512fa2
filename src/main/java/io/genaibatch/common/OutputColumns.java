package io.genaibatch.common;

/**
 * The names of the columns genai-batch adds to every input row (DESIGN.md "Output rows"): the
 * output contract that the Spark layer writes and evaluation and the job read back. Their types
 * and order live with the Spark schema ({@code io.genaibatch.spark.OutputSchema}).
 */
public final class OutputColumns {
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
  /** Every completion of a row, when rows may ask for more than one ({@code n}), in prompt mode. */
  public static final String RESPONSES = "responses";
  /** The answer parsed under the job's JSON Schema response format ({@code parse_response}). */
  public static final String RESPONSE_PARSED = "response_parsed";

  private OutputColumns() {}
}
