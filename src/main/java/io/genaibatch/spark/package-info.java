/**
 * Spark: the partition scorer, the executor-wide model cache, the output schema, the driver-side
 * {@link io.genaibatch.spark.BatchScorer}, the Spark ML {@link io.genaibatch.spark.GenAiTransformer}
 * and the SQL function for notebooks.
 *
 * <p>May import Spark, {@code io.genaibatch.engine} and {@code io.genaibatch.mlflow}.
 */
package io.genaibatch.spark;
