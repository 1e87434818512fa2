package io.genaibatch.settings;

import io.genaibatch.engine.SearchOptions;
import io.genaibatch.settings.Setting.Scope;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Settings resolved over layers, highest precedence first. The documented order is: flag, the
 * {@code --config} YAML file, the session's runtime Spark conf ({@code spark.genaibatch.*}), the
 * MLmodel's {@code model_config} (search options only), then the setting's default; a search
 * option set nowhere is left to the model folder's {@code genai_config.json}. The Transformer's
 * params stand where flags do, the SQL function's options map above everything for its call.
 *
 * <p>Each layer is parsed when it is added, so a bad value fails naming the layer, the key and
 * what is accepted; unknown keys fail naming the nearest known one, except in {@code
 * model_config}, which may carry other tools' keys. Immutable and serializable (values are
 * strings, numbers, booleans, enums and maps of them), so a SQL function can take it to executors.
 */
public final class SettingValues implements Serializable {
  private static final long serialVersionUID = 1L;

  /** One source of values: its name for messages and the effective config, and typed values by key. */
  private record Layer(String name, Map<String, Object> values) implements Serializable {}

  private final List<Layer> layers;

  private SettingValues(List<Layer> layers) {
    this.layers = List.copyOf(layers);
  }

  /** No values: every setting at its default. */
  public static SettingValues defaults() {
    return new SettingValues(List.of());
  }

  /**
   * These values over a new lowest layer read from {@code raw} (keys as in Spark conf and
   * {@code model_config}: {@code max_new_tokens}, aliases allowed).
   *
   * @param name where the values come from, for messages: {@code "model_config of models:/m/1"}
   * @param widest only settings of this scope or wider are read from the layer
   * @param refuseUnknown whether a key that names no setting (of that scope) is an error
   */
  public SettingValues below(String name, Map<String, ?> raw, Scope widest, boolean refuseUnknown) {
    List<Layer> l = new ArrayList<>(layers);
    l.add(parse(name, raw, widest, refuseUnknown));
    return new SettingValues(l);
  }

  /** These values under a new highest layer read from {@code raw} (see {@link #below}). */
  public SettingValues above(String name, Map<String, ?> raw, Scope widest, boolean refuseUnknown) {
    List<Layer> l = new ArrayList<>();
    l.add(parse(name, raw, widest, refuseUnknown));
    l.addAll(layers);
    return new SettingValues(l);
  }

  /**
   * These values under a YAML config file's, read from its parsed tree: top-level keys, search
   * options under {@code search:}. Unknown keys fail naming the nearest known key.
   */
  public SettingValues belowYaml(String name, Map<String, ?> tree) {
    Map<String, Object> flat = new LinkedHashMap<>();
    List<String> known = Settings.all().stream().map(Setting::yamlPath).toList();
    for (Map.Entry<String, ?> e : tree.entrySet()) {
      if (e.getKey().equals(Settings.SEARCH_SECTION) && e.getValue() instanceof Map<?, ?> section) {
        for (Map.Entry<?, ?> s : section.entrySet()) {
          String path = Settings.SEARCH_SECTION + "." + s.getKey();
          Setting<?> setting = Settings.byKey(String.valueOf(s.getKey())).orElse(null);
          if (setting == null || setting.scope() != Scope.SEARCH) {
            throw unknown(name, path, known);
          }
          flat.put(String.valueOf(s.getKey()), s.getValue());
        }
        continue;
      }
      Setting<?> setting = Settings.byKey(e.getKey()).orElse(null);
      if (setting == null || !setting.yamlPath().equals(setting.key()) || !setting.key().equals(e.getKey())) {
        throw unknown(name, e.getKey(), known);
      }
      flat.put(e.getKey(), e.getValue());
    }
    return below(name, flat, Scope.JOB, true);
  }

  private static IllegalArgumentException unknown(String where, String key, List<String> known) {
    return new UnknownKeyException(where + ": unknown key '" + key + "'; did you mean '"
        + Settings.nearest(key, known) + "'? Known keys: " + String.join(", ", known));
  }

  /** A key that names no setting (a typo), as opposed to a bad value of a known one. */
  public static final class UnknownKeyException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    UnknownKeyException(String message) {
      super(message);
    }
  }

  private static Layer parse(String name, Map<String, ?> raw, Scope widest, boolean refuseUnknown) {
    Map<String, Object> typed = new LinkedHashMap<>();
    List<String> known = Settings.within(widest).stream().map(Setting::key).toList();
    for (Map.Entry<String, ?> e : raw.entrySet()) {
      Setting<?> s = Settings.byKey(e.getKey()).filter(x -> x.within(widest)).orElse(null);
      if (s == null) {
        if (refuseUnknown) {
          throw unknown(name, e.getKey(), known);
        }
        continue;
      }
      // Null is unset; so is blank text for a text setting (an empty tracking URI); a blank number
      // or switch is refused, as the search-option contract says.
      if (e.getValue() == null || (e.getValue() instanceof String str && str.isBlank() && s.type().freeText())) {
        continue;
      }
      boolean alias = !s.key().equals(e.getKey());
      if (alias && raw.get(s.key()) != null) {
        continue; // the key itself wins over its alias
      }
      typed.put(s.key(), s.parse(e.getValue(), name));
    }
    return new Layer(name, typed);
  }

  /** The value of {@code s}: from the highest layer that has it, else its default (maps merge key by key). */
  @SuppressWarnings("unchecked")
  public <T> T get(Setting<T> s) {
    if (s.defaultValue() instanceof Map<?, ?> dflt) {
      Map<Object, Object> merged = new LinkedHashMap<>(dflt);
      for (int i = layers.size() - 1; i >= 0; i--) {
        Object v = layers.get(i).values().get(s.key());
        if (v != null) {
          merged.putAll((Map<?, ?>) v);
        }
      }
      return (T) merged;
    }
    for (Layer l : layers) {
      Object v = l.values().get(s.key());
      if (v != null) {
        return (T) v;
      }
    }
    return s.defaultValue();
  }

  /** Where {@code s}'s value comes from: a layer's name, or {@code default}. */
  public String source(Setting<?> s) {
    for (Layer l : layers) {
      if (l.values().containsKey(s.key())) {
        return l.name();
      }
    }
    return "default";
  }

  /**
   * The search options these values settle on, for the engine: set options only (the rest is
   * the model's {@code genai_config.json}), with {@code temperature: 0} meaning greedy search as
   * in OpenAI's API and the Python wrapper.
   */
  public SearchOptions search() {
    SearchOptions o = new SearchOptions(get(Settings.MAX_NEW_TOKENS), get(Settings.MAX_LENGTH),
        get(Settings.TEMPERATURE), get(Settings.TOP_P), get(Settings.TOP_K), get(Settings.DO_SAMPLE),
        get(Settings.SEED), get(Settings.REPETITION_PENALTY));
    return o.normalized();
  }

  /**
   * Every setting of {@code widest} scope or wider with its value and source, as the
   * effective-config artifact shows it: {@code batch_size: {value: 8, source: default}}.
   */
  @SuppressWarnings({"unchecked", "rawtypes"})
  public Map<String, Object> effective(Scope widest) {
    Map<String, Object> m = new LinkedHashMap<>();
    for (Setting s : Settings.within(widest)) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("value", s.shown(get(s)));
      e.put("source", source(s));
      m.put(s.key(), e);
    }
    return m;
  }
}
