package io.genaibatch.mlflow;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.engine.LlmModel;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The model's way from a store to a loaded model on one host, timed, for jobs/bench-fetch.sh (test
 * sources, not in the job jar): the driver's metadata fetch, one executor host's whole fetch on a
 * cold cache and again on a warm one (both through {@link ModelCache}, as the job's executors fetch),
 * then the native load of the fetched copy. Prints one JSON line.
 *
 * <p>Usage: {@code FetchBenchMain STORE_URI CACHE_DIR}, where STORE_URI is an MLflow model folder as
 * a Hadoop URI ({@code file:///...} reads it through Hadoop's local file system, the code path of
 * {@code s3a:}, {@code abfss:} and {@code gs:} roots without the network).
 */
public final class FetchBenchMain {
  private FetchBenchMain() {}

  public static void main(String[] args) throws Exception {
    ArtifactDirectory store = new HadoopArtifactDirectory(args[0]);
    ModelCache cache = new ModelCache(Paths.get(args[1]));
    String identity = "bench-fetch|" + args[0];
    Map<String, Object> out = new LinkedHashMap<>();
    ModelCache.Fetched meta = cache.fetchPart(identity, "metadata", store, ModelFetcher::isMetadata);
    out.put("driver_fetch_ms", meta.millis());
    out.put("driver_fetch_bytes", meta.bytes());
    ModelCache.Fetched cold = cache.fetch(identity, store);
    out.put("executor_cold_downloaded", cold.downloaded());
    out.put("executor_cold_ms", cold.millis());
    out.put("executor_cold_bytes", cold.bytes());
    ModelCache.Fetched warm = cache.fetch(identity, store);
    out.put("executor_warm_downloaded", warm.downloaded());
    out.put("executor_warm_ms", warm.millis());
    out.put("executor_warm_bytes", warm.bytes());
    Path genai = MlModel.read(cold.dir()).findGenaiFolder(cold.dir());
    try (LlmModel model = LlmModel.load(genai)) {
      out.put("load_ms", model.loadMillis());
    }
    System.out.println(new ObjectMapper().writeValueAsString(out));
  }
}
