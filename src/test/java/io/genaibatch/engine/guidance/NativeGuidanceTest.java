package io.genaibatch.engine.guidance;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.genai.Generator;
import ai.onnxruntime.genai.GeneratorParams;
import ai.onnxruntime.genai.Model;
import ai.onnxruntime.genai.Sequences;
import ai.onnxruntime.genai.Tokenizer;
import com.sun.jna.NativeLibrary;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.natives.NativeLibraries;
import io.genaibatch.testing.Fixtures;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Guidance through the binding itself and the wheel's library, on the tiny Phi-3 model. */
public class NativeGuidanceTest {
  public static final List<String> PROMPTS = List.of("Rate this: great film", "Rate this review of a long and tedious film, please");
  public static final String SCHEMA =
      "{\"type\":\"object\",\"properties\":{\"label\":{\"type\":\"string\",\"enum\":[\"pos\",\"neg\"]},"
          + "\"score\":{\"type\":\"integer\"}},\"required\":[\"label\",\"score\"],\"additionalProperties\":false}";

  static Model model;
  static Tokenizer tokenizer;

  @BeforeAll
  static void load() throws Exception {
    NativeLibraries.ensureLoaded();
    model = new Model(Fixtures.tinyModel().toString());
    tokenizer = new Tokenizer(model);
  }

  @AfterAll
  static void close() {
    tokenizer.close();
    model.close();
  }

  /** Generates for {@code batch} in one native batch under {@code format}; the generated text of each row. */
  static List<String> generate(List<String> batch, ResponseFormat format, int newTokens) throws Exception {
    try (GeneratorParams params = new GeneratorParams(model);
        Sequences prompts = tokenizer.encodeBatch(batch.toArray(String[]::new))) {
      // The generator pads the shorter prompts to the longest one's length; answers start there.
      int padded = 0;
      for (int row = 0; row < batch.size(); row++) {
        padded = Math.max(padded, prompts.getSequence(row).length);
      }
      params.setSearchOption("batch_size", batch.size());
      params.setSearchOption("max_length", padded + newTokens);
      NativeGuidance.apply(params, format.guidance());
      try (Generator generator = NativeGuidance.newGenerator(model, params, format.guidance())) {
        generator.appendTokenSequences(prompts);
        while (!generator.isDone()) {
          generator.generateNextToken();
        }
        List<String> answers = new ArrayList<>();
        for (int row = 0; row < batch.size(); row++) {
          int[] seq = generator.getSequence(row);
          int[] generated = Arrays.copyOfRange(seq, padded, seq.length);
          answers.add(generated.length == 0 ? "" : tokenizer.decode(generated));
        }
        return answers;
      }
    }
  }

  /**
   * Both rows of one batch of two prompts of different lengths. It passes because both answers
   * end at the same step (see {@link #rowsEndingAtDifferentStepsFailTheBatch()}).
   */
  @Test
  void jsonSchemaMakesBothRowsOfABatchValidAnswers() throws Exception {
    ResponseFormat format = ResponseFormat.parse(SCHEMA, "the test");
    List<String> answers = generate(PROMPTS, format, 64);
    assertThat(answers).hasSize(2).allSatisfy(a -> assertThat(format.accepts(a)).as("answer %s", a).isTrue());
    assertThat(answers).allSatisfy(a -> assertThat(a).startsWith("{\"label\":\""));
  }

  @Test
  void regexGivesYesOrNo() throws Exception {
    ResponseFormat format = ResponseFormat.parse("regex:(yes|no)", "the test");
    List<String> answers = new ArrayList<>();
    for (String prompt : PROMPTS) {
      answers.addAll(generate(List.of(prompt), format, 16));
    }
    assertThat(answers).containsExactly("no", "yes");
  }

  /**
   * An onnxruntime-genai 0.12.0 defect, pinned so that an upgrade shows when it is gone: when one
   * row of a guided batch ends before another, the next step gives the ended row the pad token and
   * commits it to that row's llguidance constraint, which has stopped and refuses it; the whole
   * batch fails (the same in Python). Here "no" ends a step before "yes".
   */
  @Test
  void rowsEndingAtDifferentStepsFailTheBatch() {
    ResponseFormat format = ResponseFormat.parse("regex:(yes|no)", "the test");
    assertThatThrownBy(() -> generate(PROMPTS, format, 16))
        .hasMessageContaining("Error committing tokens")
        .hasMessageContaining("doesn't satisfy the grammar");
  }

  @Test
  void badLarkGrammarFailsWhenTheGeneratorIsMadeWithTheNativeMessage() throws Exception {
    // Passes our own check (it has a start rule) but names an undefined rule.
    ResponseFormat format = ResponseFormat.parse("lark:start: answer", "the test");
    try (GeneratorParams params = new GeneratorParams(model)) {
      params.setSearchOption("batch_size", 2);
      params.setSearchOption("max_length", 32);
      NativeGuidance.apply(params, format.guidance()); // SetGuidance only stores it.
      assertThatThrownBy(() -> NativeGuidance.newGenerator(model, params, format.guidance()))
          .isInstanceOf(EngineException.class)
          .hasMessageContaining("lark_grammar")
          .hasMessageContaining("Error creating grammar")
          .hasMessageContaining("unknown name: \"answer\"");
    }
  }

  @Test
  void aLibraryWithoutLlguidanceIsRefusedNamingItAndTheFix() {
    // The staged ONNX Runtime is loaded and has no llguidance: it stands in for a GenAI build
    // without it (the binding jar's own needs glibc 2.38 and cannot load on this machine).
    Path ort = Paths.get(System.getProperty("onnxruntime-genai.native.onnxruntime.path"));
    String why = NativeGuidance.guidanceMissing(NativeLibrary.getInstance(ort.toString(),
        Map.of(com.sun.jna.Library.OPTION_OPEN_FLAGS, 0x1 | 0x4)), ort);
    assertThat(why)
        .contains(ort.toString())
        .contains("built without guidance")
        .contains("pip install onnxruntime-genai==0.12.0")
        .contains("-Dgenaibatch.native.dir");
    Path genai = Paths.get(System.getProperty("onnxruntime-genai.native.onnxruntime-genai.path"));
    assertThat(NativeGuidance.guidanceMissing(NativeLibrary.getInstance(genai.toString(),
        Map.of(com.sun.jna.Library.OPTION_OPEN_FLAGS, 0x1 | 0x4)), genai)).isNull();
  }
}
