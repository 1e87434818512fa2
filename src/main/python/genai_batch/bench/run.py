"""genai-batch against the seed's way and against the engine alone, on the same prompts, model,
search options and cores; run as ``jobs/benchmark.sh`` (``python -m genai_batch.bench``).

Systems, each a fresh process per run:

(a) genai-batch: ``jobs/spark-submit.sh --master local[C]`` with ``--batch-size B`` and
    ``--no-tracking`` (one native thread per task, as ``spark.task.cpus`` = 1 gives),
(b) PySpark ``mlflow.pyfunc.spark_udf`` over the seed-style pyfunc wrapper
    (:mod:`genai_batch.bench.udf_runner`; batch 1, one native thread per Python worker),
(c) the engine alone, no Spark (``io.genaibatch.engine.EngineBenchmark``): C threads, each
    scoring one input slice in batches of B with one native thread, as (a)'s tasks do.

The input is C Parquet files (C partitions) of ``--rows`` prompts without a final full stop, so
every row generates exactly ``--new-tokens`` tokens with greedy search. Throughput is counted
over the generation window (first batch start to last batch end, excluding process start and
model load) and end to end (process start to exit). Then, unless turned off: (a) at each
``--batch-sizes`` (batch scaling, with every partition holding max(B, 4) prompts so every batch
is full), (a) at each ``--memory-partitions`` (peak RSS as partitions grow), the machine's memory
bandwidth and the bytes of weights each decoded token reads. Prints the tables and writes them
(report.md) with every run's numbers (results.json) to the work folder.
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import warnings

import pyarrow as pa
import pyarrow.parquet as pq

from genai_batch.bench import procwatch, weights
from genai_batch.bench.table import fmt, markdown, median, spread

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
PY_SRC = os.path.join(ROOT, "src", "main", "python")
TINY = os.path.join(ROOT, "src", "test", "resources", "models", "tiny-phi3")
JAR = os.path.join(ROOT, "target", "genai-batch.jar")
SCALING_MIN_ROWS_PER_PARTITION = 4
RUN_TIMEOUT_S = 1800

LOADED_RE = re.compile(r"Loaded model .* in (\d+) ms \(fetch (\d+) ms\)")
WROTE_RE = re.compile(r"genai-batch: wrote (\d+) rows .* in ([0-9.]+) s")

# Short prompts, so prefill stays small next to generation: with the fixture tokenizer (the same
# for every size) each of the first 40 is 6 tokens (no BOS is added), the next 30 are 7.
WORDS = ["dog", "cat", "sea", "sun", "train", "star", "time", "world", "love", "life"]
TEMPLATES = ["Write a story about the {}", "Write a note about the {}", "Write a list about the {}",
             "Write a joke about the {}", "Write a song about the {}", "Write a poem about the {}",
             "Tell me about the {}"]


def log(msg: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def prompts(n: int) -> list[str]:
    """n prompts of similar length (cycling after 70), none ending in a full stop (the random
    models stop right after '.')."""
    every = [t.format(w) for t in TEMPLATES for w in WORDS]
    out = [every[i % len(every)] for i in range(n)]
    assert not any("." in p for p in out)
    return out


# --------------------------------------------------------------------------------------------------
# Setup: model, inputs, the saved pyfunc model of (b)
# --------------------------------------------------------------------------------------------------

def resolve_model(spec: str) -> tuple[str, str]:
    """(label, folder); phi3-mini is generated into models/phi3-mini (about 80 s) when missing."""
    if spec == "tiny":
        return "tiny", TINY
    if spec == "phi3-mini":
        base = os.environ.get("GENAI_BATCH_BENCH_MODELS", os.path.join(ROOT, "models"))
        folder = os.path.join(base, "phi3-mini")
        if not os.path.isfile(os.path.join(folder, "genai_config.json")):
            log(f"generating the Phi-3-mini-shaped random int4 model into {folder} (about 80 s, 2.7 GB)")
            subprocess.run([VENV_PY, os.path.join(PY_SRC, "genai_batch", "make_tiny_phi3.py"), "--out", folder,
                            "--size", "phi3-mini"], check=True)
        return "phi3-mini", folder
    folder = os.path.abspath(spec)
    if not os.path.isfile(os.path.join(folder, "genai_config.json")):
        raise SystemExit(f"--model {spec}: no genai_config.json there; pass tiny, phi3-mini or an "
                         "onnxruntime-genai model folder")
    return os.path.basename(folder.rstrip("/")), folder


def write_input(folder: str, rows: list[str], partitions: int) -> str:
    """One Parquet file per partition (contiguous slices); Spark reads each small file as one split."""
    os.makedirs(folder, exist_ok=True)
    n = len(rows)
    for k in range(partitions):
        lo, hi = k * n // partitions, (k + 1) * n // partitions
        table = pa.table({"id": pa.array(range(lo, hi), pa.int64()), "prompt": pa.array(rows[lo:hi], pa.string())})
        pq.write_table(table, os.path.join(folder, f"part-{k:05d}.parquet"))
    return folder


def one_thread_model(model_dir: str, dest: str) -> str:
    """model_dir's files as symlinks, with genai_config.json asking for 1 intra-op thread (as (a)'s tasks
    get with spark.task.cpus = 1)."""
    os.makedirs(dest, exist_ok=True)
    for f in os.listdir(model_dir):
        if f != "genai_config.json" and not os.path.lexists(os.path.join(dest, f)):
            os.symlink(os.path.join(model_dir, f), os.path.join(dest, f))
    with open(os.path.join(model_dir, "genai_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["model"]["decoder"].setdefault("session_options", {})["intra_op_num_threads"] = 1
    with open(os.path.join(dest, "genai_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=4)
    return dest


def saved_pyfunc(model_dir: str, cache_root: str, new_tokens: int) -> str:
    """The seed-style wrapper (timed) saved as a local MLflow model, reused across runs of this command."""
    code = [os.path.join(PY_SRC, "genai_batch", f) for f in
            ("__init__.py", "phi3_pyfunc.py", "bench/__init__.py", "bench/timed_pyfunc.py")]
    h = hashlib.sha256(os.path.realpath(model_dir).encode())
    for f in code + [os.path.join(model_dir, "genai_config.json")]:
        with open(f, "rb") as fh:
            h.update(fh.read())
    h.update(str(os.path.getmtime(os.path.join(model_dir, "genai_config.json"))).encode())
    dest = os.path.join(cache_root, f"{os.path.basename(model_dir.rstrip('/'))}-{h.hexdigest()[:12]}")
    if os.path.isfile(os.path.join(dest, "MLmodel")):
        return dest
    import mlflow.pyfunc

    from genai_batch.phi3_pyfunc import ARTIFACT_KEY

    log(f"saving the seed-style pyfunc model to {dest} (copies the model once)")
    # MLflow would otherwise make ./mlruns in the working folder (the repository).
    mlflow.set_tracking_uri("file:" + os.path.join(cache_root, "mlruns"))
    staging = dest + ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    pkg = os.path.join(staging, "code", "genai_batch")
    os.makedirs(os.path.join(pkg, "bench"))
    for f in code:
        shutil.copy2(f, os.path.join(pkg, os.path.relpath(f, os.path.join(PY_SRC, "genai_batch"))))
    onnx_dir = one_thread_model(model_dir, os.path.join(staging, "phi3-mini-onnx"))
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    with warnings.catch_warnings():  # no input example and no type hints: as the seed's wrapper
        warnings.simplefilter("ignore")
        from genai_batch.bench.timed_pyfunc import TimedPhi3Model

        _save(dest, TimedPhi3Model(), ARTIFACT_KEY, onnx_dir, pkg, new_tokens)
    shutil.rmtree(staging, ignore_errors=True)
    return dest


def _save(dest: str, python_model, artifact_key: str, onnx_dir: str, pkg: str, new_tokens: int) -> None:
    import mlflow.pyfunc

    from genai_batch.log_model import pinned_requirements, prompt_signature

    mlflow.pyfunc.save_model(
        dest,
        python_model=python_model,
        artifacts={artifact_key: onnx_dir},
        code_paths=[pkg],
        signature=prompt_signature(),
        model_config={"max_new_tokens": new_tokens, "do_sample": False, "bench_log": ""},
        pip_requirements=pinned_requirements(),
    )


def spark_jars() -> str:
    import pyspark

    return os.path.join(os.path.dirname(pyspark.__file__), "jars")


def engine_classpath() -> str:
    jars = spark_jars()
    names = ["jackson-core-*.jar", "jackson-databind-*.jar", "jackson-annotations-*.jar", "slf4j-api-*.jar",
             "log4j-slf4j2-impl-*.jar", "log4j-api-*.jar", "log4j-core-*.jar"]
    found = [sorted(glob.glob(os.path.join(jars, n)))[0] for n in names]
    return ":".join([JAR] + found)


# --------------------------------------------------------------------------------------------------
# The three systems
# --------------------------------------------------------------------------------------------------

def _files(run_dir: str):
    os.makedirs(run_dir, exist_ok=True)
    return open(os.path.join(run_dir, "stdout.txt"), "w"), open(os.path.join(run_dir, "stderr.txt"), "w")


def _read(run_dir: str, name: str) -> str:
    with open(os.path.join(run_dir, name), encoding="utf-8", errors="replace") as f:
        return f.read()


def _fail(system: str, run_dir: str, w: procwatch.Watched) -> None:
    tail = _read(run_dir, "stderr.txt")[-3000:]
    raise SystemExit(f"{system} failed with exit code {w.returncode}; see {run_dir}/stderr.txt:\n{tail}")


def run_job(ctx: dict, input_dir: str, batch: int, run_dir: str) -> dict:
    """(a): genai-batch under spark-submit."""
    out_dir = os.path.join(run_dir, "out")
    cmd = [os.path.join(ROOT, "jobs", "spark-submit.sh"), "--master", f"local[{ctx['cores']}]", "--",
           "--model-uri", ctx["model_dir"], "--input", input_dir, "--input-format", "parquet", "--output", out_dir,
           "--no-tracking", "--max-tokens", str(ctx["new_tokens"]), "--do-sample", "false",
           "--batch-size", str(batch), "--cache-dir", os.path.join(ctx["work"], "cache")]
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    so, se = _files(run_dir)
    with so, se:
        w = procwatch.run(cmd, env=env, cwd=ROOT, stdout=so, stderr=se, timeout=RUN_TIMEOUT_S)
    if w.returncode != 0:
        _fail("genai-batch (a)", run_dir, w)
    stderr, stdout = _read(run_dir, "stderr.txt"), _read(run_dir, "stdout.txt")
    loads = LOADED_RE.findall(stderr)
    wrote = WROTE_RE.search(stdout)
    tbl = pq.read_table(out_dir, columns=["completion_tokens", "latency_ms", "scored_at", "error"])
    unit = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[tbl.schema.field("scored_at").type.unit]
    t = tbl.drop_columns(["scored_at"]).to_pandas()
    end = tbl.column("scored_at").cast(pa.int64()).to_pandas() / unit
    start = end - t["latency_ms"] / 1e3
    gen_cpu, others = w.window(float(start.min()), float(end.max()))
    jvm = w.find("java", "SparkSubmit")
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "rows": int(len(t)),
        "errors": int(t["error"].notna().sum()),
        "generated_tokens": int(t["completion_tokens"].sum()),
        # scored_at has millisecond resolution; a batch's start is its slowest row's end minus its latency.
        "gen_s": float(end.max() - start.min()),
        "gen_cpu_s": gen_cpu,
        "gen_others_cores": others,
        "wall_s": w.wall_s,
        "cpu_s": w.cpu_s,
        "others_cores": w.others_cores,
        "job_reported_s": float(wrote.group(2)) if wrote else None,
        "load_ms": float(loads[0][0]) if loads else None,
        "loads": len(loads),
        "holder_rss_mb": max(p.hwm_kb for p in jvm) / 1024 if jvm else None,
        "tree_rss_mb": max(w.tree_peak_rss_kb, *(p.hwm_kb for p in jvm)) / 1024,
    }


def run_udf(ctx: dict, input_dir: str, run_dir: str) -> dict:
    """(b): PySpark spark_udf over the seed-style pyfunc wrapper."""
    log_dir = os.path.join(run_dir, "events")
    tmp = os.path.join(run_dir, "tmp")
    os.makedirs(log_dir)
    os.makedirs(tmp)
    cmd = [VENV_PY, "-m", "genai_batch.bench.udf_runner", "--model", ctx["pyfunc"], "--input", input_dir,
           "--output", os.path.join(run_dir, "out"), "--new-tokens", str(ctx["new_tokens"]), "--log-dir", log_dir,
           "--master", f"local[{ctx['cores']}]"]
    env = dict(os.environ)
    env.update(PYTHONPATH=PY_SRC, PYSPARK_PYTHON=VENV_PY, PYSPARK_DRIVER_PYTHON=VENV_PY, TMPDIR=tmp,
               MLFLOW_TRACKING_URI="file:" + os.path.join(run_dir, "mlruns"))
    so, se = _files(run_dir)
    with so, se:
        w = procwatch.run(cmd, env=env, cwd=ROOT, stdout=so, stderr=se, timeout=RUN_TIMEOUT_S)
    if w.returncode != 0:
        _fail("spark_udf (b)", run_dir, w)
    summary = json.loads(_read(run_dir, "stdout.txt").strip().splitlines()[-1])
    events = []
    for f in glob.glob(os.path.join(log_dir, "*.jsonl")):
        with open(f, encoding="utf-8") as fh:
            events.extend(json.loads(line) for line in fh if line.strip())
    gens = [e for e in events if e["event"] == "gen"]
    loads = [e for e in events if e["event"] == "load"]
    holders = {e["pid"] for e in loads}
    hwm = {}
    for e in events:
        if e["event"] == "predict":
            hwm[e["pid"]] = max(hwm.get(e["pid"], 0), e["vmhwm_kb"])
    for pid in holders:
        if pid in w.procs:
            hwm[pid] = max(hwm.get(pid, 0), w.procs[pid].hwm_kb)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(os.path.join(run_dir, "out"), ignore_errors=True)
    g0, g1 = min(e["start"] for e in gens), max(e["end"] for e in gens)
    gen_cpu, others = w.window(g0, g1)
    return {
        "rows": len(gens),
        "output_rows": summary["rows"],
        "errors": 0,
        "generated_tokens": sum(e["tokens"] for e in gens),
        "gen_s": g1 - g0,
        "gen_cpu_s": gen_cpu,
        "gen_others_cores": others,
        "wall_s": w.wall_s,
        "cpu_s": w.cpu_s,
        "others_cores": w.others_cores,
        "spark_udf_s": summary["spark_udf_s"],
        "load_ms": median(e["load_ms"] for e in loads),
        "loads": len(loads),
        "holder_rss_mb": sum(hwm.get(p, 0) for p in holders) / 1024,
        "holder_count": len(holders),
        "jvm_rss_mb": max((p.hwm_kb for p in w.find("java")), default=0) / 1024,
        "tree_rss_mb": max(w.tree_peak_rss_kb, *hwm.values()) / 1024,
    }


def run_engine(ctx: dict, prompts_file: str, batch: int, run_dir: str) -> dict:
    """(c): the engine alone, from Java."""
    cmd = ["java", "-Xmx1g", "-cp", ctx["classpath"], f"-Dlog4j2.configurationFile={ROOT}/conf/log4j2.properties",
           "io.genaibatch.engine.EngineBenchmark", "--model", ctx["model_dir"], "--prompts", prompts_file,
           "--new-tokens", str(ctx["new_tokens"]), "--batch-size", str(batch), "--workers", str(ctx["cores"]),
           "--threads", "1"]
    so, se = _files(run_dir)
    with so, se:
        w = procwatch.run(cmd, cwd=ROOT, stdout=so, stderr=se, timeout=RUN_TIMEOUT_S)
    if w.returncode != 0:
        _fail("engine (c)", run_dir, w)
    r = json.loads(_read(run_dir, "stdout.txt").strip().splitlines()[-1])
    jvm = w.find("java", "EngineBenchmark")
    gen_cpu, others = w.window(r["gen_start_ms"] / 1e3, r["gen_end_ms"] / 1e3)
    return {
        "rows": r["rows"],
        "errors": r["errors"],
        "generated_tokens": r["generated_tokens"],
        "gen_s": r["gen_seconds"],
        "gen_cpu_s": gen_cpu,
        "gen_others_cores": others,
        "wall_s": w.wall_s,
        "cpu_s": w.cpu_s,
        "others_cores": w.others_cores,
        "load_ms": r["load_ms"],
        "loads": 1,
        "holder_rss_mb": max([r["peak_rss_kb"]] + [p.hwm_kb for p in jvm]) / 1024,
        "tree_rss_mb": max(w.tree_peak_rss_kb, r["peak_rss_kb"]) / 1024,
    }


def quiet(ctx: dict) -> dict:
    """Waits (up to --quiet-wait seconds) for other work on the machine to calm down."""
    if ctx["quiet_wait"] <= 0:
        return {"waited_s": 0.0, "busy_before": None}
    waited, busy = procwatch.wait_quiet(ctx["quiet_wait"])
    if waited > 3:
        log(f"waited {waited:.0f} s for a quieter machine; {busy:.2f} CPUs busy before the run")
    return {"waited_s": waited, "busy_before": busy}


def rates(r: dict) -> dict:
    r["rows_per_s"] = r["rows"] / r["gen_s"] if r["gen_s"] > 0 else float("nan")
    r["tok_per_s"] = r["generated_tokens"] / r["gen_s"] if r["gen_s"] > 0 else float("nan")
    r["e2e_tok_per_s"] = r["generated_tokens"] / r["wall_s"]
    r["tok_per_cpu_s"] = r["generated_tokens"] / r["gen_cpu_s"] if r.get("gen_cpu_s", 0) > 0 else float("nan")
    return r


# --------------------------------------------------------------------------------------------------
# Machine facts
# --------------------------------------------------------------------------------------------------

def machine() -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "java": java[0] if java else "?",
        "python": platform.python_version(),
        "nice": os.nice(0),
        "loadavg_start": os.getloadavg(),
    }


def bandwidth(cores: int, before: dict | None = None) -> dict:
    """Best of 10 passes per process count; with `before`, the better of both measurements (other work
    on a shared machine only ever lowers it)."""
    out = subprocess.run([VENV_PY, "-m", "genai_batch.bench.membw", "--procs", str(cores), "--repeats", "10"],
                         check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": PY_SRC})
    now = json.loads(out.stdout.strip().splitlines()[-1])
    if before:
        for k, v in now.items():
            for f in ("read_gbps", "copy_gbps"):
                v[f] = max(v[f], before[k][f])
    return now


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------

def _col(runs: list[dict], key: str, digits: int = 1) -> str:
    return spread((r.get(key) for r in runs), digits)


def report(ctx: dict, results: dict) -> str:
    m, cores, n_tok = ctx["machine"], ctx["cores"], ctx["new_tokens"]
    lines = [
        f"## genai-batch benchmark: model {ctx['model_label']} ({ctx['model_dir']})",
        "",
        f"{ctx['rows']} prompts, greedy, {n_tok} new tokens each, {cores} cores (local[{cores}] / {cores} threads, "
        f"1 native thread each); {ctx['repeats']} run(s) per system, median (min-max); "
        f"started {ctx['started']}, took {ctx['took_s']:.0f} s.",
        f"Machine: {m['cores']} cores, {m['cpu']}, {m['memory_gib']} GiB; {m['java']}; nice {m['nice']}; "
        f"load average at start {m['loadavg_start'][0]:.2f}, at end {ctx['loadavg_end'][0]:.2f} "
        "(a shared machine: other work may have run alongside).",
        "",
    ]
    names = {
        "a": f"(a) genai-batch, spark-submit local[{cores}], batch {ctx['batch']}",
        "b": f"(b) PySpark spark_udf + seed pyfunc, batch 1",
        "c": f"(c) engine alone (Java), {cores} threads, batch {ctx['batch']}",
    }
    header = ["system", "rows/s", "gen tok/s", "gen tok per CPU-s", "end-to-end tok/s", "wall s", "model load ms",
              "loads", "peak RSS MB (model process)", "peak RSS MB (all processes)", "other work, CPUs"]
    rows = []
    for key in ("a", "b", "c"):
        runs = results["main"].get(key, [])
        if not runs:
            continue
        holder = _col(runs, "holder_rss_mb", 0)
        if key == "b":
            holder += f" ({runs[0].get('holder_count', '?')} workers)"
        rows.append([names[key], _col(runs, "rows_per_s", 2), _col(runs, "tok_per_s"), _col(runs, "tok_per_cpu_s", 2),
                     _col(runs, "e2e_tok_per_s"), _col(runs, "wall_s"), _col(runs, "load_ms", 0),
                     _col(runs, "loads", 0), holder, _col(runs, "tree_rss_mb", 0), _col(runs, "gen_others_cores", 2)])
    lines += [markdown(header, rows), "",
              "gen tok/s: generated tokens over the generation window (first batch start to last batch end; no "
              "process start, no model load). gen tok per CPU-s: the same tokens over the CPU seconds all of the "
              "system's processes used in that window (less sensitive to other work on the machine). End to end: "
              "over the process's wall time. Other work: average CPUs busy outside the benchmark during the window.",
              ""]
    med = {k: {f: median(r[f] for r in v) for f in ("tok_per_s", "e2e_tok_per_s", "tok_per_cpu_s")}
           for k, v in results["main"].items() if v}
    checks = []
    if "a" in med and "b" in med:
        ab = med["a"]["tok_per_s"] / med["b"]["tok_per_s"]
        ab_e2e = med["a"]["e2e_tok_per_s"] / med["b"]["e2e_tok_per_s"]
        ab_cpu = med["a"]["tok_per_cpu_s"] / med["b"]["tok_per_cpu_s"]
        lines.append(f"a/b: {ab:.2f}x generated tokens/s ({ab_e2e:.2f}x end to end, {fmt(ab_cpu, 2)}x per CPU-second)")
        checks.append(f"(a) >= 2x (b) generated tokens/s: {'met' if ab >= 2 else 'MISSED'} ({ab:.2f}x)")
    if "a" in med and "c" in med:
        ac = med["a"]["tok_per_s"] / med["c"]["tok_per_s"]
        ac_e2e = med["a"]["e2e_tok_per_s"] / med["c"]["e2e_tok_per_s"]
        ac_cpu = med["a"]["tok_per_cpu_s"] / med["c"]["tok_per_cpu_s"]
        lines.append(f"a/c: {ac:.2f} generated tokens/s ({ac_e2e:.2f} end to end, {fmt(ac_cpu, 2)} per CPU-second)")
        checks.append(f"(a) within 5% of (c) at batch {ctx['batch']}: {'met' if ac >= 0.95 else 'MISSED'} "
                      f"({(ac - 1) * 100:+.1f}%)")
    tok_counts = {k: sorted({r["generated_tokens"] for r in v}) for k, v in results["main"].items() if v}
    want = ctx["rows"] * n_tok
    if any(c != [want] for c in tok_counts.values()):
        lines.append(f"WARNING: generated tokens differ from rows x new tokens = {want}: {tok_counts}")
    else:
        lines.append(f"Every run generated {want} tokens ({ctx['rows']} x {n_tok}).")
    lines.append("")

    bw, wb = results.get("bandwidth"), results.get("weights")
    if results.get("scaling"):
        sc = results["scaling"]
        base = next((r["tok_per_s"] for r in sc if r["batch"] == 1), None)
        lines += [f"### Batch scaling of (a): local[{cores}], {cores} partitions of max(B, "
                  f"{SCALING_MIN_ROWS_PER_PARTITION}) prompts, {n_tok} new tokens, 1 run each", ""]
        rows = []
        for r in sc:
            bound = r["batch"] * bw[str(cores)]["read_gbps"] * 1e9 / wb["per_token"] if bw and wb else None
            rows.append([str(r["batch"]) + (" (main runs' median)" if r.get("reused") else ""), str(r["rows"]),
                         fmt(r["tok_per_s"]), fmt(r["tok_per_s"] / base, 2) + "x" if base else "-",
                         fmt(r["tok_per_cpu_s"], 2), fmt(r["e2e_tok_per_s"]), fmt(r["wall_s"]),
                         fmt(r["holder_rss_mb"], 0), fmt(bound), fmt(r["gen_others_cores"], 2)])
        lines += [markdown(["batch", "rows", "gen tok/s", "vs batch 1", "gen tok per CPU-s", "end-to-end tok/s",
                            "wall s", "driver peak RSS MB", "weight-streaming bound tok/s", "other work, CPUs"],
                           rows), ""]
        b8 = next((r["tok_per_s"] for r in sc if r["batch"] == 8), None)
        if base and b8:
            checks.append(f"batch 8 >= 3x batch 1 tokens/s: {'met' if b8 / base >= 3 else 'MISSED'} "
                          f"({b8 / base:.2f}x)")
    if results.get("memory"):
        mem = results["memory"]
        lines += [f"### Memory of (a) as partitions grow: {ctx['rows']} prompts, batch {ctx['batch']}, 1 run each",
                  ""]
        rows = [[str(r["partitions"]) + (" (main runs' median)" if r.get("reused") else ""), str(r["loads"]),
                 fmt(r["holder_rss_mb"], 0), fmt(r["tree_rss_mb"], 0), fmt(r["tok_per_s"]), fmt(r["wall_s"]),
                 fmt(r["gen_others_cores"], 2)] for r in mem]
        lines += [markdown(["partitions", "model loads", "driver peak RSS MB", "all processes MB", "gen tok/s",
                            "wall s", "other work, CPUs"], rows), ""]
        lo, hi = min(r["holder_rss_mb"] for r in mem), max(r["holder_rss_mb"] for r in mem)
        checks.append(f"memory of (a) flat as partitions grow ({', '.join(str(r['partitions']) for r in mem)}): "
                      f"{'met' if hi <= 1.05 * lo and all(r['loads'] == 1 for r in mem) else 'MISSED'} "
                      f"({lo:.0f}-{hi:.0f} MB, {(hi / lo - 1) * 100:+.1f}%; loads "
                      f"{sorted({r['loads'] for r in mem})})")
    if bw and wb:
        gb = wb["per_token"] / 1e9
        one, all_ = bw["1"]["read_gbps"], bw[str(cores)]["read_gbps"]
        lines += ["### Memory-bandwidth bound for batch-1 decoding", "",
                  markdown(["quantity", "value"], [
                      ["weights read per decoded token (int4 MatMulNBits weights + scales, norms, "
                       "1 embedding row)", f"{gb:.3f} GB"],
                      ["  of which MatMulNBits", f"{wb['matmulnbits'] / 1e9:.3f} GB"],
                      ["model files", ", ".join(f"{k} {fmt(v / 1e6)} MB" for k, v in sorted(wb["files"].items()))],
                      ["KV cache read per token per past position (fp32)", f"{wb['kv_per_position'] / 1e3:.0f} kB"],
                      ["read bandwidth, 1 process (numpy sum; best at start and end)", f"{one:.1f} GB/s"],
                      [f"read bandwidth, {cores} processes", f"{all_:.1f} GB/s"],
                      ["copy bandwidth (read + write), 1 / " + str(cores) + " processes",
                       f"{bw['1']['copy_gbps']:.1f} / {bw[str(cores)]['copy_gbps']:.1f} GB/s"],
                      ["bound, one batch-1 stream", f"{fmt(one / gb)} tok/s"],
                      [f"bound, {cores} batch-1 streams (as (a) and (b) run)", f"{fmt(all_ / gb)} tok/s"],
                  ]), ""]
        measured = next((r["tok_per_s"] for r in results.get("scaling") or [] if r["batch"] == 1), None)
        if measured:
            lines.append(f"Measured (a) at batch 1: {measured:.1f} tok/s = {measured / (all_ / gb) * 100:.0f}% of the "
                         f"{cores}-stream bound (the window includes prompt prefill).")
        lines.append("")
    if checks:
        lines += ["### Targets", ""] + [f"- {c}" for c in checks] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(prog="jobs/benchmark.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="tiny | phi3-mini | an onnxruntime-genai model folder")
    p.add_argument("--rows", type=int, default=16, help="prompts per run (default 16)")
    p.add_argument("--new-tokens", type=int, default=16, help="new tokens per prompt (default 16)")
    p.add_argument("--repeats", type=int, default=3, help="runs per system (default 3)")
    p.add_argument("--batch-size", type=int, default=8, help="batch size of (a) and (c) (default 8)")
    p.add_argument("--cores", type=int, default=2, help="local[N] and threads (default 2)")
    p.add_argument("--batch-sizes", help="batch scaling of (a), e.g. 1,2,4,8,16; 'none' to skip "
                   "(default 1,2,4,8,16, none for --model tiny)")
    p.add_argument("--memory-partitions", help="partition counts for (a)'s memory, e.g. 2,4,8; 'none' to skip "
                   "(default 2,4,8, none for --model tiny)")
    p.add_argument("--quiet-wait", type=float, help="before each run, wait up to this many seconds until fewer "
                   "than 0.5 CPUs are busy (a shared machine; default 60, 0 for --model tiny)")
    p.add_argument("--systems", default="a,b,c", help="which of a,b,c to run (default all)")
    p.add_argument("--work", help="work folder (default target/benchmark/run-TIMESTAMP)")
    return p.parse_args(argv)


def _ints(value: str | None, default: str) -> list[int]:
    value = default if value is None else value
    return [] if value in ("", "none") else [int(x) for x in value.split(",")]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    label, model_dir = resolve_model(args.model)
    tiny = label == "tiny"
    started = dt.datetime.now()
    work = os.path.abspath(args.work or os.path.join(ROOT, "target", "benchmark", f"run-{started:%Y%m%d-%H%M%S}"))
    os.makedirs(work, exist_ok=True)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    ctx = {
        "model_label": label, "model_dir": model_dir, "rows": args.rows, "new_tokens": args.new_tokens,
        "repeats": args.repeats, "batch": args.batch_size, "cores": args.cores, "work": work,
        "started": f"{started:%Y-%m-%d %H:%M}", "machine": machine(),
        "quiet_wait": args.quiet_wait if args.quiet_wait is not None else (0 if tiny else 60),
    }
    if not os.path.isfile(JAR):
        raise SystemExit(f"No {JAR}: run jobs/setup.sh")
    ctx["classpath"] = engine_classpath()
    texts = prompts(args.rows)
    main_input = write_input(os.path.join(work, "input", f"p{args.cores}"), texts, args.cores)
    prompts_file = os.path.join(work, "input", "prompts.txt")
    with open(prompts_file, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    if "b" in systems:
        ctx["pyfunc"] = saved_pyfunc(model_dir, os.path.join(ROOT, "target", "benchmark", "pyfunc"), args.new_tokens)

    results: dict = {"main": {s: [] for s in systems}}

    def save() -> None:  # after every run, so a failed or cut-short benchmark keeps what it measured
        with open(os.path.join(work, "results.json"), "w", encoding="utf-8") as f:
            json.dump({"context": {k: v for k, v in ctx.items() if k != "classpath"}, "results": results}, f,
                      indent=1, default=str)
    log(f"model {model_dir}; work folder {work}")
    results["weights"] = weights.bytes_per_token(model_dir)
    log("memory bandwidth")
    results["bandwidth"] = bandwidth(args.cores)
    log(f"bandwidth {results['bandwidth']}")

    for k in range(args.repeats):
        for s in systems:  # interleaved, so drift on a shared machine hits every system alike
            run_dir = os.path.join(work, "runs", f"{s}-{k + 1}")
            q = quiet(ctx)
            if s == "a":
                r = run_job(ctx, main_input, args.batch_size, run_dir)
            elif s == "b":
                r = run_udf(ctx, main_input, run_dir)
            else:
                r = run_engine(ctx, prompts_file, args.batch_size, run_dir)
            rates(r).update(q)
            results["main"][s].append(r)
            save()
            log(f"({s}) run {k + 1}: {r['generated_tokens']} tokens in {r['gen_s']:.2f} s = {r['tok_per_s']:.1f} tok/s; "
                f"wall {r['wall_s']:.1f} s; load {fmt(r['load_ms'], 0)} ms; model process peak RSS "
                f"{r['holder_rss_mb']:.0f} MB; {r['tok_per_cpu_s']:.2f} tok per CPU-s; other work used "
                f"{r['gen_others_cores']:.2f} CPUs while it generated")

    def median_run(runs: list[dict]) -> dict | None:
        if not runs:
            return None
        ordered = sorted(runs, key=lambda r: r["tok_per_s"])
        return {**ordered[(len(ordered) - 1) // 2], "reused": True}

    main_a = results["main"].get("a", [])
    scaling = []
    for b in _ints(args.batch_sizes, "none" if tiny else "1,2,4,8,16"):
        n = args.cores * max(b, SCALING_MIN_ROWS_PER_PARTITION)
        if b == args.batch_size and n == args.rows and main_a:  # the main runs of (a) are this run
            scaling.append({**median_run(main_a), "batch": b})
            continue
        inp = write_input(os.path.join(work, "input", f"scaling-b{b}"), prompts(n), args.cores)
        q = quiet(ctx)
        r = rates(run_job(ctx, inp, b, os.path.join(work, "runs", f"scaling-b{b}")))
        r.update(q)
        r["batch"] = b
        scaling.append(r)
        results["scaling"] = scaling
        save()
        log(f"(a) batch {b}: {r['rows']} rows, {r['tok_per_s']:.1f} tok/s, driver peak RSS {r['holder_rss_mb']:.0f} MB")
    results["scaling"] = scaling

    memory = []
    for parts in _ints(args.memory_partitions, "none" if tiny else "2,4,8"):
        if parts == args.cores and main_a:
            memory.append({**median_run(main_a), "partitions": parts})
            continue
        inp = write_input(os.path.join(work, "input", f"p{parts}"), texts, parts)
        q = quiet(ctx)
        r = rates(run_job(ctx, inp, args.batch_size, os.path.join(work, "runs", f"partitions-{parts}")))
        r.update(q)
        r["partitions"] = parts
        memory.append(r)
        results["memory"] = memory
        save()
        log(f"(a) {parts} partitions: driver peak RSS {r['holder_rss_mb']:.0f} MB, {r['loads']} load(s)")
    results["memory"] = memory

    log("memory bandwidth, again")
    results["bandwidth"] = bandwidth(args.cores, results["bandwidth"])
    ctx["loadavg_end"] = os.getloadavg()
    ctx["took_s"] = time.monotonic() - t_start
    text = report(ctx, results)
    print(text)
    with open(os.path.join(work, "report.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    save()
    log(f"report: {work}/report.md; every run's numbers: {work}/results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
