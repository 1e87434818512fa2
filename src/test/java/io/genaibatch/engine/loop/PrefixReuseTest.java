package io.genaibatch.engine.loop;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.engine.Batching;
import io.genaibatch.engine.DecodeProfile;
import io.genaibatch.engine.DecodeTerms;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.ScoredWindow;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Prefix reuse and duplicate answering in the executor's decode loop, on the real engine: answers
 * never change with reuse on or off, with a prefix evicted and computed again, or with a store far
 * smaller than one prefix; shared prefixes and duplicates are computed once, and counted.
 */
public class PrefixReuseTest {
  static LlmModel model;
  static ExecutorService tasks;
  private static final String[] WORDS = {"sea", "sun", "river", "mountain", "stone", "cloud", "fire", "wind", "tree",
      "light", "garden", "window", "morning", "evening", "village", "weather"};

  @BeforeAll
  static void load() {
    model = LlmModel.load(Fixtures.tinyModel(), 1, 2, true, ExecutionProvider.cpu());
    tasks = Executors.newFixedThreadPool(2);
  }

  @AfterAll
  static void close() {
    tasks.shutdownNow();
    model.close();
  }

  /** Terms with prefix store bound {@code bytes} (0: reuse and duplicate answering off). */
  private static DecodeTerms store(long bytes) {
    return DecodeTerms.DEFAULT.withPrefixBytes(bytes);
  }

  /** An instruction template of about {@code words} words, different for each {@code tag}. */
  public static String template(String tag, int words) {
    StringBuilder t = new StringBuilder("<|system|>\nGrade the answer " + tag + " as the examples do ");
    for (int w = 0; w < words; w++) {
      t.append(WORDS[(w * 7 + tag.length() * 3 + w / 5) % WORDS.length]).append(w % 9 == 8 ? " ; " : " ");
    }
    return t.append("<|end|>\n<|user|>\n").toString();
  }

  /**
   * Rows of three templates (their contents 2 to 30 words), every seventh row a copy of an earlier
   * one, stop strings and their own max_tokens on some; {@code tag} makes the templates this test's own.
   */
  public static List<GenerationRequest> sharedPrefixRows(String tag, int rows) {
    List<String> templates = List.of(template(tag + "a", 120), template(tag + "b", 60), template(tag + "c", 200));
    List<GenerationRequest> out = new ArrayList<>();
    for (int i = 0; i < rows; i++) {
      if (i % 7 == 6) {
        out.add(out.get(i / 2));
        continue;
      }
      StringBuilder p = new StringBuilder(templates.get(i % 3));
      for (int w = 0; w < 2 + (i * 11) % 29; w++) {
        p.append(WORDS[(i * 5 + w) % WORDS.length]).append(' ');
      }
      p.append(i % 4 == 0 ? "." : "?").append("<|end|>\n<|assistant|>\n");
      SearchOptions o = SearchOptions.greedy(i % 3 == 0 ? 30 : 4 + i % 17);
      List<String> stop = i % 5 == 1 ? List.of("e") : List.of();
      out.add(new GenerationRequest(p.toString(), o, stop, 1, null));
    }
    return out;
  }

  static void assertSameAnswers(ScoredWindow got, ScoredWindow want, String which) {
    assertThat(got.generations()).hasSameSizeAs(want.generations());
    for (int i = 0; i < want.generations().size(); i++) {
      Generation g = got.generations().get(i);
      Generation w = want.generations().get(i);
      assertThat(g.ok()).as("%s row %d: %s", which, i, g.error()).isTrue();
      assertThat(g.tokenIds()).as("%s row %d tokens", which, i).containsExactly(w.tokenIds());
      assertThat(g.text()).as("%s row %d text", which, i).isEqualTo(w.text());
      assertThat(g.finishReason()).as("%s row %d finish", which, i).isEqualTo(w.finishReason());
    }
  }

