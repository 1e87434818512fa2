package io.genaibatch.engine.natives;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.genaibatch.engine.EngineException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Carries text with characters outside the Basic Multilingual Plane (emoji, rare CJK) across
 * the onnxruntime-genai 0.12 JNI layer, which converts strings with JNI's "modified UTF-8": a
 * supplementary character goes in as two 3-byte surrogates instead of its 4 UTF-8 bytes, and a
 * 4-byte sequence coming out is mangled.
 *
 * <p>Why this works and when: with a byte-fallback tokenizer (Llama's and Phi-3's) a character
 * that is not in the vocabulary becomes one token per UTF-8 byte, independently of its
 * neighbours. So each supplementary character is swapped for a private-use BMP sentinel (also
 * outside the vocabulary, 3 byte tokens), the text is encoded, and each sentinel's 3 byte tokens
 * are swapped back for the character's 4. Decoding does the reverse. A tokenizer without byte
 * tokens, or whose vocabulary holds the character itself, cannot be bridged: {@link
 * #encodable} says so and the prompt becomes an error row naming the reason.
 *
 * <p>Written by hand: no library fixes a binding's JNI string conversion.
 */
public final class Utf8Bridge {
  private static final int SENTINEL_BASE = 0xE000;
  private static final int SENTINEL_LIMIT = 0xF8FF;

  /** Token id of each byte value, or null when the tokenizer has no byte-fallback tokens. */
  private final int[] byteToken;
  /** Byte value of each byte token id (-1 elsewhere), for ids up to the largest byte token. */
  private final int[] tokenByte;
  /** Vocabulary pieces that contain a supplementary character; such characters cannot be bridged. */
  private final Set<Integer> codePointsInVocab;

  private Utf8Bridge(int[] byteToken, Set<Integer> codePointsInVocab) {
    this.byteToken = byteToken;
    this.codePointsInVocab = codePointsInVocab;
    int max = -1;
    if (byteToken != null) {
      for (int id : byteToken) {
        max = Math.max(max, id);
      }
    }
    tokenByte = new int[max + 1];
    Arrays.fill(tokenByte, -1);
    if (byteToken != null) {
      for (int b = 0; b < 256; b++) {
        tokenByte[byteToken[b]] = b;
      }
    }
  }

  /** Reads the byte tokens and supplementary pieces of {@code tokenizer.json}, streaming. */
  public static Utf8Bridge read(Path modelDir) {
    Path file = modelDir.resolve("tokenizer.json");
    int[] bytes = new int[256];
    Arrays.fill(bytes, -1);
    Set<Integer> supp = new HashSet<>();
    if (Files.isRegularFile(file)) {
      try (JsonParser p = new JsonFactory().createParser(file.toFile())) {
        // Walk to model.vocab without building the whole (large) tree.
        int depth = 0;
        boolean inModel = false;
        JsonToken t;
        while ((t = p.nextToken()) != null) {
          if (t == JsonToken.START_OBJECT || t == JsonToken.START_ARRAY) {
            depth++;
          } else if (t == JsonToken.END_OBJECT || t == JsonToken.END_ARRAY) {
            depth--;
          } else if (t == JsonToken.FIELD_NAME) {
            String name = p.currentName();
            if (depth == 1 && name.equals("model")) {
              inModel = true;
            } else if (depth == 1) {
              inModel = false;
            } else if (inModel && depth == 2 && name.equals("vocab") && p.nextToken() == JsonToken.START_OBJECT) {
              while (p.nextToken() == JsonToken.FIELD_NAME) {
                String piece = p.currentName();
                p.nextToken();
                int id = p.getIntValue();
                if (piece.length() == 6 && piece.startsWith("<0x") && piece.endsWith(">")) {
                  try {
                    bytes[Integer.parseInt(piece.substring(3, 5), 16)] = id;
                  } catch (NumberFormatException e) {
                    // not a byte token
                  }
                }
                piece.codePoints().filter(Character::isSupplementaryCodePoint).forEach(supp::add);
              }
              break;
            }
          }
        }
      } catch (IOException e) {
        throw new EngineException("Cannot read " + file + ": " + e.getMessage(), e);
      }
    }
    boolean complete = Arrays.stream(bytes).allMatch(b -> b >= 0);
    return new Utf8Bridge(complete ? bytes : null, supp);
  }

  public static boolean hasSupplementary(String s) {
    for (int i = 0; i < s.length(); i++) {
      if (Character.isSurrogate(s.charAt(i))) {
        return true;
      }
    }
    return false;
  }

  /** Null when {@code text} can be encoded through the bridge, else why not. */
  public String encodable(String text) {
    if (byteToken == null) {
      return "it contains characters outside the Basic Multilingual Plane (such as emoji), which the"
          + " onnxruntime-genai 0.12 Java binding cannot pass to a tokenizer without byte-fallback tokens";
    }
    int[] bad = text.codePoints().filter(c -> Character.isSupplementaryCodePoint(c) && codePointsInVocab.contains(c)).toArray();
    if (bad.length > 0) {
      return "its character U+" + Integer.toHexString(bad[0]).toUpperCase(Locale.ROOT) + " is in the tokenizer's vocabulary and"
          + " cannot be passed through the onnxruntime-genai 0.12 Java binding exactly";
    }
    if (text.codePoints().filter(Character::isSupplementaryCodePoint).count() > SENTINEL_LIMIT - SENTINEL_BASE) {
      return "it has too many characters outside the Basic Multilingual Plane";
    }
    return null;
  }

  /** A text with each supplementary character replaced by a sentinel, and the characters. */
  @SuppressWarnings("ArrayRecordComponent") // read, never compared
  public record Swapped(String text, int[] codePoints, char sentinel) {}

  /** Swaps supplementary characters for one sentinel absent from {@code text}. */
  public static Swapped swapOut(String text) {
    char sentinel = (char) SENTINEL_BASE;
    while (text.indexOf(sentinel) >= 0 && sentinel < SENTINEL_LIMIT) {
      sentinel++;
    }
    StringBuilder sb = new StringBuilder(text.length());
    List<Integer> cps = new ArrayList<>();
    final char s = sentinel;
    text.codePoints().forEach(c -> {
      if (Character.isSupplementaryCodePoint(c)) {
        cps.add(c);
        sb.append(s);
      } else {
        sb.appendCodePoint(c);
      }
    });
    return new Swapped(sb.toString(), cps.stream().mapToInt(Integer::intValue).toArray(), sentinel);
  }

  /** Replaces each sentinel's 3 byte tokens in {@code tokens} by its character's 4. */
  public int[] swapInTokens(int[] tokens, Swapped swapped) {
    byte[] sent = String.valueOf(swapped.sentinel()).getBytes(StandardCharsets.UTF_8);
    int[] pattern = {byteToken[sent[0] & 0xff], byteToken[sent[1] & 0xff], byteToken[sent[2] & 0xff]};
    List<Integer> out = new ArrayList<>(tokens.length + swapped.codePoints().length);
    int next = 0;
    for (int i = 0; i < tokens.length; i++) {
      if (next < swapped.codePoints().length && i + 2 < tokens.length && tokens[i] == pattern[0]
          && tokens[i + 1] == pattern[1] && tokens[i + 2] == pattern[2]) {
        for (byte b : new String(Character.toChars(swapped.codePoints()[next++])).getBytes(StandardCharsets.UTF_8)) {
          out.add(byteToken[b & 0xff]);
        }
        i += 2;
      } else {
        out.add(tokens[i]);
      }
    }
    if (next != swapped.codePoints().length) {
      throw new EngineException("internal: the tokenizer merged a sentinel character; cannot bridge this text");
    }
    return out.stream().mapToInt(Integer::intValue).toArray();
  }

  /**
   * For decoding: replaces each run of 4 byte tokens forming one supplementary character by the
   * byte tokens of a sentinel, and returns the characters in order; null when there is none.
   */
  public Object[] swapOutTokens(int[] tokens) {
    if (byteToken == null) {
      return null;
    }
    List<Integer> out = new ArrayList<>(tokens.length);
    List<Integer> cps = new ArrayList<>();
    for (int i = 0; i < tokens.length; i++) {
      int b0 = byteOf(tokens[i]);
      if (b0 >= 0xF0 && b0 <= 0xF4 && i + 3 < tokens.length) {
        int b1 = byteOf(tokens[i + 1]);
        int b2 = byteOf(tokens[i + 2]);
        int b3 = byteOf(tokens[i + 3]);
        if (cont(b1) && cont(b2) && cont(b3)) {
          int cp = ((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((b2 & 0x3F) << 6) | (b3 & 0x3F);
          if (Character.isSupplementaryCodePoint(cp) && cp <= Character.MAX_CODE_POINT) {
            cps.add(cp);
            out.add(-1);
            i += 3;
            continue;
          }
        }
      }
      out.add(tokens[i]);
    }
    if (cps.isEmpty()) {
      return null;
    }
    return new Object[] {out, cps.stream().mapToInt(Integer::intValue).toArray()};
  }

  /** The byte tokens of {@code sentinel}, to put where {@link #swapOutTokens} left a -1. */
  public int[] sentinelTokens(char sentinel) {
    byte[] s = String.valueOf(sentinel).getBytes(StandardCharsets.UTF_8);
    return new int[] {byteToken[s[0] & 0xff], byteToken[s[1] & 0xff], byteToken[s[2] & 0xff]};
  }

  private int byteOf(int token) {
    return token >= 0 && token < tokenByte.length ? tokenByte[token] : -1;
  }

  private static boolean cont(int b) {
    return b >= 0x80 && b <= 0xBF;
  }

  /** Puts the characters back where the sentinel stands in a decoded or templated text. */
  public static String swapIn(String text, char sentinel, int[] codePoints) {
    StringBuilder sb = new StringBuilder(text.length() + codePoints.length);
    int next = 0;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == sentinel && next < codePoints.length) {
        sb.appendCodePoint(codePoints[next++]);
      } else {
        sb.append(c);
      }
    }
    return sb.toString();
  }
}
