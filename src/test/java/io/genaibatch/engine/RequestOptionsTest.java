package io.genaibatch.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.testing.Fixtures;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A request's own options on the real engine and the tiny model: per-request token budgets, stop
 * strings checked on the decoded text, n completions, and the batches options split a window into.
 */
class RequestOptionsTest {
  static LlmModel model;

  @BeforeAll
  static void load() {
    model = LlmModel.load(Fixtures.tinyModel());
  }

  @AfterAll
  static void close() {
    model.close();
  }

  private static GenerationRequest req(String prompt, SearchOptions o) {
    return GenerationRequest.of(prompt, o);
  }

  @Test
  void eachRowKeepsItsOwnMaxTokensInOneWindow() {
    List<GenerationRequest> reqs = new ArrayList<>();
    int[] caps = {2, 9, 5, 1, 9, 3};
    for (int i = 0; i < caps.length; i++) {
      reqs.add(req(LlmModelTest.PROMPTS.get(i), SearchOptions.greedy(caps[i])));
    }
    ScoredWindow w = model.score(reqs, 8, Batching.FIXED);
    for (int i = 0; i < caps.length; i++) {
      Generation g = w.generations().get(i);
      assertThat(g.ok()).as("row %d: %s", i, g.error()).isTrue();
      assertThat(g.completionTokens()).as("row %d", i).isLessThanOrEqualTo(caps[i]);
      if (g.finishReason() == FinishReason.LENGTH) {
        assertThat(g.completionTokens()).as("row %d", i).isEqualTo(caps[i]);
      }
      // Same answer as the row alone with that budget: the budget is the row's, not the batch's.
      Generation alone = model.generate(List.of(LlmModelTest.PROMPTS.get(i), LlmModelTest.PROMPTS.get(i)),
          SearchOptions.greedy(caps[i])).get(0);
      assertThat(g.tokenIds()).as("row %d", i).containsExactly(alone.tokenIds());
    }
    // One group of options: the window is one batch, which ends when its longest budget is spent.
    assertThat(w.batches()).isEqualTo(1);
    assertThat(w.slots().decodeSlots()).isLessThanOrEqualTo(6L * 9);
  }

  @Test
  void aStopStringThatSpansTwoTokensCutsTheAnswerThere() {
    String prompt = LlmModelTest.PROMPTS.get(4);
    Generation full = model.generateOne(prompt, SearchOptions.greedy(24));
    int[] tokens = full.tokenIds();
    String text = full.text();
    // Find a token boundary k|k+1 where the two characters around it first appear there in the text.
    String stop = null;
    int cutAt = -1;
    int tokensToStop = -1;
    for (int k = 1; k < tokens.length - 1 && stop == null; k++) {
      String head = model.decode(Arrays.copyOf(tokens, k + 1));
      String next = model.decode(Arrays.copyOf(tokens, k + 2));
      if (head.isEmpty() || next.length() <= head.length() || !text.startsWith(next)
          || Character.isWhitespace(head.charAt(head.length() - 1))) {
        continue;
      }
      String candidate = head.substring(head.length() - 1) + next.charAt(head.length());
      if (text.indexOf(candidate) == head.length() - 1) {
        stop = candidate;
        cutAt = head.length() - 1;
        tokensToStop = k + 2;
      }
    }
    assertThat(stop).as("a two-token boundary in %s", text).isNotNull();

    Generation cut = model.generateOne(new GenerationRequest(prompt, SearchOptions.greedy(24),
        List.of("never appears \u0000", stop), 1, null));
    assertThat(cut.ok()).isTrue();
    assertThat(cut.text()).isEqualTo(text.substring(0, cutAt));
    assertThat(cut.finishReason()).isEqualTo(FinishReason.STOP);
    assertThat(cut.completionTokens()).as("generation ended at the token that completed the stop string")
        .isEqualTo(tokensToStop);
  }

  @Test
  void aStoppedRowEndsItsBatchEarlyWhenNoOtherRowNeedsMoreSteps() {
    String prompt = LlmModelTest.PROMPTS.get(4);
    Generation full = model.generateOne(prompt, SearchOptions.greedy(30));
    String stop = full.text().substring(3, 5);
    GenerationRequest stopped = new GenerationRequest(prompt, SearchOptions.greedy(30), List.of(stop), 1, null);
    ScoredWindow w = model.score(List.of(stopped, stopped), 2, Batching.FIXED);
    Generation g = w.generations().get(0);
    assertThat(g.finishReason()).isEqualTo(FinishReason.STOP);
    assertThat(g.completionTokens()).isLessThan(30);
    // Both rows stopped: the batch ran only the steps they needed, not the 30 of their budget.
    assertThat(w.slots().decodeSlots()).isEqualTo(2L * g.completionTokens());
  }

