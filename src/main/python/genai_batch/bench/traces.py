"""What tracing every row costs a job, against what the MLflow server itself needs to take the traces.

    jobs/benchmark.sh --workload traces [--rows 1000,10000] [--repeats 2] [--new-tokens 4] [--model tiny|DIR]

For each row count, the job runs as users run it (jobs/spark-submit.sh --master local[2], tracking on, a
local server from jobs/mlflow-server.sh: sqlite, one uvicorn worker) with --trace-sample-rate 0 and 1,
interleaved, --repeats times. Then the limit: the same number of spans, shaped as the job sends them
(the same attributes, 100 a request), posted to the same server's OTLP endpoint by a client that does
nothing else (bodies built before the clock starts). Whatever a job does, its traces cost at least that
server time, so the report gives the traced job's added wall time beside it: the issue's target (at most
10% added) is reachable only where the server ingests faster than the job scores.

Columns: wall time; trace export (the run's metric trace_export_s: reading the rows back and sending
them); the server's CPU seconds during the run (its process group, from /proc); the driver's peak RSS.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import requests
from mlflow.tracking import MlflowClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from genai_batch.bench import procwatch
from genai_batch.bench.run import ROOT, log, machine, machine_line, prompts, resolve_model, write_input
from genai_batch.bench.table import fmt, markdown, median, spread

BATCH = 100  # spans a request, as the job sends them (io.genaibatch.mlflow.TraceExporter.BATCH)
TARGET_ADDED = 0.10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="jobs/benchmark.sh --workload traces", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="1000,10000", help="row counts, comma-separated (default 1000,10000)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each rate per row count (default 2)")
    p.add_argument("--new-tokens", type=int, default=4, help="--max-tokens of the job (default 4)")
    p.add_argument("--model", default="tiny", help="tiny (default) or an onnxruntime-genai model folder")
    p.add_argument("--port", type=int, default=5077, help="the local MLflow server's port (default 5077)")
    return p.parse_args(argv)


def run_job(ctx: dict, rows: int, rate: float, tag: str) -> dict:
    """One job over the rows' input at the sample rate; its wall time, export time, server CPU, driver RSS."""
    work = tempfile.mkdtemp(prefix=f"{tag}-", dir=ctx["work"])
    experiment = f"bench-traces-{tag}"
    cmd = [os.path.join(ROOT, "jobs", "spark-submit.sh"), "--master", "local[2]", "--",
           "--model-uri", ctx["model_dir"], "--input", ctx["inputs"][rows], "--input-format", "parquet", "--id-column", "id",
           "--output", os.path.join(work, "out"), "--tracking-uri", ctx["uri"], "--experiment", experiment,
           "--max-tokens", str(ctx["new_tokens"]), "--do-sample", "false", "--trace-sample-rate", str(rate),
           "--cache-dir", os.path.join(ctx["work"], "cache")]
    cpu0 = procwatch.tree_cpu_s(ctx["server_pid"])
    with open(os.path.join(work, "stdout.txt"), "w") as so, open(os.path.join(work, "stderr.txt"), "w") as se:
        w = procwatch.run(cmd, cwd=ROOT, stdout=so, stderr=se, timeout=1800)
    if w.returncode != 0:
        raise SystemExit(f"the job ({tag}) exited {w.returncode}; see {work}/stderr.txt")
    client = MlflowClient(ctx["uri"])
    exp = client.get_experiment_by_name(experiment)
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    jvm = w.find("java", "SparkSubmit")
    return {"wall_s": w.wall_s, "export_s": run.data.metrics.get("trace_export_s"),
            "traces": run.data.metrics.get("traces_logged", 0), "server_cpu_s": procwatch.tree_cpu_s(ctx["server_pid"]) - cpu0,
            "driver_rss_mb": max(p.hwm_kb for p in jvm) / 1024 if jvm else None}


def _kv(key: str, value) -> KeyValue:
    a = AnyValue()
    if isinstance(value, dict):
        a.kvlist_value.CopyFrom(KeyValueList(values=[_kv(k, v) for k, v in value.items()]))
    elif isinstance(value, float):
        a.double_value = value
    elif isinstance(value, int):
        a.int_value = value
    else:
        a.string_value = str(value)
    return KeyValue(key=key, value=a)


def distinct_prompts(n: int) -> list[str]:
    """n prompts, no two alike (the job answers a repeated prompt once: repeats would make its scoring free)."""
    return [f"{p} number {i}" for i, p in enumerate(prompts(n))]


def otlp_bodies(texts: list[str], tag: str) -> list[bytes]:
    """The spans the job sends for these prompts (same attributes, one span a trace), BATCH a request."""
    bodies = []
    now = time.time_ns()
    for lo in range(0, len(texts), BATCH):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.append(_kv("service.name", "genai-batch"))
        spans = rs.scope_spans.add().spans
        for i in range(lo, min(lo + BATCH, len(texts))):
            ids = hashlib.sha256(f"{tag}\0{i}".encode()).digest()
            s = spans.add(trace_id=ids[:16], span_id=ids[16:24], name="generate",
                          start_time_unix_nano=now - 3_000_000, end_time_unix_nano=now)
            s.attributes.extend([
                _kv("mlflow.spanType", "LLM"), _kv("mlflow.spanInputs", {"prompt": texts[i]}),
                _kv("mlflow.spanOutputs", {"response": "an answer of a few words"}),
                _kv("mlflow.chat.tokenUsage", {"input_tokens": 12, "output_tokens": 4, "total_tokens": 16}),
                _kv("genai_batch.row_id", str(i)), _kv("genai_batch.latency_ms", 3.0),
                _kv("genai_batch.finish_reason", "length"), _kv("genai_batch.model_version", "bench")])
            s.status.code = Status.STATUS_CODE_OK
        bodies.append(req.SerializeToString())
    return bodies


