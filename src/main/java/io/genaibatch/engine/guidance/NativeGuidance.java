package io.genaibatch.engine.guidance;

import ai.onnxruntime.genai.GenAIException;
import ai.onnxruntime.genai.Generator;
import ai.onnxruntime.genai.GeneratorParams;
import ai.onnxruntime.genai.Model;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Pointer;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.natives.NativeLibraries;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;
import java.util.Optional;

/**
 * Structured output through onnxruntime-genai's C call {@code OgaGeneratorParamsSetGuidance},
 * which the 0.12.0 Java binding does not expose.
 *
 * <p>The call is made through JNA on the very library file {@link NativeLibraries} loaded (the
 * path it leaves in {@code onnxruntime-genai.native.onnxruntime-genai.path}); it is opened with
 * {@code RTLD_NOLOAD}, so it can only ever return the copy already in the process, never load a
 * second one. The C signature, as the 0.12.0 header declares it and the wheel's library takes it
 * (four arguments; older headers had three):
 *
 * <pre>{@code
 * OgaResult* OgaGeneratorParamsSetGuidance(OgaGeneratorParams* params, const char* type,
 *                                          const char* data, bool enable_ff_tokens);
 * }</pre>
 *
 * <p>Where failures surface, measured with the wheel's library: {@code SetGuidance} only stores
 * the type and data and returns no error even for a bad grammar, schema or type. The grammar is
 * compiled by llguidance when the generator is made, one constraint per row, so a bad one fails
 * {@code new Generator(model, params)} with the native text (e.g. {@code Error creating grammar:
 * at 1(8): unknown name: "foo"}); {@link #newGenerator} turns that into an {@link
 * EngineException}. A library built without llguidance (the binding jar's own, {@code
 * use_guidance=false}) is worse: its generator only logs {@code No supported
 * ConstrainedLogitsProcessor found} and then generates unconstrained. So {@link #apply} refuses
 * such a library itself, before anything is set, by looking for llguidance's C entry point
 * {@code llg_new_constraint} in it.
 */
public final class NativeGuidance {
  /** dlopen flags: resolve lazily and fail rather than load a library not already loaded (glibc). */
  private static final int RTLD_LAZY_NOLOAD = 0x1 | 0x4;
  /** How JNA opens the loaded library: UTF-8 strings, never a second copy of the library. */
  private static final Map<String, Object> OPTIONS =
      Map.of(Library.OPTION_STRING_ENCODING, "UTF-8", Library.OPTION_OPEN_FLAGS, RTLD_LAZY_NOLOAD);

  /** The symbol that only a build with llguidance ({@code use_guidance=true}) exports. */
  static final String GUIDANCE_SYMBOL = "llg_new_constraint";

  private static volatile Bound bound;

  private NativeGuidance() {}

  /**
   * The three C functions used, declared for JNA, which maps each to the native symbol of its
   * name: JNA converts the strings to NUL-terminated UTF-8 (the encoding option below) and the
   * {@code OgaResult*} to a {@link Pointer}. What JNA does not do is written by hand in {@link
   * #apply}: reading the error text out of a non-null result and freeing the result.
   */
  interface OgaC extends Library {
    /** {@code bool} is one byte in the C ABI: passed as a {@code byte}, 0 or 1. */
    Pointer OgaGeneratorParamsSetGuidance(Pointer params, String type, String data, byte enableFfTokens);

    String OgaResultGetError(Pointer result);

    void OgaDestroyResult(Pointer result);
  }

  /** The library the binding uses, bound once per JVM. */
  private record Bound(Path path, OgaC c, String guidanceMissing) {}

  /**
   * Sets {@code guidance} on {@code params}, fast-forward tokens off (onnxruntime-genai allows
   * them only for one row with no beam search, and a batch has several rows).
   *
   * @throws EngineException with the native error text when the call fails, or naming the library
   *     and the fix when it was built without guidance support
   */
  public static void apply(GeneratorParams params, Guidance guidance) {
    Bound b = bind();
    if (b.guidanceMissing != null) {
      throw new EngineException(b.guidanceMissing);
    }
    Pointer result =
        b.c.OgaGeneratorParamsSetGuidance(
            new Pointer(handleOf(params)), guidance.type(), guidance.data(), (byte) 0);
    if (result == null) {
      return;
    }
    String error;
    try {
      error = b.c.OgaResultGetError(result);
    } finally {
      b.c.OgaDestroyResult(result);
    }
    throw new EngineException("onnxruntime-genai refused the " + guidance.type() + " guidance: " + error);
  }

  /**
   * Why this JVM's onnxruntime-genai library cannot constrain answers, when it can be told: the
   * message of {@link #apply} for a library built without llguidance. Empty when it can, or when no
   * library loads here (a driver without the native library leaves the answer to the executors).
   */
  public static Optional<String> unavailable() {
    try {
      return Optional.ofNullable(bind().guidanceMissing);
    } catch (EngineException e) {
      return Optional.empty();
    }
  }

