package io.genaibatch.engine;

import io.genaibatch.common.PrivateDirs;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * The folder onnxruntime-genai loads a model from: private to this user, holding the {@code
 * genai_config.json} bytes that were checked (written once, here) and a symbolic link to each other
 * entry of the model folder. onnxruntime-genai reads its config again when it loads; from here it
 * reads the checked bytes, whatever the model folder's file says by then. The decoder, tokenizer and
 * external data files resolve through the links relative to this folder, as they would in the model
 * folder. One per loaded model; {@link #close()} removes it (the links, never what they point to).
 */
final class StagedFolder implements AutoCloseable {
  private final Path dir;
  private boolean closed;

  private StagedFolder(Path dir) {
    this.dir = dir;
  }

  /**
   * Stages {@code source} with {@code config} as its {@code genai_config.json}.
   *
   * @throws EngineException naming the model folder and the staging folder when either cannot be used
   */
  static StagedFolder of(Path source, byte[] config) {
    Path dir = null;
    try {
      Path real = source.toRealPath();
      dir = Files.createTempDirectory(root(), "model-");
      StagedFolder staged = new StagedFolder(dir);
      try (DirectoryStream<Path> entries = Files.newDirectoryStream(real)) {
        for (Path e : entries) {
          if (!e.getFileName().toString().equals(GenAiConfig.FILE_NAME)) {
            Files.createSymbolicLink(dir.resolve(e.getFileName().toString()), e);
          }
        }
      }
      Files.write(dir.resolve(GenAiConfig.FILE_NAME), config);
      return staged;
    } catch (IOException | UnsupportedOperationException e) {
      if (dir != null) {
        new StagedFolder(dir).close();
      }
      throw new EngineException("Cannot stage model folder " + source + " for loading" + (dir == null ? "" : " in " + dir)
          + ": " + e.getMessage() + ". Point -Djava.io.tmpdir at a local folder of your own", e);
    }
  }

  /** {@code $TMPDIR/genai-batch-staged-$USER}, this user's alone (checked). */
  private static Path root() throws IOException {
    return PrivateDirs.ensure(Paths.get(System.getProperty("java.io.tmpdir"),
        "genai-batch-staged-" + System.getProperty("user.name", "user")),
        "Remove it, or point -Djava.io.tmpdir at a folder of your own.");
  }

  /** The folder to load. */
  Path dir() {
    return dir;
  }

  /** Removes the staged config and the links; idempotent. A failure to remove is left for the temp cleaner. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(dir)) {
      for (Path e : entries) {
        if (Files.isSymbolicLink(e) || Files.isRegularFile(e, LinkOption.NOFOLLOW_LINKS)) {
          Files.delete(e);
        }
      }
      Files.delete(dir);
    } catch (IOException e) {
      // Left in the user's private temp folder: links and one small file, no model bytes.
    }
  }
}
