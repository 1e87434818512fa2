package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import io.genaibatch.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
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

  @Test
  void eachDatabricksJobInstallsTheJarOfItsRuntimesSparkLine() throws Exception {
    Path dir = Fixtures.projectDir().resolve("jobs/databricks");
    List<Path> jobs;
    try (Stream<Path> s = Files.list(dir)) {
      jobs = s.filter(p -> p.toString().endsWith(".json")).sorted().toList();
    }
    assertThat(jobs).hasSize(3);
    for (Path p : jobs) {
      JsonNode task = new ObjectMapper().readTree(p.toFile()).path("tasks").get(0);
      String runtime = task.path("new_cluster").path("spark_version").asText();
      String jar = task.path("libraries").get(0).path("jar").asText();
      // 14.3 to 16.4 LTS run Spark 3.5; 17.3 LTS and later Spark 4 (README, "Clusters and Databricks").
      int major = Integer.parseInt(runtime.substring(0, runtime.indexOf('.')));
      String scala = runtime.substring(runtime.lastIndexOf("scala") + 5);
      String want = major < 17 ? "genai-batch-spark3.5_2.12.jar" : "genai-batch-spark4_2.13.jar";
      assertThat(jar).as("%s on %s", p.getFileName(), runtime).endsWith("/" + want);
      assertThat(want).as("%s: the runtime's Scala version", p.getFileName()).contains("_" + scala + ".jar");
      assertThat(task.path("spark_jar_task").path("main_class_name").asText()).isEqualTo(BatchScoringJob.class.getName());
      JsonNode conf = task.path("new_cluster").path("spark_conf");
      String init = task.path("new_cluster").path("init_scripts").get(0).path("volumes").path("destination").asText();
      if (runtime.contains("-gpu-")) {
        // A GPU runtime: the CUDA builds, the provider asked for, one task per GPU from Spark.
        assertThat(task.path("spark_jar_task").path("parameters").toString()).contains("\"--execution-provider\",\"cuda\"");
        assertThat(conf.path("spark.executor.resource.gpu.amount").asText()).isNotEmpty();
        assertThat(conf.path("spark.task.resource.gpu.amount").asText()).isNotEmpty();
        assertThat(init).endsWith("/install-onnxruntime-genai-cuda.sh");
      } else {
        assertThat(init).endsWith("/install-onnxruntime-genai.sh");
      }
      if (major < 16) {
        assertThat(task.path("new_cluster").path("spark_env_vars").path("JNAME").asText())
            .as("%s: JDK 17 on a runtime whose default is JDK 8", p.getFileName()).startsWith("zulu17");
      }
    }
  }

  @Test
  void theInitScriptsInstallThePinnedVersionsOrTheirCudaBuilds() throws Exception {
    Map<String, String> pins = new TreeMap<>();
    for (String line : Files.readAllLines(Fixtures.projectDir().resolve("src/main/python/requirements.txt"))) {
      if (line.startsWith("onnxruntime")) {
        pins.put(line.substring(0, line.indexOf("==")), line.substring(line.indexOf("==") + 2));
      }
    }
    assertThat(pins).containsKeys("onnxruntime", "onnxruntime-genai");
    Path dir = Fixtures.projectDir().resolve("jobs/databricks");
    assertThat(Files.readString(dir.resolve("install-onnxruntime-genai.sh")))
        .contains("onnxruntime-genai==" + pins.get("onnxruntime-genai"), "onnxruntime==" + pins.get("onnxruntime"));
    assertThat(Files.readString(dir.resolve("install-onnxruntime-genai-cuda.sh")))
        .contains("onnxruntime-genai-cuda==" + pins.get("onnxruntime-genai"), "onnxruntime-gpu==" + pins.get("onnxruntime"));
  }
}
