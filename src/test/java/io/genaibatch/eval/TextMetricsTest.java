package io.genaibatch.eval;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.List;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

class TextMetricsTest {
  private static final Offset<Double> CLOSE = within(1e-9);

  @Test
  void caseArticlesAndPunctuationDoNotMatter() {
    assertThat(TextMetrics.exactMatch("The Eiffel Tower", "eiffel tower")).isEqualTo(1.0);
    assertThat(TextMetrics.exactMatch("Denver Broncos.", "the  Denver\tBroncos")).isEqualTo(1.0);
    // SQuAD removes punctuation rather than splitting on it.
    assertThat(TextMetrics.exactMatch("U.S.A.", "usa")).isEqualTo(1.0);
    assertThat(TextMetrics.normalize("  An apple, a pear and THE plum!  ")).isEqualTo("apple pear and plum");
    // "the" inside a word is not an article.
    assertThat(TextMetrics.normalize("Theory of the atom")).isEqualTo("theory of atom");
  }

  @Test
  void differentAnswersDoNotMatchExactly() {
    assertThat(TextMetrics.exactMatch("Eiffel Tower in Paris", "Eiffel Tower")).isEqualTo(0.0);
  }

  @Test
  void tokenF1OfAPartialAnswer() {
    // prediction tokens [eiffel, tower, in, paris] (4), reference [eiffel, tower] (2), 2 shared:
    // precision 2/4, recall 2/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3.
    assertThat(TextMetrics.tokenF1("The Eiffel Tower in Paris", "Eiffel Tower")).isCloseTo(2.0 / 3, CLOSE);
    // Same overlap the other way round: precision 1, recall 1/2, F1 2/3.
    assertThat(TextMetrics.tokenF1("Eiffel Tower", "the Eiffel Tower in Paris")).isCloseTo(2.0 / 3, CLOSE);
    assertThat(TextMetrics.tokenF1("Berlin", "Paris")).isEqualTo(0.0);
  }

  @Test
  void tokenF1CountsRepeatedTokensOnlyAsOftenAsTheReferenceHasThem() {
    // [paris, paris, paris] vs [paris]: 1 shared (not 3); precision 1/3, recall 1, F1 = 0.5.
    assertThat(TextMetrics.tokenF1("Paris Paris Paris", "Paris")).isCloseTo(0.5, CLOSE);
  }

  @Test
  void rougeLOnLinsExample() {
    // Lin (2004), section 3.1: reference S1 "police killed the gunman"; S2 "police kill the gunman"
    // shares the subsequence "police the gunman" (3 of 4 tokens): ROUGE-L 0.75; S3 "the gunman kill
    // police" shares only "the gunman": 0.5. Raw tokens, as in the paper:
    List<String> s1 = List.of("police", "killed", "the", "gunman");
    assertThat(TextMetrics.rougeL(List.of("police", "kill", "the", "gunman"), s1)).isCloseTo(0.75, CLOSE);
    assertThat(TextMetrics.rougeL(List.of("the", "gunman", "kill", "police"), s1)).isCloseTo(0.5, CLOSE);

    // Through normalisation "the" goes: S1 [police, killed, gunman]. S2 [police, kill, gunman] keeps
    // LCS "police gunman" (2/3); S3 [gunman, kill, police] keeps one token in order (1/3) ...
    assertThat(TextMetrics.rougeL("police kill the gunman", "police killed the gunman")).isCloseTo(2.0 / 3, CLOSE);
    assertThat(TextMetrics.rougeL("the gunman kill police", "police killed the gunman")).isCloseTo(1.0 / 3, CLOSE);
    // ... while token F1, blind to order, gives both 2/3: the reason to report ROUGE-L too.
    assertThat(TextMetrics.tokenF1("the gunman kill police", "police killed the gunman")).isCloseTo(2.0 / 3, CLOSE);
  }

  @Test
  void rougeLWithDifferentLengths() {
    // prediction [cat, sat, on, mat], reference [cat, is, on, mat]: LCS [cat, on, mat] = 3, so
    // P = R = 3/4. Against reference [cat, on, mat]: P = 3/4, R = 1, F = 2 * 0.75 / 1.75 = 6/7.
    assertThat(TextMetrics.rougeL("The cat sat on the mat", "the cat is on the mat")).isCloseTo(0.75, CLOSE);
    assertThat(TextMetrics.rougeL("The cat sat on the mat", "cat on mat")).isCloseTo(6.0 / 7, CLOSE);
  }

