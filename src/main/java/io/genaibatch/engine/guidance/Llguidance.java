package io.genaibatch.engine.guidance;

import com.sun.jna.Callback;
import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.Structure;
import io.genaibatch.engine.EngineException;
import io.genaibatch.engine.GenAiConfig;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Function;

/**
 * Token masks of a response format for the continuous loop, computed by llguidance inside the
 * loaded onnxruntime-genai library, which exports llguidance's C API: a matcher per guided
 * completion says which tokens may come next, the loop masks that completion's logits before
 * choosing, and commits the chosen token. So rows under a response format share decode steps with
 * every other row instead of running one at a time beside a stand-in copy in onnxruntime-genai's
 * generator, whose guided batches fail when their rows end at different steps.
 *
 * <p>Bound with JNA on the very library file already in the process (opened with {@code
 * RTLD_NOLOAD}, through {@link NativeGuidance#bindLoaded}). The tokenizer is llguidance's own, made
 * from the model's {@code tokenizer.json} with the model's tokenizer to tokenize text (fast-forwarding
 * is off). Thread-safe: the tokenizer is shared, each matcher belongs to one completion.
 */
public final class Llguidance implements AutoCloseable {
  /** Tokenized before each piece and dropped after: onnxruntime-genai's own prefix for this. */
  private static final String TOKENIZE_PREFIX = "\u0002";
  /** Bytes reserved for llguidance's {@code LlgConstraintInit}, which is about 80 (filled by the library). */
  private static final int CONSTRAINT_INIT_BYTES = 512;

  /** The C functions used, each bound by JNA to the native symbol of its name; {@code bool} is a byte. */
  interface LlgC extends Library {
    Pointer llg_new_tokenizer(TokenizerInit init, byte[] error, long errorLength);

    void llg_free_tokenizer(Pointer tokenizer);

    void llg_constraint_init_set_defaults(Pointer init, Pointer tokenizer);

    Pointer llg_new_matcher(Pointer init, String constraintType, String data);

    String llg_matcher_get_error(Pointer matcher);

    long llg_matcher_get_mask_byte_size(Pointer matcher);

    int llg_matcher_compute_mask_into(Pointer matcher, int[] mask, long maskBytes);

    int llg_matcher_consume_token(Pointer matcher, int token);

    byte llg_matcher_is_stopped(Pointer matcher);

    void llg_free_matcher(Pointer matcher);
  }

  /**
   * llguidance's {@code LlgTokenizeFn}: the tokens of {@code length} bytes at {@code bytes}, at most
   * {@code capacity} written to {@code out}; returns how many there are.
   */
  public interface TokenizeFn extends Callback {
    long invoke(Pointer userData, Pointer bytes, long length, Pointer out, long capacity);
  }

  /**
   * llguidance's {@code LlgTokenizerInit}, in the C declaration's order (llguidance 1.x, built into
   * onnxruntime-genai 0.12.0); JNA lays it out with the C ABI. Written by hand: no library has it.
   */
  @Structure.FieldOrder({"vocab_size", "tok_eos", "token_lens", "token_bytes", "tokenizer_json",
      "tokenize_assumes_string", "tokenize_fn", "use_approximate_greedy_tokenize_fn", "tokenize_user_data",
      "slices"})
  @SuppressWarnings({"checkstyle:MemberName", "MemberName"})
  public static class TokenizerInit extends Structure {
    public int vocab_size;
    public int tok_eos;
    public Pointer token_lens;
    public Pointer token_bytes;
    public String tokenizer_json;
    public byte tokenize_assumes_string;
    public TokenizeFn tokenize_fn;
    public byte use_approximate_greedy_tokenize_fn;
    public Pointer tokenize_user_data;
    public Pointer slices;
  }

  private final LlgC c;
  private final Pointer tokenizer;
  /** Held for as long as llguidance may call it (JNA frees a callback whose object is collected). */
  @SuppressWarnings("UnusedVariable")
  private final TokenizeFn tokenizeFn;
  private final int vocabSize;
  /** The end token llguidance was told of: the only one allowed once a format is complete. */
  private final int eos;

  private Llguidance(LlgC c, Pointer tokenizer, TokenizeFn tokenizeFn, int vocabSize, int eos) {
    this.c = c;
    this.tokenizeFn = tokenizeFn;
    this.tokenizer = tokenizer;
    this.vocabSize = vocabSize;
    this.eos = eos;
  }

