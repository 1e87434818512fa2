package io.genaibatch.settings;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * How a setting's raw value (a flag's text, a YAML scalar, a Spark conf string, a JSON value in
 * an MLmodel) becomes a typed value, and what it must satisfy. One parser per kind of value, so a
 * flag, a config file and Spark conf accept exactly the same spellings.
 *
 * @param <T> the typed value
 */
public final class ValueType<T> {
  private static final Pattern DECIMAL = Pattern.compile("[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?");
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern INFINITY = Pattern.compile("[+-]?(?i:inf|infinity)");
  private final Class<T> javaType;
  private final String describe;
  private final Function<Object, T> parse;
  private final Function<T, Object> show;
  private boolean plain;
  private boolean freeText;
  private boolean location;

  private ValueType(Class<T> javaType, String describe, Function<Object, T> parse, Function<T, Object> show) {
    this.javaType = javaType;
    this.describe = describe;
    this.parse = parse;
    this.show = show;
  }

  /** The Java type of a parsed value. */
  public Class<T> javaType() {
    return javaType;
  }

  /**
   * Whether values are plain numbers or booleans, written as they are parsed; otherwise they are
   * written as text ({@code auto}, {@code adaptive}) and Spark ML params hold that text.
   */
  public boolean plain() {
    return plain;
  }

  /** Whether any text is a value (a path, a column, a URI), so blank text means "not given". */
  public boolean freeText() {
    return freeText;
  }

  /**
   * Whether a value names a place (a URI, a path, a table) that may carry credentials
   * ({@code s3a://KEY:SECRET@bucket}, a SAS token's {@code ?sig=}), so that it is shown redacted.
   */
  public boolean location() {
    return location;
  }

  private ValueType<T> asPlain() {
    plain = true;
    return this;
  }

  /** What a valid value is, in words: "a whole number >= 1". */
  public String describe() {
    return describe;
  }

  /**
   * Parses and checks {@code raw}.
   *
   * @throws IllegalArgumentException "must be &lt;describe&gt;, got '&lt;raw&gt;'"
   */
  public T parse(Object raw) {
    T v;
    try {
      v = parse.apply(raw);
    } catch (IllegalArgumentException e) {
      v = null;
    }
    if (v == null) {
      throw new IllegalArgumentException("must be " + describe + ", got '" + raw + "'");
    }
    return v;
  }

  /** The value as written in a config file and the effective-config artifact. */
  public Object show(T value) {
    return value == null ? null : show.apply(value);
  }

  /** Free text; blank text counts as unset. */
  public static ValueType<String> text() {
    ValueType<String> t = new ValueType<>(String.class, "text",
        raw -> raw instanceof Map || raw instanceof List ? null : raw.toString(), v -> v);
    t.freeText = true;
    return t;
  }

  /** Free text naming a place: a URI, a path or a table, shown with its credentials cut out. */
  public static ValueType<String> locationText() {
    ValueType<String> t = text();
    t.location = true;
    return t;
  }

  /** One of {@code choices}, case-insensitive; parsed to its lower-case spelling. */
  public static ValueType<String> choice(String... choices) {
    List<String> ok = List.of(choices);
    return new ValueType<>(String.class, "one of " + String.join(", ", ok), raw -> {
      String s = raw.toString().trim().toLowerCase(Locale.ROOT);
      return ok.contains(s) ? s : null;
    }, v -> v);
  }

  /** A constant of {@code type}, by name, case-insensitive. */
  public static <E extends Enum<E>> ValueType<E> enumOf(Class<E> type) {
    E[] all = type.getEnumConstants();
    StringBuilder names = new StringBuilder();
    for (E e : all) {
      names.append(names.length() == 0 ? "" : ", ").append(e.name().toLowerCase(Locale.ROOT));
    }
    return new ValueType<>(type, "one of " + names, raw -> {
      for (E e : all) {
        if (e.name().equalsIgnoreCase(raw.toString().trim())) {
          return e;
        }
      }
      return null;
    }, v -> v.name().toLowerCase(Locale.ROOT));
  }

  /**
   * {@code true} or {@code false}: a YAML or JSON boolean, or that word in any case. Nothing else
   * ({@code yes}, {@code 1}): a typo must not silently flip a search mode.
   */
  public static ValueType<Boolean> bool() {
    return new ValueType<>(Boolean.class, "true or false", raw -> {
      if (raw instanceof Boolean b) {
        return b;
      }
      if (raw instanceof String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        return t.equals("true") ? Boolean.TRUE : t.equals("false") ? Boolean.FALSE : null;
      }
      return null;
    }, v -> v).asPlain();
  }

  /** A whole number in [{@code min}, {@code max}]: an integer, a whole decimal ({@code 32.0}) or text of one. */
  public static ValueType<Integer> integer(int min, int max) {
    return new ValueType<>(Integer.class, wholeRange(min, max), raw -> {
      Long l = whole(raw);
      return l != null && l >= min && l <= max ? Integer.valueOf(l.intValue()) : null;
    }, v -> v).asPlain();
  }

  /** A whole number that may be large (a random seed). */
  public static ValueType<Long> longInteger() {
    return new ValueType<>(Long.class, "a whole number", ValueType::whole, v -> v).asPlain();
  }

