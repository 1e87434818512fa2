package io.genaibatch.engine.natives;

import io.genaibatch.engine.EngineException;

/** Child-JVM entry for the loader test: prints where the library came from, or the error. */
public final class NativeProbeMain {
  public static void main(String[] args) {
    try {
      System.out.println("loaded from " + NativeLibraries.ensureLoaded());
    } catch (EngineException e) {
      System.out.println(e.getMessage());
    }
  }
}
