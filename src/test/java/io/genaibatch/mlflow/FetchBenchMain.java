package io.genaibatch.mlflow;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.engine.LlmModel;
import java.net.URI;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The model's way from a store to a loaded model on one host, timed, for jobs/bench-fetch.sh (test
 * sources, not in the job jar): the driver's metadata fetch, one executor host's whole fetch on a
 * cold cache ROUNDS times (each with the {@code sync} that puts its bytes on the disk, and each after
 * a {@code cp -r} of the store's folder timed the same way, to compare with) and once on a warm one
 * (all through {@link ModelCache}, as the job's executors fetch), then the native load of the
 * fetched copy. Prints one JSON line.
 *
 * <p>Usage: {@code FetchBenchMain STORE_URI CACHE_DIR [ROUNDS]}, where STORE_URI is a local MLflow
 * model folder as a {@code file:} URI ({@code file:///...} reads it through Hadoop's local file system, the code path of
 * {@code s3a:}, {@code abfss:} and {@code gs:} roots without the network).
 */
public final class FetchBenchMain {
  private FetchBenchMain() {}

  public static void main(String[] args) throws Exception {
    ArtifactDirectory store = new HadoopArtifactDirectory(args[0]);
    ModelCache cache = new ModelCache(Paths.get(args[1]));
    String identity = "bench-fetch|" + args[0];
    int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 1;
    Map<String, Object> out = new LinkedHashMap<>();
    ModelCache.Fetched meta = cache.fetchPart(identity, "metadata", store, ModelFetcher::isMetadata);
    out.put("driver_fetch_ms", meta.millis());
    out.put("driver_fetch_bytes", meta.bytes());
    // The cold fetch ROUNDS times, each into an empty cache and up to its bytes being on the disk
    // (sync), each after a `cp -r` of the store's folder timed the same way (the bench compares the
    // medians: see jobs/bench-fetch.sh on why they take turns); both removed when the round ends.
    Path store0 = Paths.get(URI.create(args[0]));
    List<Double> copyMs = new ArrayList<>();
    List<Double> coldMs = new ArrayList<>();
    ModelCache.Fetched cold = null;
    for (int round = 0; round < rounds; round++) {
      Path copy = Paths.get(args[1], "copy");
      sync();
      long t0 = System.nanoTime();
      run("cp", "-r", store0.toString(), copy.toString());
      sync();
      copyMs.add((System.nanoTime() - t0) / 1e6);
      ModelCache.Fetched f = cache.fetch(identity, store);
      if (!f.downloaded()) {
        throw new IllegalStateException("round " + round + " found the model in the cache: not a cold fetch");
      }
      long t1 = System.nanoTime();
      sync();
      coldMs.add(f.millis() + (System.nanoTime() - t1) / 1e6);
      ModelCache.deleteTree(copy);
      if (round < rounds - 1) {
        ModelCache.deleteTree(f.dir());
      }
      cold = f;
    }
    out.put("copy_ms", copyMs);
    out.put("executor_cold_ms", coldMs);
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

  private static void sync() throws Exception {
    run("sync");
  }

  private static void run(String... command) throws Exception {
    int rc = new ProcessBuilder(command).inheritIO().start().waitFor();
    if (rc != 0) {
      throw new IllegalStateException(String.join(" ", command) + " exited with " + rc);
    }
  }
}
