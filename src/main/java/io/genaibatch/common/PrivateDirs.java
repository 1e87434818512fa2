package io.genaibatch.common;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * Folders that only this user may write: where the job stages native libraries and keeps model
 * copies, which it later loads and trusts. On a host that other users share (an edge node, a
 * standalone or multi-user cluster), a folder another user made first, or may write into, could hand
 * the job their code or their model: such a folder is refused, naming it and the fix.
 */
public final class PrivateDirs {
  private static final Set<PosixFilePermission> OTHERS_WRITE =
      Set.of(PosixFilePermission.GROUP_WRITE, PosixFilePermission.OTHERS_WRITE);

  private static int uid = -1;

  private PrivateDirs() {}

  /**
   * {@code dir}, created with mode 0700 when missing (its parents as usual), then checked: a real
   * folder (not a symbolic link), owned by this process's user, writable by no one else. On a file
   * system without POSIX permissions it is only created.
   *
   * @param fix how to choose another folder, for the message
   * @throws IOException naming the folder, what is wrong with it and {@code fix}
   */
  public static Path ensure(Path dir, String fix) throws IOException {
    boolean posix = Files.getFileStore(existingAncestor(dir)).supportsFileAttributeView("posix");
    if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
      Files.createDirectories(dir.toAbsolutePath().getParent());
      try {
        if (posix) {
          Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } else {
          Files.createDirectory(dir);
        }
      } catch (FileAlreadyExistsException raced) {
        // Another task of this user made it at the same moment: checked below like any other.
      }
    }
    if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
      throw refused(dir, "is not a folder (or is a symbolic link)", fix);
    }
    if (!posix) {
      return dir;
    }
    int owner = (Integer) Files.getAttribute(dir, "unix:uid", LinkOption.NOFOLLOW_LINKS);
    int me = myUid();
    if (owner != me) {
      throw refused(dir, "belongs to another user (uid " + owner + ", this job runs as uid " + me + ")", fix);
    }
    Set<PosixFilePermission> mode = Files.getPosixFilePermissions(dir, LinkOption.NOFOLLOW_LINKS);
    if (mode.stream().anyMatch(OTHERS_WRITE::contains)) {
      throw refused(dir, "may be written by other users (mode " + PosixFilePermissions.toString(mode) + ")", fix);
    }
    return dir;
  }

  /** This process's user id: the owner of a file it has just made (whatever the user's name says). */
  private static synchronized int myUid() throws IOException {
    if (uid < 0) {
      Path probe = Files.createTempFile("genai-batch-owner-", "");
      try {
        uid = (Integer) Files.getAttribute(probe, "unix:uid", LinkOption.NOFOLLOW_LINKS);
      } finally {
        Files.delete(probe);
      }
    }
    return uid;
  }

  private static Path existingAncestor(Path dir) {
    Path p = dir.toAbsolutePath();
    while (p != null && !Files.exists(p)) {
      p = p.getParent();
    }
    return p == null ? dir.toAbsolutePath().getRoot() : p;
  }

  private static IOException refused(Path dir, String what, String fix) {
    return new IOException("The folder " + dir + " " + what + ": genai-batch keeps native libraries and models"
        + " there and loads them, so it must be this user's alone. " + fix);
  }
}
