package io.genaibatch.mlflow;

import java.nio.file.Paths;

/** Child-JVM entry for the cross-process cache test: fetches one model, prints whether it downloaded. */
public final class CacheFetchMain {
  public static void main(String[] args) {
    try (TrackingConnection t = TrackingConnection.connect(args[0])) {
      ResolvedModel r = new ModelResolver(t).resolve(ModelUri.parse(args[1]));
      ModelCache.Fetched f = new ModelCache(Paths.get(args[2])).fetch(r.identity(), ArtifactDirectory.open(r.artifactUri(), t));
      System.out.println("downloaded=" + f.downloaded() + " dir=" + f.dir());
    }
  }
}
