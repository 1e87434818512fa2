package io.genaibatch.engine;

/**
 * Where the time of continuous-batched generation went, in milliseconds: prefills and decode
 * steps in onnxruntime, choosing tokens and checking ends in Java, moving cache regions, and the
 * whole; with the counts of prefills and steps and the key/value cache's bytes.
 */
public record DecodeProfile(double prefillMs, double stepMs, double chooseMs, double moveMs, double totalMs,
    long prefills, long steps, long kvBytes) implements java.io.Serializable {

  public static final DecodeProfile NONE = new DecodeProfile(0, 0, 0, 0, 0, 0, 0, 0);

  /** Both profiles' times and counts summed; the larger cache. */
  public DecodeProfile plus(DecodeProfile o) {
    return new DecodeProfile(prefillMs + o.prefillMs, stepMs + o.stepMs, chooseMs + o.chooseMs, moveMs + o.moveMs,
        totalMs + o.totalMs, prefills + o.prefills, steps + o.steps, Math.max(kvBytes, o.kvBytes));
  }
}
