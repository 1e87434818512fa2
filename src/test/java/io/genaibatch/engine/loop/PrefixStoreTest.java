package io.genaibatch.engine.loop;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** The prefix store's choices (matches, bounds, eviction), without a model: blocks hold their index. */
class PrefixStoreTest {
  /** What a block holds in these tests: the prompt block it was filled from; closing it is counted. */
  static final class Held implements AutoCloseable {
    int index = -1;
    boolean closed;

    @Override
    public void close() {
      closed = true;
    }
  }

  private final List<Held> made = new ArrayList<>();

  private Held make() {
    Held h = new Held();
    made.add(h);
    return h;
  }

  /** A store of 4-token blocks of 10 bytes each, at most {@code blocks} of them. */
  private static PrefixStore<Held> store(int blocks) {
    return new PrefixStore<>(4, 10, blocks * 10L);
  }

  private static int[] tokens(int from, int count) {
    return IntStream.range(from, from + count).toArray();
  }

  private static int[] join(int[] a, int[] b) {
    return IntStream.concat(IntStream.of(a), IntStream.of(b)).toArray();
  }

  private int add(PrefixStore<Held> s, int[] prompt) {
    return s.add(prompt, s.match(prompt, prompt.length), this::make, (h, i) -> h.index = i);
  }

  @Test
  void aPromptReusesTheWholeBlocksOfItsLongestStoredPrefix() {
    PrefixStore<Held> s = store(100);
    int[] template = tokens(0, 10);
    int[] a = join(template, tokens(100, 7));
    assertThat(add(s, a)).as("the 17-token prompt's whole blocks").isEqualTo(4);
    int[] b = join(template, tokens(200, 5));
    List<PrefixStore.Block<Held>> hit = s.match(b, b.length);
    assertThat(hit).as("blocks 0 and 1 are the template's; block 2 mixes it with a's own tokens").hasSize(2);
    assertThat(hit.get(0).data.index).isZero();
    assertThat(hit.get(1).data.index).isEqualTo(1);
    assertThat(s.match(b, 5)).as("at most 5 tokens: one whole block").hasSize(1);
    assertThat(s.match(tokens(1, 12), 12)).as("a prompt that does not start with the same tokens").isEmpty();
  }

  @Test
  void theSameTokensAfterAnotherPrefixAreAnotherBlock() {
    PrefixStore<Held> s = store(100);
    add(s, join(tokens(0, 4), tokens(50, 4)));
    int[] other = join(tokens(10, 4), tokens(50, 4));
    assertThat(s.match(other, 8)).as("block 1's tokens match, its parent does not").isEmpty();
    assertThat(add(s, other)).isEqualTo(2);
    assertThat(s.size()).isEqualTo(4);
  }

  @Test
  void theBoundEvictsTheLeastRecentlyUsedLeavesFirstAndKeepsSharedParents() {
    PrefixStore<Held> s = store(3);
    int[] template = tokens(0, 8);
    add(s, join(template, tokens(100, 4)));   // blocks T0, T1, A
    add(s, join(template, tokens(200, 4)));   // T0, T1 reused; B evicts A (the only leaf not just used)
    assertThat(s.size()).isEqualTo(3);
    assertThat(s.bytes()).isEqualTo(30);
    assertThat(s.match(join(template, tokens(100, 4)), 12)).as("A was evicted, the template kept").hasSize(2);
    assertThat(s.match(join(template, tokens(200, 4)), 12)).hasSize(3);
    assertThat(made.stream().filter(h -> h.closed).count()).as("blocks freed").isEqualTo(1);
    assertThat(s.peakBytes()).isEqualTo(30);
  }

  @Test
  void aBoundBelowOneBlockStoresNothingAndZeroFreesEverything() {
    PrefixStore<Held> none = store(0);
    assertThat(add(none, tokens(0, 16))).isZero();
    assertThat(none.match(tokens(0, 16), 16)).isEmpty();
    PrefixStore<Held> s = store(10);
    add(s, tokens(0, 16));
    assertThat(s.size()).isEqualTo(4);
    s.limit(0);
    assertThat(s.size()).isZero();
    assertThat(made).allMatch(h -> h.closed);
  }

  @Test
  void aChainLongerThanTheBoundKeepsItsFirstBlocks() {
    PrefixStore<Held> s = store(3);
    assertThat(add(s, tokens(0, 24))).as("3 of the 6 blocks fit; the first ones, which others share").isEqualTo(3);
    assertThat(s.match(tokens(0, 24), 24)).hasSize(3);
  }
}