  @Test
  void nCompletionsAreSampledTogetherAndCountedInUsage() {
    // top_k 0: every token (the tiny model's genai_config.json says 1, which samples the top token only).
    SearchOptions sampling = SearchOptions.greedy(8).withDoSample(true).withTemperature(1.5).withSeed(7L).withTopK(0);
    Generation g = model.generateOne(new GenerationRequest("Hello world", sampling, List.of(), 3, null));
    assertThat(g.ok()).as(g.error()).isTrue();
    assertThat(g.choices()).hasSize(3);
    assertThat(g.completionTokens()).isEqualTo(g.choices().stream().mapToInt(Choice::completionTokens).sum());
    assertThat(g.choices().stream().map(Choice::text).distinct().count())
        .as("three samples of one prompt in one batch differ").isGreaterThan(1);

    Generation greedy = model.generateOne(new GenerationRequest("Hello world", SearchOptions.greedy(8), List.of(), 3,
        null));
    assertThat(greedy.errorKind()).isEqualTo(ErrorKind.BAD_OPTION);
    assertThat(greedy.error()).contains("n = 3 needs sampling");
    Generation topOne = model.generateOne(new GenerationRequest("Hello world", sampling.withTopK(null), List.of(), 2,
        null));
    assertThat(topOne.errorKind()).isEqualTo(ErrorKind.BAD_OPTION);
    assertThat(topOne.error()).contains("top_k 1");
  }

  @Test
  void rowsWhoseSamplingOptionsDifferNeverShareABatch() {
    SearchOptions a = SearchOptions.greedy(4);
    SearchOptions b = SearchOptions.greedy(4).withDoSample(true).withTemperature(0.7).withSeed(1L);
    List<GenerationRequest> reqs = List.of(req("Hello world", a), req("ok", b), req("The capital of Spain is", a),
        req("emoji time", b));
    ScoredWindow w = model.score(reqs, 8, Batching.FIXED);
    assertThat(w.batches()).isEqualTo(2);
    assertThat(w.generations()).allMatch(Generation::ok);
    // The greedy rows answer as they would beside each other alone.
    List<Generation> ref = model.generate(List.of("Hello world", "The capital of Spain is"), a);
    assertThat(w.generations().get(0).tokenIds()).containsExactly(ref.get(0).tokenIds());
    assertThat(w.generations().get(2).tokenIds()).containsExactly(ref.get(1).tokenIds());
  }

  static final String SCHEMA = "{\"type\":\"object\",\"properties\":{\"label\":{\"type\":\"string\","
      + "\"enum\":[\"pos\",\"neg\"]},\"score\":{\"type\":\"integer\"}},\"required\":[\"label\",\"score\"],"
      + "\"additionalProperties\":false}";

  @Test
  void aJsonSchemaMakesTheRandomModelsAnswersParseAndAShortBudgetIsAnErrorSayingSo() {
    ResponseFormat format = ResponseFormat.parse(SCHEMA, "test");
    List<GenerationRequest> reqs = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      reqs.add(new GenerationRequest(LlmModelTest.PROMPTS.get(i), SearchOptions.greedy(80), List.of(), 1,
          format.guidance()));
    }
    reqs.add(new GenerationRequest("Hello world", SearchOptions.greedy(3), List.of(), 1, format.guidance()));
    reqs.add(new GenerationRequest("Hello world", SearchOptions.greedy(8), List.of(), 1,
        ResponseFormat.parse("regex:(yes|no)", "test").guidance()));
    ScoredWindow w = model.score(reqs, 8, Batching.FIXED);
    for (int i = 0; i < 4; i++) {
      Generation g = w.generations().get(i);
      assertThat(g.ok()).as("row %d: %s", i, g.error()).isTrue();
      assertThat(format.accepts(g.text())).as("row %d: %s", i, g.text()).isTrue();
      assertThat(g.finishReason()).isEqualTo(FinishReason.STOP);
    }
    Generation cut = w.generations().get(4);
    assertThat(cut.errorKind()).isEqualTo(ErrorKind.INCOMPLETE_RESPONSE);
    assertThat(cut.error()).contains("limit of 3 new tokens before its response format (json_schema) was complete");
    assertThat(w.generations().get(5).text()).isIn("yes", "no");
    // onnxruntime-genai 0.12.0 fails a guided batch whose rows end at different steps: each guided
    // request runs in a generator of its own.
    assertThat(w.batches()).isEqualTo(6);
  }

  @Test
  void sampledCompletionsUnderAFormatEachParseAndDiffer() {
    ResponseFormat word = ResponseFormat.parse("regex:[a-z]{3,8}", "test");
    SearchOptions sampling = SearchOptions.greedy(12).withDoSample(true).withTemperature(1.5).withSeed(7L).withTopK(0);
    Generation g = model.generateOne(new GenerationRequest("Hello world", sampling, List.of(), 3, word.guidance()));
    assertThat(g.ok()).as(g.error()).isTrue();
    assertThat(g.choices()).hasSize(3).allMatch(c -> word.accepts(c.text()));
    assertThat(g.choices().stream().map(Choice::text).distinct().count()).isGreaterThan(1);
  }
}
