package io.genaibatch.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.testing.Fixtures;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The model folder as loaded is the folder checked: its genai_config.json is read once, and
 * onnxruntime-genai loads those bytes from a private staging folder, whatever the folder's file says
 * later; the files it names stay inside the folder.
 */
class ModelFolderTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  private static Path copyOfTinyModel(Path tmp) throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("model"));
    try (Stream<Path> files = Files.list(Fixtures.tinyModel())) {
      for (Path f : files.toList()) {
        Files.copy(f, dir.resolve(f.getFileName().toString()));
      }
    }
    return dir;
  }

  private static void editConfig(Path dir, java.util.function.Consumer<ObjectNode> edit) throws IOException {
    Path file = dir.resolve(GenAiConfig.FILE_NAME);
    ObjectNode root = (ObjectNode) JSON.readTree(file.toFile());
    edit.accept(root);
    Files.writeString(file, root.toString());
  }

  private static ObjectNode decoder(ObjectNode root) {
    return (ObjectNode) root.path("model").path("decoder");
  }

  @Test
  void aConfigSwappedAfterLoadIsNotTheOneItsGeneratorLoads(@TempDir Path tmp) throws IOException {
    Path dir = copyOfTinyModel(tmp);
    // Loaded for the continuous loop: onnxruntime-genai's generator, with the weights, loads later, at
    // the first row that takes it (here --batch-size 1). Before it does, the folder's config is swapped
    // for one naming a custom operator library, which the check refuses.
    try (LlmModel model = LlmModel.load(dir, 0, 0, true, ExecutionProvider.cpu(), false)) {
      byte[] checked = Files.readAllBytes(dir.resolve(GenAiConfig.FILE_NAME));
      editConfig(dir, root -> decoder(root).putObject("session_options")
          .put("custom_ops_library", tmp.resolve("libswapped.so").toString()));
      assertThatThrownBy(() -> LlmModel.load(dir)).as("the swapped config is refused when checked")
          .hasMessageContaining("custom operator library");

      Generation g = model.score(List.of(GenerationRequest.of("Hello world", SearchOptions.greedy(5))), 1,
          Batching.FIXED).generations().get(0);

      assertThat(g.ok()).as("the generator loaded the checked config: %s", g.error()).isTrue();
      assertThat(g.completionTokens()).isEqualTo(5);
      assertThat(model.loadedFolder().resolve(GenAiConfig.FILE_NAME)).hasBinaryContent(checked);
    }
  }

  @Test
  void theStagingFolderHoldsTheCheckedBytesAndLinksAndGoesAtClose(@TempDir Path tmp) throws IOException {
    Path dir = copyOfTinyModel(tmp);
    byte[] checked = Files.readAllBytes(dir.resolve(GenAiConfig.FILE_NAME));
    LlmModel model = LlmModel.load(dir, 0, 0, false, ExecutionProvider.cpu(), false);
    Path staged = model.loadedFolder();
    assertThat(staged).isNotEqualTo(dir);
    assertThat(staged.resolve(GenAiConfig.FILE_NAME)).hasBinaryContent(checked);
    assertThat(Files.isSymbolicLink(staged.resolve(GenAiConfig.FILE_NAME))).isFalse();
    assertThat(Files.isSymbolicLink(staged.resolve("model.onnx"))).isTrue();
    assertThat(model.generateOne("Hello world", SearchOptions.greedy(3)).ok()).isTrue();

    model.close();

    assertThat(staged).doesNotExist();
    assertThat(dir.resolve("model.onnx")).exists();
  }

  @Test
  void aDecoderFileOutsideTheFolderIsRefusedNamingTheKeyAndTheFix(@TempDir Path tmp) throws IOException {
    Path dir = copyOfTinyModel(tmp);
    Files.copy(dir.resolve("model.onnx"), tmp.resolve("outside.onnx"));
    editConfig(dir, root -> decoder(root).put("filename", "../outside.onnx"));

    assertThatThrownBy(() -> GenAiConfig.read(dir)).isInstanceOf(EngineException.class)
        .hasMessageContaining("Model folder " + dir).hasMessageContaining("model.decoder.filename")
        .hasMessageContaining("../outside.onnx").hasMessageContaining("climbs out of the folder")
        .hasMessageContaining("put the file in the folder");
    assertThatThrownBy(() -> LlmModel.load(dir)).hasMessageContaining("model.decoder.filename");

    editConfig(dir, root -> decoder(root).put("filename", "sub/../../outside.onnx"));
    assertThatThrownBy(() -> GenAiConfig.read(dir)).hasMessageContaining("climbs out of the folder");

    editConfig(dir, root -> decoder(root).put("filename", tmp.resolve("outside.onnx").toString()));
    assertThatThrownBy(() -> GenAiConfig.read(dir)).hasMessageContaining("is an absolute path");

    editConfig(dir, root -> {
      decoder(root).put("filename", "model.onnx");
      ((ObjectNode) root.path("model")).putObject("vision").put("filename", "../vision.onnx");
    });
    assertThatThrownBy(() -> GenAiConfig.read(dir)).hasMessageContaining("model.vision.filename");
  }

  @Test
  void aFileNameInsideTheFolderStillLoads(@TempDir Path tmp) throws IOException {
    Path dir = copyOfTinyModel(tmp);
    Files.createDirectories(dir.resolve("onnx"));
    Files.move(dir.resolve("model.onnx"), dir.resolve("onnx/model.onnx"));
    editConfig(dir, root -> decoder(root).put("filename", "./onnx/../onnx/model.onnx"));

    try (LlmModel model = LlmModel.load(dir)) {
      assertThat(model.generateOne("Hello world", SearchOptions.greedy(3)).ok()).isTrue();
    }
  }

  @Test
  void weightsInExternalDataLoadThroughTheStagingFoldersLinks(@TempDir Path tmp) throws Exception {
    Path dir = copyOfTinyModel(tmp);
    // onnxruntime opens external data relative to the .onnx file's path: here a link in the staging folder.
    Process p = new ProcessBuilder(Fixtures.python().toString(), "-c", "import onnx, sys; m = onnx.load(sys.argv[1]);"
        + " onnx.save_model(m, sys.argv[1], save_as_external_data=True, location='model.onnx.data', size_threshold=1024)",
        dir.resolve("model.onnx").toString()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    assertThat(p.waitFor()).as(out).isZero();
    assertThat(dir.resolve("model.onnx.data")).exists();
    assertThat(Files.size(dir.resolve("model.onnx"))).isLessThan(Files.size(dir.resolve("model.onnx.data")));

    try (LlmModel model = LlmModel.load(dir)) {
      Generation g = model.generateOne("Hello world", SearchOptions.greedy(4));
      assertThat(g.ok()).as("%s", g.error()).isTrue();
      assertThat(g.completionTokens()).isEqualTo(4);
    }
  }
}
