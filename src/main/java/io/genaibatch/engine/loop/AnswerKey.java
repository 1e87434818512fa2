package io.genaibatch.engine.loop;

import io.genaibatch.engine.PreparedRequest;
import io.genaibatch.engine.SearchOptions;
import io.genaibatch.engine.guidance.Guidance;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Everything that decides one completion's answer in the decode loop: the prompt's tokens, its
 * token budget, its search options (the seed among them), stop strings, response format and the
 * completion's index (a sampled completion's stream is a function of the seed, the prompt's tokens
 * and that index; see {@link TokenChooser#of}). Two completions with equal keys get the same
 * answer token for token, so the loop computes one and copies it to the other. A completion that
 * samples without a seed has no key: its answer is meant to be drawn afresh.
 */
public final class AnswerKey {
  private final int[] tokens;
  private final int budget;
  private final SearchOptions options;
  private final List<String> stop;
  private final Guidance guidance;
  private final int completion;
  private final int hash;

  private AnswerKey(PreparedRequest r, int completion) {
    this.tokens = r.tokens();
    this.budget = r.budget();
    this.options = r.request().options();
    this.stop = r.request().stop();
    this.guidance = r.request().guidance();
    this.completion = completion;
    this.hash = Objects.hash(Arrays.hashCode(tokens), budget, options, stop, guidance, completion);
  }

  /** The key of completion {@code completion} of {@code r}; null when it samples without a seed. */
  static AnswerKey of(PreparedRequest r, int completion, boolean samples) {
    return samples && r.request().options().seed() == null ? null : new AnswerKey(r, completion);
  }

  /** This key's bytes, estimated: the prompt's tokens, the stop strings and the format's text. */
  long bytes() {
    long chars = guidance == null ? 0 : guidance.data().length();
    for (String s : stop) {
      chars += s.length();
    }
    return 4L * tokens.length + 2 * chars;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof AnswerKey k && k.hash == hash && k.budget == budget && k.completion == completion
        && Arrays.equals(k.tokens, tokens) && k.options.equals(options) && k.stop.equals(stop)
        && Objects.equals(k.guidance, guidance);
  }

  @Override
  public int hashCode() {
    return hash;
  }
}
