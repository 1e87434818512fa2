package io.genaibatch.engine.loop;

import com.fasterxml.jackson.databind.JsonNode;
import io.genaibatch.engine.GenAiConfig;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The decoder graph's shape and names, as {@code genai_config.json}'s {@code model.decoder}
 * section gives them: what the continuous-batching loop needs to run the graph itself.
 *
 * @param file the ONNX file of the decoder
 * @param layers hidden layers, each with a key and a value cache
 * @param kvHeads key/value heads per layer
 * @param headSize values per head
 * @param vocabSize logits per position
 */
public record DecoderGraph(
    Path file,
    int layers,
    int kvHeads,
    int headSize,
    int vocabSize,
    String inputIds,
    String attentionMask,
    String positionIds,
    String pastKey,
    String pastValue,
    String logits,
    String presentKey,
    String presentValue) {

  /** The graph of {@code config} (its {@code model} section as read and checked), or why the folder's config does not describe one this loop can run. */
  public static Optional<DecoderGraph> read(GenAiConfig config, StringBuilder why) {
    JsonNode d = config.model().path("decoder");
    int layers = d.path("num_hidden_layers").asInt(0);
    int kvHeads = d.path("num_key_value_heads").asInt(0);
    int headSize = d.path("head_size").asInt(0);
    if (layers <= 0 || kvHeads <= 0 || headSize <= 0 || config.vocabSize() <= 0) {
      why.append("genai_config.json lacks num_hidden_layers, num_key_value_heads, head_size or vocab_size");
      return Optional.empty();
    }
    if (d.has("pipeline") || config.model().has("embedding") || config.model().has("vision")) {
      why.append("the model is a pipeline of several graphs");
      return Optional.empty();
    }
    JsonNode in = d.path("inputs");
    JsonNode out = d.path("outputs");
    return Optional.of(new DecoderGraph(
        config.folder().resolve(config.decoderFile()), layers, kvHeads, headSize, config.vocabSize(),
        in.path("input_ids").asText("input_ids"),
        in.path("attention_mask").asText("attention_mask"),
        in.path("position_ids").asText("position_ids"),
        in.path("past_key_names").asText("past_key_values.%d.key"),
        in.path("past_value_names").asText("past_key_values.%d.value"),
        out.path("logits").asText("logits"),
        out.path("present_key_names").asText("present.%d.key"),
        out.path("present_value_names").asText("present.%d.value")));
  }

  String pastKey(int layer) {
    return String.format(pastKey, layer);
  }

  String pastValue(int layer) {
    return String.format(pastValue, layer);
  }

  String presentKey(int layer) {
    return String.format(presentKey, layer);
  }

  String presentValue(int layer) {
    return String.format(presentValue, layer);
  }

  /** Cache bytes one slot holds per position: a key and a value per layer, float32. */
  public long bytesPerPosition() {
    return 2L * layers * kvHeads * headSize * Float.BYTES;
  }
}
