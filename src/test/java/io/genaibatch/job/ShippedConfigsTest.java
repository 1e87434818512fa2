package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.settings.Setting;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import io.genaibatch.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** The example configs under conf/ are read by the job's own rules, so a renamed key cannot rot them. */
class ShippedConfigsTest {
  @Test
  void everyConfigUnderConfReadsWithoutUnknownKeysOrBadValues() throws Exception {
    List<Path> configs;
    try (Stream<Path> s = Files.list(Fixtures.projectDir().resolve("conf"))) {
      configs = s.filter(p -> p.toString().endsWith(".yaml")).sorted().toList();
    }
    assertThat(configs).extracting(p -> p.getFileName().toString())
        .contains("local.yaml", "cluster.yaml", "databricks.yaml", "nightly.yaml");
    for (Path p : configs) {
      SettingValues v = SettingValues.defaults().belowYaml("config " + p, JobConfig.readYaml(p));
      assertThat(v.get(Settings.INPUT)).as("%s names an input", p).isNotBlank();
      assertThat(v.search().maxNewTokens()).as("%s sets max_new_tokens", p).isNotNull();
    }
  }

  @Test
  void theReadmesFlagTableNamesEverySetting() throws Exception {
    String readme = Files.readString(Fixtures.projectDir().resolve("README.md"));
    for (Setting<?> s : Settings.all()) {
      assertThat(readme).as("README documents %s", s.key()).contains("`" + s.flags().get(0));
    }
  }
}
