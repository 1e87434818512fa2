package io.genaibatch.engine;

import ai.onnxruntime.genai.GenAIException;
import io.genaibatch.engine.guidance.Llguidance;
import io.genaibatch.engine.loop.AnswerKey;
import io.genaibatch.engine.loop.TokenChooser;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * One completion being generated, a row of a batch, in either loop: its tokens so far, whether and
 * why it ended, and its answer once it has.
 */
public final class Completion {
  /** Decodes token ids to text, as the model's tokenizer does (special tokens dropped). */
  public interface Decoder {
    String decode(int[] tokens) throws GenAIException;
  }

  public final PreparedRequest request;
  /** Chooses this completion's tokens in the continuous loop; null in onnxruntime-genai's. */
  public final TokenChooser chooser;
  private int[] tokens;
  private int count;
  private boolean done;
  private FinishReason finish;
  /** Where a stop string starts in the decoded text, when one ended the completion; else -1. */
  private int cutAt = -1;
  private String text;
  /** The text of the tokens before {@link #readOffset}, decoded piece by piece for the stop-string search. */
  private final StringBuilder decoded = new StringBuilder();
  /** Where the tokens decoded for context start (the decoder drops a leading space of a sequence). */
  private int prefixOffset;
  /** Tokens whose text is in {@link #decoded}. */
  private int readOffset;
  private double latencyMs;
  /** Positions of this completion in its cache region (continuous loop only). */
  public int cached;

  /** This completion's position in its response format, in the continuous loop; else null. */
  public final Llguidance.Matcher guide;
  /** What decides this completion's answer, for the loop's duplicates; null when it samples without a seed. */
  public AnswerKey key;

  public Completion(PreparedRequest request, TokenChooser chooser) {
    this(request, chooser, null);
  }

  public Completion(PreparedRequest request, TokenChooser chooser, Llguidance.Matcher guide) {
    this.request = request;
    this.chooser = chooser;
    this.guide = guide;
    this.tokens = new int[Math.min(request.budget(), 64)];
  }

  public void add(int token) {
    if (count == tokens.length) {
      tokens = Arrays.copyOf(tokens, Math.max(8, count * 2));
    }
    tokens[count++] = token;
  }

  public int count() {
    return count;
  }

  public int last() {
    return tokens[count - 1];
  }

  /** The token array itself (the first {@link #count()} are the answer). */
  public int[] buffer() {
    return tokens;
  }

  public int[] generated() {
    return Arrays.copyOf(tokens, count);
  }

  public boolean done() {
    return done;
  }

  FinishReason finish() {
    return finish;
  }

  /**
   * Whether this completion has ended with the token just added: an end-of-sequence token, its
   * token budget, or the first appearance of one of its stop strings in its decoded text (a stop
   * string can span tokens). The text grows by the new tokens' piece only ({@link #appendNewText}),
   * and only its new tail is searched, from a stop string's length before the piece: each token costs
   * the stop strings' length, not the answer's. The answer's text, once a stop string is found, is
   * the whole answer decoded once. An ended completion records when.
   */
  public boolean ends(Set<Integer> eosIds, Decoder decoder, double atMs) throws GenAIException {
    if (endReason(eosIds, decoder)) {
      done = true;
      latencyMs = atMs;
    }
    return done;
  }

  private boolean endReason(Set<Integer> eosIds, Decoder decoder) throws GenAIException {
    if (eosIds.contains(last())) {
      finish = FinishReason.STOP;
      return true;
    }
    List<String> stop = request.request().stop();
    if (!stop.isEmpty()) {
      int before = decoded.length();
      appendNewText(decoder);
      if (decoded.length() > before && firstStop(decoded, stop, before) >= 0) {
        text = decoder.decode(generated());
        cutAt = firstStop(new StringBuilder(text), stop, 0);
        finish = FinishReason.STOP;
        return true;
      }
    }
    if (count >= request.budget()) {
      finish = FinishReason.LENGTH;
      return true;
    }
    return false;
  }

