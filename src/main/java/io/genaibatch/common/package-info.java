/**
 * What every other package shares and nothing else: the common base of the project's exceptions
 * ({@link io.genaibatch.common.GenAiBatchException}), the output's column names ({@link
 * io.genaibatch.common.OutputColumns}), the SHA-256 hex prefix ({@link
 * io.genaibatch.common.Sha256}), write-temp-then-rename ({@link io.genaibatch.common.AtomicFiles})
 * and this process's peak memory ({@link io.genaibatch.common.ProcessMemory}).
 *
 * <p>Imports the JDK only, nothing of this project; every package may import it. It sits below
 * {@code engine} and {@code mlflow}, so the arrows {@code job -> spark -> {engine, mlflow}} (with
 * {@code eval} beside {@code spark}) all end here.
 */
package io.genaibatch.common;
