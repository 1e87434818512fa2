package io.genaibatch.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.testing.Fixtures;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Rows that take onnxruntime-genai's own generator (here {@code --batch-size 1} and fixed static
 * batches) are bounded by the task's key/value limit ({@code --kv-cache-mb}), as the loop's are: the
 * tiny model holds 512 bytes a position (2 layers x 2 heads x 16 values, key and value, float32), so
 * 1 MiB holds 2048 positions.
 */
class StaticKvBoundTest {
  static final DecodeTerms ONE_MIB = new DecodeTerms(() -> false, 1L << 20);
  static LlmModel model;

  @BeforeAll
  static void load() {
    model = LlmModel.load(Fixtures.tinyModel());
  }

  @AfterAll
  static void close() {
    model.close();
  }

  private static GenerationRequest asking(int maxTokens) {
    return GenerationRequest.of("Hello world", SearchOptions.greedy(maxTokens));
  }

  @Test
  void aBatchSizeOneRowOverTheLimitIsItsErrorAndASmallRowIsAnswered() {
    List<Generation> out = model.score(List.of(asking(3000), asking(5)), 1, Batching.FIXED, ONE_MIB,
        RowLimits.NONE).generations();

    assertThat(out.get(0).ok()).isFalse();
    assertThat(out.get(0).errorKind()).isEqualTo(ErrorKind.OVER_LIMIT);
    assertThat(out.get(0).error()).contains("key/value cache").contains("--kv-cache-mb 1");
    assertThat(out.get(1).ok()).as("%s", out.get(1).error()).isTrue();
    assertThat(out.get(1).completionTokens()).isEqualTo(5);
  }

  @Test
  void aStaticBatchOverTheLimitRunsAsSmallerBatchesWithTheSameAnswers() {
    // About 610 positions a row: three together fit in 1 MiB, four do not.
    List<GenerationRequest> rows = List.of(asking(600), asking(600), asking(600), asking(600));
    ScoredWindow bounded = model.score(rows, 4, Batching.FIXED, ONE_MIB, RowLimits.NONE);
    ScoredWindow unbounded = model.score(rows, 4, Batching.FIXED, DecodeTerms.DEFAULT, RowLimits.NONE);

    assertThat(bounded.generations()).allSatisfy(g -> assertThat(g.ok()).as("%s", g.error()).isTrue());
    assertThat(bounded.batches()).isEqualTo(2);
    assertThat(unbounded.batches()).isEqualTo(1);
    // The row left alone ran beside a stand-in: the batched kernel path, the same answer.
    assertThat(bounded.generations()).map(Generation::text)
        .isEqualTo(unbounded.generations().stream().map(Generation::text).toList());
  }

  @Test
  void aBatchedRowWhoseStandInDoesNotFitIsItsErrorNotTheSingleRowPath() {
    // About 1110 positions: it fits alone, not beside the stand-in copy a lone batched row runs with.
    Generation g = model.score(List.of(asking(1100)), 2, Batching.FIXED, ONE_MIB, RowLimits.NONE).generations()
        .get(0);

    assertThat(g.ok()).isFalse();
    assertThat(g.errorKind()).isEqualTo(ErrorKind.OVER_LIMIT);
    assertThat(g.error()).contains("stand-in").contains("--kv-cache-mb 1");
  }
}
