package io.genaibatch.job;

/**
 * A stage of the job failed in a way the exit code must tell: the stage that knows what went
 * wrong picks the code, and the message is what the user reads after {@code genai-batch: }.
 */
final class JobFailure extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final ExitCode code;

  JobFailure(ExitCode code, String message, Throwable cause) {
    super(message, cause);
    this.code = code;
  }

  ExitCode code() {
    return code;
  }
}
