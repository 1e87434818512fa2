package io.genaibatch.engine.natives;

import io.genaibatch.engine.EngineException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The stub decoder graph onnxruntime-genai loads in place of a model's own when the continuous loop
 * runs the model's graph itself: onnxruntime-genai makes a tokenizer only from a model, and the
 * model's own graph there would be a second copy of its weights. The graph (one Cast node, made by
 * {@code genai_batch.make_tokenizer_stub}) is copied once per JVM from the jar into a folder of its
 * own that only this user can read ({@link Files#createTempDirectory} makes it mode 0700), and
 * removed at exit.
 */
public final class TokenizerStub {
  private static final String RESOURCE = "/io/genaibatch/engine/tokenizer-stub.onnx";
  private static Path file;

  private TokenizerStub() {}

  /** The stub's real path, copied out at the first call. */
  public static synchronized Path file() {
    if (file == null) {
      try (InputStream in = TokenizerStub.class.getResourceAsStream(RESOURCE)) {
        if (in == null) {
          throw new EngineException("The job jar lacks " + RESOURCE + ": rebuild it (jobs/setup.sh)");
        }
        Path dir = Files.createTempDirectory("genai-batch-stub-");
        Path f = dir.resolve("tokenizer-stub.onnx");
        Files.copy(in, f, StandardCopyOption.REPLACE_EXISTING);
        f.toFile().deleteOnExit();
        dir.toFile().deleteOnExit();
        file = f.toRealPath();
      } catch (IOException e) {
        throw new EngineException("Cannot write the tokenizer stub graph to the temporary folder: " + e.getMessage(), e);
      }
    }
    return file;
  }
}
