/**
 * MLflow: model URIs and their resolution, artifact fetching in Java (proxied {@code
 * mlflow-artifacts:}, local, Databricks and Hadoop file systems), the per-host model cache,
 * {@code MLmodel} and signature parsing, and the tracking client.
 *
 * <p>May import the MLflow Java client, Jackson, Hadoop's FileSystem API and {@code
 * io.genaibatch.engine}. Never Spark.
 */
package io.genaibatch.mlflow;
