package io.genaibatch.spark;

import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.RowLimits;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.settings.Setting;
import java.io.Serializable;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.NumericType;
import org.apache.spark.sql.types.StructType;

/**
 * A row's own options, read from its columns and laid over the job's: {@code max_tokens}, {@code
 * temperature}, {@code top_p}, {@code stop}, {@code n} and {@code response_format}. The columns are
 * the ones named by {@code --max-tokens-column} and its siblings; in chat mode, where none is
 * named, a column named like the llm/v1/chat request's field (the seed's signature has {@code
 * temperature}, {@code max_tokens}, {@code stop} and {@code n}). A null cell keeps the job's value.
 *
 * <p>A row's {@code temperature} means what it means in the OpenAI request it mirrors: above 0 the
 * row samples at that temperature from all tokens (no top_k limit unless the job sets one), 0 is
 * greedy search, whatever the job's {@code do_sample}. (The
 * job's own {@code temperature} only applies with {@code do_sample}, as in onnxruntime-genai.)
 *
 * <p>Columns of a type that can never hold the option fail on the driver ({@link #resolve}); a cell
 * that holds a bad value (a negative {@code max_tokens}, a temperature written as text) makes that
 * row an error row ({@link BadOption}) and the other rows go on.
 */
final class RowOptions implements Serializable {
  private static final long serialVersionUID = 1L;

  /** One option read from a column: which, and where (the column, or a field of the request struct). */
  private record Column(RowOption option, String name, int index, int field) implements Serializable {
    Setting<?> setting() {
      return option.setting();
    }

    /** The cell's value: the column's, or with {@code field} >= 0 that field of the request struct; null if null. */
    Object value(Row row) {
      if (row.isNullAt(index)) {
        return null;
      }
      if (field < 0) {
        return row.get(index);
      }
      Row request = row.getStruct(index);
      return request.isNullAt(field) ? null : request.get(field);
    }

    /** The cell as a Java list, for an array cell that is not null. */
    List<Object> list(Row row) {
      return field < 0 ? row.getList(index) : row.getStruct(index).getList(field);
    }
  }

  /** A row whose own option cannot be used; its message names the column and the value. */
  static final class BadOption extends Exception {
    private static final long serialVersionUID = 1L;

    BadOption(String message) {
      super(message);
    }
  }

  private final ScoringOptions job;
  private final Map<RowOption, Column> columns;
  /** Distinct response formats a task keeps parsed: the most recently used. */
  private static final int FORMATS_KEPT = 64;

  /** Per-row response formats read lately in this task, by text: the format, or why it is not one. */
  private transient Map<String, Object> formats;

  private RowOptions(ScoringOptions job, Map<RowOption, Column> columns) {
    this.job = job;
    this.columns = columns;
  }

  /**
   * Whether a row may set its own {@code n} or {@code temperature} (which makes it sample), so a
   * job-wide {@code n} that needs sampling can still hold for it.
   */
  boolean rowsSetNOrTemperature() {
    return columns.containsKey(RowOption.N) || columns.containsKey(RowOption.TEMPERATURE);
  }

  /**
   * The option columns of {@code input} under {@code job}'s settings.
   *
   * @throws IllegalArgumentException naming a named column that is missing or a column whose type
   *     cannot hold its option, and what type it needs
   */
  static RowOptions resolve(ScoringOptions job, StructType input) {
    Map<RowOption, Column> out = new EnumMap<>(RowOption.class);
    for (RowOption o : RowOption.values()) {
      add(out, job, input, o, job.columns().get(o));
    }
    return new RowOptions(job, out);
  }

