package io.genaibatch.engine.natives;

import io.genaibatch.common.AtomicFiles;
import io.genaibatch.common.PrivateDirs;
import io.genaibatch.common.Sha256;
import io.genaibatch.engine.EngineException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds an onnxruntime-genai native library that loads on this machine and points the Java
 * binding ({@code ai.onnxruntime.genai}) at it, before any binding class is touched.
 *
 * <p>Why this exists: the one published build of the Java binding bundles a {@code
 * libonnxruntime-genai.so} that needs glibc 2.38, so it does not load on Debian 12 or Ubuntu
 * 22.04. The PyPI wheel {@code onnxruntime-genai} ships a manylinux build exporting the same C
 * API. The binding's own loader only knows its jar and fixed paths, so this class probes the
 * candidates in order, keeps the first pair (GenAI library plus the ONNX Runtime it was built
 * for) that loads, and hands exactly those files to the binding through its documented
 * {@code onnxruntime-genai.native.<lib>.path} properties.
 *
 * <p>Search order, first that loads wins:
 *
 * <ol>
 *   <li>The user's own choice: the binding's {@code -Donnxruntime-genai.native.path=DIR} or
 *       {@code -Donnxruntime-genai.native.onnxruntime-genai.path=FILE}; nothing is probed.
 *   <li>{@code -Dgenaibatch.native.dir=DIR} or the environment variable {@code
 *       GENAI_BATCH_NATIVE_DIR}: a folder holding {@code libonnxruntime-genai.so} and, beside it
 *       or in {@code ../onnxruntime/capi}, {@code libonnxruntime.so*}.
 *   <li>The libraries bundled in the binding's jar (glibc 2.38 and newer).
 *   <li>An installed {@code onnxruntime-genai} wheel: in {@code $VIRTUAL_ENV}, in {@code .venv}
 *       under the working directory, {@code -Dgenaibatch.project.dir} or the directory above
 *       the jar, then in the site-packages of {@code $PYSPARK_PYTHON} and of {@code python3} on the
 *       {@code PATH}.
 * </ol>
 *
 * <p>When none loads, {@link #ensureLoaded()} throws an {@link EngineException} listing every
 * place tried and why each failed. Thread-safe; the probe runs once per JVM.
 */
public final class NativeLibraries {
  private static final Logger LOG = LoggerFactory.getLogger(NativeLibraries.class);

  public static final String BINDING_DIR_PROPERTY = "onnxruntime-genai.native.path";
  public static final String PROP_PREFIX = "onnxruntime-genai.native.";
  public static final String NATIVE_DIR_PROPERTY = "genaibatch.native.dir";
  public static final String NATIVE_DIR_ENV = "GENAI_BATCH_NATIVE_DIR";
  public static final String PROJECT_DIR_PROPERTY = "genaibatch.project.dir";

  private static final String GENAI = "onnxruntime-genai";
  private static final String ORT = "onnxruntime";
  private static final String GENAI_FILE = "libonnxruntime-genai.so";

  private static volatile String loadedFrom;

  private NativeLibraries() {}

  /**
   * Makes sure a working onnxruntime-genai native library is loaded, probing the candidates in
   * the documented order on the first call.
   *
   * @return a description of the library that was loaded
   * @throws EngineException naming every place tried when none loads
   */
  public static synchronized String ensureLoaded() {
    if (loadedFrom != null) {
      return loadedFrom;
    }
    if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux")) {
      // Off Linux the binding's own bundled libraries are the only candidates it knows.
      loadedFrom = initBinding("the onnxruntime-genai jar (" + System.getProperty("os.name") + ")");
      return loadedFrom;
    }
    if (System.getProperty(BINDING_DIR_PROPERTY) != null
        || System.getProperty(PROP_PREFIX + GENAI + ".path") != null) {
      String where =
          Optional.ofNullable(System.getProperty(BINDING_DIR_PROPERTY))
              .orElse(System.getProperty(PROP_PREFIX + GENAI + ".path"));
      loadedFrom = initBinding("user setting " + where);
      return loadedFrom;
    }

    List<String> tried = new ArrayList<>();
    for (Candidate c : candidates(tried)) {
      String failure = tryLoad(c);
      if (failure == null) {
        loadedFrom = initBinding(c.description + " (" + c.genai + ")");
        LOG.info("onnxruntime-genai native library: {}", loadedFrom);
        return loadedFrom;
      }
      tried.add(c.description + ": " + failure);
    }
    throw new EngineException(
        "Cannot load the onnxruntime-genai native library. Tried, in order:\n  - "
            + String.join("\n  - ", tried)
            + "\nFix: run jobs/setup.sh (it installs the onnxruntime-genai wheel into .venv), or"
            + " `pip install onnxruntime-genai==0.12.0` on every node, or point -D"
            + NATIVE_DIR_PROPERTY
            + "=DIR (or "
            + NATIVE_DIR_ENV
            + ") at a folder holding "
            + GENAI_FILE
            + " built for this machine's glibc.");
  }

  /**
   * The folder of the native onnxruntime loaded for the GenAI library, where onnxruntime looks for
   * its execution providers' libraries; empty when the binding was pointed at its libraries by the
   * user's own properties.
   */
  public static synchronized Optional<Path> onnxRuntimeDir() {
    ensureLoaded();
    return Optional.ofNullable(System.getProperty(PROP_PREFIX + ORT + ".path")).map(p -> Paths.get(p).getParent());
  }

  /** onnxruntime's Java API property naming the native library it loads. */
  static final String ORT_JAVA_PROPERTY = "onnxruntime.native.onnxruntime.path";

  /**
   * Points onnxruntime's Java API ({@code ai.onnxruntime}) at the native onnxruntime the GenAI
   * library loaded, before its first class is touched, so the process holds one copy of it: loading
   * the same file again is a no-op, and the Java API's JNI layer binds to it by its soname. A user's
   * own setting of that property is kept.
   */
  public static synchronized void shareOnnxRuntime() {
    ensureLoaded();
    String ort = System.getProperty(PROP_PREFIX + ORT + ".path");
    if (ort == null && System.getProperty(BINDING_DIR_PROPERTY) != null) {
      ort = Paths.get(System.getProperty(BINDING_DIR_PROPERTY), "libonnxruntime.so").toString();
    }
    if (ort != null && System.getProperty(ORT_JAVA_PROPERTY) == null && System.getProperty("onnxruntime.native.path") == null) {
      System.setProperty(ORT_JAVA_PROPERTY, ort);
    }
  }

  /** One GenAI library and the ONNX Runtime library to load before it. */
  private record Candidate(String description, Path genai, Path ort) {}

  private static List<Candidate> candidates(List<String> tried) {
    List<Candidate> out = new ArrayList<>();
    String dir = System.getProperty(NATIVE_DIR_PROPERTY, System.getenv(NATIVE_DIR_ENV));
    if (dir != null && !dir.isBlank()) {
      Path genai = Paths.get(dir).resolve(GENAI_FILE);
      Path ort = findOrt(Paths.get(dir)).or(() -> findOrt(Paths.get(dir, "..", "onnxruntime", "capi"))).orElse(null);
      if (!Files.isRegularFile(genai)) {
        tried.add(NATIVE_DIR_PROPERTY + "=" + dir + ": no " + GENAI_FILE + " there");
      } else {
        out.add(new Candidate(NATIVE_DIR_PROPERTY + "=" + dir, genai, ort));
      }
    }
    try {
      Path genai = extractResource("/ai/onnxruntime/genai/native/linux-x64/" + GENAI_FILE);
      Path ort = extractResource("/ai/onnxruntime/native/linux-x64/libonnxruntime.so");
      if (genai != null && ort != null) {
        out.add(new Candidate("the onnxruntime-genai jar", genai, ort));
      } else {
        tried.add("the onnxruntime-genai jar: no linux-x64 libraries on the class path");
      }
    } catch (IOException e) {
      tried.add("the onnxruntime-genai jar: cannot extract its libraries: " + e.getMessage());
    }
    for (Path sitePackages : sitePackages(tried)) {
      Path genai = sitePackages.resolve("onnxruntime_genai").resolve(GENAI_FILE);
      if (Files.isRegularFile(genai)) {
        out.add(
            new Candidate(
                "onnxruntime-genai wheel in " + sitePackages,
                genai,
                findOrt(sitePackages.resolve("onnxruntime").resolve("capi")).orElse(null)));
      } else {
        tried.add(sitePackages + ": no onnxruntime_genai/" + GENAI_FILE);
      }
    }
    return out;
  }

  /**
   * Loads one pair; returns null on success, else why it failed.
   *
   * <p>Why a staging folder: the GenAI library's constructor dlopens ONNX Runtime at once, looking
   * for {@code libonnxruntime.so} first on the library path, then beside itself, and aborts the
   * process (an uncaught C++ exception, not an error Java can catch) when it finds none. So the
   * pair is linked side by side into a folder of its own and loaded from there, and nothing is
   * loaded before the GenAI library: a build too new for this glibc then fails cleanly, with no
   * ONNX Runtime left behind to shadow the next candidate's.
   */
  private static String tryLoad(Candidate c) {
    if (c.ort == null) {
      return "no libonnxruntime.so beside " + c.genai;
    }
    Path genai;
    Path ort;
    try {
      Path dir = stagingDir(c.genai.toAbsolutePath() + "|" + c.ort.toAbsolutePath());
      genai = link(dir.resolve(GENAI_FILE), c.genai);
      ort = link(dir.resolve("libonnxruntime.so"), c.ort);
      // Each looks for its execution providers' libraries beside itself: onnxruntime for CUDA's and
      // TensorRT's, the GenAI library of a CUDA build for libonnxruntime-genai-cuda.so.
      linkAll(dir, c.ort.toAbsolutePath().getParent(), "libonnxruntime_providers_*.so");
      linkAll(dir, c.genai.toAbsolutePath().getParent(), "libonnxruntime-genai-*.so");
    } catch (IOException e) {
      return "cannot stage the libraries: " + e;
    }
    try {
      System.load(genai.toString());
    } catch (UnsatisfiedLinkError e) {
      return e.getMessage();
    }
    System.setProperty(PROP_PREFIX + GENAI + ".path", genai.toString());
    System.setProperty(PROP_PREFIX + ORT + ".path", ort.toString());
    return null;
  }

  private static void linkAll(Path dir, Path from, String glob) throws IOException {
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(from, glob)) {
      for (Path p : ds) {
        link(dir.resolve(p.getFileName()), p);
      }
    }
  }

  private static Path stagingDir(String key) throws IOException {
    Path dir = privateRoot().resolve("pair-" + Sha256.hexPrefix(key, 16));
    Files.createDirectories(dir);
    return dir;
  }

  /** {@code $TMPDIR/genai-batch-native-$USER}, this user's alone (checked): what is staged there is loaded. */
  private static Path privateRoot() throws IOException {
    return PrivateDirs.ensure(Paths.get(System.getProperty("java.io.tmpdir"),
        "genai-batch-native-" + System.getProperty("user.name", "user")),
        "Remove it, or point -Djava.io.tmpdir at a folder of your own.");
  }

  /**
   * Places {@code target} at {@code link} as a hard link, or a copy across file systems. Not a
   * symbolic link: the GenAI library resolves its own real path to look for ONNX Runtime beside
   * it. Made under a temporary name and renamed, so concurrent JVMs never see half a file.
   */
  private static Path link(Path link, Path target) throws IOException {
    Path abs = target.toAbsolutePath();
    // The hard link made last time is the source itself (one file): no bytes to read. A copy (made
    // across file systems) is read and compared, at every start.
    if (Files.isRegularFile(link, LinkOption.NOFOLLOW_LINKS) && (Files.isSameFile(link, abs)
        || (Files.size(link) == Files.size(abs) && Sha256.ofFile(link).equals(Sha256.ofFile(abs))))) {
      return link;
    }
    return AtomicFiles.write(link, tmp -> {
      try {
        Files.createLink(tmp, abs);
      } catch (IOException | UnsupportedOperationException e) {
        Files.copy(abs, tmp, StandardCopyOption.REPLACE_EXISTING);
      }
    });
  }

  /** Runs the binding's static initialiser (which loads the JNI layer) and reports errors. */
  private static String initBinding(String description) {
    try {
      Class.forName("ai.onnxruntime.genai.Model", true, NativeLibraries.class.getClassLoader());
    } catch (Throwable e) {
      Throwable root = e;
      while (root.getCause() != null) {
        root = root.getCause();
      }
      throw new EngineException(
          "onnxruntime-genai native library from " + description + " did not initialise: " + root,
          e);
    }
    return description;
  }

  private static Optional<Path> findOrt(Path dir) {
    if (!Files.isDirectory(dir)) {
      return Optional.empty();
    }
    Path plain = dir.resolve("libonnxruntime.so");
    if (Files.isRegularFile(plain)) {
      return Optional.of(plain);
    }
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "libonnxruntime.so.*")) {
      for (Path p : ds) {
        return Optional.of(p);
      }
    } catch (IOException e) {
      return Optional.empty();
    }
    return Optional.empty();
  }

  private static List<Path> sitePackages(List<String> tried) {
    Set<Path> roots = new LinkedHashSet<>();
    String venv = System.getenv("VIRTUAL_ENV");
    if (venv != null) {
      roots.add(Paths.get(venv));
    }
    roots.add(Paths.get(System.getProperty("user.dir"), ".venv"));
    String project = System.getProperty(PROJECT_DIR_PROPERTY);
    if (project != null) {
      roots.add(Paths.get(project, ".venv"));
    }
    jarDir().ifPresent(d -> {
      roots.add(d.resolve(".venv"));
      if (d.getParent() != null) {
        roots.add(d.getParent().resolve(".venv"));
      }
    });
    List<Path> out = new ArrayList<>();
    for (Path root : roots) {
      Path lib = root.resolve("lib");
      if (!Files.isDirectory(lib)) {
        continue;
      }
      try (DirectoryStream<Path> ds = Files.newDirectoryStream(lib, "python3*")) {
        for (Path py : ds) {
          Path sp = py.resolve("site-packages");
          if (Files.isDirectory(sp)) {
            out.add(sp.normalize());
          }
        }
      } catch (IOException e) {
        tried.add(lib + ": " + e.getMessage());
      }
    }
    // The Python Spark runs for PySpark (Databricks: /databricks/python3/bin/python3), then python3.
    Set<String> pythons = new LinkedHashSet<>();
    if (System.getenv("PYSPARK_PYTHON") != null) {
      pythons.add(System.getenv("PYSPARK_PYTHON"));
    }
    pythons.add("python3");
    for (String python : pythons) {
      pythonSitePackages(python, tried).ifPresent(p -> {
        if (!out.contains(p)) {
          out.add(p);
        }
      });
    }
    return out;
  }

  /** Asks a Python where its packages live; once per JVM, only when probing. */
  private static Optional<Path> pythonSitePackages(String python, List<String> tried) {
    try {
      Process p =
          new ProcessBuilder(
                  python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
              .redirectErrorStream(true)
              .start();
      if (!p.waitFor(20, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        tried.add(python + ": did not answer in 20 s");
        return Optional.empty();
      }
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      if (p.exitValue() == 0 && !out.isEmpty()) {
        return Optional.of(Paths.get(out).normalize());
      }
      tried.add(python + ": " + out);
    } catch (IOException e) {
      tried.add(python + ": not found");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return Optional.empty();
  }

  private static Optional<Path> jarDir() {
    try {
      var src = NativeLibraries.class.getProtectionDomain().getCodeSource();
      if (src == null) {
        return Optional.empty();
      }
      Path p = Paths.get(src.getLocation().toURI());
      return Optional.ofNullable(p.getParent());
    } catch (Exception e) {
      return Optional.empty();
    }
  }

  /**
   * Copies a class-path resource to a per-user folder named by its content hash, so that
   * concurrent JVMs on one host share one copy and never load a half-written file.
   */
  private static Path extractResource(String resource) throws IOException {
    byte[] bytes;
    try (InputStream in = NativeLibraries.class.getResourceAsStream(resource)) {
      if (in == null) {
        return null;
      }
      bytes = in.readAllBytes();
    }
    String hash = Sha256.hexPrefix(bytes, 64);
    Path dir = privateRoot().resolve(hash.substring(0, 16));
    Files.createDirectories(dir);
    Path target = dir.resolve(resource.substring(resource.lastIndexOf('/') + 1));
    // Loaded only when its bytes are the resource's: a file of the same name is not enough.
    if (Files.isRegularFile(target, LinkOption.NOFOLLOW_LINKS) && Files.size(target) == bytes.length
        && Sha256.ofFile(target).equals(hash)) {
      return target;
    }
    return AtomicFiles.write(target, tmp -> Files.write(tmp, bytes));
  }
}
