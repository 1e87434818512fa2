package io.genaibatch.engine.loop;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.engine.Batching;
import io.genaibatch.engine.DecodeTerms;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.ScoredWindow;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The decode loop one model's callers share (an executor's tasks): their rows decode in the same
 * steps, and no caller's answers depend on the others, on when they came, or on a cancelled one.
 */
class DecodeLoopTest {
  static LlmModel model;
  /**
   * Prefix reuse and duplicate answering off: these tests measure the loop's own work (its steps,
   * cache, stand-ins, cancellation), which reuse would skip for prompts an earlier test scored.
   */
  static final DecodeTerms NO_REUSE = DecodeTerms.DEFAULT.withPrefixBytes(0);
  static ExecutorService tasks;

  @BeforeAll
  static void load() {
    // The loop on two threads, as on a two-core executor; each caller's own calls on one.
    model = LlmModel.load(Fixtures.tinyModel(), 1, 2, true, ExecutionProvider.cpu());
    tasks = Executors.newFixedThreadPool(2);
  }

  @AfterAll
  static void close() {
    tasks.shutdownNow();
    model.close();
  }

  /** A window of prompts whose greedy answers end at different lengths, each within {@code budget} tokens. */
  private static List<GenerationRequest> window(int budget, String topic) {
    List<GenerationRequest> out = new ArrayList<>();
    for (GenerationRequest r : ContinuousBatchesTest.mixed()) {
      out.add(new GenerationRequest(r.prompt().replace("<|end|>", topic + "<|end|>"), SearchOptions.greedy(budget),
          r.stop(), 1, null));
    }
    return out;
  }

  /** Scores {@code window} on another thread, batch 4, once {@code go} opens. */
  private static Future<ScoredWindow> scoreAfter(CountDownLatch go, List<GenerationRequest> window) {
    return tasks.submit(() -> {
      go.await();
      return model.score(window, 4, Batching.CONTINUOUS, NO_REUSE);
    });
  }

  @Test
  void twoCallersAtOnceShareDecodeStepsAndKeepTheirAnswers() throws Exception {
    List<GenerationRequest> a = window(30, " wind");
    List<GenerationRequest> b = window(30, " stone");
    ScoredWindow aloneA = model.score(a, 4, Batching.CONTINUOUS, NO_REUSE);
    ScoredWindow aloneB = model.score(b, 4, Batching.CONTINUOUS, NO_REUSE);
    CountDownLatch go = new CountDownLatch(1);
    Future<ScoredWindow> fa = scoreAfter(go, a);
    Future<ScoredWindow> fb = scoreAfter(go, b);
    go.countDown();
    ScoredWindow togetherA = fa.get(2, TimeUnit.MINUTES);
    ScoredWindow togetherB = fb.get(2, TimeUnit.MINUTES);
    PrefixReuseTest.assertSameAnswers(togetherA, aloneA, "A");
    PrefixReuseTest.assertSameAnswers(togetherB, aloneB, "B");
    // Each step counts once, for one of the windows in it: shared steps make fewer than apart.
    long together = togetherA.profile().steps() + togetherB.profile().steps();
    long apart = aloneA.profile().steps() + aloneB.profile().steps();
    assertThat(together).as("decode steps of both windows at once against one after the other").isLessThan(apart);
  }

  @Test
  void aLongerWindowJoiningLiveRowsGrowsTheCacheWithoutChangingAnAnswer() throws Exception {
    List<GenerationRequest> shortWindow = window(12, " river");
    List<GenerationRequest> longWindow = window(70, " cloud");
    ScoredWindow aloneShort = model.score(shortWindow, 2, Batching.CONTINUOUS, NO_REUSE);
    ScoredWindow aloneLong = model.score(longWindow, 2, Batching.CONTINUOUS, NO_REUSE);
    AtomicInteger checks = new AtomicInteger();
    CompletableFuture<Void> shortStarted = new CompletableFuture<>();
    // The short window's cancellation check runs between steps: its first call says it is live.
    DecodeTerms watched = new DecodeTerms(() -> {
      if (checks.incrementAndGet() == 3) {
        shortStarted.complete(null);
      }
      return false;
    }, DecodeTerms.DEFAULT_LIMIT_BYTES, 0);
    Future<ScoredWindow> fs = tasks.submit(() -> model.score(shortWindow, 2, Batching.CONTINUOUS, watched));
    shortStarted.get(1, TimeUnit.MINUTES);
    Future<ScoredWindow> fl = tasks.submit(() -> model.score(longWindow, 2, Batching.CONTINUOUS, NO_REUSE));
    ScoredWindow gotShort = fs.get(2, TimeUnit.MINUTES);
    ScoredWindow gotLong = fl.get(2, TimeUnit.MINUTES);
    PrefixReuseTest.assertSameAnswers(gotShort, aloneShort, "short");
    PrefixReuseTest.assertSameAnswers(gotLong, aloneLong, "long");
    assertThat(gotLong.profile().kvBytes()).as("the cache grown for the long window")
        .isGreaterThan(aloneShort.profile().kvBytes());
  }

  @Test
  void aCancelledCallerLeavesAndTheOtherCallersRowsAreAnswered() throws Exception {
    List<GenerationRequest> a = window(40, " fire");
    List<GenerationRequest> b = window(40, " tree");
    ScoredWindow aloneB = model.score(b, 4, Batching.CONTINUOUS, NO_REUSE);
    AtomicInteger checks = new AtomicInteger();
    DecodeTerms cancelledSoon = new DecodeTerms(() -> checks.incrementAndGet() > 20, DecodeTerms.DEFAULT_LIMIT_BYTES, 0);
    CountDownLatch go = new CountDownLatch(1);
    Future<Throwable> fa = tasks.submit(() -> {
      go.await();
      try {
        model.score(a, 4, Batching.CONTINUOUS, cancelledSoon);
        return null;
      } catch (EngineException e) {
        return e;
      }
    });
    Future<ScoredWindow> fb = scoreAfter(go, b);
    go.countDown();
    assertThat(fa.get(2, TimeUnit.MINUTES)).as("the cancelled caller's error").isNotNull()
        .hasMessageContaining("cancelled");
    PrefixReuseTest.assertSameAnswers(fb.get(2, TimeUnit.MINUTES), aloneB, "B");
  }
}
