package io.genaibatch.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The continuous-batching loop against onnxruntime-genai's static batches, on the tiny model. */
class ContinuousBatchesTest {
  static LlmModel model;

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
    ScoredWindow cont = model.score(requests, 4, Batching.CONTINUOUS);
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
    System.out.println("static " + fixed.slots() + "\ncontinuous " + cont.slots() + "\n" + cont.profile());
  }
}
