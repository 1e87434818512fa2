package io.genaibatch.engine.natives;

import ai.onnxruntime.genai.Config;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Where onnxruntime-genai runs a model: {@code cpu} (the default) or one of the execution
 * providers its configuration API takes by name, with that provider's options. Applied to the
 * model's {@link Config} before the model is made ({@link #applyTo}); the CPU clears every provider
 * the model folder's {@code genai_config.json} may name, so {@code cpu} always means the CPU.
 *
 * @param name the provider's name as onnxruntime-genai spells it ({@link #NAMES})
 * @param options the provider's options ({@code device_id}, {@code enable_cuda_graph}, ...)
 */
public record ExecutionProvider(String name, Map<String, String> options) implements Serializable {
  public static final String CPU = "cpu";
  /** The providers this job offers on Linux, as onnxruntime-genai's configuration names them. */
  public static final List<String> NAMES = List.of(CPU, "cuda", "NvTensorRtRtx", "openvino", "webgpu");
  public static final String DEVICE_ID = "device_id";

  public ExecutionProvider {
    options = Collections.unmodifiableMap(new LinkedHashMap<>(options));
  }

  /**
   * The provider named {@code name} (any case) with {@code options}.
   *
   * @throws IllegalArgumentException naming the providers there are, or the option that is empty
   */
  public static ExecutionProvider of(String name, Map<String, String> options) {
    String canonical = NAMES.stream().filter(n -> n.equalsIgnoreCase(name)).findFirst().orElseThrow(
        () -> new IllegalArgumentException("execution_provider '" + name + "' is not one genai-batch can use; use one"
            + " of " + String.join(", ", NAMES)));
    options.forEach((k, v) -> {
      if (k == null || k.isBlank() || v == null || v.isBlank()) {
        throw new IllegalArgumentException("provider_options " + k + "=" + v + ": every option needs a name and a"
            + " value, e.g. device_id=0");
      }
    });
    if (canonical.equals(CPU) && !options.isEmpty()) {
      throw new IllegalArgumentException("provider_options " + options.keySet() + " were given, but execution_provider"
          + " is cpu, which takes none: set --execution-provider (e.g. cuda) or drop the options");
    }
    return new ExecutionProvider(canonical, options);
  }

  public static ExecutionProvider cpu() {
    return new ExecutionProvider(CPU, Map.of());
  }

  public boolean isCpu() {
    return name.equals(CPU);
  }

  /** This provider on the accelerator Spark gave a task ({@code address}, e.g. "1"). */
  public ExecutionProvider onDevice(String address) {
    Map<String, String> o = new LinkedHashMap<>(options);
    o.put(DEVICE_ID, address);
    return new ExecutionProvider(name, o);
  }

  /** Sets the model's providers to this one alone, with its options. */
  public void applyTo(Config config) {
    config.clearProviders();
    if (isCpu()) {
      return;
    }
    config.appendProvider(name);
    options.forEach((k, v) -> config.setProviderOption(name, k, v));
  }

  /**
   * Why the onnxruntime library in {@code ortDir} cannot run this provider, when a file it needs
   * is missing there: the provider's shared library, which only its onnxruntime build ships.
   */
  public Optional<String> missingIn(Path ortDir) {
    String file = switch (name) {
      case "cuda" -> "libonnxruntime_providers_cuda.so";
      case "NvTensorRtRtx" -> "libonnxruntime_providers_nv_tensorrt_rtx.so";
      case "openvino" -> "libonnxruntime_providers_openvino.so";
      default -> null; // the CPU, and webgpu where a build has it, are inside libonnxruntime itself
    };
    if (file == null || Files.isRegularFile(ortDir.resolve(file))) {
      return Optional.empty();
    }
    return Optional.of("execution_provider " + name + " needs " + file + " beside the onnxruntime library in " + ortDir
        + ", and it is not there: this is a CPU build. " + installHint());
  }

  /** What to install for this provider. */
  public String installHint() {
    return switch (name) {
      case "cuda" -> "Install the CUDA builds, onnxruntime-gpu and onnxruntime-genai-cuda, at the versions of"
          + " src/main/python/requirements.txt (pip install onnxruntime-gpu==VERSION onnxruntime-genai-cuda==VERSION),"
          + " in place of onnxruntime and onnxruntime-genai, or point " + NativeLibraries.NATIVE_DIR_ENV
          + " at a folder that holds them (README, 'GPUs')";
      case "NvTensorRtRtx" -> "Install the onnxruntime and onnxruntime-genai builds with the NvTensorRtRtx provider"
          + " and point " + NativeLibraries.NATIVE_DIR_ENV + " at them";
      case "openvino" -> "Install onnxruntime-openvino and point " + NativeLibraries.NATIVE_DIR_ENV + " at a folder"
          + " with it and an onnxruntime-genai built for it";
      default -> "Use an onnxruntime build with the " + name + " provider (" + NativeLibraries.NATIVE_DIR_ENV + ")";
    };
  }

  @Override
  public String toString() {
    return options.isEmpty() ? name : name + options;
  }
}
