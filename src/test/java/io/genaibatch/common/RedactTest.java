package io.genaibatch.common;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Each shape of secret a URI or a setting can carry, cut out wherever the job shows a URI or a message. */
class RedactTest {
  /** A URI of each shape, and the secret that must not show. */
  static final Map<String, String> SHAPES = Map.of(
      "http://alice:pa/ss1234@mlflow.example.com:9", "pa/ss1234",
      "https://alice:h#sh?q@rdP4ss@10.0.0.7:5000/api?x=1", "h#sh?q@rdP4ss",
      "https://alice:pe%2Frc%40nt%23ed@mlflow.example.com/x", "pe%2Frc%40nt%23ed",
      "s3a://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY@bucket/models/phi3", "K7MDENG",
      "abfss://models@acct.dfs.core.windows.net/phi3?sv=2022-11-02&ss=b&sig=SASsig0123%3D", "SASsig0123",
      "https://host.example.com/m.onnx?X-Amz-Signature=AMZsig4567&token=TOKENvalue42", "TOKENvalue42",
      "dbfs:/mnt/models/phi3?token=DBFStoken99", "DBFStoken99",
      "dbfs://DBFSsecret77@adb-123.azuredatabricks.net/mnt/m", "DBFSsecret77");

  @Test
  void everyShapeIsCutOutOfTheUriAndOfAMessageQuotingIt() {
    SHAPES.forEach((uri, secret) -> {
      assertThat(Redact.uri(uri)).as(uri).doesNotContain(secret).contains("***");
      String message = Redact.message("Cannot fetch model " + uri + " , retrying: HTTP 403 from " + uri);
      assertThat(message).as(uri).doesNotContain(secret).startsWith("Cannot fetch model ").contains(" , retrying: HTTP 403 from ");
    });
    assertThat(Redact.uri("http://alice:pa/ss1234@mlflow.example.com:9")).isEqualTo("http://***@mlflow.example.com:9");
    assertThat(Redact.uri("s3a://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY@bucket/models/phi3"))
        .as("the host and path stay: they say which model").isEqualTo("s3a://***@bucket/models/phi3");
    assertThat(Redact.message("at https://alice:h#sh?q@rdP4ss@10.0.0.7:5000/api: refused"))
        .isEqualTo("at https://***@10.0.0.7:5000/api: refused");
    assertThat(Redact.message("abfss://models@acct.dfs.core.windows.net/phi3 is missing"))
        .as("Azure's container is no credential").isEqualTo("abfss://models@acct.dfs.core.windows.net/phi3 is missing");
  }

  @Test
  void credentialParametersAreCutOutOfTextThatIsNoUri() {
    assertThat(Redact.message("signed with sig=SASsig0123 and X-Amz-Security-Token=AMZtok; max_tokens=64 top_k=5"))
        .isEqualTo("signed with sig=*** and X-Amz-Security-Token=***; max_tokens=64 top_k=5");
  }

  @Test
  void aRememberedPasswordIsCutOutOfMessagesThatQuoteItInPieces() {
    Redact.rememberUri("http://bob:Qz7/Wm3k9@Xp2v#Ty@tracking.example.com:9");
    Redact.rememberUri("https://bob:Rf%2F8Lk2w@tracking.example.com");
    assertThat(Redact.message("UnknownHostException: Wm3k9; Xp2v#Ty@tracking; path /Qz7/"))
        .doesNotContain("Wm3k9").doesNotContain("Xp2v").contains("UnknownHostException");
    assertThat(Redact.message("login as bob with Rf/8Lk2w failed")).isEqualTo("login as bob with *** failed");
  }

  @Test
  void anExceptionQuotingASecretIsRethrownRedactedAndOneWithoutIsKept() {
    RuntimeException leaky = new IllegalStateException("Cannot fetch model s3a://KEY1:SeCrEt/x9@bucket/m",
        new UncheckedIOException(new IOException("403 from https://h.example.com/m?sig=SASsig0123")));
    RuntimeException shown = Redact.unchecked(leaky);
    StringBuilder all = new StringBuilder();
    for (Throwable t = shown; t != null; t = t.getCause()) {
      all.append(t).append('\n');
    }
    assertThat(all.toString()).doesNotContain("SeCrEt").doesNotContain("SASsig0123")
        .startsWith("java.lang.IllegalStateException: Cannot fetch model s3a://***@bucket/m");
    assertThat(shown.getStackTrace()).isEqualTo(leaky.getStackTrace());
    RuntimeException plain = new IllegalStateException("no such folder /models/phi3");
    assertThat(Redact.unchecked(plain)).isSameAs(plain);
  }
}
