package io.genaibatch.engine.loop;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.genaibatch.engine.Batching;
import io.genaibatch.engine.DecodeTerms;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.ScoredWindow;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.engine.guidance.Guidance;
import io.genaibatch.engine.guidance.NativeGuidanceTest;
import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The continuous-batching loop against onnxruntime-genai's static batches, on the tiny model. */
class ContinuousBatchesTest {
  static LlmModel model;
  /**
   * Prefix reuse and duplicate answering off: these tests measure the loop's own work (its steps,
   * cache, stand-ins, cancellation), which reuse would skip for prompts an earlier test scored.
   */
  static final DecodeTerms NO_REUSE = DecodeTerms.DEFAULT.withPrefixBytes(0);

  @BeforeAll
  static void load() {
    model = LlmModel.load(Fixtures.tinyModel(), 1);
  }

  @AfterAll
  static void close() {
    model.close();
  }

  /** Prompts of 1 to about 60 tokens whose greedy answers end at different lengths. */
  static List<GenerationRequest> mixed() {
    String[] words = {"sea", "sun", "river", "mountain", "stone", "cloud", "fire", "wind", "tree", "light"};
    List<GenerationRequest> out = new ArrayList<>();
    for (int i = 0; i < 23; i++) {
      StringBuilder p = new StringBuilder("<|user|>\n");
      for (int w = 0; w < (i * 7) % 31 + 1; w++) {
        p.append(words[(i + w * 3) % words.length]).append(' ');
      }
      p.append(i % 4 == 0 ? "." : "?").append("<|end|>\n<|assistant|>\n");
      SearchOptions o = SearchOptions.greedy(i % 3 == 0 ? 40 : 5 + i);
      List<String> stop = i % 5 == 1 ? List.of("e") : List.of();
      out.add(new GenerationRequest(p.toString(), o, stop, 1, null));
    }
    out.add(GenerationRequest.of("x", SearchOptions.greedy(12)));
    return out;
  }

  @Test
  void continuousAnswersEqualStaticBatchedAnswersTokenForToken() {
    List<GenerationRequest> requests = mixed();
    ScoredWindow fixed = model.score(requests, 4, Batching.FIXED);
    ScoredWindow cont = model.score(requests, 4, Batching.CONTINUOUS, NO_REUSE);
    assertThat(model.continuousUnavailable()).isEmpty();
    assertThat(cont.profile().steps()).isPositive();
    for (int i = 0; i < requests.size(); i++) {
      Generation a = fixed.generations().get(i);
      Generation b = cont.generations().get(i);
      assertThat(b.ok()).as("row %d: %s", i, b.error()).isTrue();
      assertThat(b.text()).as("row %d", i).isEqualTo(a.text());
      assertThat(b.finishReason()).as("row %d", i).isEqualTo(a.finishReason());
      assertThat(b.completionTokens()).as("row %d", i).isEqualTo(a.completionTokens());
    }
    // A row that ends leaves its slot: every decode slot computed serves a live row, but for the
    // stand-in beside the last one; the static batches computed finished rows' slots too.
    assertThat(cont.slots().decodeEfficiency()).isGreaterThan(0.95);
    assertThat(cont.slots().decodeSlots()).isLessThan(fixed.slots().decodeSlots());
    assertThat(cont.slots().prefillEfficiency()).as("no padding; one stand-in for the one-token prompt")
        .isGreaterThan(0.99);
    assertThat(cont.profile().kvBytes()).isPositive();
  }

