package io.genaibatch.spark;

import static org.assertj.core.api.Assertions.assertThat;

import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.SparkTestBase;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A prompt set of mixed lengths gives byte-identical answers whatever the input's layout, the
 * partitioning, the look-ahead, the batch size and the bad rows mixed in; on a model wide enough
 * for the int4 kernels' single-row path to matter.
 */
class ReproducibleAnswersTest extends SparkTestBase {
  static final StructType SCHEMA = new StructType().add("id", DataTypes.LongType).add("prompt", DataTypes.StringType);
  static final int MAX_NEW_TOKENS = 48;

  private static List<String> promptSet() {
    List<String> out = new ArrayList<>();
    String[] words = {"river", "stone", "garden", "light", "water", "cloud", "mountain"};
    for (int i = 0; i < 14; i++) {
      StringBuilder sb = new StringBuilder("<|user|>\nTell me about");
      for (int w = 0; w < 2 + (i * 7) % 40; w++) {
        sb.append(' ').append(words[(i + w) % words.length]);
      }
      out.add(sb.append("<|end|>\n<|assistant|>\n").toString());
    }
    return out;
  }

  private Map<Long, Row> score(List<Row> rows, int files, Path out, Object... settings) throws Exception {
    Dataset<Row> input = spark.createDataFrame(rows, SCHEMA).repartition(files);
    Object[] kv = Arrays.copyOf(settings, settings.length + 8);
    System.arraycopy(new Object[] {"model_uri", Fixtures.kernelPathsModel().toString(), "cache_dir",
        out.resolveSibling("cache").toString(), "max_new_tokens", MAX_NEW_TOKENS, "do_sample", false}, 0, kv,
        settings.length, 8);
    BatchScorer scorer = BatchScorer.create(spark, Fixtures.settings(kv));
    scorer.score(input, null, null).write().parquet(out.toString());
    Dataset<Row> back = spark.read().parquet(out.toString());
    assertThat(back.count()).as("rows out equal rows in").isEqualTo(rows.size());
    Map<Long, Row> byId = new HashMap<>();
    for (Row r : back.collectAsList()) {
      assertThat(byId.put(r.<Long>getAs("id"), r)).as("each row once").isNull();
    }
    return byId;
  }

  @Test
  void oneFileAndSeveralFilesWithBadRowsGiveIdenticalAnswers(@TempDir Path tmp) throws Exception {
    List<String> prompts = promptSet();
    List<Row> clean = new ArrayList<>();
    for (int i = 0; i < prompts.size(); i++) {
      clean.add(RowFactory.create((long) i, prompts.get(i)));
    }
    List<Row> messy = new ArrayList<>(clean);
    messy.add(3, RowFactory.create(100L, null));
    messy.add(7, RowFactory.create(101L, ""));
    messy.add(9, RowFactory.create(102L, "word ".repeat(3000)));
    messy.add(RowFactory.create(103L, " "));

    Map<Long, Row> one = score(clean, 1, tmp.resolve("one"), "id_column", "id", "batch_size", 4);
    // Five files kept as five partitions, windows of three rows (some hold one good row), batches of three.
    Map<Long, Row> many = score(messy, 5, tmp.resolve("many"), "id_column", "id", "batch_size", 3,
        "lookahead_rows", 3, "partitions", "input");

    for (long id = 100; id <= 103; id++) {
      assertThat(many.get(id).<String>getAs("finish_reason")).as("bad row %d", id).isEqualTo("error");
    }
    int stopped = 0;
    for (long id = 0; id < prompts.size(); id++) {
      Row a = one.get(id);
      Row b = many.get(id);
      assertThat(a.<String>getAs("error")).isNull();
      assertThat(b.<String>getAs("response")).as("answer of prompt %d", id).isEqualTo(a.<String>getAs("response"));
      assertThat(b.<Integer>getAs("completion_tokens")).isEqualTo(a.<Integer>getAs("completion_tokens"));
      stopped += "stop".equals(a.getAs("finish_reason")) ? 1 : 0;
    }
    assertThat(stopped).as("answers of varied length").isLessThan(prompts.size());
  }

  @Test
  void autoPartitionsFillEveryTaskSlotAndLeaveNoPartialLastWave() {
    assertThat(BatchScorer.autoPartitions(1, 2)).isEqualTo(2);
    assertThat(BatchScorer.autoPartitions(1, 16)).isEqualTo(16);
    assertThat(BatchScorer.autoPartitions(2, 2)).isEqualTo(2);
    assertThat(BatchScorer.autoPartitions(3, 2)).isEqualTo(4);
    assertThat(BatchScorer.autoPartitions(17, 16)).isEqualTo(32);
    assertThat(BatchScorer.autoPartitions(8, 2)).isEqualTo(8);
    assertThat(BatchScorer.autoPartitions(9, 2)).isEqualTo(9);
  }
}
