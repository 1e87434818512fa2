#!/usr/bin/env bash
# Runs the main job end to end on local defaults, from a fresh clone:
#  1. set-up (pinned .venv, the job jar),
#  2. a local MLflow server on 127.0.0.1 (unless MLFLOW_TRACKING_URI is set),
#  3. the bundled tiny Phi-3-architecture model logged to it as the seed does, registered, alias champion,
#  4. spark-submit --master local[2] of BatchScoringJob over jobs/data/sample_prompts.jsonl,
#  5. where the output is, and a look at it.
# Extra arguments go to the job, e.g. jobs/run-local.sh --max-tokens 8
#
# jobs/run-local.sh --model phi3-mini [job flags]: the same path at real size, with each step timed:
# a Phi-3-mini-shaped model with random int4 weights (32 layers, hidden 3072, 2.7 GB) made by
# make_tiny_phi3.py --size phi3-mini into models/phi3-mini when missing (GENAI_BATCH_PHI3_DIR to put
# it elsewhere; never committed), logged and registered as phi3-mini-random@champion (each run logs a
# new version: 2.7 GB more under target/mlflow), then the job on the first 4 sample prompts with at
# most 8 new tokens. Prints the time of each step: make model, log+register, driver fetch,
# executor fetch, native load, score. --model tiny is the default.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
model=tiny
if [[ "${1:-}" == "--model" ]]; then
  model="${2:-}"; shift 2 || true
fi
case "$model" in
  tiny|phi3-mini) ;;
  *) echo "jobs/run-local.sh: --model takes tiny (the default) or phi3-mini, not '$model'" >&2; exit 2 ;;
esac
jobs/setup.sh

started_server=0
if [[ -z "${MLFLOW_TRACKING_URI:-}" ]]; then
  port="${GENAI_BATCH_MLFLOW_PORT:-5000}"
  export MLFLOW_TRACKING_URI="$(jobs/mlflow-server.sh start "$ROOT/target/mlflow" "$port")"
  started_server=1
  echo "[run-local] MLflow server at $MLFLOW_TRACKING_URI (UI: open it in a browser)"
fi
cleanup() { if [[ $started_server == 1 && "${KEEP_MLFLOW:-0}" != 1 ]]; then jobs/mlflow-server.sh stop "$ROOT/target/mlflow"; fi; }
trap cleanup EXIT

if [[ "$model" == phi3-mini ]]; then
  now() { date +%s.%N; }
  secs() { .venv/bin/python -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
  dir="${GENAI_BATCH_PHI3_DIR:-$ROOT/models/phi3-mini}"
  t0=$(now)
  if [[ -f "$dir/genai_config.json" ]]; then
    made="reused $dir (made earlier)"
  else
    echo "[run-local] making the Phi-3-mini-shaped random int4 model into $dir (2.7 GB, a minute or two)"
    .venv/bin/python src/main/python/genai_batch/make_tiny_phi3.py --size phi3-mini --out "$dir" >/dev/null
    made="$(secs "$t0" "$(now)") s"
  fi
  t1=$(now)
  echo "[run-local] logging $dir to MLflow (registered as phi3-mini-random, alias champion)"
  PYTHONPATH="$ROOT/src/main/python" .venv/bin/python -m genai_batch.log_model \
    --model-dir "$dir" --register phi3-mini-random --alias champion \
    --experiment genai-batch-models --max-new-tokens 8 | tail -n 1
  logged="$(secs "$t1" "$(now)")"
  mkdir -p target/run-local
  head -n 4 jobs/data/sample_prompts.jsonl > target/run-local/phi3-mini-prompts.jsonl
  out="$ROOT/target/run-local/phi3-mini-output.parquet"
  echo "[run-local] scoring 4 prompts with spark-submit --master local[2]"
  t2=$(now)
  set +e
  jobs/spark-submit.sh --master 'local[2]' -- --config conf/local.yaml --model-uri 'models:/phi3-mini-random@champion' \
    --input target/run-local/phi3-mini-prompts.jsonl --output "$out" --max-tokens 8 "$@"
  code=$?
  set -e
  job="$(secs "$t2" "$(now)")"
  if [[ -f "$out/_genai_batch_metrics.json" ]]; then
    .venv/bin/python - "$out/_genai_batch_metrics.json" "$made" "$logged" "$job" "$dir" <<'PY'
import json, os, sys
m = json.load(open(sys.argv[1]))
made, logged, job, folder = sys.argv[2:6]
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
def fetch(ms, b):
    return "read in place (0 bytes)" if not m.get(b) else f"{m[ms] / 1e3:.1f} s, {m[b] / 1e6:,.1f} MB"
ex_ms = m.get("executor_fetch_ms") or 0
rows = [
    ("make model", made),
    ("log + register", f"{logged} s ({size / 1e9:.2f} GB)"),
    ("driver fetch (metadata)", fetch("model_fetch_ms", "model_fetch_bytes")),
    ("executor fetch (whole model)", fetch("executor_fetch_ms", "executor_fetch_bytes")),
    ("native load", f"{(m['model_load_ms'] - ex_ms) / 1e3:.1f} s over {int(m['model_loads'])} load(s)"),
    ("score", f"{m.get('generation_s', float('nan')):.1f} s, {int(m['rows_total'])} rows, "
              f"{int(m['completion_tokens'])} tokens"),
    ("job (spark-submit, end to end)", f"{job} s (wall_time_s {m['wall_time_s']:.1f})"),
]
print("[run-local] steps:")
for k, v in rows:
    print(f"  {k:<32} {v}")
PY
  fi
  echo "[run-local] output: $out"
  echo "[run-local] job exit code $code"
  exit $code
fi

echo "[run-local] logging the tiny model to MLflow (pyfunc wrapper, registered as tiny-phi3, alias champion)"
PYTHONPATH="$ROOT/src/main/python" .venv/bin/python -m genai_batch.log_model \
  --model-dir src/test/resources/models/tiny-phi3 --register tiny-phi3 --alias champion \
  --experiment genai-batch-models --max-new-tokens 32 | tail -n 1

echo "[run-local] scoring with spark-submit --master local[2]"
set +e
jobs/spark-submit.sh --master 'local[2]' -- --config conf/local.yaml --model-uri 'models:/tiny-phi3@champion' "$@"
code=$?
set -e
out="$ROOT/target/run-local/output.parquet"
if [[ -d "$out" ]]; then
  echo "[run-local] output: $out"
  .venv/bin/python - "$out" <<'PY'
import sys, pandas as pd
df = pd.read_parquet(sys.argv[1]).sort_values("id")
pd.set_option("display.width", 200); pd.set_option("display.max_colwidth", 40)
print(df[["id", "finish_reason", "prompt_tokens", "completion_tokens", "latency_ms", "response", "error"]].to_string(index=False))
PY
fi
echo "[run-local] job exit code $code"
exit $code
