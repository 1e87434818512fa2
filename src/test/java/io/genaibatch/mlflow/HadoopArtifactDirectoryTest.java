package io.genaibatch.mlflow;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.genaibatch.testing.Fixtures;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Hadoop FileSystem path (dbfs:, s3a:, abfss:, gs: on a cluster) through Hadoop's own
 * local file system, the one scheme whose connector every Spark carries.
 */
class HadoopArtifactDirectoryTest {

  @Test
  void listsFetchesAndUploadsThroughHadoop(@TempDir Path tmp) throws Exception {
    HadoopArtifactDirectory dir = new HadoopArtifactDirectory("file://" + Fixtures.tinyModel());
    assertThat(dir.listFiles()).extracting(ArtifactFile::path).contains("genai_config.json", "model.onnx", "tokenizer.json");
    ModelCache.Fetched f = new ModelCache(tmp.resolve("cache")).fetch("hadoop-test", dir);
    assertThat(f.downloaded()).isTrue();
    assertThat(Files.mismatch(f.dir().resolve("model.onnx"), Fixtures.tinyModel().resolve("model.onnx"))).isEqualTo(-1);

    Files.createDirectories(tmp.resolve("store"));
    HadoopArtifactDirectory store = new HadoopArtifactDirectory("file://" + tmp.resolve("store"));
    Path local = Files.writeString(tmp.resolve("x.txt"), "hello");
    store.upload(local, "plots/x.txt");
    assertThat(store.exists("plots/x.txt")).isTrue();
    assertThat(Files.readString(tmp.resolve("store/plots/x.txt"))).isEqualTo("hello");
  }

  /** Ranges that do not fall on the 1 MiB copy buffer, and a short last one. */
  private static final long PART = 700_001;
  private static final int SIZE = 5 * (1 << 20) + 123;

  private static Path weights(Path store) throws IOException {
    byte[] data = new byte[SIZE];
    new Random(42).nextBytes(data);
    Files.createDirectories(store.resolve("sub"));
    return Files.write(store.resolve("sub/model.onnx.data"), data);
  }

  private static ArtifactFile listed(ArtifactDirectory dir) throws IOException {
    return dir.listFiles().stream().filter(f -> f.path().equals("sub/model.onnx.data")).findFirst().orElseThrow();
  }

