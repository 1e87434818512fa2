package io.genaibatch.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import io.genaibatch.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Real onnxruntime-genai on the tiny Phi-3 model, checked against the Python package. */
class LlmModelTest {
  static final List<String> PROMPTS = List.of(
      "Hello world",
      "The capital of Spain is",
      "你好，世界！今天天气怎么样",
      "emoji time 🚀🎉 and more 🧪",
      "<|system|>You are a stand-up comedian.<|end|><|user|>Tell me a joke about atoms<|end|><|assistant|>",
      "<|user|>\n西班牙的首都是什麼?<|end|>\n<|assistant|>\n",
      "A long prompt with many words to make the padding matter: one two three four five six seven eight nine ten.",
      "ok");
  static final int NEW_TOKENS = 12;

  static LlmModel model;

  @BeforeAll
  static void load() {
    model = LlmModel.load(Fixtures.tinyModel());
  }

  @AfterAll
  static void close() {
    model.close();
  }

  @Test
  void batchOfEightMatchesPythonOneAtATimeTokenForToken() throws Exception {
    List<Generation> java = model.generate(PROMPTS, SearchOptions.greedy(NEW_TOKENS));
    JsonNode py = Fixtures.runPython("src/test/python/reference_generate.py",
        Map.of("model", Fixtures.tinyModel().toString(), "prompts", PROMPTS, "max_new_tokens", NEW_TOKENS));

    assertThat(java).hasSize(8);
    for (int i = 0; i < PROMPTS.size(); i++) {
      JsonNode ref = py.get("generations").get(i);
      Generation g = java.get(i);
      int[] refTokens = new int[ref.get("tokens").size()];
      Arrays.setAll(refTokens, k -> ref.get("tokens").get(k).asInt());
      assertThat(g.tokenIds()).as("tokens of prompt %d: %s", i, PROMPTS.get(i)).containsExactly(refTokens);
      assertThat(g.promptTokens()).as("prompt tokens of %d", i).isEqualTo(ref.get("prompt_tokens").asInt());
      assertThat(g.completionTokens()).isEqualTo(refTokens.length);
      assertThat(g.text()).isEqualTo(ref.get("text").asText());
      assertThat(g.finishReason().wire()).isEqualTo(ref.get("finish_reason").asText());
      assertThat(g.latencyMs()).isPositive();
    }
  }

  @Test
  void promptTokenCountsEqualTheTokenizers() throws Exception {
    JsonNode py = Fixtures.runPython("src/test/python/reference_generate.py",
        Map.of("model", Fixtures.tinyModel().toString(), "prompts", PROMPTS, "max_new_tokens", 1));
    for (int i = 0; i < PROMPTS.size(); i++) {
      assertThat(model.countTokens(PROMPTS.get(i)))
          .isEqualTo(py.get("generations").get(i).get("prompt_tokens").asInt());
    }
    // Phi-3's special tokens are single tokens.
    assertThat(model.encode("<|user|>")).endsWith(32010);
    assertThat(model.encode("<|assistant|>")).endsWith(32001);
  }

  @Test
  void textBeyondTheBmpSurvivesTheBindingBothWays() {
    for (String s : List.of("emoji 🚀 x", "你好，世界 🧪🎉", "𝒜 rare 𠀀 CJK")) {
      assertThat(model.decode(model.encode(s)).strip()).isEqualTo(s);
    }
  }

  @Test
  void maxNewTokensIsHonouredAndReportedAsLength() {
    for (int n : new int[] {1, 5, 17}) {
      Generation g = model.generate(List.of("Hello world"), SearchOptions.greedy(n)).get(0);
      assertThat(g.completionTokens()).isEqualTo(n);
      assertThat(g.finishReason()).isEqualTo(FinishReason.LENGTH);
      assertThat(g.totalTokens()).isEqualTo(g.promptTokens() + n);
    }
  }

  @Test
  void maxLengthCapsPromptPlusAnswerPerPrompt() {
    int maxLength = model.countTokens(PROMPTS.get(6)) + 4;
    SearchOptions opts = SearchOptions.DEFAULTS.withDoSample(false).withMaxLength(maxLength);
    List<Generation> out = model.generate(List.of("Hello world", PROMPTS.get(6)), opts);
    for (Generation g : out) {
      assertThat(g.totalTokens()).isLessThanOrEqualTo(maxLength);
    }
    // The short prompt may use the whole length although its batch-mate is longer.
    assertThat(out.get(0).totalTokens()).isEqualTo(maxLength);
  }

  @Test
  void aPromptEndingInAFullStopStopsWithTheEndToken() {
    Generation g = model.generate(List.of("This sentence ends here."), SearchOptions.greedy(30)).get(0);
    assertThat(g.finishReason()).isEqualTo(FinishReason.STOP);
    assertThat(g.tokenIds()).endsWith(32007);
    assertThat(g.completionTokens()).isLessThan(30);
  }

