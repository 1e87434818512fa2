package io.genaibatch.common;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/** SHA-256 digests: hex prefixes as short, stable names for contents and identities, and files' whole digests. */
public final class Sha256 {
  private Sha256() {}

  /**
   * The first {@code chars} hex digits of the SHA-256 of {@code bytes}.
   *
   * @param chars 1 to 64
   */
  public static String hexPrefix(byte[] bytes, int chars) {
    if (chars < 1 || chars > 64) {
      throw new IllegalArgumentException("A SHA-256 hex prefix has 1 to 64 digits, asked for " + chars);
    }
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)).substring(0, chars);
    } catch (NoSuchAlgorithmException e) {
      // Every Java platform must provide SHA-256.
      throw new IllegalStateException(e);
    }
  }

  /** The first {@code chars} hex digits of the SHA-256 of {@code text}'s UTF-8 bytes. */
  public static String hexPrefix(String text, int chars) {
    return hexPrefix(text.getBytes(StandardCharsets.UTF_8), chars);
  }

  /** The whole SHA-256 of {@code file}'s bytes, 64 lower-case hex digits, read in one pass. */
  public static String ofFile(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
