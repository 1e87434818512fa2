package io.genaibatch.job;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.genaibatch.testing.Fixtures;
import io.genaibatch.testing.SparkTestBase;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * No cell of input takes a job down or holds it: a prompt set of ordinary rows and hostile cells
 * (src/test/python/make_hostile_prompts.py: a catastrophic regex, ten thousand stop strings, a 1 MB
 * format, n = 64 x 4096 tokens, a 2 MB prompt, a 6000-deep regex, a 100 000-character stop string)
 * runs through the job command in a few times what its ordinary rows take alone, every row out, each
 * hostile row that breaks a limit an error row naming the limit.
 */
class HostileCellsTest extends SparkTestBase {
  static final String[] OPTION_COLUMNS = {"--stop-column", "stop", "--n-column", "n", "--max-tokens-column",
      "max_tokens", "--temperature-column", "temperature", "--response-format-column", "response_format"};

  private static long runJob(Path input, Path output, String... extra) {
    List<String> args = new java.util.ArrayList<>(List.of("--model-uri", Fixtures.tinyModel().toString(),
        "--input", input.toString(), "--input-format", "json", "--output", output.toString(), "--no-tracking",
        "--id-column", "id", "--max-tokens", "16", "--max-error-rate", "0.5"));
    args.addAll(List.of(extra));
    long t0 = System.nanoTime();
    BatchScoringJobTest.Result r = BatchScoringJobTest.run(args.toArray(String[]::new));
    assertThat(r.code()).as(r.err()).isZero();
    return (System.nanoTime() - t0) / 1_000_000;
  }

  @Test
  void hostileCellsBecomeErrorRowsNamingTheirLimitInBoundedTime(@TempDir Path tmp) throws Exception {
    Path ordinary = tmp.resolve("ordinary.jsonl");
    Fixtures.runPython("src/test/python/make_hostile_prompts.py", Map.of(), Map.of(), ordinary.toString(), "--ordinary-only");
    long ordinaryMs = runJob(ordinary, tmp.resolve("out-ordinary"));

    Path hostile = tmp.resolve("hostile.jsonl");
    JsonNode made = Fixtures.runPython("src/test/python/make_hostile_prompts.py", Map.of(), Map.of(), hostile.toString());
    long hostileMs = runJob(hostile, tmp.resolve("out-hostile"), OPTION_COLUMNS);

    Map<Long, Row> byId = new HashMap<>();
    for (Row row : spark.read().parquet(tmp.resolve("out-hostile").toString()).collectAsList()) {
      byId.put(row.getLong(row.fieldIndex("id")), row);
    }
    assertThat(byId).hasSize(made.path("rows").asInt());
    for (long id = 1; id <= 16; id++) {
      assertThat(byId.get(id).<String>getAs("error")).as("ordinary row %d", id).isNull();
    }
    assertThat(error(byId, 18)).contains("10000 stop strings").contains("--max-stop-strings 16");
    assertThat(error(byId, 19)).contains("--max-format-chars 65536");
    assertThat(error(byId, 20)).contains("--max-row-tokens 32768").contains("n 64");
    assertThat(error(byId, 21)).contains("tokens, which leaves no room to generate");
    assertThat(error(byId, 22)).contains("nests 6000 levels deep").contains("--max-format-depth 32");
    assertThat(error(byId, 23)).contains("100000 characters").contains("--max-stop-chars 256");
    // The catastrophic regex runs (guided, cut by its stop string), as an answer or as an error row.
    assertThat(byId).containsKey(17L);
    assertThat(hostileMs).as("hostile set %d ms, its ordinary rows alone %d ms", hostileMs, ordinaryMs)
        .isLessThan(4 * ordinaryMs + 30_000);
  }

  private static String error(Map<Long, Row> byId, long id) {
    String e = byId.get(id).getAs("error");
    assertThat(e).as("row %d is an error row", id).isNotNull();
    return e;
  }
}
