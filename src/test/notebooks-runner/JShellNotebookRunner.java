import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import jdk.jshell.Diag;
import jdk.jshell.EvalException;
import jdk.jshell.JShell;
import jdk.jshell.JShellException;
import jdk.jshell.Snippet;
import jdk.jshell.SnippetEvent;
import jdk.jshell.SourceCodeAnalysis;
import jdk.jshell.UnresolvedReferenceException;

/**
 * Runs the code cells of a Java notebook (IJava kernel, {@code .ipynb}) top to bottom through
 * JShell, the way IJava does: each cell is split into complete snippets with JShell's own source
 * analysis (so a statement may span lines, e.g. a builder chain with leading dots), and the
 * snippets run in a remote JVM. Lines that start with {@code %} (IJava line magics such as
 * {@code %classpath}) are skipped, and so are cells that start with {@code %%}: the runner sets the
 * class path itself.
 *
 * <p>Why not {@code jshell FILE}: the jshell tool reads a script line by line and runs each line that
 * is complete on its own, so {@code new GenAiTransformer()} followed by {@code .setModelUri(...)} on
 * the next line fails there, while it works in IJava and in any Java file. The JShell API below is
 * what the tool and IJava both use; the remote JVM gets what {@code jshell --class-path CP -R...}
 * would give it.
 *
 * <p>Run it from the repository root, with Jackson on the launcher's class path (Spark's jars have
 * it):
 *
 * <pre>
 * java -cp ".venv/lib/python3.11/site-packages/pyspark/jars/*" \
 *     src/test/notebooks-runner/JShellNotebookRunner.java notebooks/score_prompts_java.ipynb [-R&lt;jvm option&gt;...]
 * </pre>
 *
 * <p>The notebook's class path is Spark's jars ({@code $SPARK_HOME/jars}, else the pinned pyspark
 * in {@code .venv}) then {@code $GENAI_BATCH_JAR}, else {@code target/genai-batch-spark4_2.13.jar}, as under
 * jobs/spark-submit.sh; the remote JVM gets
 * Spark's module flags (pom.xml property {@code spark.java.opts}) and every {@code -R} option
 * given. The first snippet that does not compile, has unresolved references or throws stops the
 * run with exit code 1; exit code 0 means every cell ran.
 */