  /** A number with {@code min} allowed or not, and at most {@code max}. */
  public static ValueType<Double> decimal(double min, boolean minAllowed, double max) {
    String describe = "a number " + (minAllowed ? ">= " : "> ") + fmt(min)
        + (max == Double.POSITIVE_INFINITY ? "" : " and <= " + fmt(max));
    return new ValueType<>(Double.class, describe, raw -> {
      Double d = number(raw);
      return d != null && (minAllowed ? d >= min : d > min) && d <= max ? d : null;
    }, v -> v).asPlain();
  }

  /**
   * A list of non-empty strings (stop strings): a YAML or JSON list, text holding a JSON array
   * ({@code ["\n\n", "###"]}, the way to write escapes on a command line), or any other text as
   * a list of that one string. Shown as a JSON array.
   */
  @SuppressWarnings("unchecked")
  public static ValueType<List<String>> textList() {
    Class<List<String>> type = (Class<List<String>>) (Class<?>) List.class;
    return new ValueType<>(type, "a non-empty text or a list of them (JSON array on a command line)", raw -> {
      Object v = raw;
      if (raw instanceof String s && s.trim().startsWith("[")) {
        try {
          v = JSON.readValue(s, List.class);
        } catch (JsonProcessingException e) {
          return null;
        }
      }
      if (!(v instanceof List<?> l)) {
        return v instanceof String s && !s.isEmpty() ? List.of(s) : null;
      }
      List<String> out = new ArrayList<>();
      for (Object o : l) {
        if (!(o instanceof String s) || s.isEmpty()) {
          return null;
        }
        out.add(s);
      }
      return out.isEmpty() ? null : List.copyOf(out);
    }, v -> {
      try {
        return JSON.writeValueAsString(v);
      } catch (JsonProcessingException e) {
        throw new IllegalStateException(e);
      }
    });
  }

  /** The number of partitions: {@code auto} (0), {@code input} (-1) or a positive number. */
  public static ValueType<Integer> partitions() {
    return new ValueType<>(Integer.class, "auto, input or a whole number >= 1", raw -> {
      String s = raw.toString().trim().toLowerCase(Locale.ROOT);
      if (s.equals("auto")) {
        return Settings.PARTITIONS_AUTO;
      }
      if (s.equals("input")) {
        return Settings.PARTITIONS_INPUT;
      }
      Long l = whole(raw);
      return l != null && l >= 1 && l <= Integer.MAX_VALUE ? Integer.valueOf(l.intValue()) : null;
    }, v -> v == Settings.PARTITIONS_AUTO ? "auto" : v == Settings.PARTITIONS_INPUT ? "input" : (Object) v);
  }

  /** Names to numbers >= 0 ({@code eval_token_f1: 0.05}); layers merge name by name. */
  public static ValueType<Map<String, Double>> limits() {
    return mapOf("a map of metric name to a number >= 0, e.g. eval_token_f1: 0.05", raw -> {
      Double d = number(raw);
      return d == null || d < 0 || d.isInfinite() ? null : d;
    });
  }

  /** Names to text values ({@code device_id: 0}); layers merge name by name. */
  public static ValueType<Map<String, String>> textMap() {
    return mapOf("a map of name to value, e.g. device_id: 0",
        raw -> raw == null || raw instanceof Map<?, ?> || raw instanceof List<?> ? null : raw.toString());
  }

  /** A map of non-blank names to values {@code value} takes (null: refused). */
  @SuppressWarnings("unchecked")
  private static <V> ValueType<Map<String, V>> mapOf(String doc, Function<Object, V> value) {
    Class<Map<String, V>> type = (Class<Map<String, V>>) (Class<?>) Map.class;
    return new ValueType<>(type, doc, raw -> {
      if (!(raw instanceof Map<?, ?> m)) {
        return null;
      }
      Map<String, V> out = new LinkedHashMap<>();
      for (Map.Entry<?, ?> e : m.entrySet()) {
        V v = value.apply(e.getValue());
        if (e.getKey() == null || e.getKey().toString().isBlank() || v == null) {
          return null;
        }
        out.put(e.getKey().toString(), v);
      }
      return out;
    }, v -> v);
  }

  private static Long whole(Object raw) {
    Double d = number(raw);
    if (raw instanceof Long l) {
      return l;
    }
    return d != null && d == Math.rint(d) && Math.abs(d) < 9.0e15 ? Long.valueOf(d.longValue()) : null;
  }

  private static Double number(Object raw) {
    if (raw instanceof Boolean) {
      return null;
    }
    if (raw instanceof Number n) {
      return n.doubleValue();
    }
    // Decimal notation only: Java's parser also takes "32d", "0x1p3" and "NaN", which YAML, JSON
    // and Python do not.
    String t = raw.toString().trim();
    return DECIMAL.matcher(t).matches() ? Double.valueOf(t)
        : INFINITY.matcher(t).matches() ? (t.startsWith("-") ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY)
        : null;
  }

  private static String wholeRange(int min, int max) {
    return "a whole number" + (min == Integer.MIN_VALUE ? "" : " >= " + min)
        + (max == Integer.MAX_VALUE ? "" : (min == Integer.MIN_VALUE ? " <= " : " and <= ") + max);
  }

  private static String fmt(double d) {
    return d == Math.rint(d) ? String.valueOf((long) d) : String.valueOf(d);
  }
}