  /**
   * llguidance's tokenizer for {@code config}'s model, from its {@code tokenizer.json}.
   *
   * @throws EngineException naming what is missing or what llguidance said
   */
  public static Llguidance forModel(GenAiConfig config, Function<String, int[]> encode) {
    Path json = config.folder().resolve("tokenizer.json");
    String text;
    try {
      text = Files.readString(json, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new EngineException("Guided rows in the continuous loop need " + json + ": " + e.getMessage(), e);
    }
    LlgC c = NativeGuidance.bindLoaded(LlgC.class);
    TokenizerInit init = new TokenizerInit();
    init.vocab_size = config.vocabSize();
    init.tok_eos = config.eosTokenIds().get(0);
    init.tokenizer_json = text;
    // The model's own tokenizer, as onnxruntime-genai gives llguidance: which tokens a format
    // allows depends on how the tokenizer would spell the text (a byte token where it would not is
    // refused). Text is tokenized after a prefix whose tokens are then dropped, so that a piece
    // tokenizes as it would mid-answer.
    int skip = encode.apply(TOKENIZE_PREFIX).length;
    TokenizeFn fn = (user, bytes, length, out, capacity) -> {
      String piece = new String(bytes.getByteArray(0, (int) length), StandardCharsets.UTF_8);
      int[] ids = encode.apply(TOKENIZE_PREFIX + piece);
      int n = ids.length - skip;
      if (n > 0 && capacity > 0) {
        out.write(0, ids, skip, (int) Math.min(n, capacity));
      }
      return Math.max(n, 0);
    };
    init.tokenize_fn = fn;
    byte[] error = new byte[1024];
    Pointer tok = c.llg_new_tokenizer(init, error, error.length);
    if (tok == null) {
      throw new EngineException("llguidance cannot read the tokenizer of " + config.folder() + ": "
          + Native.toString(error, "UTF-8"));
    }
    return new Llguidance(c, tok, fn, config.vocabSize(), init.tok_eos);
  }

  /**
   * A matcher of {@code guidance}, at the start of an answer.
   *
   * @throws EngineException with llguidance's message when the grammar, schema or regex is refused
   */
  public Matcher matcher(Guidance guidance) {
    String type = switch (guidance.type()) {
      case Guidance.LARK_GRAMMAR -> "lark";
      default -> guidance.type(); // json_schema and regex are llguidance's names too
    };
    Pointer m;
    try (Memory init = new Memory(CONSTRAINT_INIT_BYTES)) {
      init.clear();
      c.llg_constraint_init_set_defaults(init, tokenizer);
      m = c.llg_new_matcher(init, type, guidance.data());
    }
    String error = c.llg_matcher_get_error(m);
    if (error != null) {
      c.llg_free_matcher(m);
      throw new EngineException("llguidance refused the " + guidance.type() + ": " + error);
    }
    return new Matcher(m, (int) (c.llg_matcher_get_mask_byte_size(m) / Integer.BYTES));
  }

  @Override
  public void close() {
    c.llg_free_tokenizer(tokenizer);
  }

  /** One completion's position in its response format. Not thread-safe; closed once. */
  public final class Matcher implements AutoCloseable {
    private final Pointer matcher;
    private final int[] mask;

    private Matcher(Pointer matcher, int words) {
      this.matcher = matcher;
      this.mask = new int[words];
    }

    /**
     * Sets the logits of every token the format does not allow next to minus infinity; once the
     * format is complete (the matcher stopped), every token but the end token.
     */
    public void mask(float[] logits) {
      if (c.llg_matcher_is_stopped(matcher) != 0) {
        for (int t = 0; t < logits.length; t++) {
          if (t != eos) {
            logits[t] = Float.NEGATIVE_INFINITY;
          }
        }
        return;
      }
      if (c.llg_matcher_compute_mask_into(matcher, mask, (long) mask.length * Integer.BYTES) != 0) {
        throw new EngineException("llguidance cannot compute the next tokens: " + c.llg_matcher_get_error(matcher));
      }
      int n = Math.min(logits.length, vocabSize);
      for (int t = 0; t < logits.length; t++) {
        if (t >= n || (mask[t >>> 5] >>> (t & 31) & 1) == 0) {
          logits[t] = Float.NEGATIVE_INFINITY;
        }
      }
    }

    /** Commits the token chosen under {@link #mask} (nothing to commit after the format is complete). */
    public void consume(int token) {
      if (c.llg_matcher_is_stopped(matcher) == 0 && c.llg_matcher_consume_token(matcher, token) != 0) {
        throw new EngineException("llguidance refused token " + token + ": " + c.llg_matcher_get_error(matcher));
      }
    }

    @Override
    public void close() {
      c.llg_free_matcher(matcher);
    }
  }
}
