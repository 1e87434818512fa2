package io.genaibatch.mlflow;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/** A local folder, a {@code file:} URI, or a Databricks {@code /Volumes/...} FUSE path. */
final class LocalArtifactDirectory implements ArtifactDirectory {
  private final Path root;

  LocalArtifactDirectory(Path root) {
    this.root = root.toAbsolutePath().normalize();
  }

  static LocalArtifactDirectory of(String uri) {
    Path p = uri.startsWith("file:") ? Paths.get(URI.create(uri.startsWith("file:/") ? uri : "file:" + uri.substring(5)))
        : Paths.get(uri);
    return new LocalArtifactDirectory(p);
  }

  Path root() {
    return root;
  }

  @Override
  public String uri() {
    return root.toString();
  }

  @Override
  public List<ArtifactFile> listFiles() throws IOException {
    if (!Files.isDirectory(root)) {
      throw new MlflowException("Model directory " + root + " does not exist or is not a folder");
    }
    List<ArtifactFile> out = new ArrayList<>();
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.filter(Files::isRegularFile).sorted().toList()) {
        out.add(new ArtifactFile(root.relativize(p).toString().replace('\\', '/'), Files.size(p)));
      }
    }
    return out;
  }

  @Override
  public void download(ArtifactFile file, Path target) throws IOException {
    Files.copy(root.resolve(file.path()), target, StandardCopyOption.REPLACE_EXISTING);
  }

  @Override
  public void upload(Path source, String relativePath) throws IOException {
    Path t = root.resolve(ArtifactFile.checkRelative(relativePath));
    Files.createDirectories(t.getParent());
    Files.copy(source, t, StandardCopyOption.REPLACE_EXISTING);
  }

  @Override
  public boolean exists(String relativePath) {
    return Files.isRegularFile(root.resolve(ArtifactFile.checkRelative(relativePath)));
  }

  @Override
  public ArtifactDirectory resolve(String relativePath) {
    return new LocalArtifactDirectory(root.resolve(ArtifactFile.checkRelative(relativePath)));
  }
}
