package io.genaibatch.engine.loop;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.engine.GenAiConfig;
import io.genaibatch.engine.SearchOptions;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Token choice on hand-made logits: no model needed. */
class TokenChooserTest {
  private static final GenAiConfig CONFIG = new GenAiConfig(Path.of("."), "phi3", 4096, 6, List.of(5), 5, "model.onnx",
      Map.of("do_sample", false, "top_k", 1), com.fasterxml.jackson.databind.node.MissingNode.getInstance());
  private static final float[] LOGITS = {-3f, 2f, 0.5f, 2f, -0.25f, 1f};

  private static Map<Integer, Integer> draws(SearchOptions o, int times) {
    TokenChooser c = TokenChooser.of(CONFIG, o, new int[] {1, 2}, 0);
    Map<Integer, Integer> seen = new HashMap<>();
    for (int i = 0; i < times; i++) {
      seen.merge(c.choose(LOGITS.clone(), new int[0], new int[0], 0), 1, Integer::sum);
    }
    return seen;
  }

  @Test
  void greedyTakesTheFirstLargestLogit() {
    assertThat(draws(SearchOptions.greedy(4), 5)).containsOnlyKeys(1);
  }

  @Test
  void topKDrawsOnlyAmongTheKLargest() {
    SearchOptions o = SearchOptions.DEFAULTS.withDoSample(true).withTopK(3).withTemperature(5.0).withSeed(1L);
    assertThat(draws(o, 400)).containsOnlyKeys(1, 3, 5);
  }

  @Test
  void topPDrawsOnlyFromTheNucleusAndNoLimitDrawsFromEveryToken() {
    SearchOptions nucleus = SearchOptions.DEFAULTS.withDoSample(true).withTopK(0).withTopP(0.5).withSeed(2L);
    assertThat(draws(nucleus, 400)).containsOnlyKeys(1, 3);
    SearchOptions all = SearchOptions.DEFAULTS.withDoSample(true).withTopK(0).withTemperature(50.0).withSeed(3L);
    assertThat(draws(all, 2000)).containsOnlyKeys(0, 1, 2, 3, 4, 5);
  }

  @Test
  void theSameSeedRowAndCompletionDrawTheSameTokensAndAnotherCompletionOthers() {
    SearchOptions o = SearchOptions.DEFAULTS.withDoSample(true).withTopK(0).withTemperature(2.0).withSeed(9L);
    StringBuilder a = new StringBuilder();
    StringBuilder b = new StringBuilder();
    StringBuilder other = new StringBuilder();
    TokenChooser ca = TokenChooser.of(CONFIG, o, new int[] {7, 8}, 0);
    TokenChooser cb = TokenChooser.of(CONFIG, o, new int[] {7, 8}, 0);
    TokenChooser cc = TokenChooser.of(CONFIG, o, new int[] {7, 8}, 1);
    for (int i = 0; i < 40; i++) {
      a.append(ca.choose(LOGITS.clone(), new int[0], new int[0], 0));
      b.append(cb.choose(LOGITS.clone(), new int[0], new int[0], 0));
      other.append(cc.choose(LOGITS.clone(), new int[0], new int[0], 0));
    }
    assertThat(a.toString()).isEqualTo(b.toString()).isNotEqualTo(other.toString());
  }

  @Test
  void theRepetitionPenaltyLowersTokensAlreadyPresent() {
    SearchOptions o = SearchOptions.greedy(4).withRepetitionPenalty(4.0);
    TokenChooser c = TokenChooser.of(CONFIG, o, new int[] {1}, 0);
    // 1 and 3 tie at 2.0; 1 is in the prompt, so it falls to 0.5 and 3 wins.
    assertThat(c.choose(LOGITS.clone(), new int[] {1}, new int[] {0}, 0)).isEqualTo(3);
  }

  @Test
  void aTokenInBothThePromptAndTheAnswerIsPenalizedOnce() {
    SearchOptions o = SearchOptions.greedy(4).withRepetitionPenalty(2.0);
    TokenChooser c = TokenChooser.of(CONFIG, o, new int[] {1}, 0);
    // Token 1 (2.0) is in the prompt and the answer: once penalized it is 1.0, level with token 5
    // (1.0), which wins no tie (1 comes first); twice penalized (0.5) it would lose to 5.
    float[] logits = LOGITS.clone();
    logits[3] = -1f;
    assertThat(c.choose(logits, new int[] {1}, new int[] {1}, 1)).isEqualTo(1);
  }
}
