package io.genaibatch.mlflow;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.RemoteIterator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A directory on a Hadoop file system: {@code dbfs:} on Databricks, {@code s3a:}, {@code abfss:},
 * {@code gs:}, {@code hdfs:}. Uses the Hadoop (and its connectors) that the Spark cluster has,
 * configured from the default Hadoop configuration of this JVM.
 *
 * <p>A file of {@value #RANGED_THRESHOLD} bytes or more (a model's weights) is downloaded in byte
 * ranges of {@value #PART_SIZE} bytes, at most {@value #MAX_PARALLEL_PARTS} at a time, each over a
 * stream of its own, into one preallocated temporary file that is renamed to the target once every
 * range is in; a range whose transfer fails is fetched again from its own start, up to {@value
 * #PART_ATTEMPTS} times. Smaller files take one stream.
 */
final class HadoopArtifactDirectory implements ArtifactDirectory {
  private static final Logger LOG = LoggerFactory.getLogger(HadoopArtifactDirectory.class);

  /** Files at least this large are fetched in parallel ranges (64 MiB: below it one stream is as fast). */
  static final long RANGED_THRESHOLD = 64L << 20;

  /** Bytes per range (64 MiB): a failed range costs at most this much again. */
  static final long PART_SIZE = 64L << 20;

  /** Ranges in flight at once, and threads (each with one {@value #COPY_BUFFER}-byte buffer). */
  static final int MAX_PARALLEL_PARTS = 8;

  /** Attempts per range before the whole download fails. */
  static final int PART_ATTEMPTS = 3;

  private static final AtomicInteger THREADS = new AtomicInteger();

  /** Where a directory without a configuration of its own takes one (see {@link #useConfigurations}). */
  private static volatile Supplier<Configuration> configurations = Configuration::new;

  private final String uri;
  /** Null: the job's configuration of the moment ({@link #useConfigurations}). */
  private final Configuration conf;
  private final long rangedThreshold;
  private final long partSize;

  HadoopArtifactDirectory(String uri) {
    this(uri, null, RANGED_THRESHOLD, PART_SIZE);
  }

  /** A test hook: a given configuration (to register a test file system) and smaller ranges. */
  HadoopArtifactDirectory(String uri, Configuration conf, long rangedThreshold, long partSize) {
    if (partSize <= 0 || rangedThreshold <= 0) {
      throw new IllegalArgumentException("part size and threshold must be positive");
    }
    this.uri = uri.replaceAll("/+$", "");
    this.conf = conf;
    this.rangedThreshold = rangedThreshold;
    this.partSize = partSize;
  }

  /**
   * Where directories without a configuration of their own take one: the Spark layer installs the
   * job's (its {@code spark.hadoop.*} settings and credentials), on the driver and on executors;
   * until then a default {@link Configuration}.
   */
  static void useConfigurations(Supplier<Configuration> supplier) {
    configurations = supplier;
  }

  private org.apache.hadoop.fs.Path root() {
    return new org.apache.hadoop.fs.Path(uri);
  }

  private FileSystem fs() throws IOException {
    try {
      return FileSystem.get(URI.create(uri), conf == null ? configurations.get() : conf);
    } catch (IOException e) {
      throw new MlflowException("Cannot open " + uri + ": " + e.getMessage()
          + ". The file system's connector (e.g. hadoop-aws for s3a:, hadoop-azure for abfss:) must be on the class path.", e);
    }
  }

  @Override
  public String uri() {
    return uri;
  }

  @Override
  public List<ArtifactFile> listFiles() throws IOException {
    FileSystem fs = fs();
    org.apache.hadoop.fs.Path root = fs.makeQualified(root());
    List<ArtifactFile> out = new ArrayList<>();
    RemoteIterator<LocatedFileStatus> it = fs.listFiles(root, true);
    String prefix = root.toUri().getPath().replaceAll("/+$", "") + "/";
    while (it.hasNext()) {
      LocatedFileStatus st = it.next();
      String p = st.getPath().toUri().getPath();
      if (!p.startsWith(prefix)) {
        throw new MlflowException("Listing of " + uri + " returned " + st.getPath() + ", outside the directory");
      }
      out.add(new ArtifactFile(p.substring(prefix.length()), st.getLen()));
    }
    return out;
  }

  private static final int COPY_BUFFER = 1 << 20;

  @Override
  public void download(ArtifactFile file, Path target) throws IOException {
    FileSystem fs = fs();
    org.apache.hadoop.fs.Path source = new org.apache.hadoop.fs.Path(root(), file.path());
    if (file.size() >= rangedThreshold) {
      downloadRanged(fs, source, file.size(), target);
      return;
    }
    // 1 MiB reads: Files.copy's 8 KiB buffer made a 2.7 GB weights file cost twice a plain cp (jobs/bench-fetch.sh).
    try (InputStream in = fs.open(source, COPY_BUFFER);
        OutputStream out = Files.newOutputStream(target)) {
      byte[] buf = new byte[COPY_BUFFER];
      for (int n; (n = in.read(buf)) >= 0; ) {
        out.write(buf, 0, n);
      }
    }
  }

  /**
   * Fetches {@code size} bytes of {@code source} in parallel ranges into a temporary file beside
   * {@code target}, renamed to {@code target} only when every range is in and the size checks; a
   * failure leaves neither file.
   */
  private void downloadRanged(FileSystem fs, org.apache.hadoop.fs.Path source, long size, Path target)
      throws IOException {
    long stored = fs.getFileStatus(source).getLen();
    if (stored != size) {
      throw new IOException(source + " has " + stored + " bytes but its listing says " + size
          + ": the store changed since it was listed");
    }
    Path tmp = target.resolveSibling(target.getFileName() + ".ranged-" + UUID.randomUUID());
    boolean done = false;
    try {
      long copied;
      try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        out.write(ByteBuffer.allocate(1), size - 1); // preallocated (sparse) to its full length
        copied = copyRanges(fs, source, size, out);
      }
      long got = Files.size(tmp);
      if (copied != size || got != size) {
        throw new IOException(source + ": the ranges brought " + copied + " bytes into a file of " + got
            + ", expected " + size);
      }
      Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      done = true;
    } finally {
      if (!done) {
        Files.deleteIfExists(tmp);
      }
    }
  }

  /** Runs the ranges on a small pool of daemon threads; returns the bytes copied. */
  private long copyRanges(FileSystem fs, org.apache.hadoop.fs.Path source, long size, FileChannel out)
      throws IOException {
    long parts = (size + partSize - 1) / partSize;
    int threads = (int) Math.min(MAX_PARALLEL_PARTS, parts);
    ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
      Thread t = new Thread(r, "genai-batch-fetch-" + THREADS.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
    try {
      List<Future<Long>> futures = new ArrayList<>();
      for (long i = 0; i < parts; i++) {
        long start = i * partSize;
        long end = Math.min(size, start + partSize);
        String label = "part " + (i + 1) + " of " + parts;
        futures.add(pool.submit(() -> copyRange(fs, source, start, end, label, out)));
      }
      long copied = 0;
      for (Future<Long> f : futures) {
        copied += await(f);
      }
      return copied;
    } finally {
      pool.shutdownNow();
    }
  }

  private static long await(Future<Long> f) throws IOException {
    try {
      return f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while waiting for a download");
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof IOException io) {
        throw io;
      }
      if (cause instanceof RuntimeException re) {
        throw re;
      }
      throw new IOException(cause);
    }
  }

  /**
   * Copies bytes {@code [start, end)} of {@code source} to the same place in {@code out} over a
   * stream of its own, from the range's start again when a transfer fails.
   */
  private static long copyRange(FileSystem fs, org.apache.hadoop.fs.Path source, long start, long end,
      String label, FileChannel out) throws IOException {
    byte[] buf = new byte[(int) Math.min(COPY_BUFFER, end - start)];
    for (int attempt = 1; ; attempt++) {
      try (FSDataInputStream in = fs.open(source, buf.length)) {
        in.seek(start);
        long pos = start;
        while (pos < end) {
          int n = in.read(buf, 0, (int) Math.min(buf.length, end - pos));
          if (n < 0) {
            throw new EOFException("the stream ended at byte " + pos);
          }
          ByteBuffer b = ByteBuffer.wrap(buf, 0, n);
          while (b.hasRemaining()) {
            pos += out.write(b, pos);
          }
        }
        return end - start;
      } catch (IOException e) {
        String what = source + " bytes " + start + "-" + (end - 1) + " (" + label + ")";
        if (attempt >= PART_ATTEMPTS || !out.isOpen() || Thread.currentThread().isInterrupted()) {
          throw new IOException("Cannot download " + what + " after " + attempt + " attempt(s): " + e, e);
        }
        LOG.warn("Fetching {} failed (attempt {} of {}), fetching the range again: {}", what, attempt, PART_ATTEMPTS,
            e.toString());
        try {
          Thread.sleep(100L * attempt);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException("interrupted while fetching " + what);
        }
      }
    }
  }

  @Override
  public void upload(Path source, String relativePath) throws IOException {
    try (OutputStream out = fs().create(new org.apache.hadoop.fs.Path(root(), ArtifactFile.checkRelative(relativePath)), true)) {
      Files.copy(source, out);
    }
  }

  @Override
  public boolean exists(String relativePath) throws IOException {
    return fs().isFile(new org.apache.hadoop.fs.Path(root(), ArtifactFile.checkRelative(relativePath)));
  }

  @Override
  public ArtifactDirectory resolve(String relativePath) {
    return new HadoopArtifactDirectory(uri + "/" + ArtifactFile.checkRelative(relativePath), conf, rangedThreshold,
        partSize);
  }
}