  @Test
  void chatTemplateEqualsPythons() throws Exception {
    List<List<Map<String, String>>> chats = List.of(
        List.of(Map.of("role", "user", "content", "西班牙的首都是什麼?")),
        List.of(Map.of("role", "system", "content", "You are a comedian."),
            Map.of("role", "user", "content", "Tell me a joke about atoms 🚀⚛️")));
    JsonNode py = Fixtures.runPython("src/test/python/reference_generate.py",
        Map.of("model", Fixtures.tinyModel().toString(), "chats", chats, "max_new_tokens", 1));
    for (int i = 0; i < chats.size(); i++) {
      List<ChatMessage> msgs = new ArrayList<>();
      chats.get(i).forEach(m -> msgs.add(new ChatMessage(m.get("role"), m.get("content"))));
      String java = model.applyChatTemplate(msgs, true);
      assertThat(java).isEqualTo(py.get("chat_templates").get(i).asText());
      assertThat(java).endsWith("<|assistant|>\n").contains("<|user|>\n" + msgs.get(msgs.size() - 1).content());
    }
  }

  @Test
  void badPromptsBecomeTypedErrorsAtTheirIndexAndTheRestIsScored() {
    String tooLong = "word ".repeat(5000);
    List<String> prompts = new ArrayList<>(Arrays.asList("Hello world", null, "", tooLong, "ok"));
    List<Generation> out = model.generateBatch(prompts, SearchOptions.greedy(3));
    assertThat(out).extracting(Generation::ok).containsExactly(true, false, false, false, true);
    assertThat(out).extracting(Generation::index).containsExactly(0, 1, 2, 3, 4);
    assertThat(out).extracting(Generation::errorKind)
        .containsExactly(null, ErrorKind.NULL_PROMPT, ErrorKind.EMPTY_PROMPT, ErrorKind.TOO_LONG, null);
    // The message is for a row of output: it names no index within the batch.
    assertThat(out.get(1).error()).isEqualTo("prompt is null");
    assertThat(out.get(2).error()).isEqualTo("prompt is empty");
    assertThat(out.get(3).error()).startsWith("prompt has ").contains("context length 4096").contains("limit is 4095");
    assertThat(out.get(3).finishReason()).isEqualTo(FinishReason.ERROR);
    assertThat(out.get(4).completionTokens()).isEqualTo(3);
    assertThat(model.generateOne(null, SearchOptions.greedy(3)).errorKind()).isEqualTo(ErrorKind.NULL_PROMPT);
    assertThat(model.generateOne("Hello world", SearchOptions.greedy(3)).text()).isEqualTo(out.get(0).text());
    // The exception of the all-or-nothing call names the index.
    assertThatThrownBy(() -> model.generate(List.of("fine", tooLong), SearchOptions.greedy(3)))
        .isInstanceOf(EngineException.class).hasMessageContaining("prompt 1 of 2: prompt has");
  }

  @Test
  void anEmptyBatchIsRefused() {
    assertThatThrownBy(() -> model.generateBatch(List.of(), SearchOptions.greedy(3)))
        .isInstanceOf(EngineException.class).hasMessageContaining("empty batch");
  }

  @Test
  void aMissingFolderIsNamed(@TempDir Path tmp) {
    Path missing = tmp.resolve("nope");
    assertThatThrownBy(() -> LlmModel.load(missing))
        .isInstanceOf(EngineException.class).hasMessageContaining(missing.toString()).hasMessageContaining("does not exist");
  }

  @Test
  void aFolderWithoutGenaiConfigIsNamed(@TempDir Path tmp) {
    assertThatThrownBy(() -> LlmModel.load(tmp))
        .isInstanceOf(EngineException.class)
        .hasMessageContaining(tmp.toString()).hasMessageContaining("has no genai_config.json");
  }

  @Test
  void aCorruptOnnxFileFailsWithoutCrashing(@TempDir Path tmp) throws Exception {
    try (Stream<Path> files = Files.list(Fixtures.tinyModel())) {
      for (Path f : files.toList()) {
        Files.copy(f, tmp.resolve(f.getFileName()));
      }
    }
    Files.write(tmp.resolve(model.config().decoderFile()), "this is not a protobuf".getBytes());
    assertThatThrownBy(() -> LlmModel.load(tmp))
        .isInstanceOf(EngineException.class).hasMessageContaining("Cannot load model " + tmp);
  }

  @Test
  void closeIsIdempotentAndUseAfterCloseIsRefused() {
    LlmModel m = LlmModel.load(Fixtures.tinyModel());
    m.close();
    m.close();
    assertThatThrownBy(() -> m.countTokens("x")).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
  }

  @Test
  void concurrentCallsShareOneModel() throws Exception {
    List<Generation> alone = model.generate(PROMPTS.subList(0, 4), SearchOptions.greedy(6));
    List<Thread> threads = new ArrayList<>();
    List<Throwable> failures = new CopyOnWriteArrayList<>();
    List<List<Generation>> results = new CopyOnWriteArrayList<>();
    for (int t = 0; t < 4; t++) {
      Thread th = new Thread(() -> {
        try {
          results.add(model.generate(PROMPTS.subList(0, 4), SearchOptions.greedy(6)));
        } catch (Throwable e) {
          failures.add(e);
        }
      });
      threads.add(th);
      th.start();
    }
    for (Thread th : threads) {
      th.join();
    }
    assertThat(failures).isEmpty();
    for (List<Generation> r : results) {
      for (int i = 0; i < 4; i++) {
        assertThat(r.get(i).tokenIds()).containsExactly(alone.get(i).tokenIds());
      }
    }
  }
}
