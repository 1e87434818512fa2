package io.genaibatch.common;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Write-temp-then-rename: a file or folder appears under its name whole or not at all, so a
 * concurrent reader (another task, another JVM on the host) never sees half of it.
 */
public final class AtomicFiles {
  private AtomicFiles() {}

  /** Writes the not yet existing path it is given. */
  @FunctionalInterface
  public interface Writer {
    void write(Path tmp) throws IOException;
  }

  /**
   * Has {@code writer} make a temporary sibling of {@code target} (a path that does not exist
   * yet, hidden by a leading dot) and renames it to {@code target}, replacing a file there. The
   * temporary file is gone afterwards, whether the write or the rename failed or not.
   *
   * @return {@code target}
   */
  public static Path write(Path target, Writer writer) throws IOException {
    Path tmp = target.resolveSibling(".part-" + target.getFileName() + "-" + System.nanoTime() + "-"
        + Thread.currentThread().getId());
    try {
      writer.write(tmp);
      publish(tmp, target);
    } finally {
      Files.deleteIfExists(tmp);
    }
    return target;
  }

  /**
   * Renames {@code tmp} to {@code target}, atomically where the file system can, else with a plain
   * replacing move. Both must be on one file system (siblings are).
   */
  public static void publish(Path tmp, Path target) throws IOException {
    try {
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
    }
  }
}