  @Test
  void rowsUnderAResponseFormatShareTheLoopAndAnswerAsTheGeneratorDoes() {
    Guidance schema = ResponseFormat.parse(NativeGuidanceTest.SCHEMA, "the test").guidance();
    Guidance yesNo = ResponseFormat.parse("regex:(yes|no)", "the test").guidance();
    List<GenerationRequest> requests = new ArrayList<>();
    List<GenerationRequest> free = mixed();
    for (int i = 0; i < free.size(); i++) {
      GenerationRequest r = free.get(i);
      Guidance g = i % 3 == 0 ? schema : i % 3 == 1 ? yesNo : null;
      requests.add(new GenerationRequest(r.prompt(), SearchOptions.greedy(40), r.stop(), 1, g));
    }
    // The static path: each guided row in onnxruntime-genai's generator beside a stand-in copy.
    ScoredWindow generator = model.score(requests, 4, Batching.FIXED);
    ScoredWindow loop = model.score(requests, 4, Batching.CONTINUOUS, NO_REUSE);
    for (int i = 0; i < requests.size(); i++) {
      Generation a = generator.generations().get(i);
      Generation b = loop.generations().get(i);
      assertThat(b.ok()).as("row %d: %s", i, b.error()).isTrue();
      assertThat(b.choices().get(0).tokenIds()).as("row %d: %s", i, a.text()).isEqualTo(a.choices().get(0).tokenIds());
      assertThat(b.text()).as("row %d", i).isEqualTo(a.text());
      assertThat(b.finishReason()).as("row %d", i).isEqualTo(a.finishReason());
    }
    assertThat(loop.generations().get(4).text()).isIn("yes", "no");
    assertThat(loop.generations().get(0).text()).startsWith("{\"label\":\"");
    // Every row, guided or not, in the one loop: no native batch, no stand-in copy prefilled.
    assertThat(loop.batches()).isEqualTo(1);
    assertThat(loop.slots().prefillEfficiency()).isGreaterThan(0.99);
  }

  @Test
  void guidedRowsEndingAtDifferentStepsDecodeTogether() {
    // Two rows that a guided native batch cannot hold: "no" ends a step before "yes" (NativeGuidanceTest).
    Guidance yesNo = ResponseFormat.parse("regex:(yes|no)", "the test").guidance();
    List<GenerationRequest> rows = NativeGuidanceTest.PROMPTS.stream()
        .map(p -> new GenerationRequest(p, SearchOptions.greedy(16), List.of(), 1, yesNo)).toList();
    ScoredWindow loop = model.score(rows, 2, Batching.CONTINUOUS, NO_REUSE);
    assertThat(loop.generations()).extracting(Generation::text).containsExactly("no", "yes");
    assertThat(loop.batches()).isEqualTo(1);
    assertThat(loop.profile().steps()).isPositive();
  }

  @Test
  void answersDoNotDependOnNeighboursOrderOrBatchSize() {
    List<GenerationRequest> base = mixed();
    List<Generation> ref = model.score(base, 8, Batching.CONTINUOUS, NO_REUSE).generations();
    List<GenerationRequest> shuffled = new ArrayList<>(base);
    Collections.reverse(shuffled);
    shuffled.add(3, GenerationRequest.of(null, SearchOptions.greedy(5)));
    for (int b : new int[] {2, 3, 5}) {
      List<Generation> got = model.score(shuffled, b, Batching.CONTINUOUS, NO_REUSE).generations();
      for (int i = 0; i < shuffled.size(); i++) {
        GenerationRequest r = shuffled.get(i);
        if (r.prompt() == null) {
          assertThat(got.get(i).ok()).isFalse();
          continue;
        }
        assertThat(got.get(i).tokenIds()).as("batch %d, row %d", b, i).containsExactly(ref.get(base.indexOf(r)).tokenIds());
      }
    }
  }

