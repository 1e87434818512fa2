package io.genaibatch.mlflow;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.common.AtomicFiles;
import io.genaibatch.common.PrivateDirs;
import io.genaibatch.common.Redact;
import io.genaibatch.common.Sha256;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One local copy per host of each remote model, under a configurable directory, keyed by the
 * model's identity. Concurrent threads and concurrent JVMs on a host download once: a lock file
 * ({@link FileChannel#lock()} across processes, a monitor within the JVM), a temporary folder,
 * sizes checked against the listing, then an atomic rename. A partial or interrupted download is
 * never used: it never got renamed, and the next holder of the lock deletes it.
 */
public final class ModelCache {
  private static final Logger LOG = LoggerFactory.getLogger(ModelCache.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String COMPLETE = ".genai-batch-complete.json";
  private static final Map<String, Object> JVM_LOCKS = new ConcurrentHashMap<>();
  private static final AtomicLong DOWNLOADS = new AtomicLong();

  private final Path root;

  public ModelCache(Path root) {
    this.root = root.toAbsolutePath().normalize();
  }

  /** {@code $TMPDIR/genai-batch-models-$USER}. */
  public static Path defaultRoot() {
    return Paths.get(System.getProperty("java.io.tmpdir"), "genai-batch-models-" + System.getProperty("user.name", "user"));
  }

  /** Downloads made by this JVM so far (a test and metrics hook, not a log line). */
  public static long downloadsInThisJvm() {
    return DOWNLOADS.get();
  }

  public Path root() {
    return root;
  }

  /**
   * The result of a fetch.
   *
   * @param dir the complete local copy
   * @param downloaded whether this call downloaded it (false: it was already there)
   * @param millis time spent, waiting for another downloader included
   * @param bytes bytes this call downloaded (0 when it was already there)
   */
  public record Fetched(Path dir, boolean downloaded, double millis, long bytes) {}

  /** Returns the local copy of {@code source}, downloading it first if this host has none. */
  public Fetched fetch(String identity, ArtifactDirectory source) {
    return fetch(identity, source, null);
  }

  /**
   * Returns a local copy of the files of {@code source} that {@code keep} accepts, under a cache
   * folder of its own (so a partial copy is never taken for the whole model); the complete marker
   * lists every file of the source, kept or not ({@link #listing}).
   *
   * @param part names the selection in the cache key: {@code metadata}
   */
  public Fetched fetchPart(String identity, String part, ArtifactDirectory source, Predicate<ArtifactFile> keep) {
    return fetch(identity + "#" + part, source, keep);
  }

  /** Every file path the source listed when {@code fetched} was downloaded, relative to its folder. */
  public static List<String> listing(Fetched fetched) {
    try {
      JsonNode marker = JSON.readTree(fetched.dir().resolve(COMPLETE).toFile());
      List<String> paths = new ArrayList<>();
      marker.path("listing").forEach(n -> paths.add(n.asText()));
      return paths;
    } catch (IOException e) {
      throw new MlflowException("Cannot read the cache marker of " + fetched.dir() + ": " + e.getMessage(), e);
    }
  }

  private Fetched fetch(String identity, ArtifactDirectory source, Predicate<ArtifactFile> keep) {
    long t0 = System.nanoTime();
    String key = key(identity);
    Path target = root.resolve(key);
    Path marker = target.resolve(COMPLETE);
    try {
      PrivateDirs.ensure(root, "Remove it, or pass --cache-dir with a folder of your own.");
    } catch (IOException e) {
      throw new MlflowException(e.getMessage(), e);
    }
    if (Files.isRegularFile(marker) && intact(target)) {
      return new Fetched(target, false, (System.nanoTime() - t0) / 1e6, 0);
    }
    Object jvmLock = JVM_LOCKS.computeIfAbsent(key, k -> new Object());
    synchronized (jvmLock) {
      try {
        try (FileChannel ch = FileChannel.open(root.resolve(key + ".lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            FileLock lock = ch.lock()) {
          if (Files.isRegularFile(marker) && intact(target)) {
            return new Fetched(target, false, (System.nanoTime() - t0) / 1e6, 0);
          }
          cleanLeftovers(key, target);
          long bytes = download(source, key, target, keep);
          return new Fetched(target, true, (System.nanoTime() - t0) / 1e6, bytes);
        }
      } catch (IOException e) {
        throw new MlflowException("Cannot fetch model " + Redact.uri(source.uri()) + " into " + target + ": " + Redact.message(e.getMessage()), e);
      }
    }
  }

  /** Downloads {@code source} into {@code target} through a temporary folder; returns the bytes fetched. */
  private long download(ArtifactDirectory source, String key, Path target, Predicate<ArtifactFile> keep)
      throws IOException {
    List<ArtifactFile> listed = source.listFiles();
    List<ArtifactFile> files = keep == null ? listed : listed.stream().filter(keep).toList();
    Path tmp = root.resolve(key + ".tmp-" + UUID.randomUUID());
    Files.createDirectories(tmp);
    boolean done = false;
    try {
      long bytes = 0;
      for (ArtifactFile f : files) {
        Path dest = tmp.resolve(f.path()).normalize();
        if (!dest.startsWith(tmp)) {
          throw new MlflowException("Artifact listing entry '" + f.path() + "' of " + Redact.uri(source.uri()) + " escapes the target directory");
        }
        Files.createDirectories(dest.getParent());
        bytes += downloadFile(source, f, dest);
      }
      Map<String, Long> sizes = new TreeMap<>();
      Map<String, String> digests = new TreeMap<>();
      for (ArtifactFile f : files) {
        sizes.put(f.path(), Files.size(tmp.resolve(f.path())));
        digests.put(f.path(), Sha256.ofFile(tmp.resolve(f.path())));
      }
      Files.writeString(tmp.resolve(COMPLETE), JSON.writeValueAsString(Map.of(
          "source", Redact.uri(source.uri()), "files", files.size(), "bytes", bytes,
          "listing", listed.stream().map(ArtifactFile::path).toList(), "sizes", sizes, "sha256", digests)),
          StandardCharsets.UTF_8);
      AtomicFiles.publish(tmp, target);
      done = true;
      DOWNLOADS.incrementAndGet();
      LOG.info("Fetched model {} ({} files, {} bytes) into {}", Redact.uri(source.uri()), files.size(), bytes, target);
      return bytes;
    } finally {
      if (!done) {
        deleteTree(tmp);
      }
    }
  }

  /**
   * Whether the copy at {@code target} still holds every file its marker lists, with the size and
   * the SHA-256 it was downloaded with (one read of the copy, at a JVM's first use of it). A copy
   * that fails is fetched again (under the lock); one made before the marker kept them is trusted
   * by its marker, as it was then.
   */
  private static boolean intact(Path target) {
    try {
      JsonNode marker = JSON.readTree(target.resolve(COMPLETE).toFile());
      for (var it = marker.path("sizes").fields(); it.hasNext(); ) {
        var e = it.next();
        Path f = target.resolve(e.getKey()).normalize();
        String digest = marker.path("sha256").path(e.getKey()).asText(null);
        if (!f.startsWith(target) || !Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)
            || Files.size(f) != e.getValue().asLong() || (digest != null && !digest.equals(Sha256.ofFile(f)))) {
          LOG.warn("The cached copy {} does not match its marker at {}: fetching it again", target, e.getKey());
          return false;
        }
      }
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /** Attempts per file: a transfer cut halfway (a dropped connection, a restarted server) is fetched again. */
  static final int FILE_ATTEMPTS = 3;

  /**
   * Downloads one listed file, checking its size against the listing; a failed or short transfer is
   * retried from the start, up to {@value #FILE_ATTEMPTS} times.
   */
  private static long downloadFile(ArtifactDirectory source, ArtifactFile f, Path dest) throws IOException {
    for (int attempt = 1; ; attempt++) {
      try {
        Files.deleteIfExists(dest);
        source.download(f, dest);
        long size = Files.size(dest);
        if (f.size() >= 0 && size != f.size()) {
          throw new MlflowException("Artifact " + Redact.uri(source.uri()) + "/" + f.path() + " has " + size
              + " bytes but its listing says " + f.size() + ": the store changed during the download or is corrupt;"
              + " nothing was kept, run again");
        }
        return size;
      } catch (IOException | MlflowException e) {
        if (attempt >= FILE_ATTEMPTS) {
          throw e;
        }
        LOG.warn("Fetching {} failed (attempt {} of {}), fetching it again: {}", f.path(), attempt, FILE_ATTEMPTS,
            e.getMessage());
        try {
          Thread.sleep(250L * attempt);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw new IOException("interrupted while fetching " + f.path(), ie);
        }
      }
    }
  }

  /** Removes what an interrupted download left: temp folders and an unmarked target. */
  private void cleanLeftovers(String key, Path target) throws IOException {
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(root, key + ".tmp-*")) {
      for (Path p : ds) {
        LOG.warn("Removing a partial download left by an interrupted fetch: {}", p);
        deleteTree(p);
      }
    }
    if (Files.exists(target)) {
      deleteTree(target);
    }
  }

  static void deleteTree(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      for (Path x : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(x);
      }
    }
  }

  /** The cache folder name for a model identity. */
  public static String key(String identity) {
    return Sha256.hexPrefix(identity, 24);
  }
}
