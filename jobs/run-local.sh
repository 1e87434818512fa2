#!/usr/bin/env bash
# Runs the main job end to end on local defaults, from a fresh clone:
#  1. set-up (pinned .venv, the job jar),
#  2. a local MLflow server on 127.0.0.1 (unless MLFLOW_TRACKING_URI is set),
#  3. the bundled tiny Phi-3-architecture model logged to it as the seed does, registered, alias champion,
#  4. spark-submit --master local[2] of BatchScoringJob over jobs/data/sample_prompts.jsonl,
#  5. where the output is, and a look at it.
# Extra arguments go to the job, e.g. jobs/run-local.sh --max-tokens 8
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
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