def server_alone(ctx: dict, rows: int, tag: str) -> dict:
    """The limit: the server taking the same spans from a client that does nothing else."""
    client = MlflowClient(ctx["uri"])
    exp_id = client.create_experiment(f"bench-traces-{tag}")
    bodies = otlp_bodies(distinct_prompts(rows), tag)
    cpu0 = procwatch.tree_cpu_s(ctx["server_pid"])
    t0 = time.monotonic()
    with requests.Session() as http:
        for body in bodies:
            r = http.post(ctx["uri"] + "/v1/traces", data=body, timeout=600,
                          headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": exp_id})
            r.raise_for_status()
    return {"wall_s": time.monotonic() - t0, "server_cpu_s": procwatch.tree_cpu_s(ctx["server_pid"]) - cpu0, "traces": rows}


def start_server(ctx: dict) -> None:
    folder = os.path.join(ctx["work"], "mlflow")
    uri = subprocess.run([os.path.join(ROOT, "jobs", "mlflow-server.sh"), "start", folder, str(ctx["port"])],
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    pid_file = os.path.join(folder, "server.pid")
    if not os.path.isfile(pid_file):
        raise SystemExit(f"a server already answers at {uri}: stop it, or pass another --port")
    with open(pid_file) as f:
        ctx.update(uri=uri, server_dir=folder, server_pid=int(f.read().strip()))
    # A fresh server's first calls of each kind pay for their imports (seconds, in its CPU column): one traced
    # job and one OTLP request, not counted, warm it before any clock runs.
    log("warming the server: one traced job and one request, not counted")
    run_job(ctx, min(ctx["inputs"]), 1.0, "warm-up-job")
    server_alone(ctx, BATCH, "warm-up-otlp")


def report(ctx: dict, results: dict) -> str:
    lines = ["# Tracing every row: the job against the server's own ingest rate", "",
             machine_line(ctx), "",
             f"Model {ctx['model']}, --max-tokens {ctx['new_tokens']}, local[2], tracking on (MLflow "
             f"{ctx['mlflow']} server from jobs/mlflow-server.sh: sqlite, one worker, same machine); "
             f"median (min-max) of {ctx['repeats']} runs.", ""]
    table, ratios = [], []
    for rows, r in results.items():
        for name, runs in (("job, untraced (rate 0)", r["untraced"]), ("job, every row traced (rate 1)", r["traced"]),
                           ("server alone: the same spans, nothing else", r["alone"])):
            table.append([f"{rows:,}", name, spread(x["wall_s"] for x in runs),
                          spread(x.get("export_s") for x in runs), spread(x["server_cpu_s"] for x in runs),
                          spread((x.get("driver_rss_mb") for x in runs), 0)])
        untraced, traced = median(x["wall_s"] for x in r["untraced"]), median(x["wall_s"] for x in r["traced"])
        alone = median(x["wall_s"] for x in r["alone"])
        added = traced - untraced
        ratios.append([f"{rows:,}", fmt(traced / untraced, 2), fmt(added), fmt(alone),
                       fmt(alone / untraced, 2), fmt(median(x["export_s"] for x in r["traced"]) / alone, 2),
                       fmt(alone * 1000 / rows, 2), "yes" if added <= TARGET_ADDED * untraced else "no"])
    lines.append(markdown(["rows", "run", "wall s", "trace export s", "server CPU s", "driver peak RSS MB"], table))
    lines += ["", markdown(["rows", "traced/untraced wall", "added s", "server alone s",
                            "server alone / untraced wall (the least any client adds)", "job export / server alone",
                            "server ms a trace", f"target met (added <= {TARGET_ADDED:.0%})"], ratios), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import mlflow

    label, model_dir = resolve_model(args.model)
    ctx = {"machine": machine(), "model": label, "model_dir": model_dir, "new_tokens": args.new_tokens,
           "repeats": args.repeats, "port": args.port, "mlflow": mlflow.__version__,
           "work": tempfile.mkdtemp(prefix="genai-batch-bench-traces-")}
    counts = [int(x) for x in args.rows.split(",")]
    ctx["inputs"] = {n: write_input(os.path.join(ctx["work"], f"input-{n}"), distinct_prompts(n), 2) for n in counts}
    results: dict[int, dict] = {}
    try:
        start_server(ctx)
        for n in counts:
            r = results[n] = {"untraced": [], "traced": [], "alone": []}
            for k in range(args.repeats):
                for rate, key in ((0.0, "untraced"), (1.0, "traced")):
                    log(f"{n} rows, trace sample rate {rate}, run {k + 1}/{args.repeats}")
                    r[key].append(run_job(ctx, n, rate, f"{n}-{key}-{k}"))
                log(f"{n} spans posted by a client alone, run {k + 1}/{args.repeats}")
                r["alone"].append(server_alone(ctx, n, f"{n}-alone-{k}"))
    finally:
        subprocess.run([os.path.join(ROOT, "jobs", "mlflow-server.sh"), "stop", os.path.join(ctx["work"], "mlflow")],
                       check=False)
    ctx["loadavg_end"] = os.getloadavg()
    text = report(ctx, results)
    print(text)
    with open(os.path.join(ctx["work"], "results.json"), "w") as f:
        json.dump({"ctx": {k: v for k, v in ctx.items() if k != "inputs"}, "results": results}, f, indent=1, default=str)
    log(f"results kept in {ctx['work']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
