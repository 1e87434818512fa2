package io.genaibatch.it;

import java.util.Map;
import org.apache.spark.TaskContext;
import org.apache.spark.api.plugin.DriverPlugin;
import org.apache.spark.api.plugin.ExecutorPlugin;
import org.apache.spark.api.plugin.PluginContext;
import org.apache.spark.api.plugin.SparkPlugin;
import org.apache.spark.util.TaskCompletionListener;

/**
 * A fault for {@link ClusterFaultsIT}, loaded by Spark ({@code spark.plugins}) from a jar the test
 * makes: the first attempt of every task of partition {@code GENAI_BATCH_IT_FAIL_PARTITION} (the
 * executor's environment) fails after its work is done, its output written and committed, as a task
 * does that dies in its last moment. Spark runs it again; the job must still write every row once.
 * (A plugin's own exceptions are only logged by Spark: the failure is a task completion listener's.)
 */
public final class FailOncePlugin implements SparkPlugin {
  static final String PARTITION_ENV = "GENAI_BATCH_IT_FAIL_PARTITION";

  @Override
  public DriverPlugin driverPlugin() {
    return null;
  }

  @Override
  public ExecutorPlugin executorPlugin() {
    return new ExecutorPlugin() {
      private int partition = -1;

      @Override
      public void init(PluginContext ctx, Map<String, String> extraConf) {
        partition = Integer.parseInt(System.getenv().getOrDefault(PARTITION_ENV, "-1"));
      }

      @Override
      public void onTaskStart() {
        TaskContext task = TaskContext.get();
        if (task != null && task.partitionId() == partition && task.attemptNumber() == 0) {
          task.addTaskCompletionListener((TaskCompletionListener) done -> {
            throw new IllegalStateException("Injected by FailOncePlugin: task " + done.taskAttemptId()
                + " of stage " + done.stageId() + ", partition " + done.partitionId() + " fails once");
          });
        }
      }
    };
  }
}
