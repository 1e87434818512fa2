package io.genaibatch.engine.loop;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.engine.Completion;
import io.genaibatch.engine.DecodeTerms;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.PreparedRequest;
import io.genaibatch.engine.SearchOptions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** The decode loop's scheduling without a model: admission order, slots, compaction, cancellation, shape. */
class SchedulerTest {
  /** The moves the scheduler asks of the cache: {from, to, positions}. */
  private final List<int[]> moves = new ArrayList<>();

  private void move(int from, int to, int positions) {
    moves.add(new int[] {from, to, positions});
  }

  private static Completion completion(int budget, int... prompt) {
    PreparedRequest r = new PreparedRequest(0, prompt, budget, budget,
        new GenerationRequest("p", SearchOptions.greedy(budget), List.of(), 1, null));
    Completion c = new Completion(r, null);
    c.key = AnswerKey.of(r, 0, false);
    return c;
  }

  private static Ticket ticket(int batch, DecodeTerms terms, Completion... cs) {
    return new Ticket(List.of(cs), batch, terms);
  }

  /** Admits every completion it may, as the runner does, each one's cache filled to its prompt. */
  private static List<Completion> admitAll(Scheduler s) {
    List<Completion> placed = new ArrayList<>();
    s.slots(16);
    for (Queued q = s.next(); q != null; q = s.next()) {
      s.take();
      q.completion().cached = q.completion().request.tokens().length;
      s.place(q);
      placed.add(q.completion());
    }
    return placed;
  }

  @Test
  void aWindowsRowsAreAdmittedInPromptTokenOrderUpToTheBatchSizes() {
    Completion b = completion(4, 2, 9);
    Completion a1 = completion(4, 1, 5, 7);
    Completion c = completion(4, 3);
    Completion a2 = completion(4, 1, 5, 6);
    Scheduler s = new Scheduler(1 << 20);
    s.enter(ticket(3, DecodeTerms.DEFAULT, b, a1, c, a2));
    assertThat(admitAll(s)).as("rows sharing a prefix next to each other, 3 at most")
        .containsExactly(a2, a1, b);
    assertThat(s.next()).as("the batch size is full").isNull();
  }

  @Test
  void anEndedRowLeavesItsSlotAndTheLastLiveRowMovesIntoIt() {
    Completion[] cs = {completion(4, 1), completion(4, 2, 2), completion(4, 3, 3, 3)};
    Ticket t = ticket(4, DecodeTerms.DEFAULT, cs);
    Scheduler s = new Scheduler(1 << 20);
    s.enter(t);
    admitAll(s);
    cs[0].add(7);
    cs[0].cutOff(1);
    Ticket paying = s.dropEnded(this::move);
    assertThat(paying).isSameAs(t);
    assertThat(s.live()).isEqualTo(2);
    assertThat(moves).hasSize(1);
    assertThat(moves.get(0)).as("slot 2's 3 positions into slot 0").containsExactly(2, 0, 3);
    assertThat(s.completion(0)).isSameAs(cs[2]);
    assertThat(t.open).isEqualTo(2);
    s.finishDone();
    assertThat(s.isEmpty()).as("the ticket still has open rows").isFalse();
  }

  @Test
  void aCancelledTicketsRowsLeaveAndTheOtherTicketsStay() {
    AtomicBoolean cancel = new AtomicBoolean();
    Completion a = completion(4, 1, 1);
    Completion b = completion(4, 2, 2);
    Completion dupOfA = completion(4, 1, 1);
    Ticket gone = ticket(2, new DecodeTerms(cancel::get, DecodeTerms.DEFAULT_LIMIT_BYTES), a);
    Ticket stays = ticket(2, DecodeTerms.DEFAULT, b, dupOfA);
    Scheduler s = new Scheduler(1 << 20);
    s.enter(gone);
    s.enter(stays);
    assertThat(admitAll(s)).as("the copy of a follows it").containsExactly(a, b);
    cancel.set(true);
    s.dropCancelled(this::move);
    assertThat(s.live()).isEqualTo(1);
    assertThat(s.completion(0)).isSameAs(b);
    assertThat(s.next()).as("the follower takes over the cancelled leader's work").isNotNull()
        .extracting(Queued::completion).isSameAs(dupOfA);
  }

  @Test
  void theCacheShapeFollowsTheTicketsWithinTheirLimits() {
    Completion longest = completion(100, new int[50]);
    Scheduler s = new Scheduler(1 << 20);
    s.enter(ticket(4, new DecodeTerms(() -> false, 10L * 150 * 1000), longest, completion(10, 1)));
    assertThat(s.shape(1)).as("4 rows and a spare, 150 positions").containsExactly(5, 150);
    assertThat(s.shape(1000)).as("the limit holds 10 slots of 150 positions at 1000 bytes each: still 5")
        .containsExactly(5, 150);
    assertThat(s.shape(10_000)).as("one slot fits: never fewer than three").containsExactly(3, 150);
  }

  @Test
  void identicalRowsAreComputedOnceUnlessReuseIsOff() {
    Scheduler on = new Scheduler(1 << 20);
    on.enter(ticket(4, DecodeTerms.DEFAULT, completion(4, 5, 6), completion(4, 5, 6)));
    assertThat(admitAll(on)).hasSize(1);
    Scheduler off = new Scheduler(1 << 20);
    off.enter(ticket(4, DecodeTerms.DEFAULT.withPrefixBytes(0), completion(4, 5, 6), completion(4, 5, 6)));
    assertThat(admitAll(off)).hasSize(2);
  }
}