  @Test
  void chineseIsScoredCharacterByCharacter() {
    assertThat(TextMetrics.tokens("首都是北京。")).containsExactly("首", "都", "是", "北", "京");
    // [首, 都, 是, 北, 京] vs [北, 京]: 2 shared, precision 2/5, recall 1, F1 = 0.8 / 1.4 = 4/7.
    // Without per-character tokens the whole sentence would be one token and F1 would be 0.
    assertThat(TextMetrics.tokenF1("首都是北京。", "北京")).isCloseTo(4.0 / 7, CLOSE);
    assertThat(TextMetrics.exactMatch("北京。", "北京")).isEqualTo(1.0);
    // Order matters to ROUGE-L but not to F1: [北, 京, 是, 首, 都] vs [首, 都, 是, 北, 京].
    assertThat(TextMetrics.tokenF1("北京是首都", "首都是北京")).isCloseTo(1.0, CLOSE);
    assertThat(TextMetrics.rougeL("北京是首都", "首都是北京")).isCloseTo(2.0 / 5, CLOSE);
  }

  @Test
  void mixedScriptsAndFullWidthForms() {
    assertThat(TextMetrics.tokens("我爱Spark和Java")).containsExactly("我", "爱", "spark", "和", "java");
    assertThat(TextMetrics.tokens("東京タワーです")).containsExactly("東", "京", "タ", "ワ", "ー", "で", "す");
    assertThat(TextMetrics.exactMatch("ＰＨＩ３", "phi3")).isEqualTo(1.0);
  }

  @Test
  void anErrorRowScoresZero() {
    assertThat(TextMetrics.exactMatch(null, "Paris")).isEqualTo(0.0);
    assertThat(TextMetrics.tokenF1(null, "Paris")).isEqualTo(0.0);
    assertThat(TextMetrics.rougeL(null, "Paris")).isEqualTo(0.0);
    assertThat(TextMetrics.answerLength(null)).isZero();
    assertThat(TextMetrics.score(null, "Paris")).isEqualTo(new TextMetrics.Scores(0.0, 0.0, 0.0, 0));
  }

  @Test
  void aRowWithoutReferenceIsNotScored() {
    assertThat(TextMetrics.exactMatch("Paris", null)).isNull();
    assertThat(TextMetrics.tokenF1("Paris", null)).isNull();
    assertThat(TextMetrics.rougeL("Paris", null)).isNull();
    assertThat(TextMetrics.score("Paris is nice", null)).isEqualTo(new TextMetrics.Scores(null, null, null, 3));
    assertThat(TextMetrics.score(null, null)).isEqualTo(new TextMetrics.Scores(null, null, null, 0));
  }

  @Test
  void emptyAnswers() {
    // As in the SQuAD v2.0 script: both empty after normalisation is a match, one empty is not.
    assertThat(TextMetrics.score("", "The.")).isEqualTo(new TextMetrics.Scores(1.0, 1.0, 1.0, 0));
    assertThat(TextMetrics.score("", "Paris")).isEqualTo(new TextMetrics.Scores(0.0, 0.0, 0.0, 0));
    assertThat(TextMetrics.score("Paris", "")).isEqualTo(new TextMetrics.Scores(0.0, 0.0, 0.0, 1));
  }

  @Test
  void answerLengthCountsNormalisedTokens() {
    assertThat(TextMetrics.answerLength("The quick brown fox.")).isEqualTo(3);
    assertThat(TextMetrics.answerLength("北京是首都")).isEqualTo(5);
  }

  @Test
  void scoreAgreesWithTheSingleMetrics() {
    String p = "The cat sat on the mat, then the cat slept";
    String r = "a cat slept on a mat";
    assertThat(TextMetrics.score(p, r)).isEqualTo(new TextMetrics.Scores(TextMetrics.exactMatch(p, r),
        TextMetrics.tokenF1(p, r), TextMetrics.rougeL(p, r), TextMetrics.answerLength(p)));
  }
}
