package io.genaibatch.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.testing.Fixtures;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Stop strings, searched in text decoded a piece at a time, end every answer where decoding the whole
 * answer again at each token would: same text, same tokens, on both paths, for stop strings taken from
 * every part of real answers (spaces, CJK and emoji included).
 */
class StopStringsTest {
  static final List<String> PROMPTS = List.of("The capital of Spain is", "你好，世界！今天天气怎么样",
      "emoji time 🚀🎉 and more 🧪", "<|user|>\n西班牙的首都是什麼?<|end|>\n<|assistant|>\n");
  static final int TOKENS = 40;
  static LlmModel model;

  @BeforeAll
  static void load() {
    model = LlmModel.load(Fixtures.tinyModel(), 0, 0, true, ExecutionProvider.cpu());
  }

  @AfterAll
  static void close() {
    model.close();
  }

  /** The answer as the whole-answer search gave it: the first prefix of tokens whose text holds the stop string. */
  private static String[] reference(int[] tokens, String stop) {
    for (int k = 1; k <= tokens.length; k++) {
      String text = model.decode(Arrays.copyOf(tokens, k));
      int at = text.indexOf(stop);
      if (at >= 0) {
        return new String[] {text.substring(0, at), String.valueOf(k)};
      }
    }
    return null;
  }

  private static void answersEqualTheWholeAnswerSearch(Batching batching, int batchSize) {
    for (String prompt : PROMPTS) {
      Generation full = model.score(List.of(GenerationRequest.of(prompt, SearchOptions.greedy(TOKENS))), batchSize,
          batching).generations().get(0);
      String text = full.text();
      Set<String> stops = new LinkedHashSet<>();
      for (int i = 0; i + 1 < text.length(); i += 3) {
        stops.add(text.substring(i, Math.min(text.length(), i + 1 + i % 4)));
      }
      List<GenerationRequest> requests = new ArrayList<>();
      for (String s : stops) {
        requests.add(new GenerationRequest(prompt, SearchOptions.greedy(TOKENS), List.of(s), 1, null));
      }
      List<Generation> got = model.score(requests, batchSize, batching).generations();
      int compared = 0;
      for (int r = 0; r < requests.size(); r++) {
        String stop = requests.get(r).stop().get(0);
        String[] ref = reference(full.tokenIds(), stop);
        if (ref == null) {
          continue; // the stop string spans a character the tokens only complete together with what follows
        }
        Generation g = got.get(r);
        assertThat(g.text()).as("%s, stop %s", prompt, stop).isEqualTo(ref[0]);
        assertThat(g.completionTokens()).as("%s, stop %s", prompt, stop).isEqualTo(Integer.parseInt(ref[1]));
        assertThat(g.finishReason()).isEqualTo(FinishReason.STOP);
        compared++;
      }
      assertThat(compared).as("stop strings compared for %s", prompt).isGreaterThan(3);
    }
  }

  @Test
  void theContinuousLoopsAnswersEqualTheWholeAnswerSearch() {
    answersEqualTheWholeAnswerSearch(Batching.CONTINUOUS, 4);
  }

  @Test
  void staticBatchesAnswersEqualTheWholeAnswerSearch() {
    answersEqualTheWholeAnswerSearch(Batching.FIXED, 1);
  }
}
