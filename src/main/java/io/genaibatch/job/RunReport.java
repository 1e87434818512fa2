package io.genaibatch.job;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.genaibatch.common.OutputColumns;
import io.genaibatch.common.Redact;
import io.genaibatch.engine.guidance.ResponseFormat;
import io.genaibatch.mlflow.RunLogger;
import io.genaibatch.settings.Setting;
import io.genaibatch.settings.Settings;
import io.genaibatch.spark.BatchScorer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.JavaDoubleRDD;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.functions;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.statistics.SimpleHistogramBin;
import org.jfree.data.statistics.SimpleHistogramDataset;
import scala.Tuple2;
import scala.collection.Seq;

/**
 * The run's artifacts, made from the written output: a results sample in MLflow's table format,
 * PNG histograms (latency, prompt and completion tokens; bucketed by Spark, drawn by JFreeChart),
 * the effective config as YAML, and where the output is.
 */
final class RunReport {
  static final String TABLE = "results_sample.json";
  static final int SAMPLE_ROWS = 100;
  private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
  private static final ObjectMapper JSON = new ObjectMapper();
  /** The run's response format, when it has one: the artifact its param response_format_digest names. */
  static final String RESPONSE_FORMAT_ARTIFACT = "response_format.json";

  private RunReport() {}

