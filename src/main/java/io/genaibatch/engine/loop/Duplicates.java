package io.genaibatch.engine.loop;

import io.genaibatch.engine.Completion;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Identical completions in the decode loop computed once: the first of a key to arrive (the
 * leader) is computed; the others with its key, from any ticket, follow it and get its answer
 * when it ends; an answer that ended recently answers a later arrival at once (answers are kept,
 * least recently used dropped first, within a bound of bytes that a row's longest prompt, format and
 * stop strings cannot pass). Plain Java, owned by the loop's thread.
 */
final class Duplicates {
  /** What became of an arriving completion. */
  enum Route {
    /** Computed: the caller queues it. */
    COMPUTE,
    /** Follows an identical completion in the loop; answered when that one ends. */
    FOLLOW,
    /** Answered already from a kept answer. */
    ANSWERED
  }

  private final Map<AnswerKey, List<Queued>> followers = new HashMap<>();
  private final Map<AnswerKey, Completion> leaders = new HashMap<>();
  /** Kept answers, least recently used first. */
  private final LinkedHashMap<AnswerKey, Completion.Answer> answers = new LinkedHashMap<>(16, 0.75f, true);
  private final long keptBytes;
  private long bytes;

  /** @param keptBytes most bytes the kept answers and their keys may take, estimated */
  Duplicates(long keptBytes) {
    this.keptBytes = keptBytes;
  }

  /** Bytes the kept answers take now, estimated. */
  long bytes() {
    return bytes;
  }

  private void keep(AnswerKey key, Completion.Answer answer) {
    Completion.Answer had = answers.put(key, answer);
    bytes += size(key, answer) - (had == null ? 0 : size(key, had));
    for (var it = answers.entrySet().iterator(); bytes > keptBytes && it.hasNext();) {
      var e = it.next();
      bytes -= size(e.getKey(), e.getValue());
      it.remove();
    }
  }

  /** An answer's and its key's bytes, estimated: their arrays and strings, and a fixed overhead. */
  private static long size(AnswerKey key, Completion.Answer a) {
    return 128 + key.bytes() + 4L * a.tokens().length + 2L * (a.text() == null ? 0 : a.text().length());
  }

  /** Routes an arriving completion; one {@link Route#ANSWERED} is ended already (its ticket counted). */
  Route arrive(Queued q, double atMs) {
    AnswerKey key = q.completion().key;
    if (key == null) {
      return Route.COMPUTE;
    }
    Completion.Answer done = answers.get(key);
    if (done != null) {
      q.completion().follow(done, atMs);
      q.ticket().answeredByDuplicate(q.completion());
      return Route.ANSWERED;
    }
    if (leaders.containsKey(key)) {
      followers.computeIfAbsent(key, k -> new ArrayList<>()).add(q);
      return Route.FOLLOW;
    }
    leaders.put(key, q.completion());
    return Route.COMPUTE;
  }

  /** {@code leader} has ended: its followers get its answer (their tickets counted) and it is kept. */
  void ended(Completion leader) {
    AnswerKey key = leader.key;
    if (key == null || leaders.get(key) != leader) {
      return;
    }
    leaders.remove(key);
    Completion.Answer answer = leader.answer();
    keep(key, answer);
    for (Queued f : followers.getOrDefault(key, List.of())) {
      f.completion().follow(answer, f.ticket().sinceStartMs());
      f.ticket().answeredByDuplicate(f.completion());
    }
    followers.remove(key);
  }

  /**
   * Forgets the completions of {@code t} (cancelled): its followers leave; each of its leaders with
   * followers of other tickets hands over to the first of them, returned for the caller to queue.
   */
  List<Queued> drop(Ticket t) {
    followers.values().forEach(fs -> fs.removeIf(f -> f.ticket() == t));
    List<Queued> promoted = new ArrayList<>();
    for (Completion c : t.completions) {
      if (c.key == null || leaders.get(c.key) != c) {
        continue;
      }
      List<Queued> fs = followers.remove(c.key);
      if (fs == null || fs.isEmpty()) {
        leaders.remove(c.key);
        continue;
      }
      Queued next = fs.remove(0);
      leaders.put(c.key, next.completion());
      if (!fs.isEmpty()) {
        followers.put(c.key, fs);
      }
      promoted.add(next);
    }
    return promoted;
  }

  /** Forgets every leader and follower (the loop failed and let every ticket go); kept answers stay. */
  void clearLive() {
    leaders.clear();
    followers.clear();
  }

  /** Forgets everything, kept answers too. */
  void clear() {
    clearLive();
    answers.clear();
    bytes = 0;
  }
}
