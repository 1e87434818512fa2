package io.genaibatch.eval;

import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Reference-based answer metrics: SQuAD exact match and token F1, ROUGE-L, answer length.
 *
 * <p>Written here because no library on the job's classpath computes them (the usual ones are
 * Python: the SQuAD evaluation script, {@code rouge-score}); this class follows the SQuAD v2.0
 * script so that its numbers can be compared with the ones people already know.
 *
 * <p>Normalisation is SQuAD's (lowercase, drop punctuation, drop the articles a/an/the, split on
 * whitespace) with three additions, all for answers that are not English:
 * <ul>
 *   <li>NFKC first, so full-width letters and digits (common in CJK text) match their ASCII forms;
 *   <li>punctuation is every Unicode punctuation character as well as ASCII's, as MLQA's evaluation
 *       does, so "。" and "，" never glue themselves to a token;
 *   <li>each Han, Hiragana, Katakana or Bopomofo character is a token of its own (MLQA's "mixed
 *       segmentation"): Chinese and Japanese do not put spaces between words, and without this a
 *       whole Chinese sentence would be one token and F1 would degrade to exact match. Hangul is
 *       left alone because Korean separates words with spaces.
 * </ul>
 *
 * <p>Null handling is what a nightly evaluation needs: a null prediction is an error row and
 * scores 0 (a failure must pull the averages down, not vanish from them); a null reference means
 * the row has nothing to be scored against, so its metrics are null and averages skip it.
 *
 * <p>Scores are in [0, 1], not SQuAD's percentages. Thread-safe: no state.
 */
public final class TextMetrics {
  /** Python's {@code string.punctuation}, which SQuAD strips; it includes symbols such as $ and +. */
  private static final String ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  private static final Set<String> ARTICLES = Set.of("a", "an", "the");

  private TextMetrics() {}

  /** The normalised tokens of {@code text}; empty for null. */
  public static List<String> tokens(String text) {
    List<String> out = new ArrayList<>();
    if (text == null) {
      return out;
    }
    String s = Normalizer.normalize(text, Normalizer.Form.NFKC).toLowerCase(Locale.ROOT);
    StringBuilder current = new StringBuilder();
    for (int i = 0; i < s.length(); ) {
      int cp = s.codePointAt(i);
      i += Character.charCount(cp);
      if (isPunctuation(cp)) {
        // Removed, not replaced by a space: SQuAD turns "u.s." into "us" and "don't" into "dont".
        continue;
      }
      if (Character.isWhitespace(cp) || Character.isSpaceChar(cp)) {
        flush(current, out);
      } else if (isCjk(cp)) {
        flush(current, out);
        out.add(new String(Character.toChars(cp)));
      } else {
        current.appendCodePoint(cp);
      }
    }
    flush(current, out);
    out.removeIf(ARTICLES::contains);
    return out;
  }

  /** The normalised text: {@link #tokens} joined by single spaces; empty for null. */
  public static String normalize(String text) {
    return String.join(" ", tokens(text));
  }

  /**
   * 1 if prediction and reference are equal after normalisation, else 0; 0 for a null prediction,
   * null for a null reference.
   */
  public static Double exactMatch(String prediction, String reference) {
    if (reference == null) {
      return null;
    }
    if (prediction == null) {
      return 0.0;
    }
    return tokens(prediction).equals(tokens(reference)) ? 1.0 : 0.0;
  }

  /**
   * SQuAD token F1: the harmonic mean of precision and recall of the tokens the two share,
   * counting a token as many times as it occurs in both (a multiset intersection). As in the
   * SQuAD v2.0 script, two answers that are both empty after normalisation score 1, one empty
   * answer scores 0. 0 for a null prediction, null for a null reference.
   */
  public static Double tokenF1(String prediction, String reference) {
    if (reference == null) {
      return null;
    }
    if (prediction == null) {
      return 0.0;
    }
    return tokenF1(tokens(prediction), tokens(reference));
  }

  /**
   * ROUGE-L F-measure (Lin 2004, beta = 1): precision and recall of the longest common
   * subsequence of the normalised tokens. Unlike token F1 it rewards the right order. Two answers
   * that are both empty after normalisation score 1, like exact match and F1 (the Python {@code
   * rouge-score} package says 0 there; an empty answer to an empty reference is a match). 0 for a
   * null prediction, null for a null reference.
   */
  public static Double rougeL(String prediction, String reference) {
    if (reference == null) {
      return null;
    }
    if (prediction == null) {
      return 0.0;
    }
    return rougeL(tokens(prediction), tokens(reference));
  }

  /** The number of normalised tokens of the prediction; 0 for null. */
  public static int answerLength(String prediction) {
    return tokens(prediction).size();
  }

  /**
   * All four metrics at once, normalising each text once: what the Spark evaluation calls per row.
   */
  public static Scores score(String prediction, String reference) {
    List<String> p = tokens(prediction);
    if (reference == null) {
      return new Scores(null, null, null, p.size());
    }
    if (prediction == null) {
      return new Scores(0.0, 0.0, 0.0, 0);
    }
    List<String> r = tokens(reference);
    return new Scores(p.equals(r) ? 1.0 : 0.0, tokenF1(p, r), rougeL(p, r), p.size());
  }

  /**
   * The metrics of one answer; the three reference-based ones are null when there was no reference.
   *
   * @param exactMatch 1 or 0
   * @param tokenF1 SQuAD token F1 in [0, 1]
   * @param rougeL ROUGE-L F-measure in [0, 1]
   * @param answerLength normalised tokens of the answer
   */
  public record Scores(Double exactMatch, Double tokenF1, Double rougeL, int answerLength) {}

  static double tokenF1(List<String> prediction, List<String> reference) {
    if (prediction.isEmpty() || reference.isEmpty()) {
      return prediction.isEmpty() && reference.isEmpty() ? 1.0 : 0.0;
    }
    Map<String, Integer> left = new HashMap<>();
    reference.forEach(t -> left.merge(t, 1, Integer::sum));
    int same = 0;
    for (String t : prediction) {
      Integer n = left.get(t);
      if (n != null && n > 0) {
        left.put(t, n - 1);
        same++;
      }
    }
    return f1(same, prediction.size(), reference.size());
  }

  static double rougeL(List<String> prediction, List<String> reference) {
    if (prediction.isEmpty() || reference.isEmpty()) {
      return prediction.isEmpty() && reference.isEmpty() ? 1.0 : 0.0;
    }
    return f1(lcs(prediction, reference), prediction.size(), reference.size());
  }

  /** LCS length with two rows of the table: references can be long, answers up to max tokens. */
  static int lcs(List<String> a, List<String> b) {
    int[] prev = new int[b.size() + 1];
    int[] cur = new int[b.size() + 1];
    for (String x : a) {
      for (int j = 1; j <= b.size(); j++) {
        cur[j] = x.equals(b.get(j - 1)) ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
      }
      int[] t = prev;
      prev = cur;
      cur = t;
    }
    return prev[b.size()];
  }

  /** F1 of {@code same} matched tokens; with beta = 1 ROUGE-L's F-measure is the same formula. */
  private static double f1(int same, int predictionLength, int referenceLength) {
    if (same == 0) {
      return 0.0;
    }
    double precision = (double) same / predictionLength;
    double recall = (double) same / referenceLength;
    return 2 * precision * recall / (precision + recall);
  }

  private static void flush(StringBuilder current, List<String> out) {
    if (current.length() > 0) {
      out.add(current.toString());
      current.setLength(0);
    }
  }

  private static boolean isPunctuation(int cp) {
    if (cp < 128) {
      return ASCII_PUNCTUATION.indexOf(cp) >= 0;
    }
    return switch (Character.getType(cp)) {
      case Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
          Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
          Character.OTHER_PUNCTUATION -> true;
      default -> false;
    };
  }

  private static boolean isCjk(int cp) {
    Character.UnicodeScript script = Character.UnicodeScript.of(cp);
    return script == Character.UnicodeScript.HAN || script == Character.UnicodeScript.HIRAGANA
        || script == Character.UnicodeScript.KATAKANA || script == Character.UnicodeScript.BOPOMOFO;
  }
}