  /**
   * On a model wide enough for onnxruntime's int4 kernels to take their single-row path, the loop
   * gives a row its static batched answer when it is the last one live and when it is alone.
   */
  @Test
  void onAWideModelTheLastLiveRowKeepsItsBatchedAnswer() throws Exception {
    List<String> prompts = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      prompts.add("<|user|>\nWrite about river " + i + " and the stone garden " + "light ".repeat(i) + "<|end|>\n<|assistant|>\n");
    }
    List<GenerationRequest> requests = new ArrayList<>();
    for (int i = 0; i < prompts.size(); i++) {
      requests.add(GenerationRequest.of(prompts.get(i), SearchOptions.greedy(20 + 5 * i)));
    }
    try (LlmModel wide = LlmModel.load(Fixtures.kernelPathsModel(), 1)) {
      List<Generation> batched = wide.score(requests, 4, Batching.FIXED).generations();
      List<Generation> cont = wide.score(requests, 4, Batching.CONTINUOUS, NO_REUSE).generations();
      for (int i = 0; i < prompts.size(); i++) {
        assertThat(cont.get(i).tokenIds()).as("prompt %d", i).containsExactly(batched.get(i).tokenIds());
        Generation lone = wide.score(List.of(requests.get(i)), 8, Batching.CONTINUOUS, NO_REUSE).generations().get(0);
        assertThat(lone.tokenIds()).as("prompt %d alone", i).containsExactly(batched.get(i).tokenIds());
      }
    }
  }

  @Test
  void aSampledRowsAnswerDependsOnItselfAloneAndRowsOfDifferentOptionsShareSteps() {
    List<GenerationRequest> rows = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      SearchOptions o = SearchOptions.DEFAULTS.withMaxNewTokens(12).withDoSample(true).withTopK(0)
          .withTemperature(0.5 + 0.25 * i).withSeed(7L);
      rows.add(new GenerationRequest("<|user|>\nTell me about the wind number " + i + "<|end|>\n<|assistant|>\n", o,
          List.of(), i == 2 ? 3 : 1, null));
    }
    ScoredWindow together = model.score(rows, 8, Batching.CONTINUOUS, NO_REUSE);
    assertThat(together.batches()).as("one continuous run for six option sets").isEqualTo(1);
    assertThat(together.profile().steps()).isLessThan(together.slots().decodeUseful());
    for (int i = 0; i < rows.size(); i++) {
      Generation alone = model.score(List.of(rows.get(i)), 8, Batching.CONTINUOUS, NO_REUSE).generations().get(0);
      Generation in = together.generations().get(i);
      assertThat(in.choices()).hasSize(rows.get(i).n());
      for (int c = 0; c < in.choices().size(); c++) {
        assertThat(in.choices().get(c).tokenIds()).as("row %d completion %d", i, c)
            .containsExactly(alone.choices().get(c).tokenIds());
      }
    }
    Generation three = together.generations().get(2);
    assertThat(three.choices().get(0).tokenIds()).as("completions draw from their own streams")
        .isNotEqualTo(three.choices().get(1).tokenIds());
  }

  @Test
  void aWindowWhoseCacheWouldPassTheLimitRunsFewerRowsWithTheSameAnswers() {
    List<GenerationRequest> requests = mixed();
    ScoredWindow free = model.score(requests, 8, Batching.CONTINUOUS, NO_REUSE);
    long perSlot = free.profile().kvBytes() / 9;
    ScoredWindow cut = model.score(requests, 8, Batching.CONTINUOUS, new DecodeTerms(() -> false, perSlot * 3, 0));
    assertThat(cut.profile().kvBytes()).as("two live rows and the spare region").isEqualTo(perSlot * 3);
    assertThat(cut.profile().steps()).isGreaterThan(free.profile().steps());
    for (int i = 0; i < requests.size(); i++) {
      assertThat(cut.generations().get(i).tokenIds()).containsExactly(free.generations().get(i).tokenIds());
    }
  }

  @Test
  void aCancelledTaskStopsBetweenSteps() {
    DecodeTerms cancelled = new DecodeTerms(() -> true, DecodeTerms.DEFAULT_LIMIT_BYTES, 0);
    assertThatThrownBy(() -> model.score(mixed(), 4, Batching.CONTINUOUS, cancelled))
        .isInstanceOf(EngineException.class).hasMessageContaining("cancelled");
    // The static batches (guided rows take them in any mode) stop too.
    assertThatThrownBy(() -> model.score(mixed(), 4, Batching.FIXED, cancelled))
        .isInstanceOf(EngineException.class).hasMessageContaining("cancelled");
  }

  @Test
  void theProcessHoldsOneNativeOnnxRuntime() throws Exception {
    model.score(mixed().subList(0, 3), 2, Batching.CONTINUOUS, NO_REUSE);
    Set<String> files = new TreeSet<>();
    for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
      int at = line.indexOf('/');
      if (at >= 0 && line.substring(at).matches(".*/libonnxruntime\\.so[.0-9]*")) {
        files.add(line.substring(at));
      }
    }
    assertThat(files).as("libonnxruntime mapped from one file").hasSize(1);
  }
}