  private static void add(Map<RowOption, Column> out, ScoringOptions job, StructType input, RowOption o, String named) {
    String option = o.field();
    String name = named;
    if (name == null) {
      StructType request = requestStruct(job, input);
      if (job.chat() && input.getFieldIndex(option).isEmpty() && request != null
          && request.getFieldIndex(option).isDefined()) {
        // The llm/v1/chat request as one struct column: its field of the option's name.
        String where = job.messagesColumn() + "." + option;
        check(o, where, request.apply(option).dataType());
        out.put(o, new Column(o, where, input.fieldIndex(job.messagesColumn()), request.fieldIndex(option)));
        return;
      }
      if (!job.chat() || input.getFieldIndex(option).isEmpty()) {
        return;
      }
      name = option;
    } else if (input.getFieldIndex(name).isEmpty()) {
      throw new IllegalArgumentException("Input has no column '" + name + "' (named by --"
          + o.column().key().replace('_', '-') + "); its columns are " + String.join(", ", input.fieldNames()));
    }
    check(o, name, input.apply(name).dataType());
    out.put(o, new Column(o, name, input.fieldIndex(name), -1));
  }

  /**
   * The messages column's type when it is a whole llm/v1/chat request (a struct with a {@code
   * messages} field, its options beside it); else null.
   */
  static StructType requestStruct(ScoringOptions job, StructType input) {
    if (!job.chat() || input.getFieldIndex(job.messagesColumn()).isEmpty()) {
      return null;
    }
    return input.apply(job.messagesColumn()).dataType() instanceof StructType st
        && st.getFieldIndex("messages").isDefined() ? st : null;
  }

  /** Fails when a column (or request field) of type {@code t} can never hold option {@code o}. */
  private static void check(RowOption o, String name, DataType t) {
    boolean text = DataTypes.StringType.equals(t);
    boolean ok = switch (o.cell()) {
      case STRINGS -> text || (t instanceof ArrayType a && DataTypes.StringType.equals(a.elementType()));
      case TEXT -> text;
      // Text is let through to the rows: each then says which value is not a number.
      case NUMBER -> text || t instanceof NumericType;
    };
    if (!ok) {
      throw new IllegalArgumentException("Input column '" + name + "' (a row's own " + o.field() + ") has type "
          + t.simpleString() + "; it needs " + o.cell().wanted);
    }
  }

  /** Whether a row may get more than one completion, so the output needs every completion's text. */
  boolean manyCompletions() {
    return job.n() > 1 || columns.containsKey(RowOption.N);
  }

  /** The input columns read as a row's own options, by option. */
  Map<String, String> columns() {
    Map<String, String> m = new LinkedHashMap<>();
    columns.values().forEach(c -> m.put(c.option().field(), c.name()));
    return m;
  }

  /**
   * The request for {@code row}: its prompt with the job's options and the row's own over them.
   *
   * @throws BadOption naming the column and the value, when a cell holds a value its option cannot take
   */
  GenerationRequest request(Row row, String prompt) throws BadOption {
    SearchOptions own = SearchOptions.DEFAULTS;
    Integer max = number(row, columns.get(RowOption.MAX_TOKENS), Integer.class);
    if (max != null) {
      own = own.withMaxNewTokens(max);
    }
    Double temp = number(row, columns.get(RowOption.TEMPERATURE), Double.class);
    if (temp != null) {
      // A row's temperature has the meaning of the llm/v1/chat request it comes from (OpenAI's):
      // above 0 it samples, 0 is greedy (normalized below).
      own = own.withTemperature(temp).withDoSample(temp > 0);
    }
    Double p = number(row, columns.get(RowOption.TOP_P), Double.class);
    if (p != null) {
      own = own.withTopP(p);
    }
    SearchOptions search = job.search().overriddenBy(own).normalized();
    if (temp != null && temp > 0 && job.search().topK() == null) {
      // OpenAI samples from every token; a model's genai_config.json often says top_k 1 (Phi-3's
      // does), which would make the row greedy whatever its temperature. 0 is no top_k limit.
      search = search.withTopK(0);
    }
    Integer count = number(row, columns.get(RowOption.N), Integer.class);
    ResponseFormat f = format(row);
    return new GenerationRequest(prompt, search, stops(row), count != null ? count : job.n(),
        f == null ? null : f.guidance());
  }

