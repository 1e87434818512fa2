package io.genaibatch.job;

/** The job's exit codes, with what each tells a scheduler; {@code --help} lists them from here. */
public enum ExitCode {
  OK(0, "output complete, run logged, error rows within --max-error-rate"),
  FAILED(1, "the job failed"),
  USAGE(2, "bad flags, config, model or input; nothing scored"),
  ERROR_RATE(3, "more error rows than --max-error-rate (output complete)"),
  TRACKING(4, "the tracking server failed (output complete)"),
  THRESHOLDS(5, "an evaluation threshold was breached (output complete, run FAILED)");

  private final int code;
  private final String meaning;

  ExitCode(int code, String meaning) {
    this.code = code;
    this.meaning = meaning;
  }

  public int code() {
    return code;
  }

  public String meaning() {
    return meaning;
  }
}
