// Databricks notebook source
// MAGIC %md
// MAGIC # Score prompts with genai-batch (Scala)
// MAGIC
// MAGIC Scores a small DataFrame of Phi-3 chat-markup prompts with a local LLM, without Python in the hot
// MAGIC path, two ways:
// MAGIC
// MAGIC 1. the Spark ML Transformer `io.genaibatch.spark.GenAiTransformer` (batched: several prompts per
// MAGIC    native generation call), which adds the answer and its token usage to every row;
// MAGIC 2. the SQL function `genai_generate(prompt [, options])` registered by
// MAGIC    `io.genaibatch.spark.GenAiFunctions` (one prompt per call).
// MAGIC
// MAGIC It ends with the checks a user would make: one output row per input row, the empty prompt came
// MAGIC back as an error row (the others were still scored), and the token counts add up.
// MAGIC
// MAGIC | setting | where it comes from |
// MAGIC | --- | --- |
// MAGIC | model | env `GENAI_BATCH_MODEL_URI`: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/...`, or a model folder (`dbfs:/...`, `/Volumes/...`, a local path). Default: the repository's tiny random-weights Phi-3 model `src/test/resources/models/tiny-phi3` (its answers are gibberish: that is expected) |
// MAGIC | MLflow tracking server | env `MLFLOW_TRACKING_URI`, when set (needed for `models:/` and `runs:/` URIs) |
// MAGIC
// MAGIC `notebooks/package_phi3_model.ipynb` packages and registers a model as `models:/phi3-mini-onnx@champion`.
// MAGIC
// MAGIC ## Where it runs
// MAGIC
// MAGIC The notebook comes in two files with the same cells: `notebooks/score_prompts_scala.scala`
// MAGIC (Databricks' notebook source format, the one to edit) and `notebooks/score_prompts_scala.ipynb`
// MAGIC (for Jupyter, written from it by `src/test/notebooks-runner/databricks_to_ipynb.py`; the test
// MAGIC suite fails when it is out of date).
// MAGIC
// MAGIC * **Databricks**: *Workspace > Import* either file (or sync the repository with Git folders).
// MAGIC   Attach it to a classic cluster (dedicated access mode) with the genai-batch jar of its Spark line installed (`genai-batch-spark4_2.13.jar` for Spark 4.x, `genai-batch-spark3.5_2.12.jar` for 3.5)
// MAGIC   as a cluster library and the `onnxruntime-genai==0.12.0` wheel on every node (see the README's
// MAGIC   *Native runtime*). Set `GENAI_BATCH_MODEL_URI` (and `MLFLOW_TRACKING_URI` outside Databricks'
// MAGIC   own MLflow) in the cluster's environment variables, or edit the first code cell.
// MAGIC * **Jupyter** opens the `.ipynb` with a Scala 2.13 kernel such as Almond, whose class path holds
// MAGIC   Spark 4.x and `target/genai-batch-spark4_2.13.jar` (or Spark 3.5 and `target/genai-batch-spark3.5_2.12.jar`) and whose JVM has Spark's `--add-opens` flags (pom.xml
// MAGIC   property `spark.java.opts`). Start Jupyter from the repository root or set
// MAGIC   `GENAI_BATCH_MODEL_URI`. Without a running Spark session the first code cell starts a
// MAGIC   `local[2]` one.
// MAGIC * **spark-shell**, from the repository root. spark-shell 4.0.x ignores `-i`/`-I` (its Scala 2.13
// MAGIC   REPL drops them: SPARK-52587), so paste the file, as the test suite does (the file also runs
// MAGIC   line by line, with `:load` or with `-i` where spark-shell honours it):
// MAGIC
// MAGIC   ```bash
// MAGIC   export SPARK_HOME=$PWD/.venv/lib/python3.11/site-packages/pyspark
// MAGIC   echo ':paste notebooks/score_prompts_scala.scala' | \
// MAGIC     $SPARK_HOME/bin/spark-shell --master 'local[2]' --jars target/genai-batch-spark4_2.13.jar   # Spark 3.5: target/genai-batch-spark3.5_2.12.jar
// MAGIC   ```

