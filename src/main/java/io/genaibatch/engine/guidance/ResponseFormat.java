package io.genaibatch.engine.guidance;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.JsonMetaSchema;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaException;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.NonValidationKeyword;
import com.networknt.schema.PathType;
import com.networknt.schema.SchemaId;
import com.networknt.schema.SchemaLocation;
import com.networknt.schema.SchemaValidatorsConfig;
import com.networknt.schema.SpecVersion.VersionFlag;
import com.networknt.schema.ValidationMessage;
import com.networknt.schema.regex.RegularExpressionFactory;
import io.genaibatch.common.Sha256;
import io.genaibatch.engine.EngineException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * What a user asks the answers to look like, parsed and checked before any model runs: a JSON
 * Schema, a regular expression or a Lark grammar, turned into onnxruntime-genai {@link Guidance}
 * and used again afterwards to check each answer ({@link #accepts}).
 *
 * <p>Accepted forms of the text ({@link #parse}):
 *
 * <ul>
 *   <li>OpenAI's {@code {"type":"json_schema","json_schema":{"name":"answer","schema":{...}}}}
 *       ({@code name}, {@code description} and {@code strict} optional and not used for
 *       generation);
 *   <li>{@code {"type":"json_object"}}: any JSON object, the schema {@code {"type":"object"}};
 *   <li>{@code {"type":"regex","regex":"..."}} and {@code {"type":"lark_grammar","grammar":"..."}},
 *       this project's extensions, named like onnxruntime-genai's guidance types;
 *   <li>a bare JSON Schema: a JSON object that is none of the above and has at least one schema
 *       keyword ({@code type}, {@code properties}, {@code $schema}, {@code enum}, {@code anyOf}, ...);
 *   <li>the shorthands {@code regex:<pattern>} and {@code lark:<grammar>}.
 * </ul>
 *
 * <p>Reading {@code @path} files is the caller's job. Checks: a JSON Schema is validated against
 * its meta-schema (draft 2020-12, or the draft its {@code $schema} names) and may use only local
 * {@code $ref}s ({@code #/...}: neither llguidance nor the executors fetch remote ones); a regex
 * must compile; a Lark grammar must define a {@code start} rule.
 *
 * <p>Serializable, to be shipped to Spark executors: only the kind and texts travel; the parsed
 * schema, the compiled validator and the compiled pattern are rebuilt lazily, once per instance.
 * Thread-safe.
 */
public final class ResponseFormat implements Serializable {
  private static final long serialVersionUID = 1L;

  /** Compact JSON, non-ASCII escaped, so JNI or C strings cannot alter the text on the way in. */
  private static final ObjectMapper JSON =
      new ObjectMapper()
          .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
          .configure(com.fasterxml.jackson.core.json.JsonWriteFeature.ESCAPE_NON_ASCII.mappedFeature(), true);

  private static final String X_GUIDANCE = "x-guidance";

  /** Keywords that make a JSON object a bare schema rather than a mistyped wrapper. */
  private static final Set<String> SCHEMA_KEYWORDS =
      Set.of("type", "properties", "$schema", "enum", "const", "anyOf", "oneOf", "allOf", "not", "$ref",
          "items", "prefixItems", "required", "$defs", "definitions", "pattern", "format",
          "additionalProperties");

  /** The meta-schemas networknt ships, by {@code $schema} URI without a trailing {@code #}. */
  private static final Map<String, VersionFlag> DRAFTS =
      Map.of(
          trimHash(SchemaId.V4), VersionFlag.V4,
          trimHash(SchemaId.V6), VersionFlag.V6,
          trimHash(SchemaId.V7), VersionFlag.V7,
          trimHash(SchemaId.V201909), VersionFlag.V201909,
          trimHash(SchemaId.V202012), VersionFlag.V202012);

  private static final Map<VersionFlag, JsonSchemaFactory> FACTORIES = new ConcurrentHashMap<>();

  // Blanks only, not \\s: \\s also takes line ends, and a run of them would be scanned again from
  // every line start (quadratic in the grammar's length).
  private static final Pattern LARK_START = Pattern.compile("(?m)^[ \\t]*start[ \\t]*:");

  private static final String EXAMPLE_JSON =
      "'{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"answer\",\"schema\":{\"type\":\"object\","
          + "\"properties\":{\"label\":{\"type\":\"string\",\"enum\":[\"pos\",\"neg\"]}},\"required\":[\"label\"]}}}'";
  private static final String EXAMPLE_ANY =
      EXAMPLE_JSON + ", '{\"type\":\"json_object\"}', 'regex:(yes|no)' or 'lark:start: \"yes\" | \"no\"'";

  /** What the format constrains the answers with. */
  public enum Kind {
    JSON_SCHEMA,
    REGEX,
    LARK
  }

  private final Kind kind;
  /** The schema's JSON text, the regex or the grammar, as the user gave it (the schema compacted). */
  private final String body;
  private final String canonical;

  private transient volatile JsonNode schemaNode;
  private transient volatile JsonSchema validator;
  private transient volatile com.google.re2j.Pattern pattern;

  private ResponseFormat(Kind kind, String body, String canonical) {
    this.kind = kind;
    this.body = body;
    this.canonical = canonical;
  }

  /**
   * Whether {@code text} asks for no constraint: {@code text} or OpenAI's {@code {"type":"text"}}.
   * A row gives it to opt out of the job's format.
   */
  public static boolean isPlainText(String text) {
    if (text == null) {
      return false;
    }
    String t = text.strip();
    if (t.equals("text")) {
      return true;
    }
    if (!t.startsWith("{")) {
      return false;
    }
    try {
      JsonNode node = JSON.readTree(t);
      return node.isObject() && node.size() == 1 && "text".equals(node.path("type").asText(null));
    } catch (JsonProcessingException e) {
      return false;
    }
  }

  /**
   * Parses and checks a response format.
   *
   * @param text the format, in one of the forms of the class comment
   * @param where what the text came from, for messages ({@code --response-format}, {@code row 12's
   *     response_format})
   * @throws EngineException naming {@code where}, what is wrong (with the JSON pointer into the
   *     schema where there is one) and an example of a right value
   */
  public static ResponseFormat parse(String text, String where) {
    Objects.requireNonNull(where, "where");
    if (text == null || text.isBlank()) {
      throw refuse(where, "is empty", EXAMPLE_ANY);
    }
    String t = text.strip();
    if (t.startsWith("regex:")) {
      return regex(t.substring("regex:".length()), where);
    }
    if (t.startsWith("lark:")) {
      return lark(t.substring("lark:".length()), where);
    }
    if (!t.startsWith("{")) {
      throw refuse(where, "is neither a JSON object nor regex:<pattern> nor lark:<grammar>", EXAMPLE_ANY);
    }
    JsonNode node;
    try {
      node = JSON.readTree(t);
    } catch (JsonProcessingException e) {
      throw refuse(where, "is not valid JSON: " + e.getOriginalMessage() + " at " + location(e), EXAMPLE_ANY);
    }
    if (!node.isObject()) {
      throw refuse(where, "is not a JSON object", EXAMPLE_ANY);
    }
    JsonNode type = node.get("type");
    String wrapper = type != null && type.isTextual() ? type.asText() : "";
    switch (wrapper) {
      case "json_schema" -> {
        return fromWrapper(node, where);
      }
      case "json_object" -> {
        return jsonSchema(JSON.createObjectNode().put("type", "object"), null, where);
      }
      case "regex" -> {
        return regex(requiredText(node, "regex", where, "'{\"type\":\"regex\",\"regex\":\"(yes|no)\"}'"), where);
      }
      case "lark_grammar" -> {
        return lark(
            requiredText(node, "grammar", where,
                "'{\"type\":\"lark_grammar\",\"grammar\":\"start: \\\"yes\\\" | \\\"no\\\"\"}'"),
            where);
      }
      default -> {
        // A bare schema, checked below.
      }
    }
    boolean looksLikeSchema = false;
    for (Iterator<String> names = node.fieldNames(); names.hasNext(); ) {
      looksLikeSchema |= SCHEMA_KEYWORDS.contains(names.next());
    }
    if (!looksLikeSchema) {
      throw refuse(where, "is a JSON object but neither a known response format (type json_schema,"
          + " json_object, regex or lark_grammar) nor a JSON Schema (no type, properties, $schema,"
          + " enum, anyOf, ...)", EXAMPLE_ANY);
    }
    return jsonSchema((ObjectNode) node, null, where);
  }

  private static ResponseFormat fromWrapper(JsonNode node, String where) {
    JsonNode inner = node.get("json_schema");
    if (inner == null || !inner.isObject()) {
      throw refuse(where, "has type json_schema but no \"json_schema\" object", EXAMPLE_JSON);
    }
    JsonNode schema = inner.get("schema");
    if (schema == null || !schema.isObject()) {
      throw refuse(where, "has no JSON Schema object at /json_schema/schema", EXAMPLE_JSON);
    }
    JsonNode name = inner.get("name");
    if (name != null && !name.isTextual()) {
      throw refuse(where, "has a /json_schema/name that is not a string", EXAMPLE_JSON);
    }
    return jsonSchema((ObjectNode) schema, name == null ? null : name.asText(), where);
  }

  private static ResponseFormat jsonSchema(ObjectNode schema, String name, String where) {
    checkRefs(schema, "", where);
    VersionFlag draft = draftOf(schema, where);
    List<String> errors = new ArrayList<>();
    try {
      JsonSchema meta = factory(draft).getSchema(SchemaLocation.of(metaSchemaId(draft)), config());
      for (ValidationMessage m : meta.validate(schema)) {
        // The message starts with the JSON pointer of the offending place (pathType below).
        errors.add(m.getMessage());
      }
    } catch (JsonSchemaException e) {
      throw refuse(where, "has a JSON Schema that cannot be read: " + e.getMessage(), EXAMPLE_JSON);
    } catch (com.google.re2j.PatternSyntaxException e) {
      throw patternRefused(where, e);
    }
    if (!errors.isEmpty()) {
      Set<String> distinct = new LinkedHashSet<>(errors);
      throw refuse(where, "has an invalid JSON Schema (" + draftName(draft) + "): " + String.join("; ", distinct), EXAMPLE_JSON);
    }
    ResponseFormat format = new ResponseFormat(Kind.JSON_SCHEMA, write(schema), canonicalJson(schema, name));
    try {
      format.validator();
    } catch (JsonSchemaException e) {
      if (e.getCause() instanceof com.google.re2j.PatternSyntaxException p) {
        throw patternRefused(where, p);
      }
      throw refuse(where, "has a JSON Schema that cannot be compiled: " + e.getMessage(), EXAMPLE_JSON);
    } catch (com.google.re2j.PatternSyntaxException e) {
      throw patternRefused(where, e);
    }
    return format;
  }

  private static EngineException patternRefused(String where, com.google.re2j.PatternSyntaxException e) {
    return refuse(where, "has a JSON Schema pattern that RE2 cannot compile: " + e.getDescription() + " in "
        + e.getPattern() + ". Patterns are matched with RE2 (linear time, as llguidance generates them): write it"
        + " without look-around or back-references", "'{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"}'");
  }

  /** Only local references: neither llguidance nor a Spark executor may fetch a remote one. */
  private static void checkRefs(JsonNode node, String pointer, String where) {
    if (node.isObject()) {
      for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        String child = pointer + "/" + e.getKey().replace("~", "~0").replace("/", "~1");
        if (e.getKey().equals("$ref") && e.getValue().isTextual() && !e.getValue().asText().startsWith("#")) {
          throw refuse(where, "has a JSON Schema with a non-local $ref at " + child + " (" + e.getValue().asText()
              + "): only references into the schema itself (#/$defs/...) are supported", EXAMPLE_JSON);
        }
        checkRefs(e.getValue(), child, where);
      }
    } else if (node.isArray()) {
      for (int i = 0; i < node.size(); i++) {
        checkRefs(node.get(i), pointer + "/" + i, where);
      }
    }
  }

  private static VersionFlag draftOf(JsonNode schema, String where) {
    JsonNode declared = schema.get("$schema");
    if (declared == null) {
      return VersionFlag.V202012;
    }
    VersionFlag draft = declared.isTextual() ? DRAFTS.get(trimHash(declared.asText())) : null;
    if (draft == null) {
      throw refuse(where, "has a JSON Schema whose $schema (" + declared + ") is not one of " + DRAFTS.keySet(),
          EXAMPLE_JSON);
    }
    return draft;
  }

  private static String metaSchemaId(VersionFlag draft) {
    return DRAFTS.entrySet().stream().filter(e -> e.getValue() == draft).findFirst().orElseThrow().getKey()
        + (draft == VersionFlag.V201909 || draft == VersionFlag.V202012 ? "" : "#");
  }

  private static String trimHash(String uri) {
    return uri.endsWith("#") ? uri.substring(0, uri.length() - 1) : uri;
  }

  private static String draftName(VersionFlag draft) {
    return switch (draft) {
      case V4 -> "draft 4";
      case V6 -> "draft 6";
      case V7 -> "draft 7";
      case V201909 -> "draft 2019-09";
      default -> "draft 2020-12";
    };
  }

  /**
   * The draft's factory, its dialect knowing {@code x-guidance} as a keyword that validates
   * nothing (llguidance's options), so that networknt does not warn about it.
   */
  private static JsonSchemaFactory factory(VersionFlag draft) {
    return FACTORIES.computeIfAbsent(draft, d -> {
      JsonMetaSchema base = switch (d) {
        case V4 -> JsonMetaSchema.getV4();
        case V6 -> JsonMetaSchema.getV6();
        case V7 -> JsonMetaSchema.getV7();
        case V201909 -> JsonMetaSchema.getV201909();
        default -> JsonMetaSchema.getV202012();
      };
      JsonMetaSchema dialect = JsonMetaSchema.builder(base).keyword(new NonValidationKeyword(X_GUIDANCE)).build();
      return JsonSchemaFactory.getInstance(d, b -> b.metaSchema(dialect));
    });
  }

  /** Errors located by JSON pointer ({@code /properties/x}), as users and schemas spell them. */
  private static SchemaValidatorsConfig config() {
    return SchemaValidatorsConfig.builder().pathType(PathType.JSON_POINTER).regularExpressionFactory(RE2).build();
  }

  /**
   * A schema's {@code pattern}s and {@code patternProperties}, matched with RE2/J as the format's own
   * regex is ({@link #regex}): in time linear in the answer, so no pattern (say {@code ^(a+)+$}) can
   * hold a task, where the validator's default (the JDK's backtracking engine) has no bound. A JSON
   * Schema pattern matches anywhere in the value (ECMA-262's {@code test}), hence {@code find}.
   */
  private static final RegularExpressionFactory RE2 = regex -> {
    com.google.re2j.Pattern p = com.google.re2j.Pattern.compile(regex);
    return value -> p.matcher(value).find();
  };

  /**
   * Checks the syntax with RE2/J, whose dialect is RE2's: like llguidance's (Rust's {@code regex}
   * crate), it has no look-around or back-references, and it matches in time linear in the answer's
   * length, without recursion: no pattern can hang a task or overflow its stack. The native side has
   * the last word when the generator is made.
   */
  private static ResponseFormat regex(String regex, String where) {
    if (regex.isEmpty()) {
      throw refuse(where, "has an empty regex", "'regex:(yes|no)'");
    }
    try {
      com.google.re2j.Pattern.compile(regex);
    } catch (com.google.re2j.PatternSyntaxException e) {
      throw refuse(where, "has a regex that does not compile: " + e.getDescription() + " near index " + e.getIndex()
          + " of " + regex, "'regex:(yes|no)'");
    }
    ObjectNode c = JSON.createObjectNode().put("type", Guidance.REGEX).put("regex", regex);
    return new ResponseFormat(Kind.REGEX, regex, write(c));
  }

  private static ResponseFormat lark(String grammar, String where) {
    if (grammar.isBlank()) {
      throw refuse(where, "has an empty Lark grammar", "'lark:start: \"yes\" | \"no\"'");
    }
    if (!LARK_START.matcher(grammar).find()) {
      throw refuse(where, "has a Lark grammar without a start rule (a line `start: ...`)",
          "'lark:start: \"yes\" | \"no\"'");
    }
    ObjectNode c = JSON.createObjectNode().put("type", Guidance.LARK_GRAMMAR).put("grammar", grammar);
    return new ResponseFormat(Kind.LARK, grammar, write(c));
  }

  private static String requiredText(JsonNode node, String field, String where, String example) {
    JsonNode v = node.get(field);
    if (v == null || !v.isTextual()) {
      throw refuse(where, "has type " + node.get("type").asText() + " but no \"" + field + "\" string", example);
    }
    return v.asText();
  }

  private static String canonicalJson(ObjectNode schema, String name) {
    ObjectNode inner = JSON.createObjectNode();
    if (name != null) {
      inner.put("name", name);
    }
    inner.set("schema", schema);
    ObjectNode c = JSON.createObjectNode().put("type", Guidance.JSON_SCHEMA);
    c.set("json_schema", inner);
    return write(c);
  }

  private static String location(JsonProcessingException e) {
    return e.getLocation() == null
        ? "an unknown place"
        : "line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr();
  }

  private static EngineException refuse(String where, String what, String example) {
    return new EngineException(where + " " + what + ". A right value looks like " + example);
  }

  private static String write(JsonNode node) {
    try {
      return JSON.writeValueAsString(node);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("A JSON tree always serialises", e);
    }
  }

  public Kind kind() {
    return kind;
  }

  /**
   * The guidance to give onnxruntime-genai. For a JSON Schema the data is the schema with {@code
   * "x-guidance": {"whitespace_flexible": false}} added, unless the schema already has an {@code
   * x-guidance} key, which is then left as it is. Why: llguidance lets whitespace between JSON
   * tokens by default, and a weak model then spends its budget on it; measured with the project's
   * tiny random-weight model, flexible whitespace gave spaces up to the length limit, while with
   * it off the answer was {@code {"label":"pos","score":4068}} in 22 tokens.
   */
  public Guidance guidance() {
    return switch (kind) {
      case REGEX -> new Guidance(Guidance.REGEX, body);
      case LARK -> new Guidance(Guidance.LARK_GRAMMAR, body);
      case JSON_SCHEMA -> {
        ObjectNode schema = schema().deepCopy();
        if (!schema.has(X_GUIDANCE)) {
          schema.set(X_GUIDANCE, JSON.createObjectNode().put("whitespace_flexible", false));
        }
        yield new Guidance(Guidance.JSON_SCHEMA, write(schema));
      }
    };
  }

  /** The JSON Schema (a copy, as the user gave it, without the added {@code x-guidance}). */
  public Optional<JsonNode> jsonSchema() {
    return kind == Kind.JSON_SCHEMA ? Optional.of(schema().deepCopy()) : Optional.empty();
  }

  /** The normalized JSON text of the format, to log as an artifact: compact, non-ASCII escaped. */
  public String canonical() {
    return canonical;
  }

  /** The SHA-256 of {@link #canonical()}, 64 lower-case hex digits: same format, same digest. */
  public String digest() {
    return Sha256.hexPrefix(canonical, 64);
  }

  /**
   * Whether {@code answer} is what this format asks for. JSON Schema: it parses as exactly one
   * JSON value and validates against the schema. Regex: it matches as a whole. Lark: any non-null
   * answer, because the grammar engine generated it under the grammar and Java has no Lark parser
   * to check it again.
   */
  public boolean accepts(String answer) {
    if (answer == null) {
      return false;
    }
    return switch (kind) {
      case REGEX -> pattern().matcher(answer).matches();
      case LARK -> true;
      case JSON_SCHEMA -> {
        JsonNode value;
        try {
          value = JSON.readTree(answer);
        } catch (JsonProcessingException e) {
          yield false;
        }
        yield value != null && !value.isMissingNode() && validator().validate(value).isEmpty();
      }
    };
  }

  private ObjectNode schema() {
    JsonNode s = schemaNode;
    if (s == null) {
      try {
        s = JSON.readTree(body);
      } catch (JsonProcessingException e) {
        throw new IllegalStateException("The schema text was written by this class", e);
      }
      schemaNode = s;
    }
    return (ObjectNode) s;
  }

  private JsonSchema validator() {
    JsonSchema v = validator;
    if (v == null) {
      synchronized (this) {
        if (validator == null) {
          JsonSchema compiled = factory(draftOf(schema(), "the schema")).getSchema(schema(), config());
          compiled.initializeValidators();
          validator = compiled;
        }
        v = validator;
      }
    }
    return v;
  }

  private com.google.re2j.Pattern pattern() {
    com.google.re2j.Pattern p = pattern;
    if (p == null) {
      p = com.google.re2j.Pattern.compile(body);
      pattern = p;
    }
    return p;
  }

  /**
   * How deep {@code text} nests, read as the format it is: a regex's groups, a Lark grammar's
   * parentheses and brackets (outside quoted literals), a JSON text's objects and arrays (outside
   * strings). One pass, no parsing: a row's format is measured before anything parses it.
   */
  public static int nestingDepth(String text) {
    String t = text.strip();
    boolean regex = t.startsWith("regex:");
    boolean quotes = !regex;
    int depth = 0;
    int deepest = 0;
    boolean quoted = false;
    boolean inClass = false;
    for (int i = 0; i < t.length(); i++) {
      char c = t.charAt(i);
      if (c == '\\') {
        i++;
      } else if (quoted) {
        quoted = c != '"';
      } else if (quotes && c == '"') {
        quoted = true;
      } else if (regex && inClass) {
        inClass = c != ']';
      } else if (regex && c == '[') {
        inClass = true;
      } else if (c == '(' || (!regex && (c == '[' || c == '{'))) {
        deepest = Math.max(deepest, ++depth);
      } else if (c == ')' || (!regex && (c == ']' || c == '}'))) {
        depth = Math.max(0, depth - 1);
      }
    }
    return deepest;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ResponseFormat other && other.canonical.equals(canonical);
  }

  @Override
  public int hashCode() {
    return canonical.hashCode();
  }

  @Override
  public String toString() {
    return canonical;
  }
}
