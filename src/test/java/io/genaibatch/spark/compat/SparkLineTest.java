package io.genaibatch.spark.compat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class SparkLineTest {
  /** The Spark and Scala versions of this build's own line, as a runtime reports them. */
  private static String sparkOfThisLine() {
    return SparkCompat.SPARK_LINE.equals("4") ? "4.1.2" : "3.5.2";
  }

  @Test
  void jarNameIsTheLineAndScalaBinary() {
    assertThat(SparkLine.jarName()).isEqualTo("genai-batch-spark" + SparkCompat.SPARK_LINE + "_" + SparkCompat.SCALA_BINARY + ".jar");
  }

  @Test
  void theBuildsOwnLinePasses() {
    SparkLine.check(sparkOfThisLine(), SparkCompat.SCALA_BINARY + ".18");
    SparkLine.check(scala.util.Properties.versionNumberString().startsWith(SparkCompat.SCALA_BINARY) ? sparkOfThisLine() : "x",
        scala.util.Properties.versionNumberString());
  }

  @Test
  void theOtherLineIsRefusedNamingBothVersionsAndTheJarToUse() {
    boolean four = SparkCompat.SPARK_LINE.equals("4");
    String other = four ? "3.5.0" : "4.0.1";
    String otherScala = four ? "2.12.18" : "2.13.16";
    assertThatThrownBy(() -> SparkLine.check(other, otherScala))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(SparkLine.jarName())
        .hasMessageContaining("Spark " + other + " with Scala " + otherScala)
        .hasMessageContaining("use " + (four ? "genai-batch-spark3.5_2.12.jar" : "genai-batch-spark4_2.13.jar"));
  }

  @Test
  void anUnsupportedRuntimeNamesBothJars() {
    assertThatThrownBy(() -> SparkLine.check("3.5.2", "2.13.12"))
        .hasMessageContaining("genai-batch-spark3.5_2.12.jar")
        .hasMessageContaining("genai-batch-spark4_2.13.jar");
    assertThatThrownBy(() -> SparkLine.check("3.4.1", "2.12.17")).hasMessageContaining("built for Spark 3.5");
  }
}
