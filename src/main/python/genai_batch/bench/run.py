"""genai-batch against the seed's way and against the engine alone, on the same prompts, model,
search options and cores; run as ``jobs/benchmark.sh`` (``python -m genai_batch.bench``).

Workloads (``--workload``): ``uniform`` (the default, described first), ``mixed`` (below), ``decode``
(mixed with short prompts), ``structured`` (mixed with every answer under a JSON Schema; systems a, af:
the same prompts free, a1 and p) and ``shared`` (a nightly evaluation: rows of a few long instruction
templates, last below).

Systems of the uniform workload, each a fresh process per run:

(a) genai-batch: ``jobs/spark-submit.sh --master local[C]`` with ``--batch-size B`` and
    ``--no-tracking`` (one native thread per task, as ``spark.task.cpus`` = 1 gives),
(b) PySpark ``mlflow.pyfunc.spark_udf`` over the seed-style pyfunc wrapper
    (:mod:`genai_batch.bench.udf_runner`; batch 1, one native thread per Python worker),
(c) the engine alone, no Spark (``io.genaibatch.bench.EngineBenchmark`` in the test sources): C threads, each
    scoring one input slice in batches of B with one native thread, as (a)'s tasks do.

The input is C Parquet files (C partitions) of ``--rows`` prompts without a final full stop, so
every row generates exactly ``--new-tokens`` tokens with greedy search. Throughput is counted
over the generation window (first batch start to last batch end, excluding process start and
model load) and end to end (process start to exit). Then, unless turned off: (a) at each
``--batch-sizes`` (batch scaling, with every partition holding max(B, 4) prompts so every batch
is full), (a) at each ``--memory-partitions`` (peak RSS as partitions grow), the machine's memory
bandwidth and the bytes of weights each decoded token reads. Prints the tables and writes them
(report.md) with every run's numbers (results.json) to the work folder.

The mixed workload (``--workload mixed``) is closer to what users send: ``--rows`` (default 32)
prompts in Phi-3 chat markup whose token lengths spread log-uniformly from 10 to 500 tokens
(:mod:`genai_batch.bench.workload`, counted with the model's own tokenizer), in ONE Parquet file
(one input partition), answered greedily with at most ``--new-tokens`` (default 256) new tokens
by a model whose answers end at varied lengths (default ``--model phi3-mini-4l``: Phi-3-mini's
shapes with 4 layers and a 3% per-step stop rate, generated on demand). Systems:

(a)  genai-batch with its defaults (no ``--batch-size`` unless given: the job's defaults are what
     is measured),
(a0) genai-batch with ``--batching adaptive``: onnxruntime-genai's static batches, the default
     before continuous batching (its answers must equal (a)'s, checked),
(a1) genai-batch with ``--batch-size 1``: every prompt alone, the seed's answers, every core,
(b)  ``mlflow.pyfunc.spark_udf`` over the seed-style wrapper, with onnxruntime's default intra-op
     threads (as users run it; no one-thread overlay), on the input's partitions,
(b2) the same with the rows spread over the cores first (``repartition(cores)``: a careful user),
(p)  the limit: the engine's prefill rate (128-token prompts, batch 1, a thread per core), every
     token at compute-bound speed; each system's useful tokens/s is reported as a share of it,
(c)  the engine alone on the uniform prompts with ``--engine-new-tokens`` new tokens each (the
     end-of-sequence tokens masked, so every row generates exactly that many) at each of
     ``--engine-batches`` (default 1,8,16): the batch gain of this machine's kernels, the reference
     the targets are stated against.

Per system: total tokens/s (prompt + completion tokens over the generation window, the headline),
completion tokens/s, end to end, wall time, the cores busy in the generation window, and for (a)
and (a0) the slot efficiencies and partitions from the job's ``_genai_batch_metrics.json``; then
whether (a) and (a0) gave identical answers (joined on ``id``), the ratios a/b, a/b2, a/a1, a/a0,
the shares of the limit, and where (a)'s and (a0)'s seconds went (job steps; the continuous loop's
prefills, decode steps, token choice and cache moves). ``--workload decode`` is the mixed workload
with short prompts (10-40 tokens), so answers dominate.

The shared workload (``--workload shared``) is a nightly evaluation, where prefix reuse (the key/value
blocks of a shared prompt prefix computed once per executor) and duplicate answering pay: ``--rows``
(default 64) rows in ONE Parquet file, each one of ``--templates`` (default 3) instruction templates of
300-800 tokens (instructions and few-shot examples in Phi-3 chat markup, as a ``<|system|>`` turn or at
the start of the user turn, so a literal token prefix of every row that uses it: checked with the
model's tokenizer) + 20-200 tokens of its own content + the assistant turn and an opener word; the
templates' rows interleaved in a seeded arrival order, about 5% of the rows exact copies of another
row (another id) at seeded positions (:func:`genai_batch.bench.workload.make_shared`); at most
``--new-tokens`` (default 40) new tokens. Systems (default a,an,a1,b2,p):

(a)  genai-batch with its defaults (prefix reuse and duplicate answering on),
(an) genai-batch with ``--prefix-cache-mb 0``: reuse and duplicate answering off (its answers must
     equal (a)'s, joined on ``id``: checked and printed),
(a1) genai-batch with ``--batch-size 1``,
(b), (b2) spark_udf as for mixed (b, the slowest, is allowed but not a default),
(p)  the limit, as for mixed: every prompt token computed at the prefill rate.

Per system: useful tokens/s (prompt + completion tokens of the output rows over the generation window)
and the same as a multiple of (p)'s rate (above 1x only by not computing tokens), wall time, median
and spread over ``--repeats``; for the jobs, from their ``_genai_batch_metrics.json``: prompt tokens
computed (and their share of the prompt tokens), prefix hit rate, the prefix store's largest size and
the duplicate rows answered from a twin; ratios a/b2, a/an, a/a1 by useful tokens/s and by wall time;
the targets (useful tokens/s >= 3x the limit, a/b2 >= 3x, a/an >= 2.5x, (a) computes <= 25% of the
prompt tokens) as met or MISSED.

``--neighbour`` (any workload): while each system runs (each main run, after the quiet wait), a
neighbour process keeps one core busy: a Python busy loop pinned to the last CPU where the kernel
allows (:mod:`genai_batch.bench.neighbour`), killed when the run ends, and in any case gone after 30
minutes or once the benchmark's process is. The report says it was on and how busy it kept its core;
its CPU time counts in each run's "other work".
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings

import pyarrow as pa
import pyarrow.parquet as pq

from genai_batch.bench import neighbour, procwatch, weights
from genai_batch.bench.table import fmt, markdown, median, spread

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
PY_SRC = os.path.join(ROOT, "src", "main", "python")
TINY = os.path.join(ROOT, "src", "test", "resources", "models", "tiny-phi3")
JAR = os.path.join(ROOT, "target", "genai-batch-spark4_2.13.jar")
SCALING_MIN_ROWS_PER_PARTITION = 4
RUN_TIMEOUT_S = 1800

METRICS_FILE = "_genai_batch_metrics.json"
SIMD_FLAGS = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "amx_tile")
MIXED_DEFAULTS = {"model": "phi3-mini-4l", "rows": 32, "new_tokens": 256, "systems": "a,a0,a1,b,b2,p"}
STRUCTURED_DEFAULTS = {**MIXED_DEFAULTS, "systems": "a,af,a1,p"}
# --workload shared: a nightly evaluation, rows of a few long instruction templates, short answers.
SHARED_DEFAULTS = {**MIXED_DEFAULTS, "rows": 64, "new_tokens": 40, "systems": "a,an,a1,b2,p"}
SHARED_CONTENT_TOKENS = (20, 200)
SHARED_TEMPLATE_TOKENS = (300, 800)
# The shared workload's targets: useful tok/s of (a) over the limit, a/b2, a/an, computed prompt share.
SHARED_TARGETS = {"limit": 3.0, "a/b2": 3.0, "a/an": 2.5, "computed": 0.25}
# --workload structured: every row answers under this JSON Schema (a label, a number and a reason of
# bounded length, as an extraction or a graded evaluation asks for).
STRUCTURED_SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        "reason": {"type": "string", "maxLength": 160},
    },
    "required": ["label", "confidence", "reason"],
    "additionalProperties": False,
}
UNIFORM_DEFAULTS = {"model": "tiny", "rows": 16, "new_tokens": 16, "systems": "a,b,c", "batch_size": 8}
# Models that --model names and this command generates on demand (make_tiny_phi3.py flags, folder).
GENERATED = {
    "phi3-mini": (["--size", "phi3-mini"], "phi3-mini", "about 80 s, 2.7 GB"),
    "phi3-mini-4l": (["--size", "phi3-mini-4l", "--stop-rate", "0.03"], "phi3-mini-4l-r03", "0.7 GB"),
}

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
    """(label, folder); phi3-mini (models/phi3-mini, about 80 s) and phi3-mini-4l
    (models/phi3-mini-4l-r03: 4 layers, 3% stop rate) are generated when missing."""
    if spec == "tiny":
        return "tiny", TINY
    if spec in GENERATED:
        flags, name, size = GENERATED[spec]
        base = os.environ.get("GENAI_BATCH_BENCH_MODELS", os.path.join(ROOT, "models"))
        folder = os.path.join(base, name)
        if not os.path.isfile(os.path.join(folder, "genai_config.json")):
            log(f"generating the random int4 model {spec} into {folder} ({size})")
            subprocess.run([VENV_PY, os.path.join(PY_SRC, "genai_batch", "make_tiny_phi3.py"), "--out", folder]
                           + flags, check=True)
        return name, folder
    folder = os.path.abspath(spec)
    if not os.path.isfile(os.path.join(folder, "genai_config.json")):
        raise SystemExit(f"--model {spec}: no genai_config.json there; pass tiny, phi3-mini, phi3-mini-4l or an "
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


def overlay_model(model_dir: str, dest: str, edit) -> str:
    """model_dir's files as symlinks, with genai_config.json changed by edit(config)."""
    os.makedirs(dest, exist_ok=True)
    for f in os.listdir(model_dir):
        if f != "genai_config.json" and not os.path.lexists(os.path.join(dest, f)):
            os.symlink(os.path.join(model_dir, f), os.path.join(dest, f))
    with open(os.path.join(model_dir, "genai_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    edit(cfg)
    with open(os.path.join(dest, "genai_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=4)
    return dest


def one_thread_model(model_dir: str, dest: str) -> str:
    """model_dir's files as symlinks, with genai_config.json asking for 1 intra-op thread (as (a)'s tasks
    get with spark.task.cpus = 1)."""
    def edit(cfg):
        cfg["model"]["decoder"].setdefault("session_options", {})["intra_op_num_threads"] = 1
    return overlay_model(model_dir, dest, edit)


def no_eos_model(model_dir: str, dest: str) -> str:
    """model_dir's files as symlinks, with genai_config.json's search min_length at the context length:
    onnxruntime-genai then masks the end-of-sequence tokens, so every prompt generates exactly its
    max new tokens (the uniform prompts of the mixed workload's (c), whose model can stop)."""
    def edit(cfg):
        cfg.setdefault("search", {})["min_length"] = int(cfg["model"].get("context_length") or 1 << 20)
    return overlay_model(model_dir, dest, edit)


def saved_pyfunc(model_dir: str, cache_root: str, new_tokens: int, one_thread: bool = True) -> str:
    """The seed-style wrapper (timed) saved as a local MLflow model, reused across runs of this command.
    one_thread: the saved model's genai_config.json asks for 1 intra-op thread; else onnxruntime's
    default (a thread per core in each Python worker)."""
    code = [os.path.join(PY_SRC, "genai_batch", f) for f in
            ("__init__.py", "phi3_pyfunc.py", "bench/__init__.py", "bench/timed_pyfunc.py")]
    h = hashlib.sha256(os.path.realpath(model_dir).encode())
    for f in code + [os.path.join(model_dir, "genai_config.json")]:
        with open(f, "rb") as fh:
            h.update(fh.read())
    h.update(str(os.path.getmtime(os.path.join(model_dir, "genai_config.json"))).encode())
    suffix = ""
    if not one_thread:  # the uniform workload's folder names (and cached models) stay as they were
        h.update(b"default-threads")
        suffix = "-default-threads"
    dest = os.path.join(cache_root, f"{os.path.basename(model_dir.rstrip('/'))}{suffix}-{h.hexdigest()[:12]}")
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
    if one_thread:
        onnx_dir = one_thread_model(model_dir, os.path.join(staging, "phi3-mini-onnx"))
    else:  # MLflow copies the artifact folder as it is
        onnx_dir = model_dir
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


def engine_classpath() -> str:
    """(c)'s class path: the test classes (where EngineBenchmark lives, outside the job jar), the main
    classes and the runtime dependencies as Maven resolves them; compiles what is stale first."""
    cp_file = os.path.join(ROOT, "target", "bench-classpath.txt")
    log("compiling the test classes and resolving the runtime class path for (c)")
    subprocess.run(["mvn", "-B", "-q", "-Dstyle.color=never", "test-compile", "dependency:build-classpath", "-Dmdep.includeScope=runtime",
                    f"-Dmdep.outputFile={cp_file}"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    with open(cp_file, encoding="utf-8") as f:
        deps = f.read().strip()
    return ":".join([os.path.join(ROOT, "target", "test-classes"), os.path.join(ROOT, "target", "classes"), deps])


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


def run_job(ctx: dict, input_dir: str, batch: int | None, run_dir: str, extra: tuple[str, ...] = (),
            keep_answers: bool = False) -> dict:
    """(a): genai-batch under spark-submit. batch None: the job's default batch size (no flag);
    extra: more job flags; keep_answers: keep id, response and usage per row in run_dir/answers.parquet."""
    out_dir = os.path.join(run_dir, "out")
    cmd = [os.path.join(ROOT, "jobs", "spark-submit.sh"), "--master", f"local[{ctx['cores']}]",
           "--",
           "--model-uri", ctx["model_dir"], "--input", input_dir, "--input-format", "parquet", "--output", out_dir,
           "--no-tracking", "--max-tokens", str(ctx["new_tokens"]), "--do-sample", "false"]
    if batch is not None:
        cmd += ["--batch-size", str(batch)]
    cmd += list(extra) + ["--cache-dir", os.path.join(ctx["work"], "cache")]
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    so, se = _files(run_dir)
    with so, se:
        w = procwatch.run(cmd, env=env, cwd=ROOT, stdout=so, stderr=se, timeout=RUN_TIMEOUT_S)
    if w.returncode != 0:
        _fail("genai-batch (a)", run_dir, w)
    tbl = pq.read_table(out_dir)
    unit = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[tbl.schema.field("scored_at").type.unit]
    t = tbl.select(["completion_tokens", "prompt_tokens", "latency_ms", "error"]).to_pandas()
    end = tbl.column("scored_at").cast(pa.int64()).to_pandas() / unit
    start = end - t["latency_ms"] / 1e3
    row_start = float(start.min())
    metrics = None
    mfile = os.path.join(out_dir, METRICS_FILE)
    if os.path.isfile(mfile):
        with open(mfile, encoding="utf-8") as f:
            metrics = json.load(f)
        shutil.copy2(mfile, os.path.join(run_dir, METRICS_FILE))
    # The job reports its generation span (first window's start to last window's end over all tasks,
    # epoch ms) in its metrics file; rows alone cannot date it, since a row's latency counts from its own
    # native batch and scored_at from the end of its window of look-ahead rows.
    if metrics and metrics.get("generation_start_epoch_ms"):
        g0 = metrics["generation_start_epoch_ms"] / 1e3
        g1 = metrics["generation_end_epoch_ms"] / 1e3
    else:
        g0, g1 = row_start, float(end.max())
    gen_cpu, others = w.window(g0, g1)
    jvm = w.find("java", "SparkSubmit")
    if keep_answers:
        cols = [c for c in ("id", "response", "finish_reason", "prompt_tokens", "completion_tokens", "error")
                if c in tbl.column_names]
        pq.write_table(tbl.select(cols), os.path.join(run_dir, "answers.parquet"))
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "rows": int(len(t)),
        "errors": int(t["error"].notna().sum()),
        "generated_tokens": int(t["completion_tokens"].sum()),
        "prompt_tokens": int(t["prompt_tokens"].sum()),
        # scored_at has millisecond resolution; see above for the start.
        "gen_s": g1 - g0,
        "gen_start_from_rows": row_start,
        "gen_start": g0,
        "gen_cpu_s": gen_cpu,
        "gen_others_cores": others,
        "wall_s": w.wall_s,
        "cpu_s": w.cpu_s,
        "others_cores": w.others_cores,
        # From the job's metrics file, never its log: wall time, and the model load time per load (fetch
        # included; the benchmark's model is a local folder, so that is the native load).
        "job_reported_s": metrics.get("wall_time_s") if metrics else None,
        "load_ms": metrics["model_load_ms"] / metrics["model_loads"] if metrics and metrics.get("model_loads") else None,
        "loads": int(metrics["model_loads"]) if metrics and metrics.get("model_loads") is not None else None,
        "holder_rss_mb": max(p.hwm_kb for p in jvm) / 1024 if jvm else None,
        "tree_rss_mb": max(w.tree_peak_rss_kb, *(p.hwm_kb for p in jvm)) / 1024,
        "job_metrics": metrics,
        "class_archive": class_archive_line(_read(run_dir, "stderr.txt")),
    }


def class_archive_line(stderr: str) -> str:
    """What jobs/spark-submit.sh did with the driver's class archive: used, recorded, or off."""
    for line in stderr.splitlines():
        if line.startswith("[genai-batch] class archive: "):
            said = line.split(": ", 1)[1]
            return "used" if said.startswith("/") else ("recorded" if said.startswith("none yet") else "not used")
    return "off"


def warm_class_archive(ctx: dict, input_dir: str) -> None:
    """One untimed job run before the timed ones, so no timed run records the driver's class archive
    (jobs/spark-submit.sh records it on a first run, 10-30 s more) and every one maps it."""
    run_dir = os.path.join(ctx["work"], "runs", "class-archive-warm-up")
    r = run_job(dict(ctx, new_tokens=1), input_dir, None, run_dir)
    ctx["class_archive_warm_up"] = r["class_archive"]
    log(f"class archive warm-up run: {r['class_archive']} ({r['wall_s']:.1f} s, untimed)")


def run_udf(ctx: dict, input_dir: str, run_dir: str, keep_answers: bool = False, repartition: int = 0) -> dict:
    """(b): PySpark spark_udf over the seed-style pyfunc wrapper; keep_answers: keep id and response per row
    in run_dir/answers.parquet; repartition: (b2), the rows spread over that many partitions first."""
    log_dir = os.path.join(run_dir, "events")
    tmp = os.path.join(run_dir, "tmp")
    os.makedirs(log_dir)
    os.makedirs(tmp)
    cmd = [VENV_PY, "-m", "genai_batch.bench.udf_runner", "--model", ctx["pyfunc"], "--input", input_dir,
           "--output", os.path.join(run_dir, "out"), "--new-tokens", str(ctx["new_tokens"]), "--log-dir", log_dir,
           "--master", f"local[{ctx['cores']}]", "--repartition", str(repartition)]
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
    if keep_answers:
        out = pq.read_table(os.path.join(run_dir, "out"))
        pq.write_table(out.select([c for c in ("id", "response") if c in out.column_names]),
                       os.path.join(run_dir, "answers.parquet"))
    shutil.rmtree(os.path.join(run_dir, "out"), ignore_errors=True)
    g0, g1 = min(e["start"] for e in gens), max(e["end"] for e in gens)
    gen_cpu, others = w.window(g0, g1)
    return {
        "rows": len(gens),
        "output_rows": summary["rows"],
        "errors": 0,
        "generated_tokens": sum(e["tokens"] for e in gens),
        "prompt_tokens": sum(e.get("prompt_tokens", 0) for e in gens),
        "partitions": summary.get("partitions"),
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


def run_engine(ctx: dict, prompts_file: str, batch: int, run_dir: str, model_dir: str | None = None,
               new_tokens: int | None = None) -> dict:
    """(c): the engine alone, from Java (model_dir and new_tokens default to the context's)."""
    result_file = os.path.join(run_dir, "engine-result.json")
    cmd = ["java", "-Xmx1g", "-cp", ctx["classpath"], f"-Dlog4j2.configurationFile={ROOT}/conf/log4j2.properties",
           "io.genaibatch.bench.EngineBenchmark", "--model", model_dir or ctx["model_dir"], "--prompts", prompts_file,
           "--out", result_file, "--new-tokens", str(new_tokens or ctx["new_tokens"]), "--batch-size", str(batch),
           "--workers", str(ctx["cores"]), "--threads", "1"]
    so, se = _files(run_dir)
    with so, se:
        w = procwatch.run(cmd, cwd=ROOT, stdout=so, stderr=se, timeout=RUN_TIMEOUT_S)
    if w.returncode != 0:
        _fail("engine (c)", run_dir, w)
    with open(result_file, encoding="utf-8") as f:
        r = json.load(f)
    jvm = w.find("java", "EngineBenchmark")
    gen_cpu, others = w.window(r["gen_start_ms"] / 1e3, r["gen_end_ms"] / 1e3)
    return {
        "rows": r["rows"],
        "errors": r["errors"],
        "generated_tokens": r["generated_tokens"],
        "prompt_tokens": r.get("prompt_tokens"),
        "slots": {k: r[k] for k in ("prefill_slots", "prefill_useful", "decode_slots", "decode_useful",
                                    "prefill_slot_efficiency", "decode_slot_efficiency", "slot_efficiency")
                  if k in r} or None,
        "batch": batch,
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
    if r.get("prompt_tokens") is not None:  # total = prompt + completion tokens (the mixed workload's headline)
        total = r["prompt_tokens"] + r["generated_tokens"]
        r["total_tokens"] = total
        r["total_tok_per_s"] = total / r["gen_s"] if r["gen_s"] > 0 else float("nan")
        r["e2e_total_tok_per_s"] = total / r["wall_s"]
    # CPUs the system's own processes kept busy in the generation window
    r["cores_busy"] = r["gen_cpu_s"] / r["gen_s"] if r["gen_s"] > 0 and r.get("gen_cpu_s") == r.get("gen_cpu_s") \
        else float("nan")
    return r


# --------------------------------------------------------------------------------------------------
# Machine facts
# --------------------------------------------------------------------------------------------------

def machine() -> dict:
    cpu = "?"
    flags: set[str] = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if cpu != "?" and flags:
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "simd": {f: f in flags for f in SIMD_FLAGS},
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


def machine_line(ctx: dict) -> str:
    m = ctx["machine"]
    simd = m.get("simd") or {}
    flags = ", ".join(f"{f} {'yes' if simd.get(f) else 'no'}" for f in SIMD_FLAGS)
    return (f"Machine: {m['cores']} cores, CPU model name \"{m['cpu']}\" (/proc/cpuinfo flags: {flags}), "
            f"{m['memory_gib']} GiB; {m['java']}; "
            f"nice {m['nice']}; load average at start {m['loadavg_start'][0]:.2f}, at end "
            f"{ctx['loadavg_end'][0]:.2f} (a shared machine: other work may have run alongside).")


def report(ctx: dict, results: dict) -> str:
    cores, n_tok = ctx["cores"], ctx["new_tokens"]
    lines = [
        f"## genai-batch benchmark: model {ctx['model_label']} ({ctx['model_dir']})",
        "",
        f"{ctx['rows']} prompts, greedy, {n_tok} new tokens each, {cores} cores (local[{cores}] / {cores} threads, "
        f"1 native thread each); {ctx['repeats']} run(s) per system, median (min-max); "
        f"started {ctx['started']}, took {ctx['took_s']:.0f} s.",
        machine_line(ctx),
        neighbour_line(ctx, results),
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
    p = argparse.ArgumentParser(
        prog="jobs/benchmark.sh", description=__doc__.split("\n\n")[0],
        epilog="--workload mixed: --rows (default 32) prompts of 10-500 tokens (log-uniform, Phi-3 chat markup) in "
               "one Parquet file, at most --new-tokens (default 256) new tokens, --model phi3-mini-4l by default; "
               "systems a (the job's defaults), a0 (the static batches: --batching adaptive), a1 (--batch-size 1), "
               "b (spark_udf, onnxruntime's default threads), b2 (spark_udf over all cores), p (the limit: the "
               "engine's prefill rate), c (the engine on the uniform prompts at --engine-batches). "
               "--workload shared: a nightly evaluation, --rows (default 64) rows of --templates (default 3) "
               "instruction templates of 300-800 tokens (few-shot examples, a literal token prefix of their rows) + "
               "20-200 tokens of row content each, interleaved, about 5% exact duplicate rows, at most --new-tokens "
               "(default 40); systems a (the job's defaults: prefix reuse and duplicate answering on), an "
               "(--prefix-cache-mb 0: reuse off; its answers must equal a's, checked), a1 (--batch-size 1), b2, b, "
               "p (default a,an,a1,b2,p); reports useful tok/s as a multiple of the limit, a/b2, a/an, a/a1, the "
               "prompt tokens computed, the prefix hit rate, the store's size and the duplicate rows answered. "
               "--neighbour (any workload): a busy loop keeps one core busy while each system runs. "
               "docs/benchmarks.md explains the numbers.")
    p.add_argument("--workload", choices=("uniform", "mixed", "decode", "structured", "shared"), default="uniform",
                   help="uniform (default): every prompt 6-7 tokens, every answer exactly --new-tokens; mixed: prompt "
                   "lengths log-uniform over 10-500 tokens, answers of varied length (see below); decode: as mixed "
                   "with short prompts (10-40 tokens), so answers dominate; structured: as mixed, every answer under "
                   "a JSON Schema (--response-format), systems a, af (the same prompts free), a1, p; shared: rows of "
                   "a few long instruction templates, about 5%% duplicates, short answers: what prefix reuse and "
                   "duplicate answering gain (systems a, an, a1, b, b2, p)")
    p.add_argument("--model", help="tiny | phi3-mini | phi3-mini-4l | an onnxruntime-genai model folder (default: "
                   "tiny for uniform; phi3-mini-4l for the others: phi3-mini's shapes with 4 layers and a 3%% stop rate, "
                   "generated into models/phi3-mini-4l-r03 when missing)")
    p.add_argument("--rows", type=int, help="prompts per run (default 16; mixed 32; shared 64)")
    p.add_argument("--new-tokens", type=int, help="new tokens per prompt (default 16); for mixed the most new "
                   "tokens per prompt (default 256; shared 40)")
    p.add_argument("--repeats", type=int, default=3, help="runs per system (default 3)")
    p.add_argument("--batch-size", type=int, help="batch size of (a) and (c) (default 8); for mixed, (a)'s "
                   "--batch-size, not passed unless given (the job's default is measured)")
    p.add_argument("--cores", type=int, default=2, help="local[N] and threads (default 2)")
    p.add_argument("--batch-sizes", help="batch scaling of (a), e.g. 1,2,4,8,16; 'none' to skip "
                   "(default 1,2,4,8,16, none for --model tiny; uniform only)")
    p.add_argument("--memory-partitions", help="partition counts for (a)'s memory, e.g. 2,4,8; 'none' to skip "
                   "(default 2,4,8, none for --model tiny; uniform only)")
    p.add_argument("--quiet-wait", type=float, help="before each run, wait up to this many seconds until fewer "
                   "than 0.5 CPUs are busy (a shared machine; default 60, 0 for --model tiny)")
    p.add_argument("--systems", help="which of a,b,c (uniform; default a,b,c), a,a0,a1,b,b2,p,c (mixed and decode; "
                   "default a,a0,a1,b,b2,p), a,af,a1,p (structured) or a,an,a1,b,b2,p (shared; default a,an,a1,b2,p) "
                   "to run")
    p.add_argument("--engine-batches", default="1,8,16", help="mixed: batch sizes of (c) on the uniform prompts "
                   "(default 1,8,16)")
    p.add_argument("--engine-new-tokens", type=int, default=32, help="mixed: new tokens per uniform prompt of (c), "
                   "every one generated (end of sequence masked; default 32)")
    p.add_argument("--seed", type=int, default=0, help="mixed and shared: seed of the prompt lengths, words and "
                   "order (default 0)")
    p.add_argument("--templates", type=int, default=3, help="shared: instruction templates the rows share "
                   "(default 3)")
    p.add_argument("--neighbour", action="store_true", help="while each system's runs go, a neighbour process (a "
                   "Python busy loop pinned to the last CPU where allowed) keeps one core busy; stopped when the run "
                   "ends, and it exits on its own after 30 minutes or when the benchmark is gone. The report says so "
                   "(and 'other work' counts it)")
    p.add_argument("--work", help="work folder (default target/benchmark/run-TIMESTAMP)")
    args = p.parse_args(argv)
    defaults = {"uniform": UNIFORM_DEFAULTS, "structured": STRUCTURED_DEFAULTS,
                "shared": SHARED_DEFAULTS}.get(args.workload, MIXED_DEFAULTS)
    for k in ("model", "rows", "new_tokens", "systems", "batch_size"):
        if getattr(args, k) is None:
            setattr(args, k, defaults.get(k))
    allowed = {"uniform": ("a", "b", "c"), "structured": ("a", "af", "a1", "p"),
               "shared": ("a", "an", "a1", "b", "b2", "p")}.get(
        args.workload, ("a", "a0", "an", "a1", "b", "b2", "p", "c"))
    bad = [x for x in args.systems.split(",") if x.strip() and x.strip() not in allowed]
    if bad:
        p.error(f"--systems {args.systems}: {', '.join(bad)} not among {','.join(allowed)} for --workload "
                f"{args.workload}")
    if args.workload != "uniform" and (args.batch_sizes not in (None, "none") or
                                     args.memory_partitions not in (None, "none")):
        p.error("--batch-sizes and --memory-partitions belong to the uniform workload; the mixed one runs (c) at "
                "--engine-batches instead")
    if args.workload == "shared" and not 1 <= args.templates <= args.rows:
        p.error(f"--templates {args.templates}: from 1 to --rows ({args.rows})")
    return args


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
        "workload": args.workload,
        "model_label": label, "model_dir": model_dir, "rows": args.rows, "new_tokens": args.new_tokens,
        "repeats": args.repeats, "batch": args.batch_size, "cores": args.cores, "work": work,
        "started": f"{started:%Y-%m-%d %H:%M}", "machine": machine(),
        "quiet_wait": args.quiet_wait if args.quiet_wait is not None else (0 if tiny else 60),
        "neighbour": bool(args.neighbour),
    }
    if not os.path.isfile(JAR):
        raise SystemExit(f"No {JAR}: run jobs/setup.sh")
    if "c" in systems or "p" in systems:
        ctx["classpath"] = engine_classpath()
    if args.workload != "uniform":
        return main_mixed(args, ctx, systems, t_start)
    texts = prompts(args.rows)
    main_input = write_input(os.path.join(work, "input", f"p{args.cores}"), texts, args.cores)
    prompts_file = os.path.join(work, "input", "prompts.txt")
    with open(prompts_file, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    if "b" in systems:
        ctx["pyfunc"] = saved_pyfunc(model_dir, os.path.join(ROOT, "target", "benchmark", "pyfunc"), args.new_tokens)

    results: dict = {"main": {s: [] for s in systems}}

    def save() -> None:  # after every run, so a failed or cut-short benchmark keeps what it measured
        save_results(ctx, results)
    log(f"model {model_dir}; work folder {work}")
    results["weights"] = weights.bytes_per_token(model_dir)
    log("memory bandwidth")
    results["bandwidth"] = bandwidth(args.cores)
    log(f"bandwidth {results['bandwidth']}")
    if "a" in systems:
        warm_class_archive(ctx, main_input)

    for k in range(args.repeats):
        for s in systems:  # interleaved, so drift on a shared machine hits every system alike
            run_dir = os.path.join(work, "runs", f"{s}-{k + 1}")
            q = quiet(ctx)
            with neighbour.maybe(ctx["neighbour"]) as nb:
                if s == "a":
                    r = run_job(ctx, main_input, args.batch_size, run_dir)
                elif s == "b":
                    r = run_udf(ctx, main_input, run_dir)
                else:
                    r = run_engine(ctx, prompts_file, args.batch_size, run_dir)
            q.update(nb.stats)
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
    return finish(ctx, results, work, t_start, report, save)


def save_results(ctx: dict, results: dict) -> None:
    """Every number so far, with the context, to the work folder's results.json."""
    with open(os.path.join(ctx["work"], "results.json"), "w", encoding="utf-8") as f:
        json.dump({"context": {k: v for k, v in ctx.items() if k != "classpath"}, "results": results}, f,
                  indent=1, default=str)


def finish(ctx: dict, results: dict, work: str, t_start: float, render, save) -> int:
    """Prints the report render(ctx, results) and writes it (report.md) with every number (results.json)."""
    ctx["loadavg_end"] = os.getloadavg()
    ctx["took_s"] = time.monotonic() - t_start
    text = render(ctx, results)
    print(text)
    with open(os.path.join(work, "report.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    save()
    log(f"report: {work}/report.md; every run's numbers: {work}/results.json")
    return 0


# --------------------------------------------------------------------------------------------------
# The mixed workload
# --------------------------------------------------------------------------------------------------

# (a0): the job's static batches (onnxruntime-genai's Generator), the default before continuous batching.
A0_FLAGS = ("--batching", "adaptive")
# (a1): the job running every prompt alone, as the seed does (its answers), on every core.
A1_FLAGS = ("--batch-size", "1")
# (an): the job with prefix reuse and duplicate answering off.
AN_FLAGS = ("--prefix-cache-mb", "0")


def mixed_prompts(model_dir: str, rows: int, seed: int, dest: str, lo: int = 10, hi: int = 500) -> dict:
    """The mixed workload's prompts (genai_batch.bench.workload, in its own process): lo to hi tokens."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    subprocess.run([VENV_PY, "-m", "genai_batch.bench.workload", "--model", model_dir, "--rows", str(rows),
                    "--seed", str(seed), "--min-tokens", str(lo), "--max-tokens", str(hi), "--out", dest],
                   check=True, env={**os.environ, "PYTHONPATH": PY_SRC})
    with open(dest, encoding="utf-8") as f:
        return json.load(f)


def shared_prompts(model_dir: str, rows: int, seed: int, templates: int, dest: str) -> dict:
    """The shared workload's prompts (genai_batch.bench.workload --kind shared, in its own process)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    lo, hi = SHARED_CONTENT_TOKENS
    tlo, thi = SHARED_TEMPLATE_TOKENS
    subprocess.run([VENV_PY, "-m", "genai_batch.bench.workload", "--kind", "shared", "--model", model_dir,
                    "--rows", str(rows), "--seed", str(seed), "--templates", str(templates),
                    "--min-tokens", str(lo), "--max-tokens", str(hi), "--template-min-tokens", str(tlo),
                    "--template-max-tokens", str(thi), "--out", dest],
                   check=True, env={**os.environ, "PYTHONPATH": PY_SRC})
    with open(dest, encoding="utf-8") as f:
        return json.load(f)


def compare_answers(run_a: str, run_b: str) -> dict:
    """Two runs' answers joined on id: rows, rows whose response (or completion tokens, where both runs
    have them) differ."""
    a = pq.read_table(os.path.join(run_a, "answers.parquet")).to_pandas().set_index("id")
    b = pq.read_table(os.path.join(run_b, "answers.parquet")).to_pandas().set_index("id")
    j = a.join(b, how="outer", lsuffix="_a", rsuffix="_b")
    differ = ~((j["response_a"] == j["response_b"]) | (j["response_a"].isna() & j["response_b"].isna()))
    if "completion_tokens_a" in j and "completion_tokens_b" in j:
        differ |= j["completion_tokens_a"] != j["completion_tokens_b"]
    return {"rows": int(len(j)), "differ": int(differ.sum()),
            "differ_ids": [int(i) for i in j.index[differ][:20]]}


def main_mixed(args, ctx: dict, systems: list[str], t_start: float) -> int:
    work, cores = ctx["work"], args.cores
    model_dir = ctx["model_dir"]
    batches = _ints(args.engine_batches, "1,8,16")
    if args.workload == "shared":
        lo, hi = SHARED_CONTENT_TOKENS
        log(f"shared workload: {args.rows} rows of {args.templates} instruction templates of "
            f"{SHARED_TEMPLATE_TOKENS[0]}-{SHARED_TEMPLATE_TOKENS[1]} tokens + {lo}-{hi} tokens of content each "
            f"(seed {args.seed}), counted with {model_dir}'s tokenizer")
        wl = shared_prompts(model_dir, args.rows, args.seed, args.templates,
                            os.path.join(work, "input", "shared-prompts.json"))
        ctx["shared"] = {k: v for k, v in wl.items() if k not in ("prompts", "template_texts")}
        log(f"templates {[t['tokens'] for t in wl['templates']]} tokens ({[t['form'] for t in wl['templates']]}), "
            f"{wl['duplicates']} duplicate rows, {sum(wl['tokens'])} prompt tokens; least computable in arrival "
            f"order {wl['least_computed_tokens']}")
    else:
        lo, hi = (10, 40) if args.workload == "decode" else (10, 500)
        log(f"{args.workload} workload: {args.rows} prompts of {lo}-{hi} tokens (seed {args.seed}), counted with "
            f"{model_dir}'s tokenizer")
        wl = mixed_prompts(model_dir, args.rows, args.seed, os.path.join(work, "input", "mixed-prompts.json"), lo, hi)
    ctx["prompt_range"] = (lo, hi)
    texts, lengths = wl["prompts"], wl["tokens"]
    ctx.update(mixed_prompt_tokens=lengths, seed=args.seed, engine_batches=batches,
               engine_new_tokens=args.engine_new_tokens)
    mixed_input = write_input(os.path.join(work, "input", "mixed"), texts, 1)  # ONE file: one input partition
    fmt_flags: tuple[str, ...] = ()
    if args.workload == "structured":
        schema = os.path.join(work, "input", "schema.json")
        with open(schema, "w", encoding="utf-8") as f:
            json.dump(STRUCTURED_SCHEMA, f, indent=2)
        fmt_flags = ("--response-format", "@" + schema)
        ctx["schema"] = STRUCTURED_SCHEMA
    # (c): the uniform prompts, enough for a full batch per thread at the largest batch
    c_rows = max(args.rows, cores * max(batches or [1]))
    ctx["engine_rows"] = c_rows
    uniform_file = os.path.join(work, "input", "uniform-prompts.txt")
    with open(uniform_file, "w", encoding="utf-8") as f:
        f.write("\n".join(prompts(c_rows)) + "\n")
    no_eos_dir = no_eos_model(model_dir, os.path.join(work, "models", "no-eos")) if "c" in systems else None
    if "p" in systems:
        # (p): the machine's limit, the engine's prefill rate: 128-token prompts, one new token, batch 1,
        # a thread per core as the job's tasks run.
        limit = mixed_prompts(model_dir, max(8, cores * 4), args.seed + 1,
                              os.path.join(work, "input", "prefill-prompts.json"), 128, 128)
        prefill_file = os.path.join(work, "input", "prefill-prompts.txt")
        with open(prefill_file, "w", encoding="utf-8") as f:
            f.write("\n".join(p.replace("\n", " ") for p in limit["prompts"]) + "\n")
    if "b" in systems or "b2" in systems:
        ctx["pyfunc"] = saved_pyfunc(model_dir, os.path.join(ROOT, "target", "benchmark", "pyfunc"), args.new_tokens,
                                     one_thread=False)
    keys = [k for s in systems for k in ([f"c{b}" for b in batches] if s == "c" else [s])]
    results: dict = {"main": {k: [] for k in keys}, "answers": []}
    if "a" in systems and "an" in systems:
        results["answers_an"] = []

    def save() -> None:
        save_results(ctx, results)
    log(f"model {model_dir}; work folder {work}")

    def record(key: str, r: dict, q: dict, k: int) -> None:
        rates(r).update(q)
        results["main"][key].append(r)
        save()
        log(f"({key}) run {k + 1}: {r['generated_tokens']} + {r.get('prompt_tokens')} prompt tokens in "
            f"{r['gen_s']:.2f} s = {r.get('total_tok_per_s', float('nan')):.1f} total tok/s, "
            f"{r['tok_per_s']:.1f} completion tok/s; wall {r['wall_s']:.1f} s; cores busy {r['cores_busy']:.2f}; "
            f"other work {r['gen_others_cores']:.2f} CPUs" + prefix_note(r)
            + (f"; neighbour busy {r['neighbour_busy']:.2f} CPUs" if r.get("neighbour") else ""))

    if any(s.startswith("a") for s in systems):
        warm_class_archive(ctx, mixed_input)

    def measure(run):
        """run() after the quiet wait, beside the neighbour when --neighbour is on: (result, wait and
        neighbour facts)."""
        q = quiet(ctx)
        with neighbour.maybe(ctx["neighbour"]) as nb:
            r = run()
        q.update(nb.stats)
        return r, q

    for k in range(args.repeats):
        for s in systems:  # interleaved, so drift on a shared machine hits every system alike
            if s == "p":
                r, q = measure(lambda: run_engine(ctx, prefill_file, 1, os.path.join(work, "runs", f"p-{k + 1}"),
                                                  new_tokens=1))
                record("p", r, q, k)
                continue
            if s == "c":
                for b in batches:
                    r, q = measure(lambda: run_engine(ctx, uniform_file, b, os.path.join(work, "runs", f"c-b{b}-{k + 1}"),
                                                      model_dir=no_eos_dir, new_tokens=args.engine_new_tokens))
                    record(f"c{b}", r, q, k)
                continue
            run_dir = os.path.join(work, "runs", f"{s}-{k + 1}")
            if s == "a":
                run = lambda: run_job(ctx, mixed_input, args.batch_size, run_dir, extra=fmt_flags,  # noqa: E731
                                      keep_answers=True)
            elif s == "an":
                run = lambda: run_job(ctx, mixed_input, args.batch_size, run_dir, extra=AN_FLAGS + fmt_flags,  # noqa: E731
                                      keep_answers=True)
            elif s == "af":
                run = lambda: run_job(ctx, mixed_input, args.batch_size, run_dir, keep_answers=True)  # noqa: E731
            elif s == "a0":
                run = lambda: run_job(ctx, mixed_input, None, run_dir, extra=A0_FLAGS, keep_answers=True)  # noqa: E731
            elif s == "a1":
                run = lambda: run_job(ctx, mixed_input, None, run_dir, extra=A1_FLAGS + fmt_flags,  # noqa: E731
                                      keep_answers=True)
            elif s == "b2":
                run = lambda: run_udf(ctx, mixed_input, run_dir, keep_answers=True, repartition=cores)  # noqa: E731
            else:
                run = lambda: run_udf(ctx, mixed_input, run_dir, keep_answers=True)  # noqa: E731
            r, q = measure(run)
            record(s, r, q, k)
        if "a" in systems and "a0" in systems:
            cmp = compare_answers(os.path.join(work, "runs", f"a-{k + 1}"), os.path.join(work, "runs", f"a0-{k + 1}"))
            results["answers"].append(cmp)
            save()
            log(f"answers of (a) and (a0), run {k + 1}: {cmp['differ']} of {cmp['rows']} rows differ")
        if "a" in systems and "an" in systems:
            cmp = compare_answers(os.path.join(work, "runs", f"a-{k + 1}"), os.path.join(work, "runs", f"an-{k + 1}"))
            results["answers_an"].append(cmp)
            save()
            log(f"answers of (a) and (an), run {k + 1}: {'identical' if cmp['differ'] == 0 else 'DIFFERENT'}, "
                f"{cmp['differ']} of {cmp['rows']} rows differ" + (f" (ids {cmp['differ_ids']})" if cmp["differ"] else ""))
        if "a" in systems and "b" in systems:
            cmp = compare_answers(os.path.join(work, "runs", f"a-{k + 1}"), os.path.join(work, "runs", f"b-{k + 1}"))
            results.setdefault("answers_b", []).append(cmp)
            save()

    return finish(ctx, results, work, t_start, report_shared if args.workload == "shared" else report_mixed, save)


PREFIX_METRICS = ("prefix_tokens_reused", "prompt_tokens_computed", "prefix_hit_rate", "prefix_cache_bytes",
                  "duplicate_completions")


def prefix_note(r: dict) -> str:
    """'; prefix reuse: ...' from a job run's metrics file, or '' when it has none of the prefix metrics."""
    m = r.get("job_metrics") or {}
    if not any(k in m for k in PREFIX_METRICS):
        return ""
    return (f"; prefix reuse: {fmt(m.get('prompt_tokens_computed'), 0)} prompt tokens computed, "
            f"{fmt(m.get('prefix_tokens_reused'), 0)} reused (hit rate {fmt(m.get('prefix_hit_rate'), 3)}), store "
            f"{fmt(m['prefix_cache_bytes'] / 2**20 if m.get('prefix_cache_bytes') is not None else None)} MiB, "
            f"{fmt(m.get('duplicate_completions'), 0)} duplicate rows answered")


def breakdown(runs: list[dict]) -> list[str]:
    """Where a job's seconds went (medians): outside generation (start, load, read-back, write) and, in
    the continuous loop summed over tasks, prefills, decode steps, choosing tokens, moving cache regions."""
    if not runs:
        return []
    used = sum(r.get("class_archive") == "used" for r in runs)
    out = [f"wall {median(r['wall_s'] for r in runs):.1f} s = generation span {median(r['gen_s'] for r in runs):.1f} s"
           f" + outside it {median(r['wall_s'] - r['gen_s'] for r in runs):.1f} s; the driver's class archive "
           f"mapped in {used} of {len(runs)} runs"]
    ms = [r.get("job_metrics") or {} for r in runs]
    phases = ("phase_start_s", "phase_check_s", "phase_tracking_start_s", "phase_score_s", "phase_read_back_s")
    if all(m.get("phase_score_s") for m in ms):
        gen = median(m["generation_s"] for m in ms)
        parts = ", ".join(f"{k[6:-2].replace('_', ' ')} {median(m.get(k, 0) for m in ms):.1f} s" for k in phases)
        out.append(f"job steps: {parts} (scoring holds the generation span, {gen:.1f} s; the rest of scoring is "
                   f"{median(m['phase_score_s'] for m in ms) - gen:.1f} s: tasks' start, model load, writing)")
    if all(m.get("continuous_s") for m in ms):
        keys = ("continuous_prefill_s", "continuous_decode_s", "continuous_choose_s", "continuous_move_s")
        parts = ", ".join(f"{k.split('_')[1]} {median(m[k] for m in ms):.1f} s" for k in keys)
        out.append(f"continuous loop (one per executor, on its cores): {median(m['continuous_s'] for m in ms):.1f} s = {parts}; "
                   f"{median(m['continuous_steps'] for m in ms):.0f} steps, {median(m['continuous_prefills'] for m in ms):.0f}"
                   f" prefills; KV cache {median(m['kv_cache_bytes'] for m in ms) / 2**20:.0f} MiB per executor, the largest it held")
    return out


def answers_line(ct: list[int], fr: dict, cap: int) -> str:
    """The report's line on (a)'s first run's answers: their completion tokens, how many hit the cap, why they ended."""
    return (f"Answers of (a), run 1: completion tokens min {min(ct)}, median {_pct(ct, 0.5)}, p90 {_pct(ct, 0.9)}, "
            f"max {max(ct)}; {sum(1 for c in ct if c >= cap)} of {len(ct)} hit the cap of {cap}; finish reasons {fr}.")


def _pct(values: list[int], q: float) -> int:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def report_mixed(ctx: dict, results: dict) -> str:
    cores, cap = ctx["cores"], ctx["new_tokens"]
    lengths = ctx["mixed_prompt_tokens"]
    main = results["main"]
    lines = [
        f"## genai-batch benchmark, {ctx['workload']} workload: model {ctx['model_label']} ({ctx['model_dir']})",
        "",
        f"{ctx['rows']} prompts in one Parquet file (one input partition), Phi-3 chat markup around random words, "
        f"prompt tokens log-uniform over {ctx.get('prompt_range', (10, 500))[0]}-{ctx.get('prompt_range', (10, 500))[1]} (seed {ctx['seed']}; min {min(lengths)}, median "
        f"{_pct(lengths, 0.5)}, mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)}, total {sum(lengths)}); "
        f"greedy, at most {cap} new tokens; {cores} cores (local[{cores}] / {cores} threads); {ctx['repeats']} run(s) "
        f"per system, median (min-max); started {ctx['started']}, took {ctx['took_s']:.0f} s.",
        machine_line(ctx),
        neighbour_line(ctx, results),
        "",
    ]
    eb, en = ctx["engine_batches"], ctx["engine_new_tokens"]
    names = {
        "a": "(a) genai-batch, job defaults" + ("" if ctx["batch"] is None else f" but --batch-size {ctx['batch']}"),
        "a0": "(a0) genai-batch, static batches as before (--batching adaptive)",
        "a1": "(a1) genai-batch, job defaults but --batch-size 1 (the seed's answers)",
        "an": "(an) genai-batch, job defaults but --prefix-cache-mb 0 (prefix reuse and duplicates off)",
        "b": "(b) PySpark spark_udf + seed pyfunc, as its users run it (the input's partitions)",
        "b2": f"(b2) PySpark spark_udf + seed pyfunc, rows spread over the cores (repartition({cores}))",
        "p": f"(p) the limit: engine prefill rate, 128-token prompts, batch 1, {cores} threads x 1 native",
    }
    if ctx.get("schema"):
        names["a"] += ", every answer under the JSON Schema (--response-format)"
        names["a1"] = "(a1) genai-batch, --batch-size 1, every answer under the JSON Schema"
        names["af"] = "(af) genai-batch, job defaults, the same prompts free (no response format)"
    for b in eb:
        names[f"c{b}"] = (f"(c) engine alone, uniform prompts + {en} new tokens, {cores} threads x 1 native, "
                          f"batch {b}")

    def slots(r: dict) -> dict | None:
        return r.get("job_metrics") or r.get("slots")

    def slot_cell(runs: list[dict], key: str) -> str:
        if key in ("b", "b2"):
            return "1 / 1 / 1 (batch 1, no padding)"
        got = [slots(r) for r in runs if slots(r)]
        if not got:
            return "n/a (no _genai_batch_metrics.json)" if key in ("a", "a0", "a1") else "n/a"
        f = ("prefill_slot_efficiency", "decode_slot_efficiency", "slot_efficiency")
        return " / ".join(fmt(median(g.get(x) for g in got), 2) for x in f)

    def part_cell(runs: list[dict], key: str) -> str:
        if key.startswith("c") or key == "p":
            return f"{cores} threads"
        if key in ("b", "b2"):
            ps = sorted({r.get("partitions") for r in runs} - {None})
            return f"{'/'.join(str(p) for p in ps) or '?'} (a Python worker per partition)"
        ms = [r.get("job_metrics") for r in runs if r.get("job_metrics")]
        if not ms:
            return "n/a"
        m = ms[0]
        parts = sorted({int(x.get("partitions", -1)) for x in ms})
        return (f"{'/'.join(str(p) for p in parts)} ({fmt(m.get('task_slots'), 0)} task slots x "
                f"{fmt(m.get('threads_per_task'), 0)} native thread(s))")

    def busy_cell(runs: list[dict]) -> str:
        v = median(r.get("cores_busy") for r in runs)
        return "-" if v != v else f"{v:.2f} of {cores} ({v / cores * 100:.0f}%)"

    header = ["system", "total tok/s", "completion tok/s", "end-to-end total tok/s", "wall s",
              "cores busy (generation)", "slot efficiency prefill / decode / all", "partitions", "model load ms",
              "peak RSS MB (model process)", "other work, CPUs"]
    rows = []
    for key, runs in main.items():
        if not runs:
            continue
        rows.append([names[key], _col(runs, "total_tok_per_s"), _col(runs, "tok_per_s"),
                     _col(runs, "e2e_total_tok_per_s"), _col(runs, "wall_s"), busy_cell(runs), slot_cell(runs, key),
                     part_cell(runs, key), _col(runs, "load_ms", 0), _col(runs, "holder_rss_mb", 0),
                     _col(runs, "gen_others_cores", 2)])
    lines += [markdown(header, rows), "",
              "total tok/s: prompt + completion tokens over the generation window (first batch start to last batch "
              "end; no process start, no model load); completion tok/s: generated tokens (stop tokens included) "
              "over the same window; end to end: total tokens over the process's wall time. Cores busy: CPU "
              "seconds of the system's own processes in the window over its length. Slot efficiency: useful "
              "tokens over the token slots the native batches computed (padding, rows finished early and "
              "stand-in rows are the waste), from the job's _genai_batch_metrics.json for (a) and (a0) and from "
              "the engine for (c). Other work: average CPUs busy outside the benchmark during the window.", ""]

    med = {k: {f: median(r.get(f) for r in v) for f in ("total_tok_per_s", "tok_per_s", "e2e_total_tok_per_s")}
           for k, v in main.items() if v}
    # the answers
    for key in ("a", "a0", "an", "a1", "b", "b2"):
        runs = main.get(key) or []
        if not runs:
            continue
        counts = sorted({r["generated_tokens"] for r in runs})
        lines.append(f"({key}) {runs[0]['rows']} rows, {runs[0]['errors']} errors; completion tokens "
                     f"{'/'.join(str(c) for c in counts)} (per run); prompt tokens "
                     f"{'/'.join(str(c) for c in sorted({r.get('prompt_tokens') for r in runs}))}"
                     + ("" if {r.get("prompt_tokens") for r in runs} == {sum(lengths)} else
                        f" -- WARNING: the workload counted {sum(lengths)}"))
    ans = os.path.join(ctx["work"], "runs", "a-1", "answers.parquet")
    if os.path.isfile(ans):
        t = pq.read_table(ans).to_pandas()
        ct = [int(x) for x in t["completion_tokens"]]
        fr = t["finish_reason"].value_counts().to_dict() if "finish_reason" in t else {}
        lines.append(answers_line(ct, fr, cap))
    if results.get("answers"):
        diffs = results["answers"]
        worst = max(diffs, key=lambda d: d["differ"])
        same = all(d["differ"] == 0 for d in diffs)
        lines.append(f"Answers identical, (a) vs (a0) joined on id: {'yes' if same else 'no'}, {worst['differ']} of "
                     f"{worst['rows']} rows differ" + (f" (worst of {len(diffs)} run pairs: "
                                                       f"{', '.join(str(d['differ']) for d in diffs)})"
                                                       if len(diffs) > 1 else "")
                     + ("" if same else f"; ids {worst['differ_ids']}"))
    if results.get("answers_b"):
        d = results["answers_b"][0]
        lines.append(f"Answers of (b) vs (a), run 1, joined on id: {d['rows'] - d['differ']} of {d['rows']} rows the "
                     f"same text, {d['differ']} differ ((b) runs every prompt alone, on onnxruntime's single-row "
                     "kernel path, which (a) avoids; so the systems' completion token counts can differ)")
    for b in eb:
        runs = main.get(f"c{b}") or []
        want = ctx["engine_rows"] * en
        bad = sorted({r["generated_tokens"] for r in runs} - {want})
        if bad:
            lines.append(f"WARNING: (c) batch {b} generated {bad} tokens, not rows x new tokens = {want}")
    lines.append("")

    ratios = []

    def wall_ratio(x: str, y: str) -> float | None:
        wx = median(r.get("wall_s") for r in main.get(x) or [])
        wy = median(r.get("wall_s") for r in main.get(y) or [])
        return wx / wy if wx == wx and wy == wy and wy else None

    def ratio(x: str, y: str, f: str) -> float | None:
        if x in med and y in med and med[y][f] and med[y][f] == med[y][f]:
            return med[x][f] / med[y][f]
        return None
    for x, y in (("a", "b"), ("a", "b2"), ("a", "a1"), ("a", "a0"), ("a", "an"), ("a1", "b2"), ("a", "af")):
        r = ratio(x, y, "total_tok_per_s")
        if r is not None:
            ratios.append(f"{x}/{y}: {r:.2f}x total tok/s ({fmt(ratio(x, y, 'tok_per_s'), 2)}x completion tok/s, "
                          f"{fmt(ratio(x, y, 'e2e_total_tok_per_s'), 2)}x end to end, "
                          f"{fmt(wall_ratio(y, x), 2)}x by wall time)")
    if "p" in med and med["p"]["total_tok_per_s"]:
        limit = med["p"]["total_tok_per_s"]
        fractions = ", ".join(f"{k} {med[k]['total_tok_per_s'] / limit:.0%}" for k in ("a", "af", "a0", "a1", "b", "b2")
                              if k in med)
        ratios.append(f"useful tokens/s during generation as a share of the limit (p, {limit:.1f} tok/s): {fractions}")
    for key in ("a", "af", "a0"):
        for line in breakdown(main.get(key) or []):
            ratios.append(f"({key}) {line}")
    for key in ("a", "a1"):
        ms = [r.get("job_metrics") or {} for r in main.get(key) or []] if ctx.get("schema") else []
        if ms and all(m.get("responses_formatted") for m in ms):
            ratios.append(f"({key}) answers that parse under the schema: "
                          + ", ".join(f"{int(m.get('responses_parsed', 0))}/{int(m['responses_formatted'])}" for m in ms))
    cs = {b: med[f"c{b}"]["total_tok_per_s"] for b in eb if f"c{b}" in med}
    if cs:
        best = max(cs, key=lambda b: cs[b])
        if 1 in cs and len(cs) > 1:
            gains = ", ".join(f"batch {b} {cs[b] / cs[1]:.2f}x" for b in eb if b != 1 and b in cs)
            ratios.append(f"engine batch gain (c, uniform prompts, total tok/s over batch 1): {gains}; best batch "
                          f"{best}")
        if "a" in med:
            r = med["a"]["total_tok_per_s"] / cs[best]
            rc = med["a"]["tok_per_s"] / med[f"c{best}"]["tok_per_s"]
            ratios.append(f"useful tok/s of (a) mixed over (c) uniform at batch {best}: {r:.2f} (prompt + completion "
                          f"tokens); completion tokens only: {rc:.2f}")
    if ratios:
        lines += ["Ratios (medians):", ""] + [f"- {x}" for x in ratios] + [""]
    return "\n".join(lines)


def neighbour_line(ctx: dict, results: dict) -> str:
    """Whether --neighbour was on and how busy it kept its core."""
    if not ctx.get("neighbour"):
        return "Neighbour: off (no --neighbour)."
    runs = [r for v in results.get("main", {}).values() for r in v if r.get("neighbour")]
    if not runs:
        return "Neighbour: ON (--neighbour), but no run recorded it."
    pins = sorted({"/".join(str(c) for c in r["neighbour_pinned_to"]) if r.get("neighbour_pinned_to") else "any"
                   for r in runs})
    early = sum(bool(r.get("neighbour_ended_early")) for r in runs)
    return (f"Neighbour: ON (--neighbour): while each system ran, a Python busy loop pinned to CPU {', '.join(pins)} "
            f"kept one core busy ({median(r.get('neighbour_busy') for r in runs):.2f} CPUs on average, median of "
            f"{len(runs)} runs; it counts in 'other work')" + (f"; WARNING: it ended early in {early} run(s)"
                                                                if early else "") + ".")


def report_shared(ctx: dict, results: dict) -> str:
    """The shared workload's report: useful tokens/s and as a multiple of the limit, prefix reuse, targets."""
    cores, cap = ctx["cores"], ctx["new_tokens"]
    sh = ctx["shared"]
    lengths = ctx["mixed_prompt_tokens"]
    main = results["main"]
    total_prompt = sum(lengths)
    dups = [i for i, d in enumerate(sh["duplicate_of"]) if d is not None]
    dup_prompt = sum(lengths[i] for i in dups)
    content = sh["content_tokens"]
    tdesc = "; ".join(f"{t['tokens']} tokens as {'a <|system|> turn' if t['form'] == 'system' else 'the start of the user turn'}"
                      f", {t['rows']} rows" for t in sh["templates"])
    whole = sum(sh["template_prefix_tokens"][i] >= sh["templates"][sh["template_of"][i]]["tokens"]
                for i in range(len(lengths)))
    least = sh["least_computed_tokens"]
    lines = [
        f"## genai-batch benchmark, shared workload: model {ctx['model_label']} ({ctx['model_dir']})",
        "",
        f"{ctx['rows']} rows in one Parquet file (one input partition), as a nightly evaluation: "
        f"{len(sh['templates'])} instruction templates (instructions + few-shot examples, Phi-3 chat markup: {tdesc}), "
        f"each row its template + its own content of {min(content)}-{max(content)} tokens (median {_pct(content, 0.5)}) "
        f"+ <|end|><|assistant|> and an opener word; the templates' rows interleaved in a seeded arrival order "
        f"(seed {ctx['seed']}); {len(dups)} {'row an exact copy' if len(dups) == 1 else 'rows exact copies'} of another "
        f"row (other id). Prompt tokens by the model's "
        f"tokenizer: min {min(lengths)}, median {_pct(lengths, 0.5)}, max {max(lengths)}, total {total_prompt}. "
        f"{whole} of {len(lengths)} rows start with all of their template's tokens"
        f"{'' if whole == len(lengths) else ' (the rest with all but its last 1-2)'}; a "
        f"row shares with another row of its template {min(sh['shared_prefix_tokens'])}-"
        f"{max(sh['shared_prefix_tokens'])} leading tokens (median {_pct(sh['shared_prefix_tokens'], 0.5)}). The least "
        f"prompt tokens any reuse could compute in arrival order (token-exact, copies free): {least} "
        f"({least / total_prompt:.1%}).",
        f"Greedy, at most {cap} new tokens; {cores} cores (local[{cores}] / {cores} threads); {ctx['repeats']} run(s) "
        f"per system, median (min-max); started {ctx['started']}, took {ctx['took_s']:.0f} s.",
        machine_line(ctx),
        neighbour_line(ctx, results),
        "",
    ]
    names = {
        "a": "(a) genai-batch, job defaults (prefix reuse and duplicate answering on)"
             + ("" if ctx["batch"] is None else f", --batch-size {ctx['batch']}"),
        "an": "(an) genai-batch, --prefix-cache-mb 0 (reuse off)"
              + ("" if ctx["batch"] is None else f", --batch-size {ctx['batch']}"),
        "a1": "(a1) genai-batch, job defaults but --batch-size 1",
        "b": "(b) PySpark spark_udf + seed pyfunc, as its users run it (the input's partitions)",
        "b2": f"(b2) PySpark spark_udf + seed pyfunc, rows spread over the cores (repartition({cores}))",
        "p": f"(p) the limit: engine prefill rate, 128-token prompts, batch 1, {cores} threads x 1 native",
    }
    limit = median(r.get("total_tok_per_s") for r in main.get("p") or [])
    has_limit = limit == limit and limit > 0

    def metric(runs: list[dict], key: str) -> list[float]:
        return [float(r["job_metrics"][key]) for r in runs
                if (r.get("job_metrics") or {}).get(key) is not None]

    def computed_share(r: dict) -> float | None:
        m = r.get("job_metrics") or {}
        c, p = m.get("prompt_tokens_computed"), r.get("prompt_tokens")
        return c / p if c is not None and p else None

    header = ["system", "useful tok/s", "x the limit", "completion tok/s", "wall s", "generation s",
              "cores busy", "prompt tokens computed (median share)", "prefix hit rate", "prefix store MiB", "duplicate rows answered",
              "peak RSS MB (model process)", "other work, CPUs"]
    rows = []
    for key, runs in main.items():
        if not runs:
            continue
        is_job = key in ("a", "an", "a1")
        xl = spread((r.get("total_tok_per_s") / limit for r in runs), 2) if has_limit else "-"
        share = median(computed_share(r) for r in runs)
        computed = (spread(metric(runs, "prompt_tokens_computed"), 0) + ("" if share != share else f" ({share:.1%})")
                    if is_job and metric(runs, "prompt_tokens_computed") else ("all (no reuse)" if key in ("b", "b2")
                                                                                 else "-"))
        rows.append([names[key], _col(runs, "total_tok_per_s"), xl, _col(runs, "tok_per_s"), _col(runs, "wall_s"),
                     _col(runs, "gen_s"), _col(runs, "cores_busy", 2), computed,
                     spread(metric(runs, "prefix_hit_rate"), 3) if is_job else "-",
                     spread([b / 2**20 for b in metric(runs, "prefix_cache_bytes")]) if is_job else "-",
                     spread(metric(runs, "duplicate_completions"), 0) if is_job else "-",
                     _col(runs, "holder_rss_mb", 0), _col(runs, "gen_others_cores", 2)])
    lines += [markdown(header, rows), "",
              "useful tok/s: prompt + completion tokens of the output rows over the generation window (first batch "
              "start to last batch end; no process start, no model load), the same tokens for every system; x the "
              "limit: over (p)'s prefill rate, every prompt token computed at compute-bound speed (above 1x only by "
              "not computing tokens: prefix reuse, duplicate answering). Prompt tokens computed, prefix hit rate "
              "(reused / (reused + computed)), store (its largest size) and duplicate rows answered: the job's "
              "_genai_batch_metrics.json ('-': the job did not write them). Cores busy: CPU seconds of the system's "
              "own processes in the window over its length. Other work: CPUs busy outside the benchmark in the window.",
              ""]

    # the answers and the token counts
    for key in ("a", "an", "a1", "b", "b2"):
        runs = main.get(key) or []
        if not runs:
            continue
        pts = sorted({r.get("prompt_tokens") for r in runs}, key=str)
        lines.append(f"({key}) {runs[0]['rows']} rows, {runs[0]['errors']} errors; completion tokens "
                     f"{'/'.join(str(r['generated_tokens']) for r in runs)} (per run); prompt tokens "
                     f"{'/'.join(str(c) for c in pts)}"
                     + ("" if set(pts) == {total_prompt} else f" -- WARNING: the workload counted {total_prompt}"))
    ans = os.path.join(ctx["work"], "runs", "a-1", "answers.parquet")
    if os.path.isfile(ans):
        t = pq.read_table(ans).to_pandas()
        ct = [int(x) for x in t["completion_tokens"]]
        fr = t["finish_reason"].value_counts().to_dict() if "finish_reason" in t else {}
        lines.append(answers_line(ct, fr, cap))
        if dups and "id" in t and "response" in t:
            by_id = t.set_index("id")["response"]
            same = sum(1 for i in dups if i in by_id.index and sh["duplicate_of"][i] in by_id.index
                       and by_id[i] == by_id[sh["duplicate_of"][i]])
            lines.append(f"Duplicate rows of (a), run 1: {same} of {len(dups)} answered with their original's text.")
    if results.get("answers_an"):
        diffs = results["answers_an"]
        worst = max(diffs, key=lambda d: d["differ"])
        same = all(d["differ"] == 0 for d in diffs)
        lines.append(f"Answers identical, (a) vs (an) joined on id (response and completion tokens): "
                     f"{'yes' if same else 'NO'}, {worst['differ']} of {worst['rows']} rows differ"
                     + (f" (worst of {len(diffs)} run pairs: {', '.join(str(d['differ']) for d in diffs)})"
                        if len(diffs) > 1 else "") + ("" if same else f"; ids {worst['differ_ids']}"))
    # what the job's prefix metrics say, checked against the workload
    for key in ("a", "an", "a1"):
        for r in main.get(key) or []:
            m = r.get("job_metrics") or {}
            if not any(x in m for x in PREFIX_METRICS):
                lines.append(f"({key}) NOTE: its metrics file has none of {', '.join(PREFIX_METRICS)}.")
                break
            reused, computed = m.get("prefix_tokens_reused"), m.get("prompt_tokens_computed")
            notes = []
            if reused is not None and computed is not None:
                rows_prompt = r.get("prompt_tokens") or 0
                # duplicate rows' prompt tokens may be counted in neither (answered from a twin) or in either
                fits = {rows_prompt, rows_prompt - (dup_prompt if m.get("duplicate_completions") else 0),
                        rows_prompt - (m.get("duplicate_tokens") or 0)}
                if reused + computed not in fits:
                    notes.append(f"reused + computed = {reused + computed:.0f}, not the rows' {rows_prompt} prompt "
                                 f"tokens (nor that less the {dup_prompt} of the duplicate rows, nor less "
                                 f"duplicate_tokens {fmt(m.get('duplicate_tokens'), 0)})")
                hr = m.get("prefix_hit_rate")
                if hr is not None and reused + computed > 0 and abs(hr - reused / (reused + computed)) > 0.005:
                    notes.append(f"prefix_hit_rate {hr:.3f} but reused / (reused + computed) = "
                                 f"{reused / (reused + computed):.3f}")
                if key != "an" and computed < least:
                    notes.append(f"computed {computed:.0f} prompt tokens, fewer than the least possible {least}")
            if key == "an" and ((reused or 0) > 0 or (m.get("duplicate_completions") or 0) > 0):
                notes.append(f"reuse is off, yet {reused} tokens reused and {m.get('duplicate_completions')} duplicate "
                             "rows answered")
            if key != "an" and m.get("duplicate_completions") is not None and m["duplicate_completions"] != len(dups):
                notes.append(f"{m['duplicate_completions']:.0f} duplicate rows answered, the workload has {len(dups)}")
            if notes:
                lines.append(f"({key}) NOTE, run {main[key].index(r) + 1}: " + "; ".join(notes) + ".")
    lines.append("")

    med = {k: {f: median(r.get(f) for r in v) for f in ("total_tok_per_s", "tok_per_s", "wall_s")}
           for k, v in main.items() if v}

    def ratio(x: str, y: str, f: str = "total_tok_per_s") -> float | None:
        if x in med and y in med and med[y][f] and med[y][f] == med[y][f]:
            return med[x][f] / med[y][f]
        return None

    ratios = []
    for x, y in (("a", "b2"), ("a", "an"), ("a", "a1"), ("a", "b"), ("an", "b2")):
        r = ratio(x, y)
        if r is not None:
            wr = ratio(y, x, "wall_s")  # y's wall over x's: how many times faster x is end to end
            ratios.append(f"{x}/{y}: {r:.2f}x useful tok/s in generation, {fmt(wr, 2)}x by wall time "
                          f"({fmt(med[y]['wall_s'])} s / {fmt(med[x]['wall_s'])} s)")
    if has_limit:
        ratios.append(f"useful tok/s as a multiple of the limit (p, {limit:.1f} tok/s): " + ", ".join(
            f"{k} {med[k]['total_tok_per_s'] / limit:.2f}x" for k in ("a", "an", "a1", "b", "b2") if k in med))
    for key in ("a", "an"):
        for line in breakdown(main.get(key) or []):
            ratios.append(f"({key}) {line}")
    if ratios:
        lines += ["Ratios (medians):", ""] + [f"- {x}" for x in ratios] + [""]

    a = main.get("a") or []
    if a:
        ms = [r.get("job_metrics") or {} for r in a]
        share = median(computed_share(r) for r in a)
        hit = median(m.get("prefix_hit_rate") for m in ms)
        store = median(m.get("prefix_cache_bytes") for m in ms)
        dup = median(m.get("duplicate_completions") for m in ms)
        lines += [f"(a) prefix reuse (medians): prompt tokens computed {fmt(median(m.get('prompt_tokens_computed') for m in ms), 0)}"
                  f" = {'-' if share != share else f'{share:.1%}'} of {total_prompt} prompt tokens (least possible "
                  f"{least / total_prompt:.1%}); prefix hit rate {fmt(hit, 3)}; prefix store "
                  f"{fmt(store / 2**20 if store == store else None)} MiB at its largest; "
                  f"{fmt(dup, 0)} of {len(dups)} duplicate rows answered from their twin.", ""]

    def check(name: str, value: float | None, want: float, unit: str = "x", at_most: bool = False) -> str:
        if value is None or value != value:
            return f"{name}: n/a (not measured in this run)"
        ok = value <= want if at_most else value >= want
        shown = f"{value:.1%}" if unit == "%" else f"{value:.2f}x"
        return f"{name}: {'met' if ok else 'MISSED'} ({shown})"

    t = SHARED_TARGETS
    checks = [
        check(f"useful tok/s of (a) >= {t['limit']:g}x the limit (p)",
              med["a"]["total_tok_per_s"] / limit if "a" in med and has_limit else None, t["limit"]),
        check(f"a/b2 >= {t['a/b2']:g}x useful tok/s", ratio("a", "b2"), t["a/b2"])
        + (f"; by wall time {fmt(ratio('b2', 'a', 'wall_s'), 2)}x" if ratio("b2", "a", "wall_s") else ""),
        check(f"a/an >= {t['a/an']:g}x useful tok/s", ratio("a", "an"), t["a/an"])
        + (f"; by wall time {fmt(ratio('an', 'a', 'wall_s'), 2)}x" if ratio("an", "a", "wall_s") else ""),
        check(f"(a) computes <= {t['computed']:.0%} of the prompt tokens",
              median(computed_share(r) for r in a) if a else None, t["computed"], unit="%", at_most=True),
    ]
    if results.get("answers_an"):
        checks.append("answers of (a) and (an) identical: " + ("met" if all(d["differ"] == 0 for d in
                                                                             results["answers_an"]) else "MISSED"))
    lines += ["### Targets", ""] + [f"- {c}" for c in checks] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
