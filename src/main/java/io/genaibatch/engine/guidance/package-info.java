/**
 * Response formats and constrained decoding: reading a format ({@link
 * io.genaibatch.engine.guidance.ResponseFormat}) into onnxruntime-genai's terms ({@link
 * io.genaibatch.engine.guidance.Guidance}), applying it to onnxruntime-genai's generator ({@link
 * io.genaibatch.engine.guidance.NativeGuidance}) and masking the continuous loop's logits through
 * llguidance's C API ({@link io.genaibatch.engine.guidance.Llguidance}).
 */
package io.genaibatch.engine.guidance;
