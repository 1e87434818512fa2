package io.genaibatch.common;

/**
 * The common base of genai-batch's unchecked exceptions. Each layer throws its own subtype
 * ({@code EngineException}, {@code MlflowException}), which callers catch apart; this base lets
 * code that does not care which layer failed catch them together.
 */
public abstract class GenAiBatchException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  protected GenAiBatchException(String message) {
    super(message);
  }

  protected GenAiBatchException(String message, Throwable cause) {
    super(message, cause);
  }
}
