package io.genaibatch.engine.guidance;

import java.io.Serializable;
import java.util.Objects;
import java.util.Set;

/**
 * A constraint on what the model may generate, in onnxruntime-genai's own terms: the {@code type}
 * and {@code data} its {@code OgaGeneratorParamsSetGuidance} takes, exactly as the native call
 * gets them. Made by {@link ResponseFormat#guidance()}; applied by {@link NativeGuidance#apply}.
 *
 * @param type {@code json_schema}, {@code regex} or {@code lark_grammar}
 * @param data the JSON Schema text, the regular expression or the Lark grammar
 */
public record Guidance(String type, String data) implements Serializable {
  private static final long serialVersionUID = 1L;

  public static final String JSON_SCHEMA = "json_schema";
  public static final String REGEX = "regex";
  public static final String LARK_GRAMMAR = "lark_grammar";

  /** The types onnxruntime-genai 0.12.0 knows; any other is refused when its generator is made. */
  public static final Set<String> TYPES = Set.of(JSON_SCHEMA, REGEX, LARK_GRAMMAR);

  /**
   * Checks the type and that there is data.
   *
   * @throws IllegalArgumentException for a type outside {@link #TYPES} or empty data (the native
   *     side silently ignores guidance with empty data)
   */
  public Guidance {
    Objects.requireNonNull(type, "type");
    Objects.requireNonNull(data, "data");
    if (!TYPES.contains(type)) {
      throw new IllegalArgumentException("Guidance type must be one of " + TYPES + ", got " + type);
    }
    if (data.isEmpty()) {
      throw new IllegalArgumentException("Guidance " + type + " has no data");
    }
  }
}
