package io.genaibatch.engine.guidance;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.engine.EngineException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.List;
import org.junit.jupiter.api.Test;

class ResponseFormatTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static final String SCHEMA =
      "{\"type\":\"object\",\"properties\":{\"label\":{\"type\":\"string\",\"enum\":[\"pos\",\"neg\"]},"
          + "\"score\":{\"type\":\"integer\"}},\"required\":[\"label\",\"score\"],\"additionalProperties\":false}";

  static EngineException refused(String text) {
    return (EngineException)
        org.junit.jupiter.api.Assertions.assertThrows(
            EngineException.class, () -> ResponseFormat.parse(text, "--response-format"));
  }

  @Test
  void openAiJsonSchemaWithAndWithoutNameAndABareSchemaAreTheSameSchema() throws Exception {
    ResponseFormat named = ResponseFormat.parse(
        "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"review\",\"strict\":true,\"schema\":" + SCHEMA + "}}", "x");
    ResponseFormat unnamed = ResponseFormat.parse("{\"type\":\"json_schema\",\"json_schema\":{\"schema\":" + SCHEMA + "}}", "x");
    ResponseFormat bare = ResponseFormat.parse("  " + SCHEMA + "\n", "x");
    for (ResponseFormat f : List.of(named, unnamed, bare)) {
      assertThat(f.kind()).isEqualTo(ResponseFormat.Kind.JSON_SCHEMA);
      assertThat(f.jsonSchema()).contains(JSON.readTree(SCHEMA));
    }
    assertThat(bare).isEqualTo(unnamed);
    assertThat(bare.digest()).isEqualTo(unnamed.digest()).hasSize(64).isNotEqualTo(named.digest());
    assertThat(named.canonical()).isEqualTo(
        "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"review\",\"schema\":" + SCHEMA + "}}");
  }

  @Test
  void jsonObjectIsAnyObject() {
    ResponseFormat f = ResponseFormat.parse("{\"type\":\"json_object\"}", "x");
    assertThat(f.jsonSchema().orElseThrow().toString()).isEqualTo("{\"type\":\"object\"}");
    assertThat(f.accepts("{\"a\":[1,2]}")).isTrue();
    assertThat(f.accepts("[1]")).isFalse();
    assertThat(f.accepts("{\"a\":1} {\"b\":2}")).as("two values").isFalse();
  }

  @Test
  void regexAndLarkInBothSpellings() {
    ResponseFormat r1 = ResponseFormat.parse("regex:(yes|no)", "x");
    ResponseFormat r2 = ResponseFormat.parse("{\"type\":\"regex\",\"regex\":\"(yes|no)\"}", "x");
    assertThat(r1).isEqualTo(r2);
    assertThat(r1.digest()).isEqualTo(r2.digest());
    assertThat(r1.kind()).isEqualTo(ResponseFormat.Kind.REGEX);
    assertThat(r1.guidance()).isEqualTo(new Guidance("regex", "(yes|no)"));
    assertThat(r1.jsonSchema()).isEmpty();

    String grammar = "start: \"yes\" | \"no\"";
    ResponseFormat l1 = ResponseFormat.parse("lark:" + grammar, "x");
    ResponseFormat l2 = ResponseFormat.parse("{\"type\":\"lark_grammar\",\"grammar\":\"start: \\\"yes\\\" | \\\"no\\\"\"}", "x");
    assertThat(l1).isEqualTo(l2);
    assertThat(l1.kind()).isEqualTo(ResponseFormat.Kind.LARK);
    assertThat(l1.guidance()).isEqualTo(new Guidance("lark_grammar", grammar));
    assertThat(l1.canonical()).isEqualTo("{\"type\":\"lark_grammar\",\"grammar\":\"start: \\\"yes\\\" | \\\"no\\\"\"}");
  }

  @Test
  void digestsDifferForDifferentFormats() {
    List<String> digests = List.of(
        ResponseFormat.parse("regex:(yes|no)", "x").digest(),
        ResponseFormat.parse("regex:(yes|nope)", "x").digest(),
        ResponseFormat.parse("lark:start: \"yes\"", "x").digest(),
        ResponseFormat.parse(SCHEMA, "x").digest(),
        ResponseFormat.parse("{\"type\":\"json_object\"}", "x").digest());
    assertThat(digests).doesNotHaveDuplicates();
  }

  @Test
  void jsonGuidanceTurnsFlexibleWhitespaceOffUnlessTheSchemaSaysOtherwise() throws Exception {
    Guidance g = ResponseFormat.parse(SCHEMA, "x").guidance();
    assertThat(g.type()).isEqualTo("json_schema");
    JsonNode data = JSON.readTree(g.data());
    assertThat(data.get("x-guidance")).isEqualTo(JSON.readTree("{\"whitespace_flexible\":false}"));
    assertThat(data.get("properties")).isEqualTo(JSON.readTree(SCHEMA).get("properties"));

    String own = "{\"type\":\"object\",\"x-guidance\":{\"whitespace_flexible\":true,\"key_separator\":\": \"}}";
    ResponseFormat f = ResponseFormat.parse(own, "x");
    assertThat(JSON.readTree(f.guidance().data())).isEqualTo(JSON.readTree(own));
    assertThat(f.jsonSchema().orElseThrow().has("x-guidance")).isTrue();
  }

  @Test
  void acceptsChecksAnswersAgainstTheFormat() {
    ResponseFormat json = ResponseFormat.parse(SCHEMA, "x");
    assertThat(json.accepts("{\"label\":\"pos\",\"score\":4068}")).isTrue();
    assertThat(json.accepts(" {\"label\": \"neg\", \"score\": -1} ")).isTrue();
    assertThat(json.accepts("{\"label\":\"meh\",\"score\":1}")).as("not in the enum").isFalse();
    assertThat(json.accepts("{\"label\":\"pos\"}")).as("missing score").isFalse();
    assertThat(json.accepts("{\"label\":\"pos\",\"score\":1.5}")).as("not an integer").isFalse();
    assertThat(json.accepts("{\"label\":\"pos\",\"score\":1,\"x\":2}")).as("additional").isFalse();
    assertThat(json.accepts("{\"label\":\"pos\",\"score\":1")).as("cut off").isFalse();
    assertThat(json.accepts("")).isFalse();
    assertThat(json.accepts(null)).isFalse();

    ResponseFormat regex = ResponseFormat.parse("regex:(yes|no)", "x");
    assertThat(regex.accepts("yes")).isTrue();
    assertThat(regex.accepts("no")).isTrue();
    assertThat(regex.accepts("yes!")).as("whole match only").isFalse();
    assertThat(regex.accepts(null)).isFalse();

    ResponseFormat lark = ResponseFormat.parse("lark:start: \"yes\"", "x");
    assertThat(lark.accepts("anything: the grammar engine made it")).isTrue();
    assertThat(lark.accepts(null)).isFalse();
  }

  @Test
  void schemaDraftFollowsDollarSchema() {
    ResponseFormat f = ResponseFormat.parse(
        "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\","
            + "\"properties\":{\"n\":{\"type\":\"integer\",\"exclusiveMinimum\":0}}}", "x");
    assertThat(f.accepts("{\"n\":1}")).isTrue();
    assertThat(f.accepts("{\"n\":0}")).isFalse();
    // Draft 4's boolean exclusiveMinimum is invalid in draft 7.
    assertThat(refused("{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"integer\","
        + "\"minimum\":0,\"exclusiveMinimum\":true}").getMessage()).contains("/exclusiveMinimum");
    assertThat(refused("{\"$schema\":\"https://example.com/my-draft\",\"type\":\"object\"}").getMessage())
        .contains("$schema").contains("https://example.com/my-draft");
  }

  @Test
  void invalidSchemasAreRefusedNamingWhereAndTheJsonPointer() {
    EngineException typo = refused("{\"type\":\"objekt\"}");
    assertThat(typo.getMessage())
        .startsWith("--response-format has an invalid JSON Schema")
        .contains("/type")
        .contains("A right value looks like '{\"type\":\"json_schema\"");
    assertThat(refused("{\"type\":\"object\",\"properties\":5}").getMessage()).contains("/properties:");
    assertThat(refused("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"strin\"}}}").getMessage())
        .contains("/properties/a/type");
    EngineException inWrapper = assertThrowsFrom(
        "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"required\":\"a\"}}}",
        "row 12's response_format");
    assertThat(inWrapper.getMessage()).startsWith("row 12's response_format has an invalid JSON Schema").contains("/required");
    assertThat(refused("{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"https://example.com/s.json\"}}}")
        .getMessage()).contains("non-local $ref at /properties/a/$ref");
  }

  @Test
  void malformedInputIsRefusedWithAnExample() {
    assertThat(refused("").getMessage()).contains("is empty").contains("regex:(yes|no)");
    assertThat(refused("{\"type\":").getMessage()).contains("is not valid JSON").contains("line 1");
    assertThat(refused("[1,2]").getMessage()).contains("neither a JSON object");
    assertThat(refused("yes or no").getMessage()).contains("neither a JSON object nor regex:<pattern>");
    assertThat(refused("{\"foo\":1}").getMessage()).contains("nor a JSON Schema");
    assertThat(refused("{\"type\":\"json_schema\"}").getMessage()).contains("no \"json_schema\" object");
    assertThat(refused("{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}").getMessage())
        .contains("/json_schema/schema");
    assertThat(refused("{\"type\":\"regex\"}").getMessage()).contains("no \"regex\" string")
        .contains("{\"type\":\"regex\",\"regex\":\"(yes|no)\"}");
    assertThat(refused("regex:(yes|no").getMessage()).contains("does not compile").contains("(yes|no");
    assertThat(refused("regex:").getMessage()).contains("empty regex");
    assertThat(refused("lark:   ").getMessage()).contains("empty Lark grammar");
    assertThat(refused("lark:answer: \"yes\"").getMessage()).contains("without a start rule");
    assertThat(refused("{\"type\":\"lark_grammar\",\"grammar\":7}").getMessage()).contains("no \"grammar\" string");
  }

  @Test
  void survivesJavaSerializationAndStillValidates() throws Exception {
    for (String text : List.of(SCHEMA, "regex:(yes|no)", "lark:start: \"yes\"")) {
      ResponseFormat f = ResponseFormat.parse(text, "x");
      f.accepts("{\"label\":\"pos\",\"score\":1}"); // fills the caches, which must not travel
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
        out.writeObject(f);
      }
      ResponseFormat back;
      try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
        back = (ResponseFormat) in.readObject();
      }
      assertThat(back).isEqualTo(f);
      assertThat(back.digest()).isEqualTo(f.digest());
      assertThat(back.guidance()).isEqualTo(f.guidance());
      assertThat(back.accepts("{\"label\":\"pos\",\"score\":1}")).isEqualTo(f.kind() != ResponseFormat.Kind.REGEX);
      assertThat(back.accepts("yes")).isEqualTo(f.kind() != ResponseFormat.Kind.JSON_SCHEMA);
    }
  }

  static EngineException assertThrowsFrom(String text, String where) {
    return org.junit.jupiter.api.Assertions.assertThrows(EngineException.class, () -> ResponseFormat.parse(text, where));
  }

  @Test
  void guidanceRefusesUnknownTypesAndEmptyData() {
    assertThatThrownBy(() -> new Guidance("grammar", "x")).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> new Guidance("regex", "")).isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void aRegexMatchesInLinearTimeWithoutRecursionWhateverThePattern() {
    // Catastrophic for a backtracking matcher: (a|a)* on a long run of a that does not end in b.
    ResponseFormat catastrophic = ResponseFormat.parse("regex:(a|a)*b", "x");
    long t0 = System.nanoTime();
    assertThat(catastrophic.accepts("a".repeat(100_000) + "c")).isFalse();
    assertThat(catastrophic.accepts("a".repeat(100_000) + "b")).isTrue();
    // A repeated group over a long answer overflows java.util.regex's stack; RE2/J has none to overflow.
    assertThat(ResponseFormat.parse("regex:(ab|cd)*", "x").accepts("ab".repeat(200_000))).isTrue();
    assertThat((System.nanoTime() - t0) / 1e9).as("seconds to match 600 000 characters").isLessThan(10);
    // RE2's dialect, like llguidance's: no back-references.
    assertThat(refused("regex:(a)\\1").getMessage()).contains("does not compile");
  }

  @Test
  void nestingDepthReadsEachFormatAsWhatItIs() {
    assertThat(ResponseFormat.nestingDepth("regex:" + "(".repeat(6000) + "a" + ")".repeat(6000))).isEqualTo(6000);
    assertThat(ResponseFormat.nestingDepth("regex:((a|b)[(]\\()")).as("classes and escapes do not nest")
        .isEqualTo(2);
    assertThat(ResponseFormat.nestingDepth(SCHEMA)).isEqualTo(4);
    assertThat(ResponseFormat.nestingDepth("{\"description\":\"{{{[[[(((\"}")).as("nor do strings").isEqualTo(1);
    assertThat(ResponseFormat.nestingDepth("lark:start: (\"(\" | (\"b\"))")).isEqualTo(2);
    assertThat(ResponseFormat.nestingDepth("[".repeat(100_000))).isEqualTo(100_000);
  }

  @Test
  void aCatastrophicSchemaPatternIsMatchedInLinearTime() {
    // With the JDK's backtracking engine, ^(a+)+$ against 40 a's and a b takes about 2^40 steps.
    ResponseFormat f = ResponseFormat.parse("{\"type\":\"string\",\"pattern\":\"^(a+)+$\"}", "the row's format");
    String forced = "\"" + "a".repeat(40_000) + "b\"";

    boolean accepted = org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(10),
        () -> f.accepts(forced));

    assertThat(accepted).isFalse();
    assertThat(f.accepts("\"" + "a".repeat(40_000) + "\"")).isTrue();
    assertThat(f.accepts("\"xaa\"")).as("a pattern matches anywhere unless anchored, as ECMA-262's").isFalse();
    assertThat(ResponseFormat.parse("{\"type\":\"string\",\"pattern\":\"[0-9]{3}\"}", "x").accepts("\"ab123\""))
        .isTrue();
  }

  @Test
  void aSchemaPatternRe2CannotCompileIsRefusedNamingIt() {
    assertThatThrownBy(() -> ResponseFormat.parse("{\"type\":\"string\",\"pattern\":\"^(a)\\\\1$\"}",
        "the row's format")).isInstanceOf(EngineException.class).hasMessageContaining("the row's format")
        .hasMessageContaining("pattern").hasMessageContaining("back-references");
  }
}
