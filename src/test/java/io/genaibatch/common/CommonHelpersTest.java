package io.genaibatch.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The helpers every package shares, on real files and this real process. */
class CommonHelpersTest {

  @Test
  void sha256PrefixIsTheStandardDigest() {
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    assertThat(Sha256.hexPrefix("abc", 64))
        .isEqualTo("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assertThat(Sha256.hexPrefix("abc".getBytes(), 12)).isEqualTo("ba7816bf8f01");
    assertThatThrownBy(() -> Sha256.hexPrefix("abc", 65)).hasMessageContaining("1 to 64");
  }

  @Test
  void atomicWriteReplacesTheTargetAndLeavesNoTemporaryFile(@TempDir Path dir) throws IOException {
    Path target = dir.resolve("out.txt");
    Files.writeString(target, "old");
    AtomicFiles.write(target, tmp -> Files.writeString(tmp, "new"));
    assertThat(Files.readString(target)).isEqualTo("new");
    try (Stream<Path> s = Files.list(dir)) {
      assertThat(s).containsExactly(target);
    }
  }

  @Test
  void aFailedAtomicWriteKeepsTheOldFileAndNoHalfWrittenOne(@TempDir Path dir) throws IOException {
    Path target = dir.resolve("out.txt");
    Files.writeString(target, "old");
    assertThatThrownBy(() -> AtomicFiles.write(target, tmp -> {
      Files.writeString(tmp, "half");
      throw new IOException("disk full");
    })).hasMessage("disk full");
    assertThat(Files.readString(target)).isEqualTo("old");
    try (Stream<Path> s = Files.list(dir)) {
      assertThat(s).containsExactly(target);
    }
  }

  @Test
  void peakRssOfThisJvmIsReadOnLinux() {
    long kb = ProcessMemory.peakRssKb();
    if (Files.isReadable(Path.of("/proc/self/status"))) {
      // A running JVM holds well over a megabyte.
      assertThat(kb).isGreaterThan(1024);
    } else {
      assertThat(kb).isEqualTo(-1);
    }
  }

  @Test
  void redactCutsCredentialsAndQueriesOutOfUris() {
    assertThat(Redact.uri("https://user:p@ss@mlflow.example.com:5000/x")).isEqualTo("https://***@mlflow.example.com:5000/x");
    assertThat(Redact.uri("https://tok3n@host/api")).isEqualTo("https://***@host/api");
    assertThat(Redact.uri("https://bucket.s3.amazonaws.com/m?X-Amz-Signature=abc&X-Amz-Credential=k"))
        .isEqualTo("https://bucket.s3.amazonaws.com/m?***");
    assertThat(Redact.uri("models:/phi3@champion")).isEqualTo("models:/phi3@champion");
    assertThat(Redact.uri("abfss://models@account.dfs.core.windows.net/phi3"))
        .as("the container, not a credential").isEqualTo("abfss://models@account.dfs.core.windows.net/phi3");
    assertThat(Redact.uri("http://127.0.0.1:5000")).isEqualTo("http://127.0.0.1:5000");
    assertThat(Redact.uri(null)).isNull();
    assertThat(Redact.message("Cannot reach https://admin:p@ss@mlflow:5000/api (HTTP 401); fetched"
        + " https://b.s3.amazonaws.com/m.onnx?X-Amz-Signature=abc, abfss://c@acct.dfs.core.windows.net/m"))
        .as("a query runs to the next blank, its trailing comma too")
        .isEqualTo("Cannot reach https://***@mlflow:5000/api (HTTP 401); fetched https://b.s3.amazonaws.com/m.onnx?***"
            + " abfss://c@acct.dfs.core.windows.net/m");
  }
}
