package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.MlflowServer;
import io.genaibatch.testing.Slow;
import io.genaibatch.testing.SparkTestBase;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Each shape of secret a URI or a setting can carry is absent from what the job shows: its output
 * and log, the MLflow run (params, tags, dataset, artifacts) and Spark's environment page.
 */
@Slow
class SecretsTest extends SparkTestBase {
  /** Secrets of every shape: passwords with /, #, ?, @ or percent-encoded; S3 keys; SAS and token parameters. */
  private static final List<String> SECRETS = List.of("pa/ss#w?q@rd1234", "pe%2Frc%40nt%23ed99", "pe/rc@nt#ed99",
      "K7MDENG", "SASsig0123", "TOKENvalue42", "DBFSsecret77", "DBFStoken99", "USERsecret55");

  /**
   * A child's output without the JVM's echo of the test's JAVA_TOOL_OPTIONS and without Spark's own
   * warning that quotes an unreadable input path as given (with its stack trace): Spark's lines, not the job's.
   */
  private static String jobsOwn(String output) {
    StringBuilder own = new StringBuilder();
    boolean sparks = false;
    for (String line : output.split("\n")) {
      if (line.matches("\\d\\d:\\d\\d:\\d\\d .*|genai-batch:.*")) {
        sparks = line.contains(" WARN FileStreamSink: ");
      }
      if (!sparks && !line.startsWith("Picked up JAVA_TOOL_OPTIONS")) {
        own.append(line).append('\n');
      }
    }
    return own.toString();
  }

  @Test
  void aJobShowsNoSecretInItsOutputItsRunOrSparksEnvironmentPage(@TempDir Path tmp) throws Exception {
    MlflowServer server = MlflowServer.shared();
    String input = BatchScoringJobTest.writePrompts(tmp, 4, false);
    String output = tmp.resolve("out?sv=2022&sig=SASsig0123&token=TOKENvalue42").toString();
    String tracking = server.uri().replace("://", "://alice:pe%2Frc%40nt%23ed99@");
    // Spark conf as spark-submit gives it; the job's flags win over its own keys, Spark's page shows them all.
    String conf = String.join(" ", "-Dspark.ui.enabled=true", "-Dspark.ui.port=0",
        "-Dspark.genaibatch.tracking_uri=http://alice:pa/ss#w?q@rd1234@127.0.0.1:1",
        "-Dspark.genaibatch.model_uri=dbfs://DBFSsecret77@adb-1.azuredatabricks.net/m?token=DBFStoken99",
        "-Dspark.genaibatch.input=s3a://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG+bPx@bucket/in",
        "-Dspark.redaction.regex=(?i)secret|password|token|userkey", "-Dspark.userkey.x=USERsecret55");
    Fixtures.ChildRun job = Fixtures.runMain(tmp, Map.of("JAVA_TOOL_OPTIONS", conf), EnvironmentPageMain.class.getName(),
        "--model-uri", Fixtures.tinyModel().toString(), "--input", input, "--output", output, "--tracking-uri", tracking,
        "--experiment", "secrets-test", "--max-tokens", "4");
    assertThat(job.code()).as(job.output()).isZero();
    String page = job.output().substring(job.output().indexOf("ENVIRONMENT 200 ") + "ENVIRONMENT 200 ".length());
    Map<String, String> sparkProperties = new HashMap<>();
    new ObjectMapper().readTree(page).path("sparkProperties").forEach(kv -> sparkProperties.put(kv.get(0).asText(),
        kv.get(1).asText()));
    for (String key : List.of("spark.genaibatch.tracking_uri", "spark.genaibatch.model_uri", "spark.genaibatch.input",
        "spark.userkey.x")) {
      assertThat(sparkProperties.get(key)).as(key + " on Spark's environment page (the user's own pattern kept)")
          .isEqualTo("*********(redacted)");
    }
    JsonNode run = Fixtures.runPython("src/test/python/read_run.py", Map.of("MLFLOW_TRACKING_URI", server.uri()),
        Map.of("run_id", TrackingTest.runId(output), "download_dir", tmp.resolve("dl").toString()));
    assertThat(run.path("texts").path("effective_config.yaml").asText()).contains("tracking_uri")
        .contains("out?***");
    assertThat(run.path("texts").path("output.json").asText()).contains("out?***");
    for (String secret : SECRETS) {
      assertThat(jobsOwn(job.output())).as("the job's output and log").doesNotContain(secret);
      assertThat(run.toString()).as("the run's params, tags, dataset and artifacts").doesNotContain(secret);
    }
  }

  @Test
  void aJobThatFailsOnCredentialedUrisQuotesNoneOfTheirSecrets(@TempDir Path tmp) throws Exception {
    String output = "dbfs://DBFSsecret77@adb-1.azuredatabricks.net/out?token=DBFStoken99";
    Fixtures.ChildRun badInput = Fixtures.runJob(tmp, Map.of(), "--model-uri", Fixtures.tinyModel().toString(),
        "--input", "s3a://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG+bPx@bucket/in?sig=SASsig0123", "--output", output);
    assertThat(badInput.code()).as(badInput.output()).isNotZero();
    assertThat(badInput.output()).contains("cannot read input s3a://***@bucket/in?***");
    Fixtures.ChildRun badTracking = Fixtures.runJob(tmp, Map.of(), "--model-uri", "models:/m/1",
        "--tracking-uri", "http://alice:pa/ss#w?q@rd1234@127.0.0.1:1",
        "--input", BatchScoringJobTest.writePrompts(tmp, 2, false), "--output", output);
    assertThat(badTracking.code()).as(badTracking.output()).isNotZero();
    assertThat(badTracking.output()).contains("http://***@127.0.0.1:1");
    for (String secret : SECRETS) {
      assertThat(jobsOwn(badInput.output() + badTracking.output())).as("the job's output and log").doesNotContain(secret);
    }
  }
}
