package io.genaibatch.engine.batches;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import org.assertj.core.api.Assertions;
import org.junit.jupiter.api.Test;

/**
 * The static batches' planner (--batching adaptive) on measured costs and answer lengths given by
 * hand: no model needed (BatchSchedulingTest runs the plans it makes on the tiny model).
 */
class BatchPlannerTest {
  @Test
  void thePlannerBatchesWideWhenAnswersAreEvenAndNarrowWhenTheySpreadOrPromptsDiffer() {
    int[] sameLength = new int[16];
    Arrays.fill(sameLength, 20);
    // This project's AVX2 server: a prefill slot costs 19 ms, a step 44 ms for one row and 148 ms
    // for eight. Answers that all run to the budget of 64: two batches of 8.
    BatchPlanner even = new BatchPlanner();
    even.observeBatch(1, 20, 380, 10, 440);
    even.observeBatch(8, 160, 3040, 10, 1480);
    for (int i = 0; i < 32; i++) {
      even.observeAnswer(64);
    }
    assertThat(even.plan(sameLength, 8, 64)).containsExactly(8, 8);

    // The same CPU, answers mostly short with a long tail: a batch waits for its longest answer,
    // so batches shrink.
    BatchPlanner spread = new BatchPlanner();
    spread.observeBatch(1, 20, 380, 10, 440);
    spread.observeBatch(8, 160, 3040, 10, 1480);
    for (int i = 0; i < 32; i++) {
      spread.observeAnswer(i % 8 == 0 ? 64 : 2);
    }
    int[] sizes = spread.plan(sameLength, 8, 64);
    assertThat(Arrays.stream(sizes).max().getAsInt()).isLessThan(8);
    assertThat(Arrays.stream(sizes).min().getAsInt()).isGreaterThanOrEqualTo(2);

    // Even answers, but prompts of 10 and 400 tokens: the short ones are not padded to the long.
    int[] twoKinds = {10, 10, 10, 10, 400, 400, 400, 400};
    assertThat(even.plan(twoKinds, 8, 64)).containsExactly(4, 4);

    // Nothing measured yet: small batches, never a lone prompt.
    BatchPlanner fresh = new BatchPlanner();
    int[] first = fresh.plan(sameLength, 8, 256);
    assertThat(Arrays.stream(first).sum()).isEqualTo(16);
    assertThat(Arrays.stream(first).min().getAsInt()).isGreaterThanOrEqualTo(2);
    assertThat(fresh.plan(new int[] {5, 6, 7}, 2, 16)).containsExactly(3);
  }

  @Test
  void expectedLongestAnswerGrowsWithTheBatchAsTheSampleSays() {
    BatchPlanner p = new BatchPlanner();
    for (int i = 0; i < 100; i++) {
      p.observeAnswer(i < 50 ? 10 : 30);
    }
    double[] e = p.expectedLongest(4, 100);
    assertThat(e[1]).isCloseTo(20.0, Assertions.within(1e-9));
    // Two rows: the longest is 10 only when both are short (1/4).
    assertThat(e[2]).isCloseTo(25.0, Assertions.within(1e-9));
    assertThat(p.expectedLongest(4, 15)[4]).isCloseTo(15 - 5 / 16.0, Assertions.within(1e-9));
  }
}
