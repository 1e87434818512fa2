package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.testing.SparkTestBase;
import org.junit.jupiter.api.Test;

/**
 * Model stores backed by Hadoop see the job's {@code spark.hadoop.*} settings: the configuration is
 * the running Spark's (SparkTestBase's session sets {@code spark.hadoop.genaibatch.test.marker}),
 * built from SparkEnv's conf, which executors hold too; a default one would not have it.
 */
class JobHadoopConfTest extends SparkTestBase {
  @Test
  void theModelFetcherTakesTheJobsHadoopSettings() {
    JobHadoopConf.install();
    assertThat(JobHadoopConf.current().get("genaibatch.test.marker")).isEqualTo("from the job's Spark conf");
    assertThat(new org.apache.hadoop.conf.Configuration().get("genaibatch.test.marker")).isNull();
  }
}
