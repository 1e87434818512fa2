package io.genaibatch.settings;

import io.genaibatch.common.Redact;
import java.util.List;

/**
 * One setting, declared once in {@link Settings}: its key, type, default, documentation and where
 * it may be given. Every spelling derives from the key: the flag ({@code batch_size} is {@code
 * --batch-size}), the YAML key (under {@code search:} for search options), the Spark conf key
 * ({@code spark.genaibatch.batch_size}), the Transformer param ({@code batchSize}) and the SQL
 * function's option name ({@code batch_size}).
 *
 * @param <T> the typed value
 */
public final class Setting<T> {
  private final String key;
  private final Scope scope;
  private final ValueType<T> type;
  private final T defaultValue;
  private final String doc;
  private final String label;
  private final List<String> flags;
  private final boolean negatedFlag;
  private final List<String> aliases;

  /** Where a setting applies, from the narrowest to the widest. */
  public enum Scope {
    /** The batch job only: input, output, tracking and evaluation of a run. */
    JOB,
    /** Everything that scores: the job, the Transformer; from flags, config files and Spark conf. */
    SCORING,
    /**
     * Search options: as {@link #SCORING}, and also the MLmodel's {@code model_config}, the SQL
     * function's options map and a model folder's {@code genai_config.json}.
     */
    SEARCH
  }

  Setting(String key, Scope scope, ValueType<T> type, T defaultValue, String doc, String label, List<String> flags,
      boolean negatedFlag, List<String> aliases) {
    this.key = key;
    this.scope = scope;
    this.type = type;
    this.defaultValue = defaultValue;
    this.doc = doc;
    this.label = label;
    this.flags = flags;
    this.negatedFlag = negatedFlag;
    this.aliases = aliases;
  }

  /** The key, snake_case: {@code batch_size}. */
  public String key() {
    return key;
  }

  public Scope scope() {
    return scope;
  }

  public ValueType<T> type() {
    return type;
  }

  /** The default, or null when unset means "not given" (for search options: the model's own). */
  public T defaultValue() {
    return defaultValue;
  }

  /** One line for {@code --help}, the README and the Transformer's param doc. */
  public String doc() {
    return doc;
  }

  /** The flag's value placeholder in {@code --help}: {@code N}, {@code PATH}. */
  public String label() {
    return label;
  }

  /** The command-line flags, first the main one: {@code --batch-size}. */
  public List<String> flags() {
    return flags;
  }

  /** Whether the flag turns the setting off ({@code --no-tracking} sets {@code tracking} false). */
  public boolean negatedFlag() {
    return negatedFlag;
  }

  /** Other keys accepted for this one in maps ({@code max_tokens} for {@code max_new_tokens}). */
  public List<String> aliases() {
    return aliases;
  }

  /** The YAML path: {@code search.max_new_tokens} for search options, the key otherwise. */
  public String yamlPath() {
    return scope == Scope.SEARCH ? Settings.SEARCH_SECTION + "." + key : key;
  }

  /** The Spark conf key: {@code spark.genaibatch.batch_size}. */
  public String confKey() {
    return Settings.CONF_PREFIX + key;
  }

  /** The Spark ML param name: {@code batchSize}. */
  public String paramName() {
    StringBuilder b = new StringBuilder();
    boolean up = false;
    for (int i = 0; i < key.length(); i++) {
      char c = key.charAt(i);
      if (c == '_') {
        up = true;
      } else {
        b.append(up ? Character.toUpperCase(c) : c);
        up = false;
      }
    }
    return b.toString();
  }

  /** Whether the setting applies where settings of {@code widest} scope are read. */
  public boolean within(Scope widest) {
    return scope.compareTo(widest) >= 0;
  }

  /**
   * Parses a raw value given at {@code where}.
   *
   * @throws IllegalArgumentException naming where, the key and what is accepted
   */
  public T parse(Object raw, String where) {
    try {
      return type.parse(raw);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(where + ": '" + key + "' " + e.getMessage(), e);
    }
  }

  /** The value as a config file would write it. */
  public Object show(T value) {
    return type.show(value);
  }

  /**
   * The value as the run's params, the effective config and the logs show it: {@link #show}, a
   * location's credentials cut out.
   */
  public Object shown(T value) {
    Object v = show(value);
    return type.location() && v != null ? Redact.uri(v.toString()) : v;
  }

  @Override
  public String toString() {
    return key;
  }
}
