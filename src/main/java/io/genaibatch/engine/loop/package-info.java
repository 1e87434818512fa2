/**
 * The continuous-batching decode loop: one per model and JVM, on a thread of its own, shared by every
 * task of the executor. Plain-Java scheduling decisions, tested without a model: {@link
 * io.genaibatch.engine.loop.Scheduler} (the tickets, the queue, the slots, cancellation, the cache
 * shape), {@link io.genaibatch.engine.loop.PrefixStore} (which prompt prefixes are kept, matched and evicted), {@link
 * io.genaibatch.engine.loop.Duplicates} and {@link io.genaibatch.engine.loop.AnswerKey} (which
 * completions are computed and which copy another's answer), {@link io.genaibatch.engine.loop.Ticket}
 * (a window's terms and counts). The runner that calls onnxruntime: {@link
 * io.genaibatch.engine.loop.DecodeLoop} (its thread, the cache, prefill after a cached prefix, decode
 * steps, token choice), {@link io.genaibatch.engine.loop.OrtDecoder} and {@link
 * io.genaibatch.engine.loop.DecoderGraph} (the decoder graph through onnxruntime's Java API), {@link
 * io.genaibatch.engine.loop.KvCache} (the key/value regions and prefix blocks), {@link
 * io.genaibatch.engine.loop.TokenChooser} (a row's next token). {@link
 * io.genaibatch.engine.loop.ContinuousBatches} is the door from {@code LlmModel}: a window in, its
 * answers out.
 *
 * <p>Public for {@code io.genaibatch.engine}'s own use; not an API for the Spark layer.
 */
package io.genaibatch.engine.loop;