  /**
   * Makes the generator for {@code params} that carry guidance: this is where the native side
   * compiles the grammar, so a bad one fails here.
   *
   * @throws EngineException carrying the native error text (e.g. {@code Error creating grammar:
   *     ...}) when the generator cannot be made
   */
  public static Generator newGenerator(Model model, GeneratorParams params, Guidance guidance) {
    try {
      return new Generator(model, params);
    } catch (GenAIException e) {
      throw new EngineException(
          "onnxruntime-genai cannot start generating with the " + guidance.type() + " guidance: " + e.getMessage(), e);
    }
  }

  /**
   * {@code api}'s functions bound on the GenAI library already in this process, as this class binds
   * its own (llguidance's C API for {@link Llguidance}).
   */
  static <T extends Library> T bindLoaded(Class<T> api) {
    return Native.load(bind().path().toString(), api, OPTIONS);
  }

  private static Bound bind() {
    Bound b = bound;
    if (b != null) {
      return b;
    }
    synchronized (NativeGuidance.class) {
      if (bound == null) {
        NativeLibraries.ensureLoaded();
        Path path = loadedLibrary();
        bound = bind(path);
      }
      return bound;
    }
  }

  /** Binds the functions of an already loaded library and checks it for llguidance. */
  static Bound bind(Path path) {
    NativeLibrary lib;
    try {
      lib = NativeLibrary.getInstance(path.toString(), OPTIONS);
    } catch (UnsatisfiedLinkError e) {
      throw new EngineException(
          "Cannot reach the loaded onnxruntime-genai library " + path + " for guidance: " + e.getMessage(), e);
    }
    return new Bound(path, Native.load(path.toString(), OgaC.class, OPTIONS), guidanceMissing(lib, path));
  }

  /** Null when {@code lib} has llguidance, else the message that says so and how to fix it. */
  static String guidanceMissing(NativeLibrary lib, Path path) {
    try {
      lib.getFunction(GUIDANCE_SYMBOL);
      return null;
    } catch (UnsatisfiedLinkError e) {
      return "The onnxruntime-genai library "
          + path
          + " was built without guidance (llguidance, use_guidance=true), so it cannot constrain"
          + " answers to a response format: it would log a warning and generate unconstrained."
          + " The binding jar's own library is such a build, and on glibc 2.38+ the loader takes it"
          + " before any wheel. Fix: `pip install onnxruntime-genai==0.12.0` (its wheel is built"
          + " with guidance) and point -D"
          + NativeLibraries.NATIVE_DIR_PROPERTY
          + " (or "
          + NativeLibraries.NATIVE_DIR_ENV
          + ") at the wheel's onnxruntime_genai folder in site-packages, which the loader tries"
          + " first; or run without a response format.";
    }
  }

  /** The GenAI library file the binding loaded, from the properties NativeLibraries or the user set. */
  private static Path loadedLibrary() {
    String file = System.getProperty(NativeLibraries.PROP_PREFIX + "onnxruntime-genai.path");
    if (file == null) {
      String dir = System.getProperty(NativeLibraries.BINDING_DIR_PROPERTY);
      if (dir != null) {
        file = Paths.get(dir, "libonnxruntime-genai.so").toString();
      }
    }
    if (file == null || !Files.isRegularFile(Paths.get(file))) {
      throw new EngineException(
          "Guidance (a response format) needs the onnxruntime-genai library's path, which is known"
              + " only on Linux when the library comes from -D"
              + NativeLibraries.NATIVE_DIR_PROPERTY
              + ", the binding jar or a wheel; found "
              + (file == null ? "none" : file + ", not a file"));
    }
    return Paths.get(file).toAbsolutePath();
  }

  /**
   * The {@code OgaGeneratorParams*} behind {@code params}. The binding keeps it in a
   * package-private {@code nativeHandle()} and offers no public way to it; the binding is on the
   * class path (the unnamed module, as this class), so {@code setAccessible} is allowed without
   * {@code --add-opens}.
   */
  private static long handleOf(GeneratorParams params) {
    try {
      Method m = GeneratorParams.class.getDeclaredMethod("nativeHandle");
      m.setAccessible(true);
      long handle = (long) m.invoke(params);
      if (handle == 0) {
        throw new EngineException("The generator params are closed; cannot set guidance on them");
      }
      return handle;
    } catch (NoSuchMethodException | IllegalAccessException | InvocationTargetException e) {
      throw new EngineException(
          "This onnxruntime-genai Java binding has no GeneratorParams.nativeHandle() (built for 0.12.0): " + e, e);
    }
  }
}
