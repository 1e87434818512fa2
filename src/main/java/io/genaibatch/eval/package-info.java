/**
 * Nightly evaluation: reference-based answer metrics ({@link io.genaibatch.eval.TextMetrics}: SQuAD
 * exact match and token F1, ROUGE-L, answer length), their per-row and run-level computation on a
 * run's output ({@link io.genaibatch.eval.Evaluation}), the prompt-by-prompt comparison with a
 * previous run ({@link io.genaibatch.eval.RunComparison}) and the limits that turn a regression
 * into a failed run ({@link io.genaibatch.eval.Thresholds}).
 *
 * <p>The metrics are written here because no library on the job's classpath provides them.
 *
 * <p>Stands beside {@code io.genaibatch.spark}: may import Spark and {@code io.genaibatch.common}
 * (the output's column names, {@link io.genaibatch.common.OutputColumns}), nothing else of this
 * project. {@code io.genaibatch.job} wires it in.
 */
package io.genaibatch.eval;
