package io.genaibatch.spark.compat;

import org.apache.spark.sql.SparkSession;

/**
 * Which Spark line this jar is built for ({@link SparkCompat#SPARK_LINE}, {@link
 * SparkCompat#SCALA_BINARY}), and the check that the runtime is one: a jar for the other line may
 * get far (the job's plain path even runs) and then fail deep inside with a linkage error, so
 * every entry point (job, Transformer, SQL function, all through {@code BatchScorer.create})
 * refuses a mismatched runtime at once (a usage error: the job exits 2), naming both versions and the jar to use.
 */
public final class SparkLine {
  private SparkLine() {}

  /** This jar's file name, as the build names it: {@code genai-batch-spark3.5_2.12.jar}, {@code genai-batch-spark4_2.13.jar}. */
  public static String jarName() {
    return jarName(SparkCompat.SPARK_LINE, SparkCompat.SCALA_BINARY);
  }

  static String jarName(String line, String scala) {
    return "genai-batch-spark" + line + "_" + scala + ".jar";
  }

  /** The Spark line (3.5 or 4) of a Spark version, or null for one no genai-batch jar is built for. */
  static String lineOf(String sparkVersion) {
    if (sparkVersion.startsWith("3.5.")) {
      return "3.5";
    }
    return sparkVersion.matches("4\\.\\d+\\..*") ? "4" : null;
  }

  /** The Scala binary version (2.12, 2.13) of a full Scala version (2.12.18). */
  static String binary(String scalaVersion) {
    String[] p = scalaVersion.split("\\.", -1);
    return p.length >= 2 ? p[0] + "." + p[1] : scalaVersion;
  }

  /** Fails unless {@code spark} runs the Spark line and Scala version this jar is built for. */
  public static void check(SparkSession spark) {
    check(spark.version(), scala.util.Properties.versionNumberString());
  }

  static void check(String sparkVersion, String scalaVersion) {
    String line = lineOf(sparkVersion);
    String scala = binary(scalaVersion);
    if (SparkCompat.SPARK_LINE.equals(line) && SparkCompat.SCALA_BINARY.equals(scala)) {
      return;
    }
    String use = ("3.5".equals(line) && "2.12".equals(scala)) || ("4".equals(line) && "2.13".equals(scala))
        ? "use " + jarName(line, scala) + " instead"
        : "genai-batch is built for Spark 3.5 with Scala 2.12 (" + jarName("3.5", "2.12") + ") and Spark 4.x with Scala 2.13 ("
            + jarName("4", "2.13") + ") only";
    throw new IllegalArgumentException(jarName() + " is for Spark " + SparkCompat.SPARK_LINE + ".x with Scala "
        + SparkCompat.SCALA_BINARY + ", but this runtime is Spark " + sparkVersion + " with Scala " + scalaVersion + ": " + use);
  }
}
