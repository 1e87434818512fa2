package io.genaibatch.engine;

import java.util.Locale;

/** Why generation of one prompt ended; {@link #wire()} is the output column's value. */
public enum FinishReason {
  /** The model produced one of its end-of-sequence tokens. */
  STOP,
  /** The token budget (max new tokens, max length or the context) ran out first. */
  LENGTH,
  /** The prompt could not be scored; see the error. */
  ERROR;

  public String wire() {
    return name().toLowerCase(Locale.ROOT);
  }
}
