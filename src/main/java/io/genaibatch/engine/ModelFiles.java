package io.genaibatch.engine;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Map;

/**
 * The files a model folder's {@code genai_config.json} makes the loader open stay inside the folder:
 * every {@code filename} (the decoder's, and the encoder's, vision, embedding, speech and pipeline
 * graphs' where the format has them) and every {@code *_filename} (config and adapter files) is a
 * path relative to the folder that does not climb out of it. onnxruntime-genai opens such a name
 * relative to the folder, so {@code ../} or an absolute path would load a file from anywhere.
 */
final class ModelFiles {
  private ModelFiles() {}

  /**
   * Refuses {@code root}'s first file name that is absolute or leaves {@code dir}.
   *
   * @throws EngineException naming the folder, the key, the name and the fix
   */
  static void checkInside(Path dir, JsonNode root) {
    check(dir, root, "");
  }

  private static void check(Path dir, JsonNode node, String at) {
    if (node.isArray()) {
      for (int i = 0; i < node.size(); i++) {
        check(dir, node.get(i), at + "[" + i + "]");
      }
      return;
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      String key = at.isEmpty() ? e.getKey() : at + "." + e.getKey();
      JsonNode v = e.getValue();
      if (v.isTextual() && names(e.getKey())) {
        String why = outside(v.asText());
        if (why != null) {
          throw new EngineException("Model folder " + dir + ": " + GenAiConfig.FILE_NAME + " names " + key + " \""
              + v.asText() + "\", which " + why + ". genai-batch loads only files inside the model folder: put the"
              + " file in the folder and name it by its path relative to the folder (e.g. \"model.onnx\")");
        }
      } else if (v.isContainerNode()) {
        check(dir, v, key);
      }
    }
  }

  private static boolean names(String key) {
    return key.equals("filename") || key.endsWith("_filename");
  }

  /** Why {@code name} is not a path inside the folder; null when it is. */
  private static String outside(String name) {
    Path p;
    try {
      p = Path.of(name);
    } catch (InvalidPathException e) {
      return "is not a valid path (" + e.getReason() + ")";
    }
    if (p.isAbsolute() || p.getRoot() != null || name.startsWith("/") || name.startsWith("\\")) {
      return "is an absolute path";
    }
    Path n = p.normalize();
    if (n.toString().isEmpty()) {
      return "names the folder itself, not a file";
    }
    if (n.startsWith("..")) {
      return "climbs out of the folder with ../";
    }
    return null;
  }
}
