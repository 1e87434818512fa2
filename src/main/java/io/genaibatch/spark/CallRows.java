package io.genaibatch.spark;

import io.genaibatch.common.OutputColumns;
import io.genaibatch.engine.ErrorKind;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.RowLimits;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.settings.Setting.Scope;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import io.genaibatch.spark.compat.SparkCompat;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.StructType;

/**
 * The rows of {@code genai_generate} calls: any columns, then the call's prompt and its options (a
 * {@code MAP<STRING, STRING>}, or null) at {@code promptIdx} and the column after; out come the
 * same columns and the call's result struct. A call's options are laid over the registered
 * settings row by row and held to the job's row limits: a misspelt key fails the query naming the
 * nearest, a bad value or an option over a limit is that call's error.
 */
final class CallRows implements RowShape {
  private static final long serialVersionUID = 1L;

  /** The columns of a call's result, as the job's output declares them, every completion's text last. */
  static final List<OutputSchema.Field> RESULT_FIELDS = OutputSchema.pick(OutputColumns.RESPONSE,
      OutputColumns.FINISH_REASON, OutputColumns.PROMPT_TOKENS, OutputColumns.COMPLETION_TOKENS,
      OutputColumns.TOTAL_TOKENS, OutputColumns.ERROR, OutputColumns.RESPONSES);

  /** Distinct options maps a task keeps settled: the most recently used. */
  private static final int SETTLED_KEPT = 64;

  private final SettingValues base;
  private final RowLimits limits;
  private final int promptIdx;
  /** Options maps settled lately in this task: the settled options, or why they cannot be used. */
  private transient Map<Map<String, String>, Object> settled;

  /** What a call's options settle on; its prompt aside. */
  private record Settled(SearchOptions search, List<String> stop, int n, ResponseFormat format) {
    GenerationRequest request(String prompt) {
      return new GenerationRequest(prompt, search, stop, n, format == null ? null : format.guidance());
    }
  }

  CallRows(SettingValues base, RowLimits limits, int promptIdx) {
    this.base = base;
    this.limits = limits;
    this.promptIdx = promptIdx;
  }

  /** The struct type of a call's result. */
  static StructType resultType() {
    StructType t = new StructType();
    for (OutputSchema.Field f : RESULT_FIELDS) {
      t = t.add(f.struct());
    }
    return t;
  }

  @Override
  public Prepared prepare(Row row, int k, LlmModel model) {
    String prompt = row.isNullAt(promptIdx) ? null : row.getString(promptIdx);
    Map<String, String> options = row.isNullAt(promptIdx + 1) ? Map.of()
        : new HashMap<>(SparkCompat.asJava(row.<String, String>getMap(promptIdx + 1)));
    if (settled == null) {
      settled = new LinkedHashMap<>(16, 0.75f, true) {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<Map<String, String>, Object> eldest) {
          return size() > SETTLED_KEPT;
        }
      };
    }
    // A misspelt key throws through (uncached): it is the query's mistake, and fails it.
    Object s = settled.computeIfAbsent(options, this::settleOrWhy);
    if (s instanceof String why) {
      return Prepared.failed(Generation.failed(k, 0, ErrorKind.BAD_OPTION, why));
    }
    Settled ok = (Settled) s;
    return new Prepared(ok.request(prompt), ok.format(), null);
  }

  private Object settleOrWhy(Map<String, String> options) {
    try {
      return settle(options);
    } catch (SettingValues.UnknownKeyException e) {
      throw e;
    } catch (RowOptions.BadOption | IllegalArgumentException e) {
      // A bad option value is this call's error, as a bad row option is its row's in the job.
      return e.getMessage();
    }
  }

  private Settled settle(Map<String, String> options) throws RowOptions.BadOption {
    String name = GenAiFunctions.NAME;
    SettingValues values = options.isEmpty() ? base : base.above(name + " options", options, Scope.SEARCH, true);
    List<String> stop = values.get(Settings.STOP);
    if (options.containsKey(Settings.STOP.key()) && stop != null) {
      stop = RowOptions.checkStops(stop, limits, name + " option " + Settings.STOP.key());
    }
    String format = values.get(Settings.RESPONSE_FORMAT);
    if (format != null && format.startsWith("@")) {
      throw new IllegalArgumentException(name + " takes response_format inline, not as @file: a file is read where"
          + " the call runs, on an executor");
    }
    String where = name + " option " + Settings.RESPONSE_FORMAT.key();
    if (format != null && options.containsKey(Settings.RESPONSE_FORMAT.key())) {
      RowOptions.checkFormat(format, limits, where);
    }
    return new Settled(values.search(), stop, values.get(Settings.N), ScoringOptions.responseFormat(format, where));
  }

  @Override
  public Row output(Row row, OutputSchema.Scored scored) {
    Object[] result = new Object[RESULT_FIELDS.size()];
    for (int i = 0; i < RESULT_FIELDS.size(); i++) {
      result[i] = RESULT_FIELDS.get(i).value().apply(scored);
    }
    Object[] values = new Object[row.length() + 1];
    for (int c = 0; c < row.length(); c++) {
      values[c] = row.get(c);
    }
    values[row.length()] = RowFactory.create(result);
    return RowFactory.create(values);
  }
}
