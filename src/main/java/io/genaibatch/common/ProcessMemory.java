package io.genaibatch.common;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/** This process's memory as Linux reports it. */
public final class ProcessMemory {
  private static final Path STATUS = Paths.get("/proc/self/status");

  private ProcessMemory() {}

  /** This JVM's peak resident set (Linux {@code VmHWM}) in kB, or -1 where it cannot be read. */
  public static long peakRssKb() {
    try {
      for (String line : Files.readAllLines(STATUS)) {
        if (line.startsWith("VmHWM:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
      }
    } catch (IOException | RuntimeException e) {
      return -1;
    }
    return -1;
  }
}
