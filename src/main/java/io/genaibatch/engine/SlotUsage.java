package io.genaibatch.engine;

import java.io.Serializable;

/**
 * Token slots computed by native generation against the ones that served an answer, prefill and
 * decode apart. A batch of {@code n} rows right-padded to its longest prompt {@code L} computes
 * {@code n * L} prefill slots, of which the prompts' own tokens are useful; each of its {@code s}
 * generation steps computes {@code n} decode slots, of which a row's answer tokens (the stop token
 * included) are useful. Padding, rows that have stopped while others go on, and a stand-in row that
 * keeps a lone prompt off the single-row kernel path are the waste.
 *
 * @param prefillSlots rows times padded prompt length, over every native batch
 * @param prefillUseful prompt tokens of the rows scored
 * @param decodeSlots rows times generation steps, over every native batch
 * @param decodeUseful answer tokens generated, stop tokens included
 */
public record SlotUsage(long prefillSlots, long prefillUseful, long decodeSlots, long decodeUseful)
    implements Serializable {

  public static final SlotUsage NONE = new SlotUsage(0, 0, 0, 0);

  public SlotUsage plus(SlotUsage o) {
    return new SlotUsage(prefillSlots + o.prefillSlots, prefillUseful + o.prefillUseful,
        decodeSlots + o.decodeSlots, decodeUseful + o.decodeUseful);
  }

  /** Useful prompt tokens over prefill slots; 1 when nothing was computed. */
  public double prefillEfficiency() {
    return ratio(prefillUseful, prefillSlots);
  }

  /** Useful answer tokens over decode slots; 1 when nothing was computed. */
  public double decodeEfficiency() {
    return ratio(decodeUseful, decodeSlots);
  }

  /** Useful tokens over all slots computed. */
  public double efficiency() {
    return ratio(prefillUseful + decodeUseful, prefillSlots + decodeSlots);
  }

  private static double ratio(long useful, long slots) {
    return slots == 0 ? 1.0 : (double) useful / slots;
  }
}