  /** The row's response format: its own, else the job's; null for none. */
  ResponseFormat format(Row row) throws BadOption {
    Column format = columns.get(RowOption.RESPONSE_FORMAT);
    Object cell = format == null ? null : format.value(row);
    if (cell == null) {
      return job.responseFormat();
    }
    String text = cell.toString();
    if (ResponseFormat.isPlainText(text)) {
      return null;
    }
    checkFormat(text, job.limits(), "column " + format.name());
    if (formats == null) {
      formats = new LinkedHashMap<>(16, 0.75f, true) {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Object> eldest) {
          return size() > FORMATS_KEPT;
        }
      };
    }
    Object f = formats.computeIfAbsent(text, t -> {
      try {
        return ResponseFormat.parse(t, "column " + format.name());
      } catch (EngineException e) {
        return e.getMessage();
      }
    });
    if (f instanceof String why) {
      throw new BadOption(why);
    }
    return (ResponseFormat) f;
  }

  private List<String> stops(Row row) throws BadOption {
    Column stop = columns.get(RowOption.STOP);
    Object v = stop == null ? null : stop.value(row);
    if (v == null) {
      return job.stop();
    }
    List<Object> list = v instanceof String s ? List.of(s) : stop.list(row);
    return checkStops(list, job.limits(), "column " + stop.name());
  }

  /**
   * A row's stop strings, checked against {@code limits}.
   *
   * @param where names where the row gave them, to begin a message: "column stop"
   * @throws BadOption for too many, a null or empty one, or one too long
   */
  static List<String> checkStops(List<?> list, RowLimits limits, String where) throws BadOption {
    if (list.size() > limits.maxStopStrings()) {
      throw new BadOption(where + ": " + list.size() + " stop strings, above the limit of --max-stop-strings "
          + limits.maxStopStrings());
    }
    List<String> out = new ArrayList<>(list.size());
    for (Object o : list) {
      String text = o == null ? "" : o.toString();
      if (text.isEmpty()) {
        throw new BadOption(where + ": a stop string must not be null or empty");
      }
      if (text.length() > limits.maxStopChars()) {
        throw new BadOption(where + ": a stop string of " + text.length() + " characters, above the limit of"
            + " --max-stop-chars " + limits.maxStopChars());
      }
      out.add(text);
    }
    return out;
  }

  /**
   * Checks the text of a row's response format against {@code limits} (its length and nesting),
   * before it is parsed.
   *
   * @param where names where the row gave it, to begin a message: "column response_format"
   */
  static void checkFormat(String text, RowLimits limits, String where) throws BadOption {
    if (text.length() > limits.maxFormatChars()) {
      throw new BadOption(where + ": the response format has " + text.length()
          + " characters, above the limit of --max-format-chars " + limits.maxFormatChars());
    }
    int depth = ResponseFormat.nestingDepth(text);
    if (depth > limits.maxFormatDepth()) {
      throw new BadOption(where + ": the response format nests " + depth
          + " levels deep, above the limit of --max-format-depth " + limits.maxFormatDepth());
    }
  }

  /**
   * The cell's number, checked by its setting's range; null when there is no column or the cell is
   * null. Text holding a number in decimal notation is read as that number (a JSON input whose
   * column mixes numbers and text is read as text); other text makes the row an error row.
   */
  private static <T> T number(Row row, Column c, Class<T> type) throws BadOption {
    Object v = c == null ? null : c.value(row);
    if (v == null) {
      return null;
    }
    Object raw = v instanceof BigDecimal d ? d.doubleValue() : v;
    try {
      return type.cast(c.setting().type().parse(raw));
    } catch (IllegalArgumentException e) {
      throw new BadOption("column " + c.name() + ": " + c.option().field() + " " + e.getMessage());
    }
  }
}