public final class JShellNotebookRunner {
  private JShellNotebookRunner() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: JShellNotebookRunner NOTEBOOK.ipynb [-R<jvm option>...]");
      System.exit(2);
    }
    Path repo = Path.of("").toAbsolutePath();
    Path notebook = Path.of(args[0]).toAbsolutePath();
    List<String> remoteOptions = new ArrayList<>(sparkJavaOpts(repo.resolve("pom.xml")));
    for (int i = 1; i < args.length; i++) {
      if (!args[i].startsWith("-R")) {
        System.err.println("unknown argument " + args[i] + " (only -R<jvm option>)");
        System.exit(2);
      }
      remoteOptions.add(args[i].substring(2));
    }
    String classPath = classPath(repo);
    List<List<String>> cells = codeCells(notebook);

    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    List<String> vmOptions = new ArrayList<>(List.of("--class-path", classPath));
    vmOptions.addAll(remoteOptions);
    out.println("[runner] " + notebook + ": " + cells.size() + " code cells");
    out.println("[runner] remote JVM options: " + String.join(" ", remoteOptions));
    int code;
    try (JShell shell = JShell.builder().out(out).err(System.err)
        .compilerOptions("--class-path", classPath)
        .remoteVMOptions(vmOptions.toArray(String[]::new))
        .build()) {
      code = run(shell, cells, out);
    }
    out.println(code == 0 ? "[runner] every cell ran" : "[runner] FAILED");
    System.exit(code);
  }

  /** Runs the cells in order; 0 when all ran, 1 at the first failing snippet. */
  static int run(JShell shell, List<List<String>> cells, PrintStream out) {
    SourceCodeAnalysis analysis = shell.sourceCodeAnalysis();
    for (int c = 0; c < cells.size(); c++) {
      String remaining = String.join("\n", cells.get(c));
      out.println("[runner] --- code cell " + (c + 1));
      while (!remaining.isBlank()) {
        SourceCodeAnalysis.CompletionInfo info = analysis.analyzeCompletion(remaining);
        if (info.completeness() == SourceCodeAnalysis.Completeness.EMPTY) {
          break;
        }
        if (!info.completeness().isComplete()) {
          out.println("[runner] ERROR in code cell " + (c + 1) + ": incomplete source (" + info.completeness() + "):\n"
              + remaining);
          return 1;
        }
        String source = info.source();
        for (SnippetEvent event : shell.eval(source)) {
          if (event.causeSnippet() != null) {
            continue; // a dependent snippet updated by this one
          }
          String failure = failure(shell, event);
          if (failure != null) {
            out.println("[runner] ERROR in code cell " + (c + 1) + ":\n" + indent(source.strip()) + "\n" + failure);
            return 1;
          }
          if (event.snippet().kind() == Snippet.Kind.EXPRESSION && event.value() != null) {
            out.println(event.value());
          }
        }
        remaining = info.remaining();
      }
    }
    return 0;
  }

  private static String failure(JShell shell, SnippetEvent event) {
    Snippet snippet = event.snippet();
    if (event.status() == Snippet.Status.REJECTED) {
      return "does not compile:\n" + shell.diagnostics(snippet).map(d -> diag(snippet, d))
          .collect(Collectors.joining("\n"));
    }
    if (event.status() == Snippet.Status.RECOVERABLE_DEFINED
        || event.status() == Snippet.Status.RECOVERABLE_NOT_DEFINED) {
      String unresolved = snippet instanceof jdk.jshell.DeclarationSnippet d
          ? shell.unresolvedDependencies(d).collect(Collectors.joining(", ")) : "?";
      return "unresolved references: " + unresolved;
    }
    JShellException e = event.exception();
    if (e != null) {
      return "throws " + describe(e);
    }
    return null;
  }

  private static String diag(Snippet snippet, Diag d) {
    return "  " + (d.isError() ? "error" : "warning") + " at " + d.getStartPosition() + ": "
        + d.getMessage(java.util.Locale.ROOT);
  }

  private static String describe(Throwable t) {
    StringBuilder sb = new StringBuilder();
    for (Throwable cur = t; cur != null; cur = cur.getCause()) {
      String name = cur instanceof EvalException ee ? ee.getExceptionClassName()
          : cur instanceof UnresolvedReferenceException u ? "unresolved reference in " + u.getSnippet().source()
          : cur.getClass().getName();
      sb.append(cur == t ? "" : "\ncaused by ").append(name).append(": ").append(cur.getMessage());
      StackTraceElement[] trace = cur.getStackTrace();
      for (int i = 0; i < Math.min(trace.length, 12); i++) {
        sb.append("\n    at ").append(trace[i]);
      }
      if (cur.getCause() == cur) {
        break;
      }
    }
    return sb.toString();
  }

  private static String indent(String source) {
    return source.lines().map(l -> "  > " + l).collect(Collectors.joining("\n"));
  }

  /** The code cells, without IJava magic lines; a cell magic ({@code %%}) cell is skipped whole. */
  static List<List<String>> codeCells(Path notebook) throws IOException {
    JsonNode nb = new ObjectMapper().readTree(notebook.toFile());
    String language = nb.path("metadata").path("kernelspec").path("language").asText("");
    if (!language.equals("java")) {
      throw new IllegalArgumentException(notebook + " is not a Java notebook (kernelspec language '" + language + "')");
    }
    List<List<String>> cells = new ArrayList<>();
    for (JsonNode cell : nb.path("cells")) {
      if (!cell.path("cell_type").asText().equals("code")) {
        continue;
      }
      JsonNode src = cell.path("source");
      String text;
      if (src.isArray()) {
        StringBuilder sb = new StringBuilder();
        src.forEach(s -> sb.append(s.asText()));
        text = sb.toString();
      } else {
        text = src.asText();
      }
      if (text.stripLeading().startsWith("%%")) {
        continue;
      }
      cells.add(text.lines().filter(l -> !l.stripLeading().startsWith("%")).toList());
    }
    return cells;
  }

  /** Spark's jars (sorted), then the shaded genai-batch jar. */
  static String classPath(Path repo) throws IOException {
    Path sparkHome = sparkHome(repo);
    List<String> entries;
    try (Stream<Path> jars = Files.list(sparkHome.resolve("jars"))) {
      entries = jars.filter(p -> p.getFileName().toString().endsWith(".jar")).map(Path::toString).sorted()
          .collect(Collectors.toCollection(ArrayList::new));
    }
    String given = System.getenv("GENAI_BATCH_JAR");
    Path jar = given != null && !given.isBlank() ? Path.of(given) : repo.resolve("target/genai-batch-spark4_2.13.jar");
    if (!Files.isRegularFile(jar)) {
      throw new IllegalStateException(jar + " is missing: run mvn -DskipTests package (or jobs/setup.sh)");
    }
    entries.add(jar.toString());
    return String.join(java.io.File.pathSeparator, entries);
  }

  static Path sparkHome(Path repo) throws IOException {
    String env = System.getenv("SPARK_HOME");
    if (env != null && !env.isBlank()) {
      return Path.of(env);
    }
    try (DirectoryStream<Path> pys = Files.newDirectoryStream(repo.resolve(".venv/lib"), "python3*")) {
      for (Path py : pys) {
        Path pyspark = py.resolve("site-packages/pyspark");
        if (Files.isDirectory(pyspark.resolve("jars"))) {
          return pyspark;
        }
      }
    }
    throw new IllegalStateException("no SPARK_HOME and no pyspark in " + repo.resolve(".venv") + ": run jobs/setup.sh");
  }

  /** The JVM flags Spark needs on Java 17 (pom.xml property spark.java.opts). */
  static List<String> sparkJavaOpts(Path pom) throws IOException {
    Matcher m = Pattern.compile("<spark\\.java\\.opts>([^<]*)</spark\\.java\\.opts>").matcher(Files.readString(pom));
    if (!m.find()) {
      throw new IllegalStateException(pom + " has no spark.java.opts property");
    }
    return List.of(m.group(1).trim().split("\\s+"));
  }
}