  private static long promptTokens(ScoredWindow w) {
    return w.generations().stream().mapToLong(Generation::promptTokens).sum();
  }

  @Test
  void answersAreTheSameWithReuseOnAndOffAndSharedPrefixesAreComputedOnce() {
    List<GenerationRequest> rows = sharedPrefixRows("same", 42);
    ScoredWindow off = model.score(rows, 4, Batching.CONTINUOUS, store(0));
    ScoredWindow on = model.score(rows, 4, Batching.CONTINUOUS, DecodeTerms.DEFAULT);
    assertSameAnswers(on, off, "reuse on");
    assertThat(off.profile().promptReused()).as("reuse off reads nothing from the store").isZero();
    assertThat(off.profile().duplicates()).isZero();
    DecodeProfile p = on.profile();
    assertThat(p.duplicates()).as("the six copied rows answered from their originals").isEqualTo(6);
    // Three templates of 60 to 200 words, each computed once: the rest of the prompt tokens are read.
    assertThat(p.promptComputed()).as("prompt tokens computed with reuse on")
        .isLessThan(promptTokens(on) / 3);
    assertThat(p.storeBytes()).isPositive();
    assertThat(on.profile().prefills()).as("a duplicate is never prefilled").isEqualTo(off.profile().prefills() - 6);
  }

  @Test
  void aSecondWindowReadsTheFirstOnesPrefixesAndAnEvictedPrefixIsComputedAgainTheSame() {
    List<GenerationRequest> rows = sharedPrefixRows("evict", 21);
    ScoredWindow off = model.score(rows, 4, Batching.CONTINUOUS, store(0));
    ScoredWindow first = model.score(rows.subList(0, 10), 4, Batching.CONTINUOUS, DecodeTerms.DEFAULT);
    ScoredWindow second = model.score(rows.subList(10, 21), 4, Batching.CONTINUOUS, DecodeTerms.DEFAULT);
    assertThat(second.profile().prefixHitRate()).as("the second window's prompts, read from the first's blocks")
        .isGreaterThan(0.5);
    List<Generation> both = new ArrayList<>(first.generations());
    both.addAll(second.generations());
    for (int i = 0; i < rows.size(); i++) {
      assertThat(both.get(i).tokenIds()).as("row %d across two windows", i)
          .containsExactly(off.generations().get(i).tokenIds());
    }
  }

  @Test
  void aStoreFarBelowOnePrefixEvictsAndComputesAgainWithTheSameAnswers() {
    List<GenerationRequest> rows = sharedPrefixRows("small", 21);
    ScoredWindow off = model.score(rows, 4, Batching.CONTINUOUS, store(0));
    // A store of two blocks: every template is evicted by the next, and computed again.
    long twoBlocks = 2 * KvCache.bytes(graph(), 1, DecodeLoop.BLOCK_TOKENS);
    ScoredWindow small = model.score(rows, 4, Batching.CONTINUOUS, store(twoBlocks));
    assertSameAnswers(small, off, "a store of two blocks");
    assertThat(small.profile().storeBytes()).isLessThanOrEqualTo(twoBlocks);
    assertThat(small.profile().promptComputed()).as("prefixes evicted and computed again")
        .isGreaterThan((promptTokens(small) - small.profile().duplicateTokens()) / 2);
  }

  @Test
  void theProjectsMixedPromptsAnswerTheSameWithReuseOnAndOff() throws Exception {
    List<GenerationRequest> rows = ContinuousBatchesTest.mixed();
    assertSameAnswers(model.score(rows, 4, Batching.CONTINUOUS, DecodeTerms.DEFAULT),
        model.score(rows, 4, Batching.CONTINUOUS, store(0)), "mixed prompts");
    // On a model wide enough for the int4 kernels' paths to differ, a reused prefix still gives
    // each row the answer it has without reuse: the suffix's prefill, even of one token, is batched.
    try (LlmModel wide = LlmModel.load(Fixtures.kernelPathsModel(), 1, 2, true, ExecutionProvider.cpu())) {
      List<GenerationRequest> shared = sharedPrefixRows("wide", 15);
      ScoredWindow wideOff = wide.score(shared, 4, Batching.CONTINUOUS, store(0));
      ScoredWindow wideOn = wide.score(shared, 4, Batching.CONTINUOUS, DecodeTerms.DEFAULT);
      assertSameAnswers(wideOn, wideOff, "kernel-paths model");
      assertThat(wideOn.profile().prefixHitRate()).isGreaterThan(0.5);
    }
  }