  private static String[] names(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toArray(String[]::new);
    }
  }

  @Test
  void aLargeFileIsFetchedInParallelRangesByteForByte(@TempDir Path tmp) throws Exception {
    Path source = weights(tmp.resolve("store"));
    HadoopArtifactDirectory dir = new HadoopArtifactDirectory("file://" + tmp.resolve("store"), new Configuration(), 1 << 20, PART);
    Files.createDirectories(tmp.resolve("out"));
    Path target = tmp.resolve("out/model.onnx.data");
    dir.download(listed(dir), target);
    assertThat(Files.mismatch(target, source)).isEqualTo(-1);
    assertThat(names(tmp.resolve("out"))).containsExactly("model.onnx.data");

    ModelCache.Fetched f = new ModelCache(tmp.resolve("cache")).fetch("ranged-test", dir);
    assertThat(Files.mismatch(f.dir().resolve("sub/model.onnx.data"), source)).isEqualTo(-1);
  }

  @Test
  void aRangeCutHalfwayIsFetchedAgain(@TempDir Path tmp) throws Exception {
    Path source = weights(tmp.resolve("store"));
    AtomicInteger cuts = new AtomicInteger(1);
    // halfway through the third range
    HadoopArtifactDirectory dir = flaky(tmp.resolve("store"), 2 * PART + PART / 2, cuts);
    Files.createDirectories(tmp.resolve("out"));
    Path target = tmp.resolve("out/model.onnx.data");
    dir.download(new ArtifactFile("sub/model.onnx.data", SIZE), target);
    assertThat(cuts.get()).as("the cut happened").isZero();
    assertThat(Files.mismatch(target, source)).isEqualTo(-1);
    assertThat(names(tmp.resolve("out"))).containsExactly("model.onnx.data");
  }

  @Test
  void aRangeThatKeepsFailingFailsTheDownloadAndLeavesNoFile(@TempDir Path tmp) throws Exception {
    weights(tmp.resolve("store"));
    HadoopArtifactDirectory dir = flaky(tmp.resolve("store"), 4 * PART + 10, new AtomicInteger(Integer.MAX_VALUE));
    Files.createDirectories(tmp.resolve("out"));
    Path target = tmp.resolve("out/model.onnx.data");
    assertThatThrownBy(() -> dir.download(new ArtifactFile("sub/model.onnx.data", SIZE), target))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("sub/model.onnx.data")
        .hasMessageContaining("bytes " + 4 * PART + "-" + (5 * PART - 1) + " (part 5 of 8)")
        .hasMessageContaining("after " + HadoopArtifactDirectory.PART_ATTEMPTS + " attempt(s)")
        .hasMessageContaining("Connection reset at byte " + (4 * PART + 10));
    assertThat(names(tmp.resolve("out"))).isEmpty();
  }

  @Test
  void aDirectoryWithoutItsOwnConfigurationTakesTheInstalledOne(@TempDir Path tmp) throws IOException {
    Files.createDirectories(tmp.resolve("store"));
    Files.writeString(tmp.resolve("store/genai_config.json"), "{}");
    try {
      // The job's configuration knows the flaky: scheme; a default one does not.
      ModelFetcher.useHadoopConfigurations(() -> {
        Configuration conf = new Configuration();
        conf.setClass("fs.flaky.impl", FlakyFileSystem.class, FileSystem.class);
        conf.setBoolean("fs.flaky.impl.disable.cache", true);
        return conf;
      });
      new HadoopArtifactDirectory("flaky://" + tmp.resolve("store"))
          .download(new ArtifactFile("genai_config.json", 2), tmp.resolve("got.json"));
      assertThat(tmp.resolve("got.json")).hasContent("{}");
    } finally {
      ModelFetcher.useHadoopConfigurations(Configuration::new);
    }
    assertThatThrownBy(() -> new HadoopArtifactDirectory("flaky://" + tmp.resolve("store"))
        .download(new ArtifactFile("genai_config.json", 2), tmp.resolve("again.json"))).hasMessageContaining("flaky");
  }

  private static HadoopArtifactDirectory flaky(Path store, long cutAt, AtomicInteger cuts) {
    String id = UUID.randomUUID().toString();
    FlakyFileSystem.CUTS.put(id, cuts);
    Configuration conf = new Configuration();
    conf.setClass("fs.flaky.impl", FlakyFileSystem.class, FileSystem.class);
    conf.setBoolean("fs.flaky.impl.disable.cache", true);
    conf.set("flaky.id", id);
    conf.setLong("flaky.cut-at", cutAt);
    return new HadoopArtifactDirectory("flaky://" + store, conf, 1 << 20, PART);
  }

  /**
   * Hadoop's local file system under the scheme {@code flaky:}, whose streams drop the connection
   * at byte {@code flaky.cut-at} while the test's budget of cuts ({@code flaky.id}) lasts: the bytes
   * before it are delivered, then an IOException, as a reset connection leaves a read. (Its listing
   * is not used: Hadoop reads local permissions through a {@code file:} URI.)
   */
  public static final class FlakyFileSystem extends RawLocalFileSystem {
    static final Map<String, AtomicInteger> CUTS = new ConcurrentHashMap<>();
    private static final URI NAME = URI.create("flaky:///");
    private long cutAt = -1;
    private AtomicInteger cuts = new AtomicInteger();

    @Override
    public void initialize(URI name, Configuration conf) throws IOException {
      super.initialize(name, conf);
      cutAt = conf.getLong("flaky.cut-at", -1);
      cuts = CUTS.getOrDefault(conf.get("flaky.id", ""), new AtomicInteger());
    }

    @Override
    public URI getUri() {
      return NAME;
    }

    @Override
    public String getScheme() {
      return "flaky";
    }

    @Override
    public FSDataInputStream open(org.apache.hadoop.fs.Path f, int bufferSize) throws IOException {
      return new FSDataInputStream(new Cut(super.open(f, bufferSize)));
    }

    private final class Cut extends FSInputStream {
      private final FSDataInputStream in;

      Cut(FSDataInputStream in) {
        this.in = in;
      }

      @Override
      public int read() throws IOException {
        byte[] one = new byte[1];
        return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
      }

      @Override
      public int read(byte[] b, int off, int len) throws IOException {
        long pos = in.getPos();
        if (pos == cutAt && cuts.getAndUpdate(n -> n > 0 ? n - 1 : 0) > 0) {
          throw new IOException("Connection reset at byte " + cutAt);
        }
        int n = pos < cutAt ? (int) Math.min(len, cutAt - pos) : len;
        return in.read(b, off, n);
      }

      @Override
      public void seek(long pos) throws IOException {
        in.seek(pos);
      }

      @Override
      public long getPos() throws IOException {
        return in.getPos();
      }

      @Override
      public boolean seekToNewSource(long targetPos) {
        return false;
      }

      @Override
      public void close() throws IOException {
        in.close();
      }
    }
  }
}
