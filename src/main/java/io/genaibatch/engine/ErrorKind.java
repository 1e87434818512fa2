package io.genaibatch.engine;

/**
 * Why a prompt got no answer. A {@link Generation} carries it beside its message and its index,
 * so callers branch on the kind and show the message, and never parse either.
 */
public enum ErrorKind {
  /** The prompt is null. */
  NULL_PROMPT,
  /** The prompt is empty or only white space. */
  EMPTY_PROMPT,
  /** The tokenizer cannot encode the prompt. */
  UNTOKENIZABLE,
  /** The prompt's tokens leave no room to generate within the context length or max_length. */
  TOO_LONG,
  /** The chat template cannot make a prompt of the row's messages. */
  TEMPLATE,
  /** The native generation of the prompt's batch failed, or the model was gone under it. */
  GENERATION_FAILED,
  /**
   * One of the row's own options (max_tokens, temperature, top_p, stop, n, response_format) is not
   * a value it can take, or asks what the search cannot do ({@code n} above 1 with greedy search).
   */
  BAD_OPTION,
  /**
   * The row asks for more than a job's limit allows ({@link RowLimits}): new tokens in all, key/value
   * cache, stop strings, a response format's size or nesting.
   */
  OVER_LIMIT,
  /** The answer reached its token budget before its response format was complete. */
  INCOMPLETE_RESPONSE
}
