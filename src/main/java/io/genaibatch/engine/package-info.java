/**
 * The generation layer: native libraries, the loaded model, and the two ways it generates.
 *
 * <h2>A row's journey</h2>
 *
 * <ol>
 *   <li>A task (Spark's thread) calls {@link io.genaibatch.engine.LlmModel#score} with a window of
 *       {@link io.genaibatch.engine.GenerationRequest}s. {@code LlmModel.doScore} checks each one
 *       (null, blank, untokenizable, too long, over its {@link io.genaibatch.engine.RowLimits}: an error
 *       {@link io.genaibatch.engine.Generation} at its index, never an exception) and decides its path
 *       there, once: the continuous loop (the default on the CPU), or onnxruntime-genai's own static
 *       batches ({@code StaticBatches}: {@code --batching adaptive|fixed}, {@code --batch-size 1},
 *       GPUs, formats the loop cannot guide).
 *   <li>Loop rows become {@code Completion}s (one per {@code n}, each with its own
 *       {@code TokenChooser}, llguidance matcher and {@code AnswerKey}) and one {@code Ticket}
 *       ({@code ContinuousBatches}), handed to the model's one {@code DecodeLoop}; the task's thread
 *       waits on the ticket.
 *   <li>The loop's thread takes the ticket in: its completions queue in prompt-token order; one
 *       identical to a completion already in the loop follows it ({@code Duplicates}). It admits
 *       queued completions into free slots of its {@code KvCache}: each copies its longest cached
 *       prefix from the {@code PrefixStore}, prefills the rest ({@code OrtDecoder}, onnxruntime's
 *       Java API on the decoder graph) and stores its new blocks. Each step runs every live row of
 *       every ticket; a completion that ends (end token, budget, stop string) leaves its slot at
 *       once and its followers get its answer.
 *   <li>When every completion of its ticket has ended the task's thread wakes, reads the answers
 *       ({@code Completion.result}) and the ticket's counts ({@link io.genaibatch.engine.SlotUsage},
 *       {@link io.genaibatch.engine.DecodeProfile}), and returns a {@link
 *       io.genaibatch.engine.ScoredWindow}.
 * </ol>
 *
 * <h2>Who owns which thread and what</h2>
 *
 * <ul>
 *   <li>Callers' threads (Spark tasks): tokenizing, checking, static batches (their generators live
 *       inside the call), reading answers. {@code LlmModel} takes any number of them at once.
 *   <li>The loop's thread ({@code genai-batch-decode}, one per model and JVM, started by the first
 *       ticket, ended 30 s after the last): it alone touches the slots, the {@code KvCache}, the
 *       {@code PrefixStore}, {@code Duplicates} and the tickets' counts until it lets a ticket go.
 *       onnxruntime's intra-op threads of the loop's session are the executor's cores.
 *   <li>{@code Ticket} is where the two meet: its {@code finish} and {@code await} under its own
 *       lock; {@code DecodeLoop.submit} under the loop's.
 * </ul>
 *
 * <h2>Rooms</h2>
 *
 * This package holds the model ({@code LlmModel}: loading, tokenizer and chat template, checking a
 * window's requests and the one place that decides each row's path) and the types both paths share
 * (requests, options, completions, generations, usage). Its sub-packages: {@code loop} (the
 * continuous loop: the plain-Java scheduling parts, {@code PrefixStore}, {@code Duplicates}, {@code
 * AnswerKey}, {@code Ticket}, tested without a model, and the runner around them that calls
 * onnxruntime), {@code batches} (onnxruntime-genai's static batches), {@code guidance} (response
 * formats, llguidance), {@code natives} (native libraries, execution providers, the JNI string
 * bridge, the tokenizer stub). Sub-package classes are public for this package's use only.
 *
 * <p>May import {@code ai.onnxruntime}, {@code ai.onnxruntime.genai}, JNA, Jackson, SLF4J and {@code
 * io.genaibatch.common}. Never Spark, never MLflow.
 */
package io.genaibatch.engine;
