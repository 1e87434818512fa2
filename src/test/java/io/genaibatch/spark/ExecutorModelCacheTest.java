package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.engine.natives.ExecutionProvider;
import io.genaibatch.mlflow.ModelResolver;
import io.genaibatch.mlflow.ModelUri;
import io.genaibatch.testing.Fixtures;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The executor-wide model cache: one model per executor, and one per GPU its tasks were given. */
class ExecutorModelCacheTest {
  private static ModelSpec spec(String modelDir) {
    return new ModelSpec(new ModelResolver(null).resolve(ModelUri.parse(modelDir)), null, Map.of(), null, 1, 1, false,
        false, ExecutionProvider.cpu());
  }

  /** Models other test classes of this JVM left loaded would be found instead of loaded. */
  @BeforeEach
  @AfterEach
  void closeAll() {
    ExecutorModelCache.closeAll();
  }

  @Test
  void tasksTakingTurnsOnTwoGpusKeepBothCopiesLoaded() {
    ModelSpec model = spec(Fixtures.tinyModel().toString());
    try (ExecutorModelCache.Lease gpu0 = ExecutorModelCache.acquire(model.onDevice("0"))) {
      assertThat(gpu0.loadedNow()).isTrue();
    }
    try (ExecutorModelCache.Lease gpu1 = ExecutorModelCache.acquire(model.onDevice("1"))) {
      assertThat(gpu1.loadedNow()).as("its own copy on the other GPU").isTrue();
    }
    // Between tasks neither copy is held; the next task on GPU 0 still finds its copy loaded.
    try (ExecutorModelCache.Lease again = ExecutorModelCache.acquire(model.onDevice("0"))) {
      assertThat(again.loadedNow()).isFalse();
    }
    try (ExecutorModelCache.Lease cpu = ExecutorModelCache.acquire(model)) {
      assertThat(cpu.loadedNow()).isTrue();
    }
  }
}
