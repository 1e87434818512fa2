package io.genaibatch.mlflow;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * An {@code MLmodel} file: flavors, the pyfunc wrapper's artifacts and {@code model_config}, the
 * signature (whose inputs, outputs and params are JSON strings inside the YAML), and MLflow 3's
 * {@code model_id} and {@code artifact_path}. Read with Jackson YAML; no Python is run.
 */
public record MlModel(
    Map<String, JsonNode> flavors,
    Map<String, String> artifacts,
    Map<String, Object> modelConfig,
    Signature signature,
    String modelId,
    String runId,
    String artifactPath,
    String mlflowVersion)
    implements Serializable {

  public static final String FILE_NAME = "MLmodel";
  public static final String ONNX_ARTIFACT_KEY = "phi3-mini-onnx";
  /** The file that marks an onnxruntime-genai model folder among a model's artifacts. */
  public static final String GENAI_CONFIG_FILE = "genai_config.json";
  private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
  private static final ObjectMapper JSON = new ObjectMapper();

  /** One signature column (or param). */
  public record ColumnSpec(String name, String type, boolean required, JsonNode spec) implements Serializable {}

  /** A model signature: inputs, outputs, params; empty lists when the model has none. */
  public record Signature(List<ColumnSpec> inputs, List<ColumnSpec> outputs, List<ColumnSpec> params)
      implements Serializable {
    public static final Signature NONE = new Signature(List.of(), List.of(), List.of());

    public Optional<ColumnSpec> input(String name) {
      return inputs.stream().filter(c -> name.equals(c.name())).findFirst();
    }

    /** True for the OpenAI-style llm/v1/chat shape: a {@code messages} array input. */
    public boolean isChat() {
      return input("messages").map(c -> "array".equals(c.type())).orElse(false);
    }
  }

  /** Reads {@code dir/MLmodel}. */
  public static MlModel read(Path dir) {
    Path file = dir.resolve(FILE_NAME);
    if (!Files.isRegularFile(file)) {
      throw new MlflowException("No " + FILE_NAME + " in " + dir + ": it is not an MLflow model directory");
    }
    try {
      return parse(Files.readString(file));
    } catch (IOException e) {
      throw new MlflowException("Cannot read " + file + ": " + e.getMessage(), e);
    } catch (MlflowException e) {
      throw new MlflowException(file + ": " + e.getMessage(), e);
    }
  }

  /** Parses the text of an {@code MLmodel} file. */
  public static MlModel parse(String yaml) {
    JsonNode root;
    try {
      root = YAML.readTree(yaml);
    } catch (IOException e) {
      throw new MlflowException("MLmodel is not valid YAML: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new MlflowException("MLmodel is empty or not a mapping");
    }
    Map<String, JsonNode> flavors = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = root.path("flavors").fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      flavors.put(e.getKey(), e.getValue());
    }
    JsonNode pyfunc = root.path("flavors").path("python_function");
    Map<String, String> artifacts = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = pyfunc.path("artifacts").fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      JsonNode v = e.getValue();
      artifacts.put(e.getKey(), v.isTextual() ? v.asText() : v.path("path").asText());
    }
    // mlflow.pyfunc.log_model(model_config=...) lands in the pyfunc flavor as "config";
    // older writers used "model_config".
    JsonNode cfg = pyfunc.has("config") ? pyfunc.get("config")
        : pyfunc.has("model_config") ? pyfunc.get("model_config") : root.path("model_config");
    Map<String, Object> modelConfig = cfg.isObject() ? JSON.convertValue(cfg, Map.class) : Map.of();
    JsonNode sig = root.path("signature");
    Signature signature = sig.isObject()
        ? new Signature(columns(sig.get("inputs"), "inputs"), columns(sig.get("outputs"), "outputs"), columns(sig.get("params"), "params"))
        : Signature.NONE;
    return new MlModel(
        Collections.unmodifiableMap(flavors),
        Collections.unmodifiableMap(artifacts),
        Collections.unmodifiableMap(new LinkedHashMap<>(modelConfig)),
        signature,
        text(root, "model_id"),
        text(root, "run_id"),
        text(root, "artifact_path"),
        text(root, "mlflow_version"));
  }

  private static String text(JsonNode root, String key) {
    JsonNode n = root.get(key);
    return n == null || n.isNull() ? null : n.asText();
  }

  private static List<ColumnSpec> columns(JsonNode node, String what) {
    if (node == null || node.isNull()) {
      return List.of();
    }
    JsonNode arr;
    try {
      arr = node.isTextual() ? JSON.readTree(node.asText()) : node;
    } catch (IOException e) {
      throw new MlflowException("signature " + what + " is not valid JSON: " + e.getMessage(), e);
    }
    if (arr == null || arr.isNull()) {
      return List.of();
    }
    List<ColumnSpec> out = new ArrayList<>();
    for (JsonNode c : arr) {
      out.add(new ColumnSpec(c.path("name").asText(null), c.path("type").asText(null),
          c.path("required").asBoolean(true), c));
    }
    return Collections.unmodifiableList(out);
  }

  /**
   * True when {@code dir} holds the file that marks an onnxruntime-genai model folder ({@value
   * #GENAI_CONFIG_FILE}). Only the name: reading and checking the folder is the engine's work.
   */
  public static boolean isGenaiFolder(Path dir) {
    return dir != null && Files.isRegularFile(dir.resolve(GENAI_CONFIG_FILE));
  }

  public boolean hasFlavor(String name) {
    return flavors.containsKey(name);
  }

  /**
   * The onnxruntime-genai folder inside a downloaded model directory: the pyfunc artifact
   * {@value #ONNX_ARTIFACT_KEY} first, then any artifact, then any folder holding {@code
   * genai_config.json}.
   *
   * @throws MlflowException naming the directory; a transformers-flavor model gets the steps to
   *     export it to ONNX
   */
  public Path findGenaiFolder(Path modelDir) {
    List<String> keys = new ArrayList<>(artifacts.keySet());
    keys.sort((a, b) -> Boolean.compare(!a.equals(ONNX_ARTIFACT_KEY), !b.equals(ONNX_ARTIFACT_KEY)));
    for (String k : keys) {
      Path p = modelDir.resolve(artifacts.get(k)).normalize();
      if (p.startsWith(modelDir) && isGenaiFolder(p)) {
        return p;
      }
    }
    try (Stream<Path> s = Files.walk(modelDir, 6)) {
      Optional<Path> found = s.filter(p -> p.getFileName() != null
          && p.getFileName().toString().equals(GENAI_CONFIG_FILE)).map(Path::getParent).sorted().findFirst();
      if (found.isPresent()) {
        return found.get();
      }
    } catch (IOException e) {
      throw new MlflowException("Cannot search " + modelDir + ": " + e.getMessage(), e);
    }
    if (hasFlavor("transformers")) {
      throw new MlflowException("Model at " + modelDir + " is a transformers-flavor model (PyTorch weights), which"
          + " genai-batch cannot run. Export it to ONNX and log it with the wrapper: (1) `pip install"
          + " onnxruntime-genai` and run `python -m onnxruntime_genai.models.builder -m <hf-model-id> -o"
          + " phi3-onnx -p int4 -e cpu`; (2) `python -m genai_batch.log_model --model-dir phi3-onnx"
          + " --register NAME` (src/main/python); (3) pass the new models:/NAME/VERSION URI.");
    }
    throw new MlflowException("Model at " + modelDir + " holds no onnxruntime-genai folder (no "
        + GENAI_CONFIG_FILE + " in its artifacts " + artifacts.keySet() + "). Log the ONNX folder as the pyfunc"
        + " artifact '" + ONNX_ARTIFACT_KEY + "' (python -m genai_batch.log_model --model-dir DIR).");
  }
}