  /**
   * Adds the text the tokens since {@link #readOffset} add, once it is whole: as vLLM's incremental
   * detokenizer, the few tokens since {@link #prefixOffset} are decoded with and without the new ones
   * and the difference taken (a token's own text can lose its leading space, or be half a character,
   * on its own). Text ending in U+FFFD (an incomplete UTF-8 sequence) waits for the next token.
   */
  private void appendNewText(Decoder decoder) throws GenAIException {
    String prefix = decoder.decode(Arrays.copyOfRange(tokens, prefixOffset, readOffset));
    String withNew = decoder.decode(Arrays.copyOfRange(tokens, prefixOffset, count));
    if (withNew.length() > prefix.length() && !withNew.endsWith("\uFFFD")) {
      decoded.append(withNew, prefix.length(), withNew.length());
      prefixOffset = readOffset;
      readOffset = count;
    }
  }

  /** Where the first of {@code stop} starts in {@code text}, of those ending after {@code newFrom}; -1 for none. */
  private static int firstStop(StringBuilder text, List<String> stop, int newFrom) {
    int cut = -1;
    for (String str : stop) {
      int k = text.indexOf(str, Math.max(0, newFrom - str.length() + 1));
      if (k >= 0 && (cut < 0 || k < cut)) {
        cut = k;
      }
    }
    return cut;
  }

  /**
   * An ended completion's answer without its request (the prompt's text stays out of it): what the
   * decode loop keeps and gives an identical completion.
   */
  @SuppressWarnings("ArrayRecordComponent") // read, never compared
  public record Answer(int[] tokens, FinishReason finish, int cutAt, String text) {}

  /** This completion's answer, once it has ended. */
  public Answer answer() {
    return new Answer(generated(), finish, cutAt, text);
  }

  /** Ends this completion with {@code answer}, an identical completion's. */
  public void follow(Answer answer, double atMs) {
    tokens = Arrays.copyOf(answer.tokens(), Math.max(1, answer.tokens().length));
    count = answer.tokens().length;
    finish = answer.finish();
    cutAt = answer.cutAt();
    text = answer.text();
    done = true;
    latencyMs = atMs;
  }

  /** Ends a completion that its batch ended before its own end (the native length limit). */
  public void cutOff(double atMs) {
    if (!done) {
      done = true;
      finish = FinishReason.LENGTH;
      latencyMs = atMs;
    }
  }

  /** The answer: text cut before its stop string, or the decoded tokens without a final end token. */
  Choice choice(Set<Integer> eosIds, Decoder decoder) throws GenAIException {
    int[] generated = generated();
    String answer;
    if (cutAt >= 0) {
      answer = text.substring(0, cutAt);
    } else {
      int[] kept = count > 0 && eosIds.contains(generated[count - 1]) ? Arrays.copyOf(generated, count - 1) : generated;
      answer = decoder.decode(kept);
    }
    return new Choice(answer, generated, finish, latencyMs);
  }

  /**
   * The outcome of {@code r} from its completions: its choices, or an {@code INCOMPLETE_RESPONSE}
   * error when a response format was cut by the token budget before it was complete.
   */
  public static Generation result(PreparedRequest r, List<Completion> completions, Set<Integer> eosIds, Decoder decoder)
      throws GenAIException {
    List<Choice> choices = new java.util.ArrayList<>(completions.size());
    for (Completion c : completions) {
      if (r.request().guidance() != null && c.finish == FinishReason.LENGTH) {
        return Generation.failed(r.index(), r.tokens().length, ErrorKind.INCOMPLETE_RESPONSE,
            "the answer reached its limit of " + r.budget() + " new tokens before its response format ("
                + r.request().guidance().type() + ") was complete; raise max_tokens");
      }
      choices.add(c.choice(eosIds, decoder));
    }
    return Generation.of(r.index(), r.tokens().length, choices);
  }
}