  @Test
  void twoTasksSharingAPrefixComputeItOnce() throws Exception {
    List<GenerationRequest> rows = sharedPrefixRows("tasks", 24);
    ScoredWindow off = model.score(rows, 4, Batching.CONTINUOUS, store(0));
    CountDownLatch go = new CountDownLatch(1);
    Future<ScoredWindow> a = tasks.submit(() -> {
      go.await();
      return model.score(rows.subList(0, 12), 4, Batching.CONTINUOUS, DecodeTerms.DEFAULT);
    });
    Future<ScoredWindow> b = tasks.submit(() -> {
      go.await();
      return model.score(rows.subList(12, 24), 4, Batching.CONTINUOUS, DecodeTerms.DEFAULT);
    });
    go.countDown();
    ScoredWindow ra = a.get(2, TimeUnit.MINUTES);
    ScoredWindow rb = b.get(2, TimeUnit.MINUTES);
    for (int i = 0; i < 12; i++) {
      assertThat(ra.generations().get(i).tokenIds()).as("task A row %d", i)
          .containsExactly(off.generations().get(i).tokenIds());
      assertThat(rb.generations().get(i).tokenIds()).as("task B row %d", i)
          .containsExactly(off.generations().get(12 + i).tokenIds());
    }
    DecodeProfile both = ra.profile().plus(rb.profile());
    // Each template's whole blocks are computed by one row of one task; every other row of either
    // task reads them, so the two tasks compute about what one would alone.
    int blocks = DecodeLoop.BLOCK_TOKENS;
    long templateTokens = 0;
    for (String t : List.of(template("tasksa", 120), template("tasksb", 60), template("tasksc", 200))) {
      templateTokens += (long) (model.encode(t).length / blocks) * blocks;
    }
    long allPrompts = promptTokens(ra) + promptTokens(rb);
    assertThat(both.promptComputed()).as("prompt tokens the two tasks computed")
        .isLessThanOrEqualTo(allPrompts - (allPrompts - templateTokens) / 2)
        .isLessThan(off.profile().promptComputed() - 2 * templateTokens);
  }

  @Test
  void seededSampledAnswersAreTheSameWithReuseOnAndOff() {
    List<GenerationRequest> rows = new ArrayList<>();
    for (GenerationRequest r : sharedPrefixRows("sampled", 14)) {
      SearchOptions o = r.options().withDoSample(true).withTemperature(0.9).withTopP(0.9).withTopK(50).withSeed(7L);
      rows.add(new GenerationRequest(r.prompt(), o, r.stop(), 2, null));
    }
    ScoredWindow off = model.score(rows, 4, Batching.CONTINUOUS, store(0));
    ScoredWindow on = model.score(rows, 4, Batching.CONTINUOUS, DecodeTerms.DEFAULT);
    for (int i = 0; i < rows.size(); i++) {
      for (int c = 0; c < 2; c++) {
        assertThat(on.generations().get(i).choices().get(c).tokenIds()).as("row %d completion %d", i, c)
            .containsExactly(off.generations().get(i).choices().get(c).tokenIds());
      }
    }
    assertThat(on.profile().duplicates()).as("copies of seeded rows answered once, both completions").isEqualTo(4);
  }

  private static DecoderGraph graph() {
    StringBuilder why = new StringBuilder();
    return DecoderGraph.read(model.config(), why).orElseThrow();
  }
}
