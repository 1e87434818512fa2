package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.genaibatch.engine.natives.ExecutionProvider;
import java.util.Map;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

/** The driver's check of an accelerator against Spark's GPU scheduling, and the GPU task slots. */
class GpuSchedulingTest {
  private static final ExecutionProvider CUDA = ExecutionProvider.of("cuda", Map.of());

  @Test
  void cudaOnAClusterWithoutGpuSchedulingFailsNamingBothSettings() {
    SparkConf none = new SparkConf(false).set("spark.executor.resource.gpu.amount", "1");
    assertThatThrownBy(() -> GpuScheduling.check(none, CUDA, false))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("execution_provider cuda needs GPUs from Spark")
        .hasMessageContaining("spark.executor.resource.gpu.amount")
        .hasMessageContaining("spark.task.resource.gpu.amount");
  }

  @Test
  void theCpuAndALocalMasterNeedNone() {
    SparkConf none = new SparkConf(false);
    assertThat(GpuScheduling.check(none, ExecutionProvider.cpu(), false)).isEmpty();
    assertThat(GpuScheduling.check(none, CUDA, true)).isEmpty();
  }

  @Test
  void slotsFollowTheGpusAndTheirShareForEachTask() {
    SparkConf conf = new SparkConf(false).set("spark.executor.resource.gpu.amount", "2")
        .set("spark.task.resource.gpu.amount", "0.5");
    GpuScheduling gpus = GpuScheduling.check(conf, CUDA, false).orElseThrow();
    assertThat(gpus.slots(3)).isEqualTo(12); // 3 executors x 2 GPUs x 2 tasks per GPU
    assertThat(new GpuScheduling(1, 1).slots(4)).isEqualTo(4);
    assertThat(new GpuScheduling(1, 0.3).slots(1)).isEqualTo(3);
  }
}
