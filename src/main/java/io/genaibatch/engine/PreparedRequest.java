package io.genaibatch.engine;

/**
 * A good request of a window: its position in the window, its prompt's tokens, its budget of new
 * tokens per completion, and the requested cap it is sorted by.
 */
@SuppressWarnings("ArrayRecordComponent") // read, never compared
public record PreparedRequest(int index, int[] tokens, int budget, int cap, GenerationRequest request) {
  public int n() {
    return request.n();
  }

  /** Positions a completion of this request may fill: its prompt and its whole budget. */
  public int positions() {
    return tokens.length + budget;
  }
}
