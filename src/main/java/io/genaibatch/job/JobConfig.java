package io.genaibatch.job;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.genaibatch.eval.Thresholds;
import io.genaibatch.mlflow.TrackingConnection;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The job's settings after precedence (flag, config file, Spark conf; see {@link SettingValues}),
 * checked together: what each setting means is declared once in {@link Settings}, read here with
 * {@link #get}.
 */
public final class JobConfig {
  private final SettingValues values;

  JobConfig(SettingValues values) {
    this.values = values;
    require(Settings.MODEL_URI);
    require(Settings.INPUT);
    require(Settings.OUTPUT);
    if (get(Settings.MODE).equals("resume") && get(Settings.ID_COLUMN) == null) {
      throw new IllegalArgumentException("--mode resume needs --id-column: the column that says which input rows are done");
    }
  }

  /** The value of {@code s} after precedence. */
  public <T> T get(Setting<T> s) {
    return values.get(s);
  }

  /** The resolved values, to hand on to the scorer (which adds the model's own layer). */
  public SettingValues values() {
    return values;
  }

  /** The evaluation thresholds: {@code max_metric_drop} and {@code max_answers_changed}. */
  public Thresholds thresholds() {
    return new Thresholds(get(Settings.MAX_METRIC_DROP), get(Settings.MAX_ANSWERS_CHANGED));
  }

  /** The tracking server: the setting, else {@code MLFLOW_TRACKING_URI}; null when neither. */
  public String trackingUri() {
    return TrackingConnection.uriOrEnv(get(Settings.TRACKING_URI));
  }

  private void require(Setting<String> s) {
    if (get(s) == null) {
      throw new IllegalArgumentException("Missing " + s.flags().get(0) + " (or '" + s.yamlPath()
          + "' in the --config file); see --help");
    }
  }

  /** Reads a YAML config file into its tree; {@link SettingValues#belowYaml} checks the keys. */
  static Map<String, Object> readYaml(Path file) {
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException("Config file " + file + " does not exist");
    }
    try {
      @SuppressWarnings("unchecked")
      Map<String, Object> read = new ObjectMapper(new YAMLFactory()).readValue(file.toFile(), Map.class);
      return read == null ? new LinkedHashMap<>() : read;
    } catch (IOException e) {
      throw new IllegalArgumentException("Config file " + file + " is not valid YAML: " + e.getMessage(), e);
    }
  }
}
