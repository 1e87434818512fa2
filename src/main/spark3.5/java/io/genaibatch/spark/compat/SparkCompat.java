package io.genaibatch.spark.compat;

import java.io.Serializable;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.LocalRelation;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Everything that differs between the Spark lines, for Spark 3.5 / Scala 2.12. Its twin for
 * Spark 4.x / Scala 2.13 is {@code src/main/spark4/java}; both have the same members, and the
 * build (pom.xml, profile {@code spark3.5}) compiles exactly one of them.
 */
public final class SparkCompat {
  /** The Spark line this jar is for, as in its name: {@code genai-batch-spark3.5_2.12.jar}. */
  public static final String SPARK_LINE = "3.5";
  public static final String SCALA_BINARY = "2.12";

  private SparkCompat() {}

  /** A Scala map (a UDF's MAP argument) as a Java map. Scala 2.12 has no scala.jdk.javaapi. */
  @SuppressWarnings("deprecation")
  public static <K, V> Map<K, V> asJava(scala.collection.Map<K, V> map) {
    return scala.collection.JavaConverters.mapAsJavaMap(map);
  }

  /** A Java list as the Scala Seq a Row holds for an ARRAY column (scala.collection.Seq in 2.12). */
  @SuppressWarnings("deprecation")
  public static <T> scala.collection.Seq<T> asSeq(List<T> list) {
    return scala.collection.JavaConverters.asScalaBuffer(list).toList();
  }

  /** The encoder of generic rows of {@code schema}. */
  public static Encoder<Row> rowEncoder(StructType schema) {
    return Encoders.row(schema);
  }

  /**
   * Registers {@code name(prompt [, options])}: the Java UDF {@code udf} under {@code implName},
   * taking (STRING, MAP&lt;STRING, STRING&gt;), and a function {@code name} over it whose options
   * default to null (the registered settings). Apache Spark 3.5 has no SQL functions
   * ({@code CREATE FUNCTION ... RETURN}, with or without DEFAULT), so {@code name} is a function
   * builder in the session's function registry that expands to the UDF call, with one argument
   * or two, for SQL and {@code functions.call_function} alike.
   */
  public static void registerWithOptionalOptions(SparkSession spark, String name, String implName,
      UserDefinedFunction udf, StructType result) {
    UserDefinedFunction named = spark.udf().register(implName, udf);
    scala.Function1<scala.collection.Seq<Expression>, Expression> builder = args -> {
      if (args.size() < 1 || args.size() > 2) {
        throw new IllegalArgumentException(name + " takes (prompt [, options MAP<STRING, STRING>]), not "
            + args.size() + " argument(s)");
      }
      Column prompt = new Column(args.apply(0));
      Column options = args.size() == 2 ? new Column(args.apply(1))
          : functions.lit(null).cast(DataTypes.createMapType(DataTypes.StringType, DataTypes.StringType));
      return named.apply(prompt, options).expr();
    };
    spark.sessionState().functionRegistry().createOrReplaceTempFunction(name, builder, "java_udf");
  }

  /**
   * {@code f} as the function of a Catalyst {@code MapPartitions} node whose objects are rows;
   * serializable, as the node's tasks need.
   */
  @SuppressWarnings({"unchecked", "deprecation"})
  public static scala.Function1<scala.collection.Iterator<Object>, scala.collection.Iterator<Object>>
      partitionFunction(MapPartitionsFunction<Row, Row> f) {
    return (scala.Function1<scala.collection.Iterator<Object>, scala.collection.Iterator<Object>> & Serializable)
        it -> {
          try {
            java.util.Iterator<?> in = scala.collection.JavaConverters.asJavaIterator(it);
            java.util.Iterator<Row> rows = f.call((java.util.Iterator<Row>) in);
            scala.collection.Iterator<?> out = scala.collection.JavaConverters.asScalaIterator(rows);
            return (scala.collection.Iterator<Object>) out;
          } catch (Exception e) {
            throw e instanceof RuntimeException r ? r : new IllegalStateException(e);
          }
        };
  }

  /** An empty relation of {@code output}: a plan to resolve expressions over those attributes. */
  public static LogicalPlan relationOf(List<Attribute> output) {
    return new LocalRelation(asSeq(output), asSeq(List.<InternalRow>of()), false);
  }
}
