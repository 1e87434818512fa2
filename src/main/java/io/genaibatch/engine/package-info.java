/**
 * The onnxruntime-genai layer: native library resolution ({@link
 * io.genaibatch.engine.NativeLibraries}), the loaded model and tokenizer ({@link
 * io.genaibatch.engine.LlmModel}), batched generation with search options, chat templates, token
 * counts and stop reasons.
 *
 * <p>May import {@code ai.onnxruntime.genai}, Jackson, SLF4J and {@code io.genaibatch.common}. Never
 * Spark, never MLflow.
 */
package io.genaibatch.engine;