  static List<String> log(RunLogger run, Dataset<Row> out, JobConfig cfg, BatchScorer scorer, long rows) throws IOException {
    Path tmp = Files.createTempDirectory("genai-batch-report");
    List<String> logged = new ArrayList<>();
    try {
      sample(run, out, cfg, scorer, tmp);
      logged.add(TABLE);
      for (String[] plot : new String[][] {
          {OutputColumns.LATENCY_MS, "Latency per row (ms)", "plots/latency_ms.png"},
          {OutputColumns.COMPLETION_TOKENS, "Completion tokens per row", "plots/completion_tokens.png"},
          {OutputColumns.PROMPT_TOKENS, "Prompt tokens per row", "plots/prompt_tokens.png"}}) {
        if (histogram(out, plot[0], plot[1], tmp.resolve(plot[2].replace('/', '_')))) {
          run.logArtifact(tmp.resolve(plot[2].replace('/', '_')), plot[2]);
          logged.add(plot[2]);
        }
      }
      // Every setting with its value and where it came from (flag, config, Spark conf, model_config, default).
      Map<String, Object> effective = new LinkedHashMap<>(scorer.settings().effective(Setting.Scope.JOB));
      effective.put(Settings.TRACKING_URI.key(), Map.of("value", String.valueOf(Redact.uri(cfg.trackingUri())),
          "source", scorer.settings().source(Settings.TRACKING_URI)));
      effective.put(Settings.MODEL_URI.key(), Map.of("value", String.valueOf(Redact.uri(cfg.get(Settings.MODEL_URI))),
          "source", scorer.settings().source(Settings.MODEL_URI)));
      effective.put("settled_search", scorer.options().search().asMap());
      effective.put("chat", scorer.options().chat());
      effective.put("resolved_model", Map.of(
          "artifact_uri", String.valueOf(Redact.uri(scorer.spec().model().artifactUri())),
          "version", String.valueOf(scorer.spec().model().versionLabel()),
          "driver_metadata_folder", scorer.localModel().genaiDir().toString()));
      Path conf = tmp.resolve("effective_config.yaml");
      YAML.writeValue(conf.toFile(), effective);
      run.logArtifact(conf, "effective_config.yaml");
      logged.add("effective_config.yaml");
      ResponseFormat format = scorer.options().responseFormat();
      if (format != null) {
        // The format itself, as the engine was given it; its digest is the run's param response_format_digest.
        Path f = tmp.resolve(RESPONSE_FORMAT_ARTIFACT);
        Files.writeString(f, format.canonical(), StandardCharsets.UTF_8);
        run.logArtifact(f, RESPONSE_FORMAT_ARTIFACT);
        logged.add(RESPONSE_FORMAT_ARTIFACT);
      }
      Path where = tmp.resolve("output.json");
      JSON.writerWithDefaultPrettyPrinter().writeValue(where.toFile(),
          Map.of("path", String.valueOf(Settings.OUTPUT.shown(cfg.get(Settings.OUTPUT))), "format", "parquet", "rows", rows, "mode", cfg.get(Settings.MODE)));
      run.logArtifact(where, "output.json");
      logged.add("output.json");
      return logged;
    } finally {
      try (var s = Files.walk(tmp)) {
        s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  private static void sample(RunLogger run, Dataset<Row> out, JobConfig cfg, BatchScorer scorer, Path tmp) {
    List<String> cols = new ArrayList<>();
    if (cfg.get(Settings.ID_COLUMN) != null) {
      cols.add(cfg.get(Settings.ID_COLUMN));
    }
    cols.add(scorer.options().scoredColumn());
    cols.addAll(List.of(OutputColumns.RESPONSE, OutputColumns.FINISH_REASON, OutputColumns.PROMPT_TOKENS,
        OutputColumns.COMPLETION_TOKENS, OutputColumns.TOTAL_TOKENS, OutputColumns.LATENCY_MS, OutputColumns.ERROR));
    Dataset<Row> s = out.select(cols.stream().map(c -> functions.col(c)).toArray(Column[]::new));
    if (scorer.options().chat()) {
      String m = scorer.options().messagesColumn();
      s = s.withColumn(m, functions.to_json(functions.col(m)));
    }
    if (cfg.get(Settings.ID_COLUMN) != null) {
      s = s.orderBy(cfg.get(Settings.ID_COLUMN));
    }
    run.logTable(cols, tableRows(s.limit(SAMPLE_ROWS)), TABLE, tmp);
  }

  /** Rows as JSON-ready lists for MLflow's table format; nested values become their text. */
  static List<List<Object>> tableRows(Dataset<Row> df) {
    List<List<Object>> out = new ArrayList<>();
    for (Row r : df.collectAsList()) {
      List<Object> vals = new ArrayList<>();
      for (int i = 0; i < r.length(); i++) {
        Object v = r.get(i);
        vals.add(v instanceof Row || v instanceof Seq<?> ? String.valueOf(v) : v);
      }
      out.add(vals);
    }
    return out;
  }

  /** A 20-bucket histogram of a numeric column over the ok rows; false when there is none. */
  private static boolean histogram(Dataset<Row> out, String column, String title, Path png) {
    JavaDoubleRDD values = out.filter(functions.col(OutputColumns.ERROR).isNull())
        .select(functions.col(column).cast("double")).as(Encoders.DOUBLE()).javaRDD().mapToDouble(Double::doubleValue);
    if (values.isEmpty()) {
      return false;
    }
    Tuple2<double[], long[]> h = values.histogram(20);
    double[] edges = h._1();
    long[] counts = h._2();
    SimpleHistogramDataset ds = new SimpleHistogramDataset(column);
    ds.setAdjustForBinSize(false);
    for (int i = 0; i < counts.length; i++) {
      double lo = edges[i];
      double hi = edges[i + 1] > lo ? edges[i + 1] : lo + 1;
      SimpleHistogramBin bin = new SimpleHistogramBin(lo, hi, true, i == counts.length - 1);
      bin.setItemCount((int) Math.min(Integer.MAX_VALUE, counts[i]));
      ds.addBin(bin);
    }
    JFreeChart chart = ChartFactory.createHistogram(title, column, "rows", ds, PlotOrientation.VERTICAL, false, false, false);
    try {
      ChartUtils.saveChartAsPNG(png.toFile(), chart, 800, 450);
    } catch (IOException e) {
      throw new IllegalStateException("Cannot draw " + png + ": " + e.getMessage(), e);
    }
    return true;
  }
}
