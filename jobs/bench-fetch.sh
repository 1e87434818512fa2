#!/usr/bin/env bash
# A real-size model's way through the whole path, each step timed and set beside this machine's
# limits (issue 14): copy, log + register, driver fetch, one executor host's fetch cold and warm,
# native load; disk read bandwidth and loopback throughput; the proxied mlflow-artifacts: store's
# download rate. Prints one table (docs/benchmarks.md, "Real-size model: logging, registry, fetch,
# load") and writes it with every number to target/bench-fetch/report.md and results.json.
#   jobs/bench-fetch.sh                 # models/phi3-mini (2.7 GB, made when missing; never committed)
#   jobs/bench-fetch.sh --model DIR     # another onnxruntime-genai folder
#   GENAI_BATCH_PROXY_MB=32             # MB sent through the proxied store (it is slow: ~1 MB/s here)
# On a shared machine, run it under `nice -n 10`; the table says how busy the machine was.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
model="${GENAI_BATCH_PHI3_DIR:-$ROOT/models/phi3-mini}"
if [[ "${1:-}" == "--model" ]]; then model="$(cd "$2" && pwd)"; fi
W="$ROOT/target/bench-fetch"
PY="$ROOT/.venv/bin/python"
# MLflow 3.6 telemetry sets and unsets an environment variable from a thread: a log_model iterating
# os.environ meanwhile failed once with KeyError: _MLFLOW_TELEMETRY_SESSION_ID. Nothing here needs it.
export MLFLOW_DISABLE_TELEMETRY=true
jobs/setup.sh >&2
rm -rf "$W/copy" "$W/cache" "$W/mlflow" "$W/proxy" "$W/http"
mkdir -p "$W"
declare -A R
now() { date +%s.%N; }
secs() { "$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
free_port() { "$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
servers=()
cleanup() {
  for d in "${servers[@]}"; do jobs/mlflow-server.sh stop "$d" >/dev/null 2>&1 || true; done
  if [[ -n "${http_pid:-}" ]]; then kill "$http_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
R[load_start]="$(cut -d' ' -f1-3 /proc/loadavg)"

# 0. The model (made once; its time is reported, it is not part of the path).
t=$(now)
if [[ ! -f "$model/genai_config.json" ]]; then
  echo "[bench-fetch] making the Phi-3-mini-shaped random int4 model into $model (2.7 GB)" >&2
  "$PY" src/main/python/genai_batch/make_tiny_phi3.py --size phi3-mini --out "$model" >&2
  R[make_s]=$(secs "$t" "$(now)")
else
  R[make_s]=""
fi
weights="$(ls -S "$model" | head -n 1)"
R[model_bytes]=$(du -sb "$model" | cut -f1)
R[weights_bytes]=$(stat -c %s "$model/$weights")

# 1. Limits: disk read bandwidth (O_DIRECT, so not from the page cache; and from the page cache),
#    loopback throughput (curl of the weights from a local python http.server).
dd_rate() { dd "$@" of=/dev/null bs=16M 2>&1 | tail -n 1 | "$PY" -c "
import re, sys; l = sys.stdin.read(); m = re.search(r'(\d+) bytes.*?, ([\d.]+) s', l); print(int(m.group(1)) / float(m.group(2)) / 1e6)"; }
R[disk_direct_mb_s]=$(dd_rate if="$model/$weights" iflag=direct)
R[disk_cached_mb_s]=$(dd_rate if="$model/$weights")
port=$(free_port)
"$PY" -m http.server "$port" --bind 127.0.0.1 --directory "$model" >/dev/null 2>&1 &
http_pid=$!
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
R[loopback_mb_s]=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/$weights" | "$PY" -c "import sys; print(float(sys.stdin.read()) / 1e6)")
kill "$http_pid"; http_pid=""

# Every step that writes the model is timed up to its bytes being on the disk (a sync at its end),
# after a sync of everything before it: a step that wrote into the page cache alone would look
# faster than the disk, and the next step would pay for its writeback. A copy of 2.7 GB takes 1 s
# one time and 4 s the next on this kind of virtual machine: memory that a file deleted a moment
# ago used is fast to fill again, memory never used yet is not. So the copy and the logging take
# turns, ROUNDS times each, every copy kept (as every logged model is) until the turns are over,
# and the table has the medians.
rounds="${GENAI_BATCH_BENCH_ROUNDS:-3}"
copies=()
copy_round() {
  sync; local t; t=$(now); cp -r "$model" "$W/copy/$1"; sync; copies+=("$(secs "$t" "$(now)")")
}
mkdir -p "$W/copy"

# 3. Log + register with the project's log_model to the local server jobs/ starts (direct artifact root).
mport=$(free_port)
uri=$(jobs/mlflow-server.sh start "$W/mlflow" "$mport"); servers+=("$W/mlflow")
# (a) --no-input-example (no check that loads the model in Python), ROUNDS times, between copies;
# (b) as jobs/run-local.sh logs (input example included: MLflow loads the model in Python and
#     predicts on the example, here at most 8 new tokens), once.
log() { MLFLOW_TRACKING_URI="$uri" PYTHONPATH="$ROOT/src/main/python" "$PY" -m genai_batch.log_model \
  --model-dir "$model" --register phi3-mini-bench --alias champion --experiment bench-fetch --max-new-tokens 8 "$@" \
  2>>"$W/log_model.log" | tail -n 1; }
logs=()
for i in $(seq 1 "$rounds"); do
  copy_round "$i"
  sync; t=$(now); logged=$(log --no-input-example); sync; logs+=("$(secs "$t" "$(now)")")
done
rm -rf "$W/copy"
sync; t=$(now); log >/dev/null; sync; R[log_register_example_s]=$(secs "$t" "$(now)")
R[copy_all_s]="${copies[*]}"
R[log_register_all_s]="${logs[*]}"
artifacts=$(echo "$logged" | "$PY" -c "import json, sys; print(json.load(sys.stdin)['artifact_uri'])")
artifacts="${artifacts#file://}"
# A trivial python start-up, for scale: log_model's own fixed cost is Python and MLflow importing.
t=$(now); "$PY" -c "import mlflow" ; R[python_mlflow_import_s]=$(secs "$t" "$(now)")

# 4. Driver fetch, one executor host's fetch cold and warm, native load: through ModelCache from the
#    logged model as a Hadoop file:// store (the code path of bucket roots, without the network).
cp_file="$ROOT/target/bench-classpath.txt"
mvn -B -q -o -Dstyle.color=never test-compile dependency:build-classpath -Dmdep.includeScope=runtime \
  -Dmdep.outputFile="$cp_file" >/dev/null 2>&1 || mvn -B -q -Dstyle.color=never test-compile \
  dependency:build-classpath -Dmdep.includeScope=runtime -Dmdep.outputFile="$cp_file" >/dev/null
sync
fetch=$(java -Xmx1g -cp "$ROOT/target/test-classes:$ROOT/target/classes:$(cat "$cp_file")" \
  -Dlog4j2.configurationFile="$ROOT/conf/log4j2.properties" io.genaibatch.mlflow.FetchBenchMain \
  "file://$artifacts" "$W/cache" "$rounds" 2>"$W/fetch.log" | tail -n 1)
rm -rf "$W/cache"

# 5. The proxied store (mlflow server --serve-artifacts): download rate of GENAI_BATCH_PROXY_MB MB of
#    the weights put straight into its artifact folder (uploading through it is slower still).
pmb="${GENAI_BATCH_PROXY_MB:-32}"
mkdir -p "$W/proxy/artifacts/bench"
head -c "$((pmb * 1000000))" "$model/$weights" > "$W/proxy/artifacts/bench/part.bin"
pport=$(free_port)
setsid "$ROOT/.venv/bin/mlflow" server --host 127.0.0.1 --port "$pport" \
  --backend-store-uri "sqlite:///$W/proxy/mlflow.db" --artifacts-destination "$W/proxy/artifacts" \
  --serve-artifacts --workers 1 > "$W/proxy/server.log" 2>&1 &
echo $! > "$W/proxy/server.pid"; servers+=("$W/proxy")
for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$pport/health" >/dev/null 2>&1 && break; sleep 0.5; done
url="http://127.0.0.1:$pport/api/2.0/mlflow-artifacts/artifacts/bench/part.bin"
R[proxy_range_status]=$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=0-99' --max-time 600 "$url")
R[proxy_mb_s]=$(curl -s -o /dev/null -w '%{speed_download}' --max-time 900 "$url" | "$PY" -c "import sys; print(float(sys.stdin.read()) / 1e6)")
R[proxy_mb]=$pmb
R[load_end]="$(cut -d' ' -f1-3 /proc/loadavg)"

for k in "${!R[@]}"; do printf '%s\t%s\n' "$k" "${R[$k]}"; done > "$W/raw.tsv"
"$PY" - "$W" "$model" "$fetch" <<'PY'
import json, os, platform, subprocess, sys
from statistics import median as med
W, model, fetch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
r = dict(l.rstrip("\n").split("\t", 1) for l in open(os.path.join(W, "raw.tsv")) if l.strip())
num = lambda k: float(r[k])
cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20
copy_s = med([float(x) for x in r["copy_all_s"].split()])
log_s = med([float(x) for x in r["log_register_all_s"].split()])
size = num("model_bytes"); disk = num("disk_direct_mb_s"); cached = num("disk_cached_mb_s")
loop = num("loopback_mb_s"); mb = size / 1e6
colds = [c / 1e3 for c in fetch["executor_cold_ms"]]
cold_s = med(colds)
fetch_copy_s = med([c / 1e3 for c in fetch["copy_ms"]])
rows = []
def row(step, seconds, nbytes, limit_name, limit_mb_s, note=""):
    rate = nbytes / 1e6 / seconds if seconds and nbytes else float("nan")
    frac = rate / limit_mb_s if limit_mb_s and rate == rate else float("nan")
    rows.append((step, seconds, nbytes, rate, limit_name, limit_mb_s, frac, note))
row("cp -r of the folder (same disk, then sync; in turn with logging)", copy_s, size, "read (page cache)", cached)
row("log + register (log_model --no-input-example, direct artifact root, then sync)", log_s, size,
    "read (page cache)", cached, f"{log_s / copy_s:.2f}x the copy; python + mlflow import alone"
    f" {num('python_mlflow_import_s'):.1f} s")
row("log + register, with the input example (loaded in Python, answers it; run once, after the rounds)", num("log_register_example_s"), size,
    "read (page cache)", cached, f"{num('log_register_example_s') / copy_s:.2f}x the copy")
row("driver fetch (metadata only)", fetch["driver_fetch_ms"] / 1e3, fetch["driver_fetch_bytes"], "read (page cache)", cached,
    f"{fetch['driver_fetch_bytes'] / 1e6:.1f} MB of {mb:,.0f} MB")
row("executor host fetch, cold (ModelCache, Hadoop file://, then sync)", cold_s, fetch["executor_cold_bytes"],
    "read (page cache)", cached, f"{cold_s / fetch_copy_s:.2f}x a copy timed in turn with it (median"
    f" {fetch_copy_s:.2f} s); runs " + " ".join(f"{c:.2f}" for c in colds) + " s")
row("executor host fetch, warm", fetch["executor_warm_ms"] / 1e3, fetch["executor_warm_bytes"], "", None, "cache hit: nothing moved")
row("native load (onnxruntime-genai, page cache warm)", fetch["load_ms"] / 1e3, num("weights_bytes"), "read (page cache)", cached)
row(f"proxied mlflow-artifacts: download ({r['proxy_mb']} MB)", num("proxy_mb") / num("proxy_mb_s"), num("proxy_mb") * 1e6,
    "loopback (curl of http.server)", loop, f"Range: answered {r['proxy_range_status']}; {mb / num('proxy_mb_s') / 60:.0f} min for the whole model")
out = []
out.append(f"- Model: {model} ({mb:,.0f} MB; weights file {num('weights_bytes') / 1e6:,.0f} MB)"
           + (f", made in {float(r['make_s']):.0f} s" if r.get("make_s") else ", made earlier"))
out.append(f"- Machine: {os.cpu_count()} CPUs, {cpu}, {mem:.1f} GiB; load average at start {r['load_start']}, at end {r['load_end']}"
           " (a shared machine: other builds may have run alongside)")
out.append(f"- cp -r + sync runs: {r['copy_all_s']} s; log + register runs: {r['log_register_all_s']} s (the table has the medians)")
out.append(f"- Limits: read {cached:,.0f} MB/s from the page cache (dd of the weights; every step below reads a cached"
           f" source: the model was just written or read, and memory holds it), {disk:,.0f} MB/s from the disk (dd O_DIRECT);"
           f" loopback {loop:,.0f} MB/s (curl of the weights from python -m http.server)")
out.append("")
out.append("| step | s | MB | MB/s | limit | limit MB/s | fraction of limit | note |")
out.append("|---|---|---|---|---|---|---|---|")
f = lambda x, p=1: "-" if x is None or x != x else f"{x:,.{p}f}"
for step, s, b, rate, ln, lm, frac, note in rows:
    out.append(f"| {step} | {f(s, 2)} | {f(b / 1e6)} | {f(rate)} | {ln or '-'} | {f(lm, 0)} | {f(frac, 2)} | {note} |")
out.append("")
out.append("| target (issue 14) | measured | |")
out.append("|---|---|---|")
lr = log_s / copy_s
out.append(f"| log + register <= 3x copy time | {lr:.2f}x with --no-input-example"
           f" ({num('log_register_example_s') / copy_s:.2f}x with the input example) | {'met' if lr <= 3 else 'missed'} |")
out.append(f"| cold executor fetch <= 2x copy time | {cold_s / fetch_copy_s:.2f}x (Hadoop file:// store) | {'met' if cold_s / fetch_copy_s <= 2 else 'missed'} |")
out.append(f"| driver fetches < 50 MB | {fetch['driver_fetch_bytes'] / 1e6:.1f} MB | {'met' if fetch['driver_fetch_bytes'] < 50e6 else 'missed'} |")
text = "\n".join(out)
print(text)
open(os.path.join(W, "report.md"), "w").write(text + "\n")
json.dump({"raw": r, "fetch": fetch}, open(os.path.join(W, "results.json"), "w"), indent=1)
PY
