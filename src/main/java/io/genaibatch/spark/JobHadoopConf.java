package io.genaibatch.spark;

import io.genaibatch.mlflow.ModelFetcher;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkEnv;
import org.apache.spark.deploy.SparkHadoopUtil;

/**
 * The job's Hadoop configuration wherever the model is fetched: built from the running Spark's conf
 * (its {@code spark.hadoop.*} settings, and the credentials Spark passes to Hadoop) as Spark builds
 * it for its own file systems, on the driver and on each executor; a default one outside Spark.
 */
final class JobHadoopConf {
  private JobHadoopConf() {}

  /** Makes the model fetcher take the job's configuration (idempotent). */
  static void install() {
    ModelFetcher.useHadoopConfigurations(JobHadoopConf::current);
  }

  /** The configuration of the moment: the running Spark's, else a default one. */
  static Configuration current() {
    SparkEnv env = SparkEnv.get();
    return env == null ? new Configuration() : SparkHadoopUtil.get().newConfiguration(env.conf());
  }
}
