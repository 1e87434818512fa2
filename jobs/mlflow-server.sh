#!/usr/bin/env bash
# Starts a local MLflow tracking server (sqlite backend, a direct local artifact root) on 127.0.0.1 in the
# background and prints its URI; `jobs/mlflow-server.sh stop DIR` stops it and its workers for good.
#   jobs/mlflow-server.sh start DIR [PORT]   -> prints http://127.0.0.1:PORT
#   jobs/mlflow-server.sh stop DIR           -> TERM to the server's process group, then, after
#       GENAI_BATCH_STOP_SECONDS (default 10) with anything of it left (a worker still busy with an
#       upload: a graceful shutdown waits for requests in flight), KILL to the whole group.
# GENAI_BATCH_MLFLOW_WORKERS (default 1): the server's worker processes (`mlflow server --workers`);
#   several take a nightly evaluation's assessment calls (tracking_parallelism at once) in parallel, but
#   this script's sqlite backend takes one writer at a time: 4 workers on 2 cores were slower than 1
#   (docs/traces.md, "Assessment calls in parallel"); workers pay off with PostgreSQL or MySQL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-start}"; dir="${2:-$ROOT/target/mlflow}"; port="${3:-5000}"
mkdir -p "$dir"
if [[ "$cmd" == "stop" ]]; then
  if [[ -f "$dir/server.pid" ]]; then
    pid="$(cat "$dir/server.pid")"
    # setsid made the server a group leader: its pid is the group id of it and its workers.
    kill -TERM -- "-$pid" 2>/dev/null || true
    deadline=$(( $(date +%s) + ${GENAI_BATCH_STOP_SECONDS:-10} ))
    while pgrep -g "$pid" >/dev/null 2>&1 && (( $(date +%s) < deadline )); do
      sleep 0.2
    done
    if pgrep -g "$pid" >/dev/null 2>&1; then
      echo "mlflow server group $pid still running after ${GENAI_BATCH_STOP_SECONDS:-10} s: killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || true
      while pgrep -g "$pid" >/dev/null 2>&1; do sleep 0.1; done
    fi
    rm -f "$dir/server.pid"
  fi
  exit 0
fi
workers="${GENAI_BATCH_MLFLOW_WORKERS:-1}"
if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]]; then
  echo "GENAI_BATCH_MLFLOW_WORKERS=$workers is not a worker count: set it to a whole number from 1 (default 1)" >&2
  exit 2
fi
if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
  echo "http://127.0.0.1:$port"; exit 0
fi
# setsid: the server and its uvicorn workers form one group that `stop` can end.
# Artifacts go to a local folder that clients write and read themselves, as they would a bucket
# (--default-artifact-root, no proxy): logging a model copies it at disk speed, and the job reads a
# registered model where it lies. Proxied artifacts (--serve-artifacts) stream every byte through
# the server's one Python worker: a 0.7 GB weights file did not finish uploading in 8 minutes.
# A shared server for a cluster uses a bucket root (s3://, abfss://, gs://) the same way.
setsid "$ROOT/.venv/bin/mlflow" server --host 127.0.0.1 --port "$port" \
  --backend-store-uri "sqlite:///$dir/mlflow.db" --default-artifact-root "$dir/artifacts" \
  --no-serve-artifacts --workers "$workers" > "$dir/server.log" 2>&1 &
echo $! > "$dir/server.pid"
for _ in $(seq 1 240); do
  if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then echo "http://127.0.0.1:$port"; exit 0; fi
  sleep 0.5
done
echo "mlflow server did not start; see $dir/server.log" >&2
exit 1
