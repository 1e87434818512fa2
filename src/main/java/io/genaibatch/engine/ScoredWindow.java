package io.genaibatch.engine;

import java.util.List;

/**
 * What {@link LlmModel#score} returns for a window of prompts.
 *
 * @param generations one per prompt, in the order the prompts came
 * @param slots the token slots the window's native batches computed
 * @param batches native generator runs the window took (a continuous run counts one)
 * @param profile where the continuous loop's time went; {@link DecodeProfile#NONE} when none ran
 */
public record ScoredWindow(List<Generation> generations, SlotUsage slots, int batches, DecodeProfile profile) {}
