package io.genaibatch.spark.compat;

import java.io.Serializable;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.plans.logical.LocalRelation;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.types.StructType;

/**
 * Everything that differs between the Spark lines, for Spark 4.x / Scala 2.13. Its twin for
 * Spark 3.5 / Scala 2.12 is {@code src/main/spark3.5/java}; both have the same members, and the
 * build (pom.xml, profile {@code spark3.5}) compiles exactly one of them.
 */
public final class SparkCompat {
  /** The Spark line this jar is for, as in its name: {@code genai-batch-spark4_2.13.jar}. */
  public static final String SPARK_LINE = "4";
  public static final String SCALA_BINARY = "2.13";

  private SparkCompat() {}

  /** A Scala map (a UDF's MAP argument) as a Java map. */
  public static <K, V> Map<K, V> asJava(scala.collection.Map<K, V> map) {
    return scala.jdk.javaapi.CollectionConverters.asJava(map);
  }

  /** A Java list as the Scala Seq a Row holds for an ARRAY column. */
  public static <T> scala.collection.immutable.Seq<T> asSeq(List<T> list) {
    return scala.jdk.javaapi.CollectionConverters.asScala(list).toSeq();
  }

  /** The encoder of generic rows of {@code schema}. */
  public static Encoder<Row> rowEncoder(StructType schema) {
    return Encoders.row(schema);
  }

  /**
   * Registers {@code name(prompt [, options])}: the Java UDF {@code udf} under {@code implName},
   * taking (STRING, MAP&lt;STRING, STRING&gt;), and a SQL function {@code name} over it whose
   * options default to an empty map. A Java UDF cannot have an optional argument; a SQL function
   * with a DEFAULT can (Spark 4.0+), and it inlines the non-deterministic Java UDF.
   */
  public static void registerWithOptionalOptions(SparkSession spark, String name, String implName,
      UserDefinedFunction udf, StructType result) {
    spark.udf().register(implName, udf);
    spark.sql("CREATE OR REPLACE TEMPORARY FUNCTION " + name
        + "(prompt STRING, options MAP<STRING, STRING> DEFAULT map()) RETURNS " + result.sql()
        + " NOT DETERMINISTIC RETURN " + implName + "(prompt, options)");
  }

  /**
   * {@code f} as the function of a Catalyst {@code MapPartitions} node whose objects are rows;
   * serializable, as the node's tasks need.
   */
  @SuppressWarnings("unchecked")
  public static scala.Function1<scala.collection.Iterator<Object>, scala.collection.Iterator<Object>>
      partitionFunction(MapPartitionsFunction<Row, Row> f) {
    return (scala.Function1<scala.collection.Iterator<Object>, scala.collection.Iterator<Object>> & Serializable)
        it -> {
          try {
            java.util.Iterator<?> in = scala.jdk.javaapi.CollectionConverters.asJava(it);
            java.util.Iterator<Row> rows = f.call((java.util.Iterator<Row>) in);
            scala.collection.Iterator<?> out = scala.jdk.javaapi.CollectionConverters.asScala(rows);
            return (scala.collection.Iterator<Object>) out;
          } catch (Exception e) {
            throw e instanceof RuntimeException r ? r : new IllegalStateException(e);
          }
        };
  }

  /** An empty relation of {@code output}: a plan to resolve expressions over those attributes. */
  public static LogicalPlan relationOf(List<Attribute> output) {
    return new LocalRelation(asSeq(output), asSeq(List.<InternalRow>of()), false, scala.Option.empty());
  }
}
