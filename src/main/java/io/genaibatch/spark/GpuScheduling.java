package io.genaibatch.spark;

import io.genaibatch.engine.natives.ExecutionProvider;
import java.io.Serializable;
import java.util.Map;
import java.util.Optional;
import org.apache.spark.SparkConf;
import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;

/**
 * Spark's GPU scheduling as the job uses it: with {@code spark.executor.resource.gpu.amount} and
 * {@code spark.task.resource.gpu.amount} set, Spark gives each task GPU addresses of its executor,
 * the task loads (once per executor and GPU) the model on the first of them, and the task slots
 * are the GPUs' slots instead of the cores'.
 *
 * @param executorGpus GPUs of each executor
 * @param taskGpus GPUs (or a fraction of one) each task takes
 */
public record GpuScheduling(double executorGpus, double taskGpus) implements Serializable {
  public static final String EXECUTOR_AMOUNT = "spark.executor.resource.gpu.amount";
  public static final String TASK_AMOUNT = "spark.task.resource.gpu.amount";
  static final String GPU = "gpu";

  /** The GPU scheduling the conf asks for; empty when it asks for none. */
  public static Optional<GpuScheduling> of(SparkConf conf) {
    double executor = conf.getDouble(EXECUTOR_AMOUNT, 0);
    double task = conf.getDouble(TASK_AMOUNT, 0);
    return executor > 0 && task > 0 ? Optional.of(new GpuScheduling(executor, task)) : Optional.empty();
  }

  /**
   * The GPU scheduling for {@code provider} under {@code conf}, checked on the driver before
   * scoring. Under a local master Spark schedules no GPUs: the provider's own {@code device_id}
   * (else device 0) serves every task.
   *
   * @throws IllegalArgumentException when an accelerator is asked for on a cluster without GPU
   *     scheduling, naming the settings that give it
   */
  public static Optional<GpuScheduling> check(SparkConf conf, ExecutionProvider provider, boolean localMaster) {
    Optional<GpuScheduling> gpus = of(conf);
    if (!provider.isCpu() && !localMaster && gpus.isEmpty()) {
      throw new IllegalArgumentException("execution_provider " + provider.name() + " needs GPUs from Spark, and this"
          + " job asks for none: set " + EXECUTOR_AMOUNT + " (GPUs per executor, with spark.executor.resource.gpu"
          + ".discoveryScript on standalone and YARN) and " + TASK_AMOUNT + " (e.g. 1: one task per GPU), or"
          + " --execution-provider cpu");
    }
    return gpus;
  }

  /** Tasks that run at once on the GPUs of {@code executors} executors. */
  public int slots(int executors) {
    return Math.max(1, executors * (int) Math.floor(executorGpus / taskGpus + 1e-9));
  }

  /** The first GPU address Spark gave the running task; empty outside a task or without GPUs. */
  static Optional<String> taskAddress(TaskContext ctx) {
    if (ctx == null) {
      return Optional.empty();
    }
    Map<String, ResourceInformation> resources = ctx.resourcesJMap();
    ResourceInformation gpu = resources == null ? null : resources.get(GPU);
    return gpu == null || gpu.addresses().length == 0 ? Optional.empty() : Optional.of(gpu.addresses()[0]);
  }
}
