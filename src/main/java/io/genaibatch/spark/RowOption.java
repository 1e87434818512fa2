package io.genaibatch.spark;

import io.genaibatch.settings.Setting;
import io.genaibatch.settings.Settings;

/**
 * The options a row may carry in its own columns, each listed here once: its llm/v1/chat field name,
 * the setting that names its column ({@code --max-tokens-column} ...), the job-wide setting it
 * overrides for its row (whose type and range check the cell), and the column types it accepts.
 */
public enum RowOption {
  MAX_TOKENS("max_tokens", Settings.MAX_TOKENS_COLUMN, Settings.MAX_NEW_TOKENS, Cell.NUMBER),
  TEMPERATURE("temperature", Settings.TEMPERATURE_COLUMN, Settings.TEMPERATURE, Cell.NUMBER),
  TOP_P("top_p", Settings.TOP_P_COLUMN, Settings.TOP_P, Cell.NUMBER),
  STOP("stop", Settings.STOP_COLUMN, Settings.STOP, Cell.STRINGS),
  N("n", Settings.N_COLUMN, Settings.N, Cell.NUMBER),
  RESPONSE_FORMAT("response_format", Settings.RESPONSE_FORMAT_COLUMN, Settings.RESPONSE_FORMAT, Cell.TEXT);

  /** What a column of the option may hold. */
  enum Cell {
    /** A number, or text holding one (each row says which value is not a number). */
    NUMBER("a number"),
    /** An array of strings, or one string. */
    STRINGS("array<string> or string"),
    /** A string. */
    TEXT("string");

    final String wanted;

    Cell(String wanted) {
      this.wanted = wanted;
    }
  }

  private final String field;
  @SuppressWarnings("ImmutableEnumChecker") // a Setting is an immutable declaration
  private final Setting<String> column;
  @SuppressWarnings("ImmutableEnumChecker")
  private final Setting<?> setting;
  private final Cell cell;

  RowOption(String field, Setting<String> column, Setting<?> setting, Cell cell) {
    this.field = field;
    this.column = column;
    this.setting = setting;
    this.cell = cell;
  }

  /** The llm/v1/chat request's field name, and the column read in chat mode when none is named. */
  public String field() {
    return field;
  }

  /** The setting that names the option's column. */
  public Setting<String> column() {
    return column;
  }

  /** The job-wide setting the row's value overrides; its type and range check the cell. */
  Setting<?> setting() {
    return setting;
  }

  Cell cell() {
    return cell;
  }
}
