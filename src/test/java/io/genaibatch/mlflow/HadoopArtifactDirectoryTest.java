package io.genaibatch.mlflow;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
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
}