// COMMAND ----------

import io.genaibatch.spark.{GenAiFunctions, GenAiTransformer}
import org.apache.spark.sql.{DataFrame, Row, SparkSession}
import org.apache.spark.sql.functions.sum

// Databricks and spark-shell already have a session; anywhere else, start a local one.
val session: SparkSession = SparkSession.getActiveSession.orElse(SparkSession.getDefaultSession).getOrElse(
  SparkSession.builder().master("local[2]").appName("genai-batch scala notebook").getOrCreate())
import session.implicits._

val modelUri: String = sys.env.getOrElse("GENAI_BATCH_MODEL_URI",
  new java.io.File("src/test/resources/models/tiny-phi3").getAbsolutePath)
val trackingUri: Option[String] = sys.env.get("MLFLOW_TRACKING_URI").filter(_.nonEmpty)
val maxNewTokens: Int = 16

println(s"Spark ${session.version}")
println(s"model URI:    $modelUri")
println(s"tracking URI: ${trackingUri.getOrElse("(none: MLFLOW_TRACKING_URI is not set)")}")

// COMMAND ----------

// MAGIC %md
// MAGIC ## Prompts
// MAGIC
// MAGIC Phi-3's chat markup: `<|system|>` (optional), `<|user|>`, each turn closed by `<|end|>`, and
// MAGIC `<|assistant|>` to start the answer. Row 5 is empty on purpose: an empty, null or over-long prompt
// MAGIC becomes an error row, and the rest of its batch is still scored.

// COMMAND ----------

def phi3(question: String, system: String = ""): String =
  (if (system.isEmpty) "" else s"<|system|>\n$system<|end|>\n") + s"<|user|>\n$question<|end|>\n<|assistant|>\n"

val prompts: DataFrame = Seq(
  (1, phi3("What is Apache Spark?")),
  (2, phi3("Name three uses of MLflow.")),
  (3, phi3("What is ONNX?", system = "You answer in one sentence.")),
  (4, phi3("Translate 'good morning' into French.")),
  (5, "")
).toDF("id", "prompt")

val promptCount: Long = prompts.count()
println(s"$promptCount prompts")

// COMMAND ----------

// MAGIC %md
// MAGIC ## 1. The Transformer
// MAGIC
// MAGIC The model is resolved, fetched and checked on the driver when `transform` is called (a bad URI or
// MAGIC a missing column fails here, before any task starts); executors load it once per JVM. Scoring
// MAGIC runs when an action needs the rows, so the result is cached: every action on an uncached result
// MAGIC would score the prompts again.

// COMMAND ----------

val transformer: GenAiTransformer = (new GenAiTransformer()
  .setModelUri(modelUri)
  .setInputCol("prompt")
  .setOutputCol("answer")
  .setMaxNewTokens(maxNewTokens)
  .setDoSample(false)
  .setBatchSize(4)
  .setChat(false))
trackingUri.foreach(uri => transformer.setTrackingUri(uri))

val scored: DataFrame = transformer.transform(prompts).cache()
scored.printSchema()

// COMMAND ----------

// The answers with their token usage (on Databricks, display(scored) renders the same as a table).
(scored
  .select("id", "answer", "finish_reason", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "error")
  .orderBy("id")
  .show(numRows = 20, truncate = 40))

val firstRow: Row = scored.select("model_uri", "model_version", "run_id").head()
println(s"model_uri=${firstRow.getString(0)} model_version=${firstRow.getString(1)} run_id=${firstRow.getString(2)}")

// COMMAND ----------

// MAGIC %md
// MAGIC ## Total tokens
// MAGIC
// MAGIC `completion_tokens` counts the stop token; `total_tokens` = `prompt_tokens` + `completion_tokens`.

// COMMAND ----------

val totals: Row = scored.agg(sum("prompt_tokens"), sum("completion_tokens"), sum("total_tokens")).head()
val (promptTokens, completionTokens, totalTokens) = (totals.getLong(0), totals.getLong(1), totals.getLong(2))
println(s"total tokens: $totalTokens ($promptTokens prompt + $completionTokens completion) for $promptCount prompts")

