package io.genaibatch.engine.loop;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.engine.Completion;
import io.genaibatch.engine.DecodeTerms;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.PreparedRequest;
import io.genaibatch.engine.SearchOptions;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Identical completions computed once, without a model: which computes, which follows, who takes over. */
class DuplicatesTest {
  private static PreparedRequest request(int[] tokens, SearchOptions o) {
    return new PreparedRequest(0, tokens, 8, 8, new GenerationRequest("p", o, List.of(), 1, null));
  }

  private static Completion completion(int[] tokens, SearchOptions o, boolean samples) {
    PreparedRequest r = request(tokens, o);
    Completion c = new Completion(r, null);
    c.key = AnswerKey.of(r, 0, samples);
    return c;
  }

  private static Ticket ticket(Completion... cs) {
    return new Ticket(List.of(cs), 4, DecodeTerms.DEFAULT);
  }

  private static void end(Completion c, int... tokens) {
    for (int t : tokens) {
      c.add(t);
    }
    c.cutOff(1.0);
  }

  @Test
  void theFirstOfAKeyComputesTheOthersFollowAndGetItsAnswer() {
    SearchOptions greedy = SearchOptions.greedy(8);
    Completion a = completion(new int[] {1, 2, 3}, greedy, false);
    Completion b = completion(new int[] {1, 2, 3}, greedy, false);
    Completion other = completion(new int[] {1, 2, 4}, greedy, false);
    Ticket t1 = ticket(a, other);
    Ticket t2 = ticket(b);
    Duplicates d = new Duplicates(1 << 20);
    assertThat(d.arrive(new Queued(t1, a), 0)).isEqualTo(Duplicates.Route.COMPUTE);
    assertThat(d.arrive(new Queued(t1, other), 0)).isEqualTo(Duplicates.Route.COMPUTE);
    assertThat(d.arrive(new Queued(t2, b), 0)).as("another ticket's identical row").isEqualTo(Duplicates.Route.FOLLOW);
    end(a, 7, 8, 9);
    d.ended(a);
    assertThat(b.done()).isTrue();
    assertThat(b.generated()).containsExactly(7, 8, 9);
    assertThat(t2.open).isZero();
    assertThat(t2.profile().duplicates()).isEqualTo(1);
    assertThat(t2.profile().duplicateTokens()).as("its prompt and answer tokens").isEqualTo(6);
    Completion later = completion(new int[] {1, 2, 3}, greedy, false);
    Ticket t3 = ticket(later);
    assertThat(d.arrive(new Queued(t3, later), 0)).as("answered from the kept answer")
        .isEqualTo(Duplicates.Route.ANSWERED);
    assertThat(later.generated()).containsExactly(7, 8, 9);
  }

  @Test
  void keptAnswersStayWithinTheirBytesTheLeastRecentlyUsedGoingFirst() {
    SearchOptions greedy = SearchOptions.greedy(8);
    // Each kept answer of a 1,000-token prompt takes about 4 KB: a bound of 6 KB keeps one.
    Duplicates d = new Duplicates(6_000);
    Completion first = completion(new int[1000], greedy, false);
    int[] other = new int[1000];
    other[0] = 1;
    Completion second = completion(other, greedy, false);
    Ticket t = ticket(first, second);
    d.arrive(new Queued(t, first), 0);
    d.arrive(new Queued(t, second), 0);
    end(first, 3);
    d.ended(first);
    end(second, 4);
    d.ended(second);
    assertThat(d.bytes()).isLessThanOrEqualTo(6_000).isPositive();
    Completion againFirst = completion(new int[1000], greedy, false);
    Completion againSecond = completion(other, greedy, false);
    Ticket later = ticket(againFirst, againSecond);
    assertThat(d.arrive(new Queued(later, againSecond), 0)).isEqualTo(Duplicates.Route.ANSWERED);
    assertThat(d.arrive(new Queued(later, againFirst), 0)).as("the older answer was dropped")
        .isEqualTo(Duplicates.Route.COMPUTE);
  }

  @Test
  void optionsBudgetsAndUnseededSamplingKeepRowsApart() {
    Duplicates d = new Duplicates(1 << 20);
    int[] p = {5, 6};
    Completion greedy = completion(p, SearchOptions.greedy(8), false);
    Completion longer = completion(p, SearchOptions.greedy(9), false);
    Completion sampled = completion(p, SearchOptions.DEFAULTS.withDoSample(true), true);
    Completion sampledAgain = completion(p, SearchOptions.DEFAULTS.withDoSample(true), true);
    Completion seeded = completion(p, SearchOptions.DEFAULTS.withDoSample(true).withSeed(3L), true);
    Completion seededAgain = completion(p, SearchOptions.DEFAULTS.withDoSample(true).withSeed(3L), true);
    Ticket t = ticket(greedy, longer, sampled, sampledAgain, seeded, seededAgain);
    assertThat(d.arrive(new Queued(t, greedy), 0)).isEqualTo(Duplicates.Route.COMPUTE);
    assertThat(d.arrive(new Queued(t, longer), 0)).as("another max_tokens").isEqualTo(Duplicates.Route.COMPUTE);
    assertThat(d.arrive(new Queued(t, sampled), 0)).isEqualTo(Duplicates.Route.COMPUTE);
    assertThat(d.arrive(new Queued(t, sampledAgain), 0)).as("sampling without a seed draws afresh")
        .isEqualTo(Duplicates.Route.COMPUTE);
    assertThat(d.arrive(new Queued(t, seeded), 0)).isEqualTo(Duplicates.Route.COMPUTE);
    assertThat(d.arrive(new Queued(t, seededAgain), 0)).as("the same seed and prompt: the same stream")
        .isEqualTo(Duplicates.Route.FOLLOW);
  }

  @Test
  void aCancelledLeaderHandsItsFollowersToTheFirstOfThem() {
    SearchOptions greedy = SearchOptions.greedy(8);
    Completion a = completion(new int[] {1}, greedy, false);
    Completion b = completion(new int[] {1}, greedy, false);
    Completion c = completion(new int[] {1}, greedy, false);
    Ticket cancelled = ticket(a);
    Ticket t2 = ticket(b);
    Ticket t3 = ticket(c);
    Duplicates d = new Duplicates(1 << 20);
    d.arrive(new Queued(cancelled, a), 0);
    d.arrive(new Queued(t2, b), 0);
    d.arrive(new Queued(t3, c), 0);
    List<Queued> promoted = d.drop(cancelled);
    assertThat(promoted).extracting(Queued::completion).containsExactly(b);
    end(b, 4);
    d.ended(b);
    assertThat(c.generated()).as("the new leader's answer reaches the other follower").containsExactly(4);
    assertThat(a.done()).as("the cancelled ticket's row is left alone").isFalse();
  }
}
