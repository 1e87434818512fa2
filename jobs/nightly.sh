#!/usr/bin/env bash
# The nightly prompt-batch evaluation: scores the fixed prompt set into a dated output folder,
# logs the run to MLflow, compares it with the previous successful run of the same prompt set
# (answers changed, metric deltas) and fails (non-zero exit) when a threshold in the config is
# breached, so the scheduler alerts. Then, when the config names `scorers`, runs mlflow.genai.evaluate
# over the run's traces with them (src/main/python/genai_batch/evaluate_run.py), into the same run.
#   jobs/nightly.sh [CONFIG] [extra job flags]     (CONFIG default conf/nightly.yaml)
# Environment: GENAI_BATCH_MASTER (spark master, default local[*]), GENAI_BATCH_OUTPUT_ROOT
# (default target/nightly), MLFLOW_TRACKING_URI and its credentials.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
config="${1:-conf/nightly.yaml}"; shift || true
day="$(date -u +%Y-%m-%d)"
out_root="${GENAI_BATCH_OUTPUT_ROOT:-$ROOT/target/nightly}"
output="$out_root/$day/scored.parquet"
SKIP_BUILD="${SKIP_BUILD:-0}" jobs/setup.sh >&2
evaluate=(env PYTHONPATH="$ROOT/src/main/python${PYTHONPATH:+:$PYTHONPATH}" "$ROOT/.venv/bin/python" -m genai_batch.evaluate_run)
# A misspelt scorer or a judge without judge_model fails now, before a night of scoring.
"${evaluate[@]}" --config "$config" --check >/dev/null || exit 2
set +e
jobs/spark-submit.sh --master "${GENAI_BATCH_MASTER:-local[*]}" -- \
  --config "$config" --output "$output" --mode resume "$@"
rc=$?
set -e
# With the run logged (0: passed, 5: a threshold failed it), the config's `scorers` run through
# mlflow.genai.evaluate over the run's traces, into the same run. A failure there is a tracking
# failure: exit 4 unless the job already failed otherwise. No scorers: nothing to do.
if [[ $rc -eq 0 || $rc -eq 5 ]]; then
  experiment=()
  args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    [[ "${args[i]}" == "--experiment" && $((i + 1)) -lt ${#args[@]} ]] && experiment=(--experiment "${args[i + 1]}")
  done
  if ! "${evaluate[@]}" --config "$config" --output "$output" ${experiment[@]+"${experiment[@]}"}; then
    echo "jobs/nightly.sh: mlflow.genai.evaluate over the run failed (see above); the output is complete at $output" >&2
    [[ $rc -eq 0 ]] && rc=4
  fi
fi
exit $rc
