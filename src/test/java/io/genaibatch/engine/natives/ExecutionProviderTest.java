package io.genaibatch.engine.natives;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The execution provider setting: what it accepts, what it refuses and why, and that it reaches the
 * native configuration (the CPU named explicitly gives the default's answers; CUDA asked of this
 * CPU build of onnxruntime is refused naming what to install).
 */
class ExecutionProviderTest {
  private static final List<String> PROMPTS = List.of("The capital of France is", "One, two, three,");

  @Test
  void namesAreTakenInAnyCaseAndUnknownOnesAreRefusedListingTheOthers() {
    assertThat(ExecutionProvider.of("CUDA", Map.of("device_id", "1")).name()).isEqualTo("cuda");
    assertThat(ExecutionProvider.of("nvtensorrtrtx", Map.of()).name()).isEqualTo("NvTensorRtRtx");
    assertThatThrownBy(() -> ExecutionProvider.of("tpu", Map.of()))
        .hasMessageContaining("execution_provider 'tpu'").hasMessageContaining("cpu, cuda");
    assertThatThrownBy(() -> ExecutionProvider.of("cpu", Map.of("device_id", "0")))
        .hasMessageContaining("execution_provider is cpu, which takes none");
    assertThatThrownBy(() -> ExecutionProvider.of("cuda", Map.of("device_id", " ")))
        .hasMessageContaining("every option needs a name and a value");
  }

  @Test
  void aTasksGpuBecomesTheDeviceIdAndKeepsTheOtherOptions() {
    ExecutionProvider p = ExecutionProvider.of("cuda", Map.of("enable_cuda_graph", "1", "device_id", "0"));
    assertThat(p.onDevice("3").options()).containsEntry("device_id", "3").containsEntry("enable_cuda_graph", "1");
    assertThat(p.options()).containsEntry("device_id", "0");
  }

  @Test
  void aProviderWhoseLibraryIsMissingNamesTheFileAndThePackages(@TempDir Path ort) throws Exception {
    ExecutionProvider cuda = ExecutionProvider.of("cuda", Map.of());
    assertThat(cuda.missingIn(ort)).hasValueSatisfying(why -> assertThat(why)
        .contains("libonnxruntime_providers_cuda.so").contains("onnxruntime-gpu").contains("onnxruntime-genai-cuda"));
    Files.createFile(ort.resolve("libonnxruntime_providers_cuda.so"));
    assertThat(cuda.missingIn(ort)).isEmpty();
    assertThat(ExecutionProvider.cpu().missingIn(ort)).isEmpty();
  }

  @Test
  void cpuNamedExplicitlyGivesTheDefaultsAnswers() {
    SearchOptions greedy = SearchOptions.greedy(8);
    List<Generation> byDefault;
    try (LlmModel m = LlmModel.load(Fixtures.tinyModel(), 1, false)) {
      byDefault = m.generate(PROMPTS, greedy);
    }
    try (LlmModel m = LlmModel.load(Fixtures.tinyModel(), 1, false, ExecutionProvider.of("CPU", Map.of()))) {
      assertThat(m.generate(PROMPTS, greedy)).extracting(Generation::text)
          .isEqualTo(byDefault.stream().map(Generation::text).toList());
    }
  }

  @Test
  void cudaAskedOfThisCpuBuildIsRefusedAtLoadNamingWhatToInstall() {
    assertThatThrownBy(() -> LlmModel.load(Fixtures.tinyModel(), 1, true, ExecutionProvider.of("cuda", Map.of())))
        .isInstanceOf(EngineException.class)
        .hasMessageContaining("libonnxruntime_providers_cuda.so")
        .hasMessageContaining("pip install onnxruntime-gpu==");
  }

  @Test
  void theProviderReachesTheNativeConfiguration() {
    // webgpu needs no library of its own, so nothing is checked before the native load, which this
    // CPU build of onnxruntime refuses by the provider's name.
    assertThatThrownBy(() -> LlmModel.load(Fixtures.tinyModel(), 1, false, ExecutionProvider.of("webgpu", Map.of())))
        .isInstanceOf(EngineException.class)
        .hasMessageContaining("on execution provider webgpu: WebGPU")
        .hasMessageContaining("Use an onnxruntime build with the webgpu provider");
  }
}
