/**
 * The native libraries: finding and loading an onnxruntime-genai library that loads on this machine
 * and sharing its onnxruntime with the Java API ({@link io.genaibatch.engine.natives.NativeLibraries}),
 * execution providers ({@link io.genaibatch.engine.natives.ExecutionProvider}), the JNI layer's
 * string workaround ({@link io.genaibatch.engine.natives.Utf8Bridge}) and the stub graph that lets
 * onnxruntime-genai load the tokenizer without the weights ({@link
 * io.genaibatch.engine.natives.TokenizerStub}).
 */
package io.genaibatch.engine.natives;
