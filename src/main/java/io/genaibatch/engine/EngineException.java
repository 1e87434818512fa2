package io.genaibatch.engine;

import io.genaibatch.common.GenAiBatchException;

/**
 * The one unchecked exception of the engine: a model, prompt or native failure, with a message
 * that names the input (path, prompt index) and, where there is one, the limit it broke.
 */
public class EngineException extends GenAiBatchException {
  private static final long serialVersionUID = 1L;

  public EngineException(String message) {
    super(message);
  }

  public EngineException(String message, Throwable cause) {
    super(message, cause);
  }
}
