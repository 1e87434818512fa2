package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.engine.natives.ExecutionProvider;
import java.util.Map;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

/** The cores an executor's shared decode loop runs on, as the driver reads them from Spark's settings. */
class ExecutorCoresTest {
  private static int cores(String master, String executorCores) {
    SparkConf conf = new SparkConf(false).set("spark.master", master);
    if (executorCores != null) {
      conf.set("spark.executor.cores", executorCores);
    }
    return BatchScorer.executorCores(conf, master.startsWith("local"));
  }

  @Test
  void aLocalMastersCoresAreTheLoopsThreads() {
    assertThat(cores("local", null)).isEqualTo(1);
    assertThat(cores("local[4]", null)).isEqualTo(4);
    assertThat(cores("local[3, 2]", null)).as("with task retries").isEqualTo(3);
    assertThat(cores("local[*]", null)).isEqualTo(Runtime.getRuntime().availableProcessors());
  }

  @Test
  void aClusterSaysItsExecutorCoresOrEachExecutorCountsItsOwn() {
    assertThat(cores("spark://host:7077", "6")).isEqualTo(6);
    assertThat(cores("spark://host:7077", null)).as("each executor counts its host's processors").isZero();
    assertThat(cores("local[4]", "2")).as("spark.executor.cores wins").isEqualTo(2);
  }

  @Test
  void anExecutorNeverRunsTheLoopOnMoreThreadsThanItsHostHas() {
    int host = Runtime.getRuntime().availableProcessors();
    assertThat(loopThreads(1)).isEqualTo(1);
    assertThat(loopThreads(host + 6)).as("local[N] with N above the host's processors").isEqualTo(host);
    assertThat(loopThreads(0)).as("the driver could not tell").isEqualTo(host);
  }

  private static int loopThreads(int driverSaid) {
    return new ModelSpec(null, null, Map.of(), null, 1, driverSaid, true, false, ExecutionProvider.cpu())
        .executorLoopThreads();
  }
}
