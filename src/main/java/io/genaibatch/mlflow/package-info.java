/**
 * MLflow: model URIs and their resolution, artifact fetching in Java (proxied {@code
 * mlflow-artifacts:}, local, Databricks and Hadoop file systems), the per-host model cache,
 * {@code MLmodel} and signature parsing, and the tracking client: runs, traces, evaluation datasets and
 * assessments on traces (MLflow 3's REST API where the Java client has none).
 *
 * <p>May import the MLflow Java client, Jackson, Hadoop's FileSystem API and {@code
 * io.genaibatch.common}. Never Spark, never {@code io.genaibatch.engine}: it finds the model's
 * onnxruntime-genai folder by its {@code genai_config.json} alone, and the Spark layer hands that
 * folder to the engine.
 */
package io.genaibatch.mlflow;
