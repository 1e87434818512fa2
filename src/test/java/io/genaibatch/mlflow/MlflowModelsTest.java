package io.genaibatch.mlflow;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.engine.GenAiConfig;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.SettingValues;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import io.genaibatch.testing.Slow;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A model logged by MLflow's Python API as the seed does, resolved, fetched and run from Java. */
@Slow
class MlflowModelsTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static MlflowServer server;
  static JsonNode logged;
  static final String NAME = "tiny-phi3-java";

  @BeforeAll
  static void logModel() throws Exception {
    server = MlflowServer.shared();
    logged = server.python("log_model", null, "--model-dir", Fixtures.tinyModel().toString(),
        "--register", NAME, "--alias", "champion", "--experiment", "java-resolution", "--max-new-tokens", "10");
  }

  private static TrackingConnection tracking() {
    return TrackingConnection.connect(server.uri());
  }

  @Test
  void aliasResolvesFetchesAndAnswersLikeMlflowPyfunc(@TempDir Path cache) throws Exception {
    List<String> prompts = List.of("<|user|>\nTell me a joke about atoms<|end|>\n<|assistant|>\n",
        "Hello world", "It ends here.", "The capital of Spain is");
    String uri = "models:/" + NAME + "@champion";
    ModelFetcher.LocalModel local;
    ResolvedModel resolved;
    try (TrackingConnection t = tracking()) {
      resolved = new ModelResolver(t).resolve(ModelUri.parse(uri));
      local = ModelFetcher.fetch(resolved, t, new ModelCache(cache));
    }
    assertThat(resolved.registeredName()).isEqualTo(NAME);
    assertThat(resolved.version()).isEqualTo(logged.get("version").asText());
    assertThat(resolved.modelId()).isEqualTo(logged.get("model_id").asText());
    assertThat(local.mlModel().signature().input("prompt")).isPresent();
    assertThat(local.mlModel().modelConfig()).containsEntry("max_new_tokens", 10);
    assertThat(local.genaiDir()).startsWith(local.modelDir());
    assertThat(GenAiConfig.isModelFolder(local.genaiDir())).isTrue();

    SearchOptions opts = SettingValues.defaults().below("model_config", local.mlModel().modelConfig(),
        Setting.Scope.SEARCH, false).search();
    List<Generation> java;
    try (LlmModel model = LlmModel.load(local.genaiDir())) {
      java = model.generate(prompts, opts);
    }
    JsonNode py = server.python("predict_reference", JSON.writeValueAsString(Map.of("model_uri", uri, "prompts", prompts)));
    for (int i = 0; i < prompts.size(); i++) {
      assertThat(java.get(i).text()).as("prompt %d", i).isEqualTo(py.get(i).asText());
    }
  }

  @Test
  void everyUriFormResolvesToTheSameModel(@TempDir Path cache) {
    String version = logged.get("version").asText();
    String modelId = logged.get("model_id").asText();
    String runId = logged.get("run_id").asText();
    try (TrackingConnection t = tracking()) {
      ModelResolver r = new ModelResolver(t);
      ResolvedModel byVersion = r.resolve(ModelUri.parse("models:/" + NAME + "/" + version));
      ResolvedModel byLatest = r.resolve(ModelUri.parse("models:/" + NAME + "/latest"));
      ResolvedModel byId = r.resolve(ModelUri.parse("models:/" + modelId));
      ResolvedModel byRun = r.resolve(ModelUri.parse("runs:/" + runId + "/model"));
      for (ResolvedModel m : List.of(byVersion, byLatest, byId, byRun)) {
        assertThat(m.artifactUri()).as(m.uri().raw()).isEqualTo(byVersion.artifactUri());
        assertThat(m.modelId()).isEqualTo(modelId);
      }
      assertThat(byLatest.version()).isEqualTo(version);
      assertThat(byRun.runId()).isEqualTo(runId);
      // The driver's check of every form reads the metadata only: no weights, the config's decoder
      // found in the store's listing.
      for (ResolvedModel m : List.of(byVersion, byLatest, byId, byRun)) {
        ModelFetcher.LocalModel meta = ModelFetcher.fetchMetadata(m, t, new ModelCache(cache.resolve("driver")));
        GenAiConfig config = GenAiConfig.read(meta.genaiDir(), meta::has);
        assertThat(meta.mlModel().modelId()).as(m.uri().raw()).isEqualTo(modelId);
        assertThat(meta.genaiDir().resolve(config.decoderFile())).as("no weights on the driver").doesNotExist();
        assertThat(meta.listed()).anyMatch(f -> f.endsWith(config.decoderFile()));
      }
      ModelFetcher.LocalModel local = ModelFetcher.fetch(byRun, t, new ModelCache(cache));
      assertThat(local.mlModel().modelId()).isEqualTo(modelId);
      try (LlmModel model = LlmModel.load(local.genaiDir())) {
        assertThat(model.generate(List.of("Hello world"), SearchOptions.greedy(3)).get(0).completionTokens()).isEqualTo(3);
      }
    }
  }

  @Test
  void twoThreadsDownloadOnce(@TempDir Path cache) throws Exception {
    long before = ModelCache.downloadsInThisJvm();
    List<ModelCache.Fetched> results = new CopyOnWriteArrayList<>();
    List<Thread> threads = new ArrayList<>();
    for (int i = 0; i < 2; i++) {
      Thread th = new Thread(() -> {
        try (TrackingConnection t = tracking()) {
          ResolvedModel r = new ModelResolver(t).resolve(ModelUri.parse("models:/" + NAME + "@champion"));
          results.add(new ModelCache(cache).fetch(r.identity(), ArtifactDirectory.open(r.artifactUri(), t)));
        }
      });
      threads.add(th);
      th.start();
    }
    for (Thread th : threads) {
      th.join();
    }
    assertThat(results).hasSize(2);
    assertThat(results).filteredOn(ModelCache.Fetched::downloaded).hasSize(1);
    assertThat(results.get(0).dir()).isEqualTo(results.get(1).dir());
    assertThat(ModelCache.downloadsInThisJvm() - before).isEqualTo(1);
  }

  @Test
  void twoJvmsDownloadOnce(@TempDir Path cache) throws Exception {
    List<Process> procs = new ArrayList<>();
    for (int i = 0; i < 2; i++) {
      procs.add(new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
          "-cp", System.getProperty("java.class.path"), CacheFetchMain.class.getName(), server.uri(),
          "models:/" + NAME + "@champion", cache.toString()).redirectErrorStream(true).start());
    }
    List<String> outs = new ArrayList<>();
    for (Process p : procs) {
      String out = new String(p.getInputStream().readAllBytes());
      assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).as(out).isZero();
      outs.add(out);
    }
    assertThat(outs).filteredOn(o -> o.contains("downloaded=true")).hasSize(1);
    assertThat(outs).filteredOn(o -> o.contains("downloaded=false")).hasSize(1);
    try (var s = Files.list(cache)) {
      assertThat(s.filter(p -> p.getFileName().toString().contains(".tmp-")).count()).isZero();
    }
  }

  @Test
  void aPartialDownloadLeftBehindIsNeverUsedAndIsCleanedUp(@TempDir Path cache) throws Exception {
    try (TrackingConnection t = tracking()) {
      ResolvedModel r = new ModelResolver(t).resolve(ModelUri.parse("models:/" + NAME + "@champion"));
      ModelCache mc = new ModelCache(cache);
      String key = ModelCache.key(r.identity());
      Path partial = cache.resolve(key + ".tmp-interrupted");
      Files.createDirectories(partial.resolve("artifacts"));
      Files.writeString(partial.resolve("MLmodel"), "half");
      Path unmarked = cache.resolve(key);
      Files.createDirectories(unmarked);
      Files.writeString(unmarked.resolve("MLmodel"), "half-renamed without marker");
      ModelCache.Fetched f = mc.fetch(r.identity(), ArtifactDirectory.open(r.artifactUri(), t));
      assertThat(f.downloaded()).isTrue();
      assertThat(partial).doesNotExist();
      assertThat(Files.readString(f.dir().resolve("MLmodel"))).contains("python_function");
    }
  }

  @Test
  void aCachedCopyWhoseBytesNoLongerMatchItsMarkerIsFetchedAgain(@TempDir Path cache) throws Exception {
    try (TrackingConnection t = tracking()) {
      ResolvedModel r = new ModelResolver(t).resolve(ModelUri.parse("models:/" + NAME + "@champion"));
      ModelCache mc = new ModelCache(cache);
      ModelCache.Fetched first = mc.fetch(r.identity(), ArtifactDirectory.open(r.artifactUri(), t));
      Path mlmodel = first.dir().resolve("MLmodel");
      String original = Files.readString(mlmodel);
      // The same size, other bytes: only the digest tells.
      Files.writeString(mlmodel, "#" + original.substring(1));
      ModelCache.Fetched again = mc.fetch(r.identity(), ArtifactDirectory.open(r.artifactUri(), t));
      assertThat(again.downloaded()).as("a changed copy is not reused").isTrue();
      assertThat(Files.readString(again.dir().resolve("MLmodel"))).isEqualTo(original);
      assertThat(mc.fetch(r.identity(), ArtifactDirectory.open(r.artifactUri(), t)).downloaded()).isFalse();
    }
  }

  /** A real store, answering as it does unless a subclass says otherwise. */
  private abstract static class ForwardingStore implements ArtifactDirectory {
    final ArtifactDirectory real;

    ForwardingStore(ArtifactDirectory real) {
      this.real = real;
    }

    @Override
    public String uri() {
      return real.uri();
    }

    @Override
    public List<ArtifactFile> listFiles() throws IOException {
      return real.listFiles();
    }

    @Override
    public void download(ArtifactFile file, Path target) throws IOException {
      real.download(file, target);
    }

    @Override
    public void upload(Path source, String relativePath) throws IOException {
      real.upload(source, relativePath);
    }

    @Override
    public boolean exists(String relativePath) throws IOException {
      return real.exists(relativePath);
    }

    @Override
    public ArtifactDirectory resolve(String relativePath) {
      return real.resolve(relativePath);
    }
  }

  /** A real store whose listing is then altered, as a corrupt or changed store would answer. */
  private static final class AlteredListing extends ForwardingStore {
    private final boolean addTraversal;

    AlteredListing(ArtifactDirectory real, boolean addTraversal) {
      super(real);
      this.addTraversal = addTraversal;
    }

    @Override
    public List<ArtifactFile> listFiles() throws IOException {
      List<ArtifactFile> out = new ArrayList<>();
      for (ArtifactFile f : real.listFiles()) {
        out.add(f.path().equals("MLmodel") && !addTraversal ? new ArtifactFile(f.path(), f.size() + 7) : f);
      }
      if (addTraversal) {
        out.add(new ArtifactFile("../../outside", 3));
      }
      return out;
    }
  }

  /**
   * A real store whose connection drops halfway through the first {@code failures} transfers of
   * the biggest file: half the bytes written, then an error, as a stopped server leaves it.
   */
  private static final class DroppingStore extends ForwardingStore {
    private int failures;

    DroppingStore(ArtifactDirectory real, int failures) {
      super(real);
      this.failures = failures;
    }

    @Override
    public void download(ArtifactFile file, Path target) throws IOException {
      long biggest = real.listFiles().stream().mapToLong(ArtifactFile::size).max().orElse(-1);
      if (file.size() == biggest && failures > 0) {
        failures--;
        real.download(file, target);
        byte[] all = Files.readAllBytes(target);
        Files.write(target, Arrays.copyOf(all, all.length / 2));
        throw new IOException("Connection reset halfway through " + file.path());
      }
      real.download(file, target);
    }
  }

  @Test
  void aTransferCutHalfwayIsFetchedAgainAndOneThatKeepsFailingLeavesNothing(@TempDir Path cache) throws Exception {
    try (TrackingConnection t = tracking()) {
      ResolvedModel r = new ModelResolver(t).resolve(ModelUri.parse("models:/" + NAME + "@champion"));
      ArtifactDirectory store = ArtifactDirectory.open(r.artifactUri(), t);
      ModelCache.Fetched f = new ModelCache(cache.resolve("a")).fetch(r.identity(), new DroppingStore(store, 2));
      assertThat(f.downloaded()).isTrue();
      try (LlmModel model = LlmModel.load(ModelFetcher.fetch(r, t, new ModelCache(cache.resolve("a"))).genaiDir())) {
        assertThat(model.generate(List.of("Hello world"), SearchOptions.greedy(2)).get(0).completionTokens()).isEqualTo(2);
      }
      assertThatThrownBy(() -> new ModelCache(cache.resolve("b")).fetch(r.identity(),
          new DroppingStore(store, ModelCache.FILE_ATTEMPTS)))
          .hasMessageContaining("Connection reset halfway");
      try (var s = Files.list(cache.resolve("b"))) {
        assertThat(s.map(p -> p.getFileName().toString()))
            .as("no folder a later run would trust, no temp left").allMatch(n -> n.endsWith(".lock"));
      }
    }
  }

  @Test
  void aListingThatDisagreesWithTheFilesIsRefusedAndNothingIsKept(@TempDir Path cache) {
    try (TrackingConnection t = tracking()) {
      ResolvedModel r = new ModelResolver(t).resolve(ModelUri.parse("models:/" + NAME + "@champion"));
      ArtifactDirectory altered = new AlteredListing(ArtifactDirectory.open(r.artifactUri(), t), false);
      assertThatThrownBy(() -> new ModelCache(cache).fetch(r.identity(), altered))
          .isInstanceOf(MlflowException.class).hasMessageContaining("MLmodel").hasMessageContaining("listing says");
      assertThat(cache.resolve(ModelCache.key(r.identity()))).doesNotExist();
    }
  }

  @Test
  void aListingEntryWithDotDotIsRefused(@TempDir Path cache) {
    assertThatThrownBy(() -> new ArtifactFile("../../etc/passwd", 3))
        .isInstanceOf(MlflowException.class).hasMessageContaining("'../../etc/passwd' contains '..'");
    assertThatThrownBy(() -> new ArtifactFile("/etc/passwd", 3))
        .isInstanceOf(MlflowException.class).hasMessageContaining("absolute path");
    try (TrackingConnection t = tracking()) {
      ResolvedModel r = new ModelResolver(t).resolve(ModelUri.parse("models:/" + NAME + "@champion"));
      ArtifactDirectory altered = new AlteredListing(ArtifactDirectory.open(r.artifactUri(), t), true);
      assertThatThrownBy(() -> new ModelCache(cache).fetch(r.identity(), altered))
          .isInstanceOf(MlflowException.class).hasMessageContaining("contains '..'");
      assertThat(cache.getParent().resolve("outside")).doesNotExist();
    }
  }

  @Test
  void aMissingAliasOrVersionIsNamed() throws Exception {
    try (TrackingConnection t = tracking()) {
      ModelResolver r = new ModelResolver(t);
      assertThatThrownBy(() -> r.resolve(ModelUri.parse("models:/" + NAME + "@nope")))
          .isInstanceOf(MlflowException.class).hasMessageContaining("models:/" + NAME + "@nope")
          .hasMessageContaining("has no alias 'nope'");
      assertThatThrownBy(() -> r.resolve(ModelUri.parse("models:/no-such-model/1")))
          .isInstanceOf(MlflowException.class).hasMessageContaining("models:/no-such-model/1");
      assertThatThrownBy(() -> r.resolve(ModelUri.parse("models:/m-0123456789abcdef")))
          .isInstanceOf(MlflowException.class).hasMessageContaining("no logged model m-0123456789abcdef");
    }
  }

  @Test
  void aDeletedVersionIsNamed() throws Exception {
    JsonNode second = server.python("log_model", null, "--model-dir", Fixtures.tinyModel().toString(),
        "--register", NAME + "-deleted", "--experiment", "java-resolution");
    String v = second.get("version").asText();
    HttpClient.newHttpClient().send(HttpRequest.newBuilder(
            URI.create(server.uri() + "/api/2.0/mlflow/model-versions/delete"))
        .header("Content-Type", "application/json")
        .method("DELETE", HttpRequest.BodyPublishers.ofString(
            "{\"name\":\"" + NAME + "-deleted\",\"version\":\"" + v + "\"}")).build(),
        HttpResponse.BodyHandlers.ofString());
    String uri = "models:/" + NAME + "-deleted/" + v;
    try (TrackingConnection t = tracking()) {
      assertThatThrownBy(() -> new ModelResolver(t).resolve(ModelUri.parse(uri)))
          .isInstanceOf(MlflowException.class).hasMessageContaining(uri).hasMessageContaining("has no version " + v);
    }
  }

  @Test
  void aServerThatIsDownIsNamed() throws Exception {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    try (TrackingConnection t = TrackingConnection.connect("http://127.0.0.1:" + port)) {
      assertThatThrownBy(() -> new ModelResolver(t).resolve(ModelUri.parse("models:/x@champion")))
          .isInstanceOf(MlflowException.class).hasMessageContaining("models:/x@champion")
          .hasMessageContaining("http://127.0.0.1:" + port);
    }
  }

  @Test
  void aTransformersFlavorModelIsRefusedWithTheExportSteps(@TempDir Path dir) throws Exception {
    Files.writeString(dir.resolve("MLmodel"), "flavors:\n  transformers:\n    task: llm/v1/chat\n"
        + "    pipeline_model_type: Phi3ForCausalLM\n  python_function:\n    loader_module: mlflow.transformers\n");
    ResolvedModel r = new ModelResolver(null).resolve(ModelUri.parse(dir.toString()));
    assertThatThrownBy(() -> ModelFetcher.fetch(r, null, new ModelCache(dir.resolve("cache"))))
        .isInstanceOf(MlflowException.class).hasMessageContaining("transformers-flavor")
        .hasMessageContaining("onnxruntime_genai.models.builder").hasMessageContaining("genai_batch.log_model");
  }
}
