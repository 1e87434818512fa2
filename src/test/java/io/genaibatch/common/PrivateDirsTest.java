package io.genaibatch.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Folders the job loads from are this user's alone, on the real file system. */
class PrivateDirsTest {
  static final String FIX = "Pass another folder.";

  @Test
  void aMissingFolderIsMadeForThisUserAlone(@TempDir Path tmp) throws IOException {
    Path dir = PrivateDirs.ensure(tmp.resolve("a/b/cache"), FIX);
    assertThat(Files.getPosixFilePermissions(dir)).isEqualTo(PosixFilePermissions.fromString("rwx------"));
    assertThat(PrivateDirs.ensure(dir, FIX)).as("and taken as it is the next time").isEqualTo(dir);
  }

  @Test
  void aFolderOthersMayWriteIsRefusedNamingItAndTheFix(@TempDir Path tmp) throws IOException {
    Path shared = Files.createDirectory(tmp.resolve("shared"));
    Files.setPosixFilePermissions(shared, PosixFilePermissions.fromString("rwxrwxrwx"));
    assertThatThrownBy(() -> PrivateDirs.ensure(shared, FIX)).hasMessageContaining("The folder " + shared)
        .hasMessageContaining("may be written by other users (mode rwxrwxrwx)").hasMessageContaining(FIX);
  }

  @Test
  void aSymbolicLinkIsRefused(@TempDir Path tmp) throws IOException {
    Path target = Files.createDirectory(tmp.resolve("elsewhere"));
    Path link = Files.createSymbolicLink(tmp.resolve("cache"), target);
    assertThatThrownBy(() -> PrivateDirs.ensure(link, FIX)).hasMessageContaining("is not a folder (or is a symbolic link)");
  }

  @Test
  void aFolderAnotherUserOwnsIsRefused(@TempDir Path tmp) throws IOException {
    Path theirs = Files.createDirectory(tmp.resolve("theirs"));
    Files.setPosixFilePermissions(theirs, PosixFilePermissions.fromString("rwx------"));
    Assumptions.assumeTrue((Integer) Files.getAttribute(theirs, "unix:uid") == 0, "giving a folder away needs root");
    Files.setAttribute(theirs, "unix:uid", 65534);
    assertThatThrownBy(() -> PrivateDirs.ensure(theirs, FIX))
        .hasMessageContaining("belongs to another user (uid 65534, this job runs as uid 0)");
  }
}
