package io.genaibatch.engine;

import ai.onnxruntime.genai.GenAIException;
import java.util.Optional;

/**
 * Checks one request of a window before it reaches a path: null, blank, {@code n} that would give
 * the same answer n times, untokenizable, too long for the context, over a row limit. A request
 * that passes becomes a {@link PreparedRequest} (its tokens, budget and cap); one that does not,
 * its error {@link Generation}, never an exception.
 */
final class RequestCheck {
  /** Tokenizes a prompt as the model's tokenizer does. */
  interface Encoder {
    int[] encode(String text) throws GenAIException;
  }

  /** What became of one request: exactly one of the two is set. */
  record Checked(PreparedRequest good, Generation failed) {}

  private final GenAiConfig config;
  private final Encoder encoder;
  private final RowLimits limits;
  private final long kvPerPosition;
  private final long kvLimitBytes;

  /**
   * @param kvPerPosition key/value bytes of one position of one row; 0 when no cache is accounted
   * @param kvLimitBytes the caller's key/value cache limit
   */
  RequestCheck(GenAiConfig config, Encoder encoder, RowLimits limits, long kvPerPosition, long kvLimitBytes) {
    this.config = config;
    this.encoder = encoder;
    this.limits = limits;
    this.kvPerPosition = kvPerPosition;
    this.kvLimitBytes = kvLimitBytes;
  }

  /** Checks request {@code i} of its window. */
  Checked check(int i, GenerationRequest req) {
    SearchOptions opts = req.options();
    String p = req.prompt();
    if (p == null) {
      return failed(i, 0, ErrorKind.NULL_PROMPT, "prompt is null");
    }
    if (p.isBlank()) {
      return failed(i, 0, ErrorKind.EMPTY_PROMPT, "prompt is empty");
    }
    Optional<String> same = config.sameAnswers(opts, req.n());
    if (same.isPresent()) {
      return failed(i, 0, ErrorKind.BAD_OPTION, same.get());
    }
    int[] tokens;
    try {
      tokens = encoder.encode(p);
    } catch (GenAIException | EngineException e) {
      return failed(i, 0, ErrorKind.UNTOKENIZABLE, "prompt cannot be tokenized: " + e.getMessage());
    }
    int len = tokens.length;
    int context = config.contextLength();
    int maxTotal = TokenBudget.totalLimit(context, opts.maxLength(), opts.maxNewTokens(), config.defaultMaxLength());
    if (len >= maxTotal) {
      return failed(i, len, ErrorKind.TOO_LONG, "prompt has " + len + " tokens, which leaves no room to"
          + " generate: the limit is " + (maxTotal - 1) + " prompt tokens (model context length "
          + context + (opts.maxLength() != null ? ", max_length " + opts.maxLength() : "") + ")");
    }
    int cap = opts.maxNewTokens() == null ? Integer.MAX_VALUE : opts.maxNewTokens();
    int budget = TokenBudget.newTokens(len, maxTotal, opts.maxNewTokens());
    Optional<String> breach = limits.tokensBreach(req.n(), len, budget, kvPerPosition, kvLimitBytes);
    if (breach.isPresent()) {
      return failed(i, len, ErrorKind.OVER_LIMIT, breach.get());
    }
    return new Checked(new PreparedRequest(i, tokens, budget, cap, req), null);
  }

  private static Checked failed(int i, int promptTokens, ErrorKind kind, String why) {
    return new Checked(null, Generation.failed(i, promptTokens, kind, why));
  }
}
