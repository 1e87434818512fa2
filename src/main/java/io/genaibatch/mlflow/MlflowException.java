package io.genaibatch.mlflow;

import io.genaibatch.common.GenAiBatchException;

/** A model URI, artifact, cache or tracking failure, with a message naming the URI and the fix. */
public class MlflowException extends GenAiBatchException {
  private static final long serialVersionUID = 1L;

  public MlflowException(String message) {
    super(message);
  }

  public MlflowException(String message, Throwable cause) {
    super(message, cause);
  }
}