// COMMAND ----------

// MAGIC %md
// MAGIC ## 2. The SQL function
// MAGIC
// MAGIC `GenAiFunctions.register` resolves and checks the model now, then registers
// MAGIC `genai_generate(prompt STRING [, options MAP<STRING, STRING>])`, which returns a struct
// MAGIC `<response, finish_reason, prompt_tokens, completion_tokens, total_tokens, error, responses>`. The options
// MAGIC map takes the search options by name (`max_new_tokens`, `temperature`, `top_p`, `top_k`,
// MAGIC `do_sample`, ...); without it the model's own defaults apply. On Databricks the same query runs in
// MAGIC a `%sql` cell once the function is registered.

// COMMAND ----------

GenAiFunctions.register(session, modelUri, trackingUri.orNull)
prompts.createOrReplaceTempView("notebook_prompts")

val viaSql: DataFrame = session.sql(
  s"""SELECT id, g.response AS answer, g.finish_reason, g.prompt_tokens, g.completion_tokens, g.total_tokens, g.error
     |FROM (SELECT id, genai_generate(prompt, map('max_new_tokens', '$maxNewTokens', 'do_sample', 'false')) AS g
     |      FROM notebook_prompts)
     |ORDER BY id""".stripMargin).cache()
viaSql.show(numRows = 20, truncate = 40)

// COMMAND ----------

// MAGIC %md
// MAGIC ## Checks
// MAGIC
// MAGIC What a user checks before trusting a run; the cell fails (and *Run all* stops) if one does not hold.

// COMMAND ----------

val checked: Boolean = {
  val rows: Map[Int, Row] = scored.collect().map(r => r.getAs[Int]("id") -> r).toMap
  assert(rows.size == promptCount, s"${rows.size} rows out for $promptCount prompts in")

  val empty = rows(5)
  assert(empty.getAs[String]("error") != null, s"the empty prompt has no error: $empty")
  assert(empty.getAs[String]("answer") == null && empty.getAs[String]("finish_reason") == "error", empty.toString)

  for ((id, r) <- rows if id != 5) {
    assert(r.getAs[String]("error") == null, s"prompt $id failed: ${r.getAs[String]("error")}")
    assert(r.getAs[String]("answer") != null, s"prompt $id has no answer")
    val completion = r.getAs[Int]("completion_tokens")
    assert(completion >= 1 && completion <= maxNewTokens, s"prompt $id: $completion completion tokens")
  }
  for (r <- rows.values) {
    assert(r.getAs[Int]("total_tokens") == r.getAs[Int]("prompt_tokens") + r.getAs[Int]("completion_tokens"),
      s"tokens do not add up: $r")
  }
  assert(totalTokens == promptTokens + completionTokens, s"$totalTokens != $promptTokens + $completionTokens")

  val sqlRows: Map[Int, Row] = viaSql.collect().map(r => r.getAs[Int]("id") -> r).toMap
  assert(sqlRows.size == promptCount, s"SQL: ${sqlRows.size} rows out for $promptCount prompts in")
  assert(sqlRows(5).getAs[String]("error") != null, "SQL: the empty prompt has no error")
  for ((id, r) <- sqlRows if id != 5) {
    assert(r.getAs[String]("error") == null && r.getAs[String]("answer") != null, s"SQL: prompt $id: $r")
    assert(r.getAs[Int]("completion_tokens") <= maxNewTokens, s"SQL: prompt $id: $r")
    assert(r.getAs[Int]("total_tokens") == r.getAs[Int]("prompt_tokens") + r.getAs[Int]("completion_tokens"),
      s"SQL: tokens do not add up: $r")
  }
  println(s"NOTEBOOK OK: $promptCount prompts scored, $totalTokens tokens")
  true
}

// COMMAND ----------

// The test suite sets GENAI_BATCH_NOTEBOOK_TEST=1 to end spark-shell here; nothing else does (never
// set it on Databricks: System.exit would end the cluster's driver).
if (checked && sys.env.get("GENAI_BATCH_NOTEBOOK_TEST").contains("1")) System.exit(0)
