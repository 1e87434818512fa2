package io.genaibatch.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A headless Chromium (Debian's package {@code chromium}, which {@code jobs/setup.sh --browser}
 * installs) driven over the Chrome DevTools Protocol: opens a page, waits until its rendered text
 * holds what is looked for, and saves a screenshot. One browser, one tab; close it when done.
 *
 * <p>Written by hand over {@code java.net.http.WebSocket}: the three calls needed (navigate,
 * evaluate, capture a screenshot) are fewer lines than a WebDriver dependency and its driver
 * binary would cost.
 */
public final class Browser implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Process process;
  private final Path profile;
  private final WebSocket socket;
  private final AtomicInteger ids = new AtomicInteger();
  private final Map<Integer, CompletableFuture<JsonNode>> pending = new ConcurrentHashMap<>();
  private boolean closed;

  private Browser(Process process, Path profile, String pageSocket) {
    this.process = process;
    this.profile = profile;
    this.socket = HttpClient.newHttpClient().newWebSocketBuilder()
        .buildAsync(URI.create(pageSocket), new Replies()).join();
  }

  /** Starts headless Chromium with a fresh profile and a 1600x900 window. */
  public static Browser start() throws Exception {
    Path profile = Files.createTempDirectory("genai-batch-chromium");
    // --no-sandbox: tests may run as root (containers, CI), where Chromium's sandbox refuses to start.
    Process p = new ProcessBuilder(chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars", "--window-size=1600,900",
        "--remote-debugging-port=0", "--user-data-dir=" + profile, "about:blank")
        .redirectErrorStream(true).redirectOutput(profile.resolve("chromium.log").toFile()).start();
    Path portFile = profile.resolve("DevToolsActivePort");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (!Files.isRegularFile(portFile) || Files.readAllLines(portFile).isEmpty()) {
      if (!p.isAlive() || System.nanoTime() > deadline) {
        p.destroyForcibly();
        throw new IllegalStateException("chromium did not start: " + Files.readString(profile.resolve("chromium.log")));
      }
      Thread.sleep(100);
    }
    String port = Files.readAllLines(portFile).get(0).strip();
    HttpResponse<String> targets = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
        URI.create("http://127.0.0.1:" + port + "/json/list")).build(), HttpResponse.BodyHandlers.ofString());
    for (JsonNode t : JSON.readTree(targets.body())) {
      if (t.path("type").asText().equals("page")) {
        return new Browser(p, profile, t.path("webSocketDebuggerUrl").asText());
      }
    }
    p.destroyForcibly();
    throw new IllegalStateException("chromium opened no page: " + targets.body());
  }

  /** The chromium executable on PATH, or an error saying how to install it. */
  static String chromium() {
    for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
      for (String name : new String[] {"chromium", "chromium-browser"}) {
        if (Files.isExecutable(Path.of(dir, name))) {
          return Path.of(dir, name).toString();
        }
      }
    }
    throw new IllegalStateException("chromium is not on PATH: run jobs/setup.sh --browser (it installs Debian's"
        + " package chromium with apt-get) or install it yourself");
  }

  /**
   * Opens url and waits, up to limit, until the page's rendered text ({@code innerText}) holds
   * every one of wanted; then saves a PNG screenshot to screenshot and returns the text (whatever
   * it holds by then: the caller's assertions say what was missing), also saved beside the
   * screenshot (its name and {@code .txt}).
   */
  public String open(String url, Path screenshot, Duration limit, String... wanted) throws Exception {
    // A blank page first: a hash route of the same app would otherwise keep the last page's text
    // until the new one renders, and that text may already hold what is looked for.
    call("Page.navigate", Map.of("url", "about:blank"));
    call("Page.navigate", Map.of("url", url));
    long deadline = System.nanoTime() + limit.toNanos();
    String text = "";
    while (System.nanoTime() < deadline) {
      Thread.sleep(500);
      text = call("Runtime.evaluate", Map.of("expression", "document.body ? document.body.innerText : ''",
          "returnByValue", true)).path("result").path("value").asText();
      if (List.of(wanted).stream().allMatch(text::contains)) {
        Thread.sleep(500); // lets images and charts that follow the text finish drawing
        break;
      }
    }
    Files.createDirectories(screenshot.toAbsolutePath().getParent());
    String png = call("Page.captureScreenshot", Map.of("format", "png")).path("data").asText();
    Files.write(screenshot, Base64.getDecoder().decode(png));
    Files.writeString(screenshot.resolveSibling(screenshot.getFileName() + ".txt"), text);
    return text;
  }

  private JsonNode call(String method, Map<String, Object> params) throws Exception {
    int id = ids.incrementAndGet();
    CompletableFuture<JsonNode> reply = new CompletableFuture<>();
    pending.put(id, reply);
    socket.sendText(JSON.writeValueAsString(Map.of("id", id, "method", method, "params", params)), true).join();
    JsonNode r = reply.get(60, TimeUnit.SECONDS);
    if (r.has("error")) {
      throw new IllegalStateException(method + " failed: " + r.path("error"));
    }
    return r.path("result");
  }

  /** Collects each message's frames and completes the call that its id answers; events are ignored. */
  private final class Replies implements WebSocket.Listener {
    private final StringBuilder message = new StringBuilder();

    @Override
    public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
      message.append(data);
      if (last) {
        try {
          JsonNode m = JSON.readTree(message.toString());
          CompletableFuture<JsonNode> reply = m.has("id") ? pending.remove(m.path("id").asInt()) : null;
          if (reply != null) {
            reply.complete(m);
          }
        } catch (Exception e) {
          pending.values().forEach(f -> f.completeExceptionally(e));
        }
        message.setLength(0);
      }
      ws.request(1);
      return null;
    }
  }

  /** Stops the browser and deletes its profile. */
  @Override
  public void close() throws Exception {
    if (closed) {
      return;
    }
    closed = true;
    socket.abort();
    List<ProcessHandle> tree = new ArrayList<>(process.descendants().toList());
    process.destroy();
    if (!process.waitFor(10, TimeUnit.SECONDS)) {
      process.destroyForcibly();
    }
    tree.forEach(ProcessHandle::destroyForcibly);
    try (var files = Files.walk(profile)) {
      files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
    }
  }
}
