package io.genaibatch.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.testing.Fixtures;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The search-option and token-budget contract, {@code src/test/resources/search-semantics.json},
 * held against the Java engine (every case) and the Python pyfunc wrapper (through
 * src/test/python/check_search_semantics.py), so the same MLmodel means the same in both.
 */
class SearchSemanticsTest {
  static final Path CASES = Fixtures.projectDir().resolve("src/test/resources/search-semantics.json");
  static final ObjectMapper JSON = new ObjectMapper();

  static JsonNode cases() throws IOException {
    return JSON.readTree(CASES.toFile());
  }

  @Test
  void casesAreVersioned() throws IOException {
    assertThat(cases().path("version").asInt()).isEqualTo(1);
    assertThat(cases().path("options")).isNotEmpty();
    assertThat(cases().path("budget")).isNotEmpty();
  }

  @TestFactory
  Stream<DynamicTest> javaOptions() throws IOException {
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode c : cases().path("options")) {
      if (c.path("only").asText("java").equals("java")) {
        tests.add(DynamicTest.dynamicTest(c.path("name").asText(), () -> checkOption(c)));
      }
    }
    return tests.stream();
  }

  @TestFactory
  Stream<DynamicTest> javaBudget() throws IOException {
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode c : cases().path("budget")) {
      tests.add(DynamicTest.dynamicTest(c.path("name").asText(), () -> checkBudget(c)));
    }
    return tests.stream();
  }

  @Test
  void pythonWrapperAgreesOnEveryCase() throws Exception {
    // Exits non-zero, failing this test with its report, when a case fails on the Python side.
    JsonNode report = Fixtures.runPython("src/test/python/check_search_semantics.py", (Object) Map.of(), CASES.toString());
    assertThat(report.path("failures")).as("Python failures").isEmpty();
    int expected = 0;
    for (String section : List.of("options", "budget")) {
      for (JsonNode c : cases().path(section)) {
        expected += c.path("only").asText("python").equals("python") ? 1 : 0;
      }
    }
    assertThat(report.path("checked").asInt()).isEqualTo(expected);
  }

  /**
   * The layers of a case merged as the job merges them (each later layer above, read as an
   * MLmodel's model_config is: other keys ignored), then settled to search options.
   */
  static SearchOptions merged(JsonNode c) {
    Iterable<JsonNode> layers = c.has("layers") ? c.path("layers") : List.of(c.path("input"));
    SettingValues values = SettingValues.defaults();
    for (JsonNode layer : layers) {
      values = values.above("case", asMap(layer), Setting.Scope.SEARCH, false);
    }
    return values.search();
  }

  static void checkOption(JsonNode c) {
    if (c.has("error")) {
      // Refused naming the key, in Java's words ("'top_p' must be a number > 0 and <= 1, got '0'");
      // Python's check holds its messages to the case's text.
      String key = c.path("error").asText().split(" ")[0];
      assertThatThrownBy(() -> merged(c)).isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("'" + key + "' must be");
    } else {
      assertThat(typed(canonical(merged(c)))).isEqualTo(typed(asMap(c.path("expect"))));
    }
  }

  static void checkBudget(JsonNode c) {
    Integer length;
    Integer newTokens;
    if (c.has("layers")) {
      SearchOptions o = merged(c);
      length = o.maxLength();
      newTokens = o.maxNewTokens();
    } else {
      length = c.path("L").isNull() ? null : c.path("L").asInt();
      newTokens = c.path("N").isNull() ? null : c.path("N").asInt();
    }
    int prompt = c.path("P").asInt();
    int total = TokenBudget.totalLimit(c.path("C").asInt(), length, newTokens, c.path("D").asInt());
    if (c.has("error")) {
      // LlmModel refuses a prompt of totalLimit tokens or more, in its own words.
      assertThat(prompt).as("prompt tokens against the total limit").isGreaterThanOrEqualTo(total);
      return;
    }
    assertThat(prompt).as("prompt tokens against the total limit").isLessThan(total);
    int budget = TokenBudget.newTokens(prompt, total, newTokens);
    assertThat(Map.of("maxLength", prompt + budget, "newTokens", budget))
        .isEqualTo(Map.of("maxLength", c.path("expect").path("maxLength").asInt(),
            "newTokens", c.path("expect").path("newTokens").asInt()));
  }

  /** The set options under the contract's canonical names (asMap's random_seed is seed). */
  static Map<String, Object> canonical(SearchOptions o) {
    Map<String, Object> m = new LinkedHashMap<>(o.asMap());
    if (m.containsKey("random_seed")) {
      m.put("seed", m.remove("random_seed"));
    }
    return m;
  }

  /** Whole numbers as Long, other numbers as Double, so Integer 32 equals Long 32. */
  static Map<String, Object> typed(Map<String, Object> m) {
    Map<String, Object> out = new LinkedHashMap<>();
    m.forEach((k, v) -> out.put(k, v instanceof Double || v instanceof Float ? (Object) ((Number) v).doubleValue()
        : v instanceof Number n ? (Object) n.longValue() : v));
    return out;
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> asMap(JsonNode node) {
    return JSON.convertValue(node, LinkedHashMap.class);
  }
}
