package io.genaibatch.engine;

/**
 * Where the time of continuous-batched generation went, in milliseconds: prefills and decode
 * steps in onnxruntime, choosing tokens and checking ends in Java, moving cache regions, and the
 * whole; with the counts of prefills and steps and the key/value cache's bytes; and the work the
 * loop avoided: prompt tokens read from the prefix store instead of computed, and completions
 * answered from an identical one.
 *
 * @param promptComputed prompt tokens prefilled (stand-ins excluded)
 * @param promptReused prompt tokens read from the prefix store
 * @param duplicates completions answered from an identical completion, never computed
 * @param duplicateTokens their prompt and answer tokens
 * @param storeBytes the largest the prefix store has been
 */
public record DecodeProfile(double prefillMs, double stepMs, double chooseMs, double moveMs, double totalMs,
    long prefills, long steps, long kvBytes, long promptComputed, long promptReused, long duplicates,
    long duplicateTokens, long storeBytes) implements java.io.Serializable {

  public static final DecodeProfile NONE = new DecodeProfile(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

  /** Both profiles' times and counts summed; the larger cache and store. */
  public DecodeProfile plus(DecodeProfile o) {
    return new DecodeProfile(prefillMs + o.prefillMs, stepMs + o.stepMs, chooseMs + o.chooseMs, moveMs + o.moveMs,
        totalMs + o.totalMs, prefills + o.prefills, steps + o.steps, Math.max(kvBytes, o.kvBytes),
        promptComputed + o.promptComputed, promptReused + o.promptReused, duplicates + o.duplicates,
        duplicateTokens + o.duplicateTokens, Math.max(storeBytes, o.storeBytes));
  }

  /** Prompt tokens read from the store over the prompt tokens of the rows prefilled; 0 when none was. */
  public double prefixHitRate() {
    long all = promptComputed + promptReused;
    return all == 0 ? 0 : (double) promptReused / all;
  }

  /** Tokens the loop served without computing them: reused prompt tokens and duplicates' tokens. */
  public long tokensAvoided() {
    return promptReused + duplicateTokens;
  }
}
