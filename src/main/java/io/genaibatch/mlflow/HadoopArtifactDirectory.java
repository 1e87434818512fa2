package io.genaibatch.mlflow;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.RemoteIterator;

/**
 * A directory on a Hadoop file system: {@code dbfs:} on Databricks, {@code s3a:}, {@code abfss:},
 * {@code gs:}, {@code hdfs:}. Uses the Hadoop (and its connectors) that the Spark cluster has,
 * configured from the default Hadoop configuration of this JVM.
 */
final class HadoopArtifactDirectory implements ArtifactDirectory {
  private final String uri;

  HadoopArtifactDirectory(String uri) {
    this.uri = uri.replaceAll("/+$", "");
  }

  private org.apache.hadoop.fs.Path root() {
    return new org.apache.hadoop.fs.Path(uri);
  }

  private FileSystem fs() throws IOException {
    try {
      return FileSystem.get(URI.create(uri), new Configuration());
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
    // 1 MiB reads: Files.copy's 8 KiB buffer made a 2.7 GB weights file cost twice a plain cp (jobs/bench-fetch.sh).
    try (InputStream in = fs().open(new org.apache.hadoop.fs.Path(root(), file.path()), COPY_BUFFER);
        OutputStream out = Files.newOutputStream(target)) {
      byte[] buf = new byte[COPY_BUFFER];
      for (int n; (n = in.read(buf)) >= 0; ) {
        out.write(buf, 0, n);
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
    return new HadoopArtifactDirectory(uri + "/" + ArtifactFile.checkRelative(relativePath));
  }
}
