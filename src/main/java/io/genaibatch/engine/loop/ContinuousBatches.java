package io.genaibatch.engine.loop;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.genai.GenAIException;
import io.genaibatch.engine.Completion;
import io.genaibatch.engine.DecodeProfile;
import io.genaibatch.engine.DecodeTerms;
import io.genaibatch.engine.GenAiConfig;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.PreparedRequest;
import io.genaibatch.engine.SlotUsage;
import io.genaibatch.engine.guidance.Guidance;
import io.genaibatch.engine.guidance.Llguidance;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * A window's rows in the continuous-batching loop: each request becomes its completions (its own
 * token chooser and, under a response format, its own llguidance matcher), the model's {@link
 * DecodeLoop} decodes them beside whatever other windows of the JVM are in it, and the window's
 * answers are read from them once every one has ended.
 */
public final class ContinuousBatches {
  private final DecodeLoop loop;
  private final GenAiConfig config;
  private final Set<Integer> eosIds;
  private final Completion.Decoder text;
  /** Masks for rows under a response format; null when the run has none. */
  private final Llguidance guides;

  public ContinuousBatches(DecodeLoop loop, GenAiConfig config, Set<Integer> eosIds, Completion.Decoder text,
      Llguidance guides) {
    this.loop = loop;
    this.config = config;
    this.eosIds = eosIds;
    this.text = text;
    this.guides = guides;
  }

  /** What one run computed for this window and where the loop's time for it went. */
  public record Run(SlotUsage slots, DecodeProfile profile) {}

  /**
   * Generates every completion of {@code requests} (handed to the loop in their order) and fills
   * {@code out} at their indexes.
   *
   * @param batchSize live rows this window brings to a step, at least 2
   * @param terms the caller's cancellation and key/value cache limit
   */
  public Run run(List<PreparedRequest> requests, int batchSize, DecodeTerms terms, Generation[] out)
      throws OrtException, GenAIException {
    List<Completion> all = new ArrayList<>();
    List<List<Completion>> byRequest = new ArrayList<>(requests.size());
    try {
      for (PreparedRequest r : requests) {
        List<Completion> cs = new ArrayList<>(r.n());
        Guidance g = r.request().guidance();
        for (int c = 0; c < r.n(); c++) {
          Completion made = new Completion(r, TokenChooser.of(config, r.request().options(), r.tokens(), c),
              g == null ? null : guides.matcher(g));
          made.key = AnswerKey.of(r, c, config.samples(r.request().options()));
          cs.add(made);
          all.add(made);
        }
        byRequest.add(cs);
      }
      Ticket ticket = new Ticket(all, batchSize, terms);
      loop.submit(ticket);
      ticket.await();
      for (int i = 0; i < requests.size(); i++) {
        PreparedRequest r = requests.get(i);
        out[r.index()] = Completion.result(r, byRequest.get(i), eosIds, text);
      }
      return new Run(ticket.slots(), ticket.profile());
    } finally {
      // The loop has let go of every completion by now (await returns only then).
      all.forEach(c -> {
        if (c.guide != null) {
          c.guide.close();
        }
      });
    }
  }
}
