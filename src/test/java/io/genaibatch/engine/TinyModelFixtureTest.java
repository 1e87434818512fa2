package io.genaibatch.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.testing.Fixtures;
import java.nio.file.Files;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The committed tiny model is exactly what the committed script makes. */
class TinyModelFixtureTest {

  @Test
  void theScriptReproducesTheCommittedModel() throws Exception {
    Process p = new ProcessBuilder(Fixtures.python().toString(),
        Fixtures.projectDir().resolve("src/main/python/genai_batch/make_tiny_phi3.py").toString(),
        "--out", Fixtures.tinyModel().toString(), "--check").redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    assertThat(p.waitFor(300, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(out).isZero();
    assertThat(out).doesNotContain("DIFFERS");
    // A few MB at most, Phi-3's shape where it matters.
    long bytes;
    try (var s = Files.list(Fixtures.tinyModel())) {
      bytes = s.mapToLong(f -> f.toFile().length()).sum();
    }
    assertThat(bytes).isLessThan(8L * 1024 * 1024);
    GenAiConfig cfg = GenAiConfig.read(Fixtures.tinyModel());
    assertThat(cfg.modelType()).isEqualTo("phi3");
    assertThat(cfg.vocabSize()).isEqualTo(32064);
    assertThat(cfg.eosTokenIds()).containsExactly(32007, 32001, 32000);
  }
}
