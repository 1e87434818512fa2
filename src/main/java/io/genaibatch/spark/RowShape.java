package io.genaibatch.spark;

import io.genaibatch.engine.Generation;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.guidance.ResponseFormat;
import java.io.Serializable;
import org.apache.spark.sql.Row;

/**
 * What the rows of a partition hold and what their scoring adds, for {@link PartitionScorer}: the
 * job's and the Transformer's columns ({@link JobRows}), or the arguments of {@code genai_generate}
 * calls ({@link CallRows}).
 */
interface RowShape extends Serializable {

  /**
   * A row made ready to score: its request and response format, or, for a row that cannot be
   * scored, its error (and no request).
   */
  record Prepared(GenerationRequest request, ResponseFormat format, Generation failure) {
    static Prepared failed(Generation failure) {
      return new Prepared(null, null, failure);
    }
  }

  /** Row {@code k} of its window made ready on {@code model} (whose chat template a chat row takes). */
  Prepared prepare(Row row, int k, LlmModel model);

  /** The scored row: {@code row}'s columns, then what its scoring adds. */
  Row output(Row row, OutputSchema.Scored scored);
}
