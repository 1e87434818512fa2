"""System (b): PySpark with ``mlflow.pyfunc.spark_udf`` over the seed-style pyfunc wrapper.

    python -m genai_batch.bench.udf_runner --model PYFUNC_DIR --input PARQUET_DIR --output DIR \
        --new-tokens N --log-dir DIR [--master local[2]] [--repartition N]

The seed's way of batch scoring: a SparkSession, ``spark_udf(spark, model, result_type="string",
env_manager="local")``, ``df.withColumn("response", udf("prompt"))``, written to Parquet. Each
Python worker loads its own copy of the model (in every task) and generates one prompt at a
time. The model is a :class:`genai_batch.bench.timed_pyfunc.TimedPhi3Model` saved by
``genai_batch.bench.run``; its events go to ``--log-dir``. The last stdout line is JSON: the time
spark_udf took (it copies the model to a temporary folder first), the scoring time, rows and the
input's partitions (as Spark read them; one Python worker scores each).
"""
from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m genai_batch.bench.udf_runner")
    p.add_argument("--model", required=True, help="saved pyfunc model folder")
    p.add_argument("--input", required=True, help="Parquet folder with a 'prompt' column")
    p.add_argument("--output", required=True)
    p.add_argument("--new-tokens", type=int, required=True)
    p.add_argument("--log-dir", required=True)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--repartition", type=int, default=0,
                   help="spread the rows over this many partitions first (a careful user's df.repartition(cores)); "
                   "0 keeps the input's")
    args = p.parse_args(argv)

    import mlflow.pyfunc
    from pyspark.sql import SparkSession

    t0 = time.time()
    spark = (
        SparkSession.builder.master(args.master)
        .appName("genai-batch-bench-spark-udf")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    t1 = time.time()
    udf = mlflow.pyfunc.spark_udf(
        spark,
        args.model,
        result_type="string",
        env_manager="local",
        model_config={"max_new_tokens": args.new_tokens, "do_sample": False, "bench_log": args.log_dir},
    )
    t2 = time.time()
    df = spark.read.parquet(args.input)
    if args.repartition > 0:
        df = df.repartition(args.repartition)
    partitions = df.rdd.getNumPartitions()
    df.withColumn("response", udf("prompt")).write.mode("overwrite").parquet(args.output)
    t3 = time.time()
    rows = spark.read.parquet(args.output).count()
    spark.stop()
    print(json.dumps({
        "spark_start_s": t1 - t0,
        "spark_udf_s": t2 - t1,
        "score_s": t3 - t2,
        "rows": rows,
        "partitions": partitions,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
