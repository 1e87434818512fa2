/**
 * The command-line entry point ({@link io.genaibatch.job.BatchScoringJob}) and its
 * configuration: flags, YAML config files and their precedence.
 *
 * <p>May import {@code io.genaibatch.spark}, {@code io.genaibatch.mlflow}, {@code
 * io.genaibatch.engine} and {@code io.genaibatch.eval}.
 */
package io.genaibatch.job;
