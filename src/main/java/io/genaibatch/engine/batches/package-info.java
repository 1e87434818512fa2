/**
 * onnxruntime-genai's own generator, in static batches: for {@code --batching adaptive|fixed}, {@code
 * --batch-size 1}, GPUs and response formats the continuous loop cannot guide. {@link
 * io.genaibatch.engine.batches.StaticBatches} groups rows by their native options and runs them;
 * {@link io.genaibatch.engine.batches.BatchPlanner} picks batch sizes from measured cost.
 */
package io.genaibatch.engine.batches;
