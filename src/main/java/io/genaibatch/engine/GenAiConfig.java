package io.genaibatch.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Predicate;

/**
 * What genai-batch needs from a model folder's {@code genai_config.json}, read and checked
 * before any native code sees the folder, so a bad folder fails with a message naming the file.
 *
 * @param model the file's {@code model} section as it was read and checked (not to be changed):
 *     the decoder's shape comes from it, never from a second read of the file
 */
public record GenAiConfig(
    Path folder,
    String modelType,
    int contextLength,
    int vocabSize,
    List<Integer> eosTokenIds,
    int padTokenId,
    String decoderFile,
    Map<String, Object> searchDefaults,
    JsonNode model) {

  public static final String FILE_NAME = "genai_config.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Whether {@code o} samples: its own do_sample, else this model's default. */
  public boolean samples(SearchOptions o) {
    if (o.doSample() != null) {
      return o.doSample();
    }
    return Boolean.TRUE.equals(searchDefaults.get("do_sample"));
  }

  /** {@code o}'s top_k, else this model's default; 0 when neither limits it. */
  public int topK(SearchOptions o) {
    if (o.topK() != null) {
      return o.topK();
    }
    return searchDefaults.get("top_k") instanceof Number k ? k.intValue() : 0;
  }

  /**
   * Why {@code n} completions of one prompt under {@code o} would all be the same answer (greedy
   * search, or sampling from the one most likely token), naming the fix; empty when they can differ.
   * The engine makes such a request an error row; the driver refuses a job-wide {@code n} that no
   * row's own option can change.
   */
  public Optional<String> sameAnswers(SearchOptions o, int n) {
    if (n <= 1) {
      return Optional.empty();
    }
    if (!samples(o)) {
      return Optional.of("n = " + n + " needs sampling: greedy search gives the same answer " + n + " times."
          + " Set do_sample to true (with a temperature above 0), or n to 1");
    }
    if (topK(o) == 1) {
      return Optional.of("n = " + n + " with top_k 1 (the model's genai_config.json default) samples the one"
          + " most likely token: the " + n + " answers would be the same. Set top_k above 1, or give the row its"
          + " own temperature (which samples from all tokens)");
    }
    return Optional.empty();
  }

  /**
   * Refuses a model folder whose {@code genai_config.json} names a custom operator library (a native
   * library that onnxruntime would load into the job: a model folder that carries code) unless
   * {@code allowed}.
   *
   * @throws EngineException naming the file, the library and the setting that allows it
   */
  public static void checkCustomOps(Path dir, boolean allowed) {
    if (!allowed) {
      checkCustomOps(dir.resolve(FILE_NAME), parse(dir.resolve(FILE_NAME), readBytes(dir.resolve(FILE_NAME))));
    }
  }

  /** As {@link #checkCustomOps(Path, boolean)}, on {@code root}, the tree read from {@code file}. */
  static void checkCustomOps(Path file, JsonNode root) {
    JsonNode library = root.findValue("custom_ops_library");
    if (library != null && !library.isNull()) {
      throw new EngineException(file + " names a custom operator library, " + library + ": native code that"
          + " onnxruntime would load into the job. genai-batch loads it only when the job allows it:"
          + " --allow-custom-ops (allow_custom_ops: true), for a model folder you trust");
    }
  }

  private static byte[] readBytes(Path file) {
    try {
      return Files.readAllBytes(file);
    } catch (IOException e) {
      throw new EngineException("Cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  private static JsonNode parse(Path file, byte[] bytes) {
    try {
      return JSON.readTree(bytes);
    } catch (IOException e) {
      throw new EngineException("Cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  /** True when {@code dir} holds a {@code genai_config.json}. */
  public static boolean isModelFolder(Path dir) {
    return dir != null && Files.isRegularFile(dir.resolve(FILE_NAME));
  }

  /** Reads {@code dir}'s config, checking that the files it names are in {@code dir}. */
  public static GenAiConfig read(Path dir) {
    return read(dir, name -> Files.isRegularFile(dir.resolve(name)));
  }

  /**
   * Reads and checks {@code dir/genai_config.json}.
   *
   * @param has whether the model has a file the config names (relative to {@code dir}): a driver
   *     holding only the model's metadata answers from the store's listing
   * @throws EngineException naming the folder or file and what is wrong with it
   */
  public static GenAiConfig read(Path dir, Predicate<String> has) {
    return read(dir, bytesOf(dir), has, true);
  }

  /**
   * The content of {@code dir/genai_config.json}, read once.
   *
   * @throws EngineException naming the folder when it is missing, a file, or not a model folder
   */
  static byte[] bytesOf(Path dir) {
    if (dir == null || !Files.exists(dir)) {
      throw new EngineException(
          "Model folder " + dir + " does not exist. Pass the folder that holds " + FILE_NAME + ".");
    }
    if (!Files.isDirectory(dir)) {
      throw new EngineException("Model path " + dir + " is a file, not a folder. Pass the folder that holds " + FILE_NAME + ".");
    }
    Path file = dir.resolve(FILE_NAME);
    if (!Files.isRegularFile(file)) {
      throw new EngineException(
          "Model folder " + dir + " has no " + FILE_NAME + ": it is not an onnxruntime-genai model."
              + " Pass the folder that holds " + FILE_NAME
              + " (for Phi-3, e.g. cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4).");
    }
    return readBytes(file);
  }

  /**
   * Reads and checks {@code bytes}, the content of {@code dir/genai_config.json} read once: the
   * loader stages these very bytes, so the config it loads is the one checked here.
   *
   * @param allowCustomOps whether the config may name a custom operator library (see {@link
   *     #checkCustomOps(Path, boolean)})
   */
  static GenAiConfig read(Path dir, byte[] bytes, Predicate<String> has, boolean allowCustomOps) {
    Path file = dir.resolve(FILE_NAME);
    JsonNode root = parse(file, bytes);
    if (!allowCustomOps) {
      checkCustomOps(file, root);
    }
    JsonNode model = root.path("model");
    if (!model.isObject()) {
      throw new EngineException(file + " has no \"model\" section");
    }
    int context = model.path("context_length").asInt(0);
    if (context <= 0) {
      throw new EngineException(file + ": model.context_length is missing or not positive");
    }
    List<Integer> eos = new ArrayList<>();
    JsonNode eosNode = model.path("eos_token_id");
    if (eosNode.isArray()) {
      eosNode.forEach(n -> eos.add(n.asInt()));
    } else if (eosNode.isNumber()) {
      eos.add(eosNode.asInt());
    }
    String decoderFile = model.path("decoder").path("filename").asText(null);
    if (decoderFile == null) {
      throw new EngineException(file + ": model.decoder.filename is missing");
    }
    ModelFiles.checkInside(dir, root);
    if (!has.test(decoderFile)) {
      throw new EngineException(
          "Model folder " + dir + " names decoder " + decoderFile + " in " + FILE_NAME
              + ", but that file is not there. Copy the whole model folder.");
    }
    Map<String, Object> search = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = root.path("search").fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      JsonNode v = e.getValue();
      search.put(e.getKey(), v.isBoolean() ? v.asBoolean() : v.isIntegralNumber() ? v.asLong() : v.isNumber() ? v.asDouble() : v.asText());
    }
    return new GenAiConfig(
        dir,
        model.path("type").asText(""),
        context,
        model.path("vocab_size").asInt(0),
        Collections.unmodifiableList(eos),
        model.path("pad_token_id").asInt(eos.isEmpty() ? 0 : eos.get(0)),
        decoderFile,
        Collections.unmodifiableMap(search),
        model);
  }

  /** The total length when no length is set and the folder has no {@code search.max_length}. */
  public static final int FALLBACK_MAX_LENGTH = 300;

  /**
   * The model's default total length: its {@code search.max_length}, else {@value
   * #FALLBACK_MAX_LENGTH} (the MLflow Phi-3 tutorial's, as the Python wrapper), capped at the
   * context (docs/search-options.md).
   */
  public int defaultMaxLength() {
    Object v = searchDefaults.get("max_length");
    int m = v instanceof Number n && n.intValue() > 0 ? n.intValue() : FALLBACK_MAX_LENGTH;
    return Math.min(m, contextLength);
  }

  /**
   * Key/value cache bytes one position of one row holds: a key and a value per layer, of {@code
   * model.decoder}'s key/value heads and head size; 0 when the config does not say.
   *
   * @param elementBytes bytes of one cached value (4 for float32, 2 for float16)
   */
  public long kvBytesPerPosition(int elementBytes) {
    JsonNode d = model.path("decoder");
    return 2L * d.path("num_hidden_layers").asLong(0) * d.path("num_key_value_heads").asLong(0)
        * d.path("head_size").asLong(0) * elementBytes;
  }
}
