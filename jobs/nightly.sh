#!/usr/bin/env bash
# The nightly prompt-batch evaluation: scores the fixed prompt set into a dated output folder,
# logs the run to MLflow, compares it with the previous successful run of the same prompt set
# (answers changed, metric deltas) and fails (non-zero exit) when a threshold in the config is
# breached, so the scheduler alerts.
#   jobs/nightly.sh [CONFIG] [extra job flags]     (CONFIG default conf/nightly.yaml)
# Environment: GENAI_BATCH_MASTER (spark master, default local[*]), GENAI_BATCH_OUTPUT_ROOT
# (default target/nightly), MLFLOW_TRACKING_URI and its credentials.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
config="${1:-conf/nightly.yaml}"; shift || true
day="$(date -u +%Y-%m-%d)"
out_root="${GENAI_BATCH_OUTPUT_ROOT:-$ROOT/target/nightly}"
SKIP_BUILD="${SKIP_BUILD:-0}" jobs/setup.sh >&2
exec jobs/spark-submit.sh --master "${GENAI_BATCH_MASTER:-local[*]}" -- \
  --config "$config" --output "$out_root/$day/scored.parquet" --mode resume "$@"
