package io.genaibatch.settings;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.genaibatch.engine.Batching;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.settings.Setting.Scope;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SettingValuesTest {
  @SuppressWarnings("unchecked")
  private static Map<String, Object> yaml(String text) throws Exception {
    return new ObjectMapper(new YAMLFactory()).readValue(text, Map.class);
  }

  @Test
  void everySpellingOfASettingComesFromItsOneKey() {
    Set<String> seen = new HashSet<>();
    for (Setting<?> s : Settings.all()) {
      assertThat(s.key()).as("snake_case key").matches("[a-z][a-z0-9_]*");
      assertThat(seen.add(s.key())).as("declared once: %s", s.key()).isTrue();
      assertThat(s.confKey()).isEqualTo("spark.genaibatch." + s.key());
      assertThat(s.doc()).isNotBlank();
    }
    assertThat(Settings.BATCH_SIZE.flags()).containsExactly("--batch-size");
    assertThat(Settings.BATCH_SIZE.paramName()).isEqualTo("batchSize");
    assertThat(Settings.MAX_NEW_TOKENS.yamlPath()).isEqualTo("search.max_new_tokens");
    assertThat(Settings.CACHE_DIR.confKey()).isEqualTo("spark.genaibatch.cache_dir");
  }

  @Test
  void aHigherLayerWinsAndEachValueNamesItsSource() throws Exception {
    SettingValues v = SettingValues.defaults()
        .belowYaml("config c.yaml", yaml("""
            batch_size: 4
            partitions: input
            search:
              max_tokens: 10
              do_sample: "False"
            """))
        .below("Spark conf", Map.of("batch_size", "2", "lookahead_rows", "64", "max_new_tokens", "3"), Scope.JOB, true)
        .above("flag --batching", Map.of("batching", "FIXED"), Scope.JOB, true);

    assertThat(v.get(Settings.BATCH_SIZE)).isEqualTo(4);
    assertThat(v.source(Settings.BATCH_SIZE)).isEqualTo("config c.yaml");
    assertThat(v.get(Settings.LOOKAHEAD_ROWS)).isEqualTo(64);
    assertThat(v.source(Settings.LOOKAHEAD_ROWS)).isEqualTo("Spark conf");
    assertThat(v.get(Settings.BATCHING)).isEqualTo(Batching.FIXED);
    assertThat(v.get(Settings.PARTITIONS)).isEqualTo(Settings.PARTITIONS_INPUT);
    assertThat(v.get(Settings.COMMIT_ROWS)).isEqualTo(10_000);
    assertThat(v.source(Settings.COMMIT_ROWS)).isEqualTo("default");
    assertThat(v.search()).isEqualTo(SearchOptions.DEFAULTS.withMaxNewTokens(10).withDoSample(false));
    assertThat(v.effective(Scope.JOB).get("partitions")).isEqualTo(Map.of("value", "input", "source", "config c.yaml"));
  }

  @Test
  void theModelsConfigFillsOnlySearchOptionsAndIgnoresOtherKeys() {
    SettingValues v = SettingValues.defaults().above("flags", Map.of("max_new_tokens", 5), Scope.JOB, true)
        .below("model_config", Map.of("max_new_tokens", 64, "top_k", 20, "batch_size", 1, "min_length", 2),
            Scope.SEARCH, false);
    assertThat(v.get(Settings.MAX_NEW_TOKENS)).isEqualTo(5);
    assertThat(v.get(Settings.TOP_K)).isEqualTo(20);
    assertThat(v.get(Settings.BATCH_SIZE)).as("a model does not batch the job").isEqualTo(8);
  }

  @Test
  void temperatureZeroMeansGreedySearch() {
    SettingValues v = SettingValues.defaults().below("model_config", Map.of("do_sample", true, "temperature", 0.7),
        Scope.SEARCH, false).above("options", Map.of("temperature", "0"), Scope.SEARCH, true);
    assertThat(v.search().doSample()).isFalse();
    assertThat(v.search().temperature()).isNull();
  }

  @Test
  void anUnknownKeyIsRefusedNamingTheNearestKnownOne() throws Exception {
    assertThatThrownBy(() -> SettingValues.defaults().belowYaml("config c.yaml", yaml("batchsize: 4")))
        .hasMessageStartingWith("config c.yaml: unknown key 'batchsize'; did you mean 'batch_size'?");
    assertThatThrownBy(() -> SettingValues.defaults().belowYaml("config c.yaml", yaml("max_new_tokens: 4")))
        .hasMessageStartingWith("config c.yaml: unknown key 'max_new_tokens'; did you mean 'search.max_new_tokens'?");
    assertThatThrownBy(() -> SettingValues.defaults().belowYaml("config c.yaml", yaml("search: {batch_size: 4}")))
        .hasMessageStartingWith("config c.yaml: unknown key 'search.batch_size'; did you mean 'batch_size'?");
    assertThatThrownBy(() -> SettingValues.defaults().below("Spark conf spark.genaibatch.*",
        Map.of("cacheDir", "/tmp/x"), Scope.JOB, true))
        .hasMessageStartingWith("Spark conf spark.genaibatch.*: unknown key 'cacheDir'; did you mean 'cache_dir'?");
    assertThatThrownBy(() -> SettingValues.defaults().above("genai_generate options", Map.of("max_tokes", "3"),
        Scope.SEARCH, true))
        .hasMessageStartingWith("genai_generate options: unknown key 'max_tokes'; did you mean 'max_new_tokens'?");
  }

  @Test
  void aBadValueNamesWhereTheKeyAndWhatIsAccepted() {
    assertThatThrownBy(() -> SettingValues.defaults().above("flag --batch-size", Map.of("batch_size", "0"), Scope.JOB,
        true)).hasMessage("flag --batch-size: 'batch_size' must be a whole number >= 1 and <= 4096, got '0'");
    assertThatThrownBy(() -> SettingValues.defaults().above("c", Map.of("do_sample", "yes"), Scope.JOB, true))
        .hasMessage("c: 'do_sample' must be true or false, got 'yes'");
    assertThatThrownBy(() -> SettingValues.defaults().above("c", Map.of("max_new_tokens", 2.5), Scope.JOB, true))
        .hasMessageContaining("'max_new_tokens' must be a whole number >= 1");
    assertThatThrownBy(() -> SettingValues.defaults().above("c", Map.of("top_p", 0), Scope.JOB, true))
        .hasMessage("c: 'top_p' must be a number > 0 and <= 1, got '0'");
    assertThatThrownBy(() -> SettingValues.defaults().above("c", Map.of("partitions", "many"), Scope.JOB, true))
        .hasMessage("c: 'partitions' must be auto, input or a whole number >= 1, got 'many'");
    assertThatThrownBy(() -> SettingValues.defaults().above("c", Map.of("batching", "greedy"), Scope.JOB, true))
        .hasMessage("c: 'batching' must be one of continuous, fixed, adaptive, got 'greedy'");
    assertThatThrownBy(() -> SettingValues.defaults().above("c", Map.of("max_new_tokens", "32d"), Scope.SEARCH, true))
        .hasMessageContaining("'max_new_tokens' must be a whole number");
  }

  @Test
  void evaluationLimitsMergeKeyByKeyAndRefuseBadValues() throws Exception {
    SettingValues v = SettingValues.defaults().belowYaml("config nightly.yaml", yaml("""
        output: /data/scored
        max_metric_drop:
          eval_token_f1: 0.05
          eval_exact_match: 0
        max_answers_changed: 10
        """)).above("flag --max-metric-drop", Map.of("max_metric_drop", Map.of("eval_token_f1", "0.1")), Scope.JOB, true);
    assertThat(v.get(Settings.MAX_METRIC_DROP)).containsExactly(Map.entry("eval_token_f1", 0.1),
        Map.entry("eval_exact_match", 0.0));
    assertThat(v.get(Settings.MAX_ANSWERS_CHANGED)).isEqualTo(10);
    assertThat(SettingValues.defaults().get(Settings.MAX_METRIC_DROP)).isEmpty();

    assertThatThrownBy(() -> SettingValues.defaults().belowYaml("c.yaml", yaml("max_metric_drop: {eval_token_f1: a lot}")))
        .hasMessageStartingWith("c.yaml: 'max_metric_drop' must be a map of metric name to a number >= 0");
    assertThatThrownBy(() -> SettingValues.defaults().belowYaml("c.yaml", yaml("max_metric_drop: {eval_token_f1: -0.1}")))
        .hasMessageContaining("'max_metric_drop' must be a map");
    assertThatThrownBy(() -> SettingValues.defaults().belowYaml("c.yaml", yaml("max_metric_drop: 0.05")))
        .hasMessageContaining("e.g. eval_token_f1: 0.05");
    assertThatThrownBy(() -> SettingValues.defaults().belowYaml("c.yaml", yaml("max_answers_changed: 2.5")))
        .hasMessage("c.yaml: 'max_answers_changed' must be a whole number >= 0, got '2.5'");
  }
}
