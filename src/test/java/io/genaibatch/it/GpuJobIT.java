package io.genaibatch.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.genaibatch.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job on a CUDA device: run where {@code nvidia-smi -L} lists one, and reported as skipped,
 * never passed, where none is. It needs the CUDA builds of onnxruntime and onnxruntime-genai: a
 * folder named by {@code GENAI_BATCH_CUDA_NATIVE_DIR} (the {@code onnxruntime_genai} folder of an
 * installed {@code onnxruntime-genai-cuda} wheel, with {@code onnxruntime-gpu}'s {@code
 * onnxruntime/capi} beside it), else they are installed into {@code target/cuda-venv} at the pinned
 * versions (README, "GPUs").
 */
class GpuJobIT {

  static boolean cudaDeviceVisible() {
    try {
      Process p = new ProcessBuilder("nvidia-smi", "-L").redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes());
      return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0 && out.contains("GPU 0");
    } catch (Exception e) {
      return false;
    }
  }

  /** The CUDA builds' GenAI folder: the one named, else a venv made for them at the pinned versions. */
  static Path cudaNativeDir() throws Exception {
    String named = System.getenv("GENAI_BATCH_CUDA_NATIVE_DIR");
    if (named != null) {
      return Path.of(named);
    }
    Path venv = Fixtures.projectDir().resolve("target/cuda-venv");
    Path python = venv.resolve("bin/python");
    List<String> pins = Files.readAllLines(Fixtures.projectDir().resolve("src/main/python/requirements.txt")).stream()
        .filter(l -> l.startsWith("onnxruntime"))
        .map(l -> l.replaceFirst("^onnxruntime-genai==", "onnxruntime-genai-cuda==")
            .replaceFirst("^onnxruntime==", "onnxruntime-gpu=="))
        .toList();
    if (!Files.isExecutable(python)) {
      run(List.of("python3", "-m", "venv", venv.toString()));
    }
    List<String> install = new java.util.ArrayList<>(List.of(python.toString(), "-m", "pip", "install", "-q"));
    install.addAll(pins);
    run(install);
    try (var found = Files.walk(venv.resolve("lib"), 3)) {
      return found.filter(p -> p.getFileName().toString().equals("onnxruntime_genai")).findFirst().orElseThrow();
    }
  }

  private static void run(List<String> cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).inheritIO().start();
    assertThat(p.waitFor(1800, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(String.join(" ", cmd)).isZero();
  }

  @Test
  void theJobScoresEveryRowOnTheGpu(@TempDir Path dir) throws Exception {
    assumeTrue(cudaDeviceVisible(), "no CUDA device here (nvidia-smi -L lists none): the job was not run on a GPU");
    Path in = RuntimeJobIT.prompts(dir);
    Path out = dir.resolve("out");
    Fixtures.ChildRun run = RuntimeJobIT.submit(dir, "gpu",
        Map.of("GENAI_BATCH_NATIVE_DIR", cudaNativeDir().toString()), List.of(),
        RuntimeJobIT.job(in, out, "--execution-provider", "cuda", "--max-error-rate", "0.5"));
    assertThat(run.code()).as(run.output()).isZero();
    JsonNode rows = Fixtures.readOutput(out);
    assertThat(rows.size()).isEqualTo(RuntimeJobIT.ROWS);
    // The rows the CPU cannot score are error rows here too; every other row has an answer.
    assertThat(RuntimeJobIT.errorIds(rows)).isEqualTo(RuntimeJobIT.BAD);
    System.out.println("[GpuJobIT] ran on: " + run.output().lines()
        .filter(l -> l.contains("onnxruntime-genai native library")).findFirst().orElse("?"));
  }
}
