package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The lifetime of a job's live counts: open on the driver, counted while open, gone once closed. */
class LiveCountsTest {

  @Test
  void countsOnlyWhileTheJobIsOpenInThisJvm() {
    // A job never opened here (an executor JVM of a cluster): rows are not kept.
    LiveCounts.addRow("elsewhere", 5);
    assertThat(LiveCounts.rows("elsewhere")).isZero();

    LiveCounts.open("job");
    LiveCounts.addRow("job", 3);
    LiveCounts.addRow("job", 4);
    assertThat(LiveCounts.rows("job")).isEqualTo(2);
    assertThat(LiveCounts.completionTokens("job")).isEqualTo(7);

    LiveCounts.close("job");
    LiveCounts.addRow("job", 1);
    assertThat(LiveCounts.rows("job")).isZero();
    assertThat(LiveCounts.completionTokens("job")).isZero();
  }
}
