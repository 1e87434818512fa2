#!/usr/bin/env bash
# The nightly prompt-batch evaluation: scores the fixed prompt set into a dated output folder,
# logs the run to MLflow, compares it with the previous successful run of the same prompt set
# (answers changed, metric deltas) and fails (non-zero exit) when a threshold in the config is
# breached, so the scheduler alerts. Then, when the config names `scorers`, runs mlflow.genai.evaluate
# over the run's traces with them (src/main/python/genai_batch/evaluate_run.py), into the same run;
# it checks the `max_metric_drop` limits on scorers' metrics (`answered/mean`), which the job leaves.
#   jobs/nightly.sh [CONFIG] [extra job flags]     (CONFIG default conf/nightly.yaml)
# Exit: 0 passed; 2 a bad config or flag (a misspelt scorer: before anything is scored); 3 too many
# error rows; 4 a tracking failure (the output is complete); 5 a threshold failed the run.
# Environment: GENAI_BATCH_MASTER (spark master, default local[*]), GENAI_BATCH_OUTPUT_ROOT
# (default target/nightly), GENAI_BATCH_NIGHT (the night's date, YYYY-MM-DD, naming its output
# folder; default today in UTC: set it to rerun a past night), MLFLOW_TRACKING_URI and its credentials.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
config="${1:-conf/nightly.yaml}"; shift || true
day="${GENAI_BATCH_NIGHT:-$(date -u +%Y-%m-%d)}"
if [[ ! "$day" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
  echo "jobs/nightly.sh: GENAI_BATCH_NIGHT is '$day'; give the night's date as YYYY-MM-DD, or unset it for today" >&2
  exit 2
fi
out_root="${GENAI_BATCH_OUTPUT_ROOT:-$ROOT/target/nightly}"
output="$out_root/$day/scored.parquet"
SKIP_BUILD="${SKIP_BUILD:-0}" jobs/setup.sh >&2
evaluate=(env PYTHONPATH="$ROOT/src/main/python${PYTHONPATH:+:$PYTHONPATH}" "$ROOT/.venv/bin/python" -m genai_batch.evaluate_run)
# The job flags evaluate_run.py reads too: the experiment, the scorers, the judge and limits on scorers' metrics.
passed=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --experiment|--max-metric-drop|--scorers|--judge-model)
      [[ $((i + 1)) -lt ${#args[@]} ]] && passed+=("${args[i]}" "${args[i + 1]}") ;;
    --experiment=*|--max-metric-drop=*|--scorers=*|--judge-model=*) passed+=("${args[i]}") ;;
  esac
done
# A misspelt scorer, a judge without judge_model or a limit on a scorer not run fails now, before a
# night of scoring.
"${evaluate[@]}" --config "$config" --check ${passed[@]+"${passed[@]}"} >/dev/null || exit 2
set +e
jobs/spark-submit.sh --master "${GENAI_BATCH_MASTER:-local[*]}" -- \
  --config "$config" --output "$output" --mode resume "$@"
rc=$?
set -e
# With the run logged (0: passed, 5: a threshold failed it), the config's `scorers` run through
# mlflow.genai.evaluate over the run's traces, into the same run; a scorer metric that fell by more
# than its max_metric_drop fails the run there (5). Any other failure there is a tracking failure:
# exit 4 unless the job already failed otherwise. No scorers: nothing to do.
if [[ $rc -eq 0 || $rc -eq 5 ]]; then
  set +e
  "${evaluate[@]}" --config "$config" --output "$output" ${passed[@]+"${passed[@]}"}
  erc=$?
  set -e
  if [[ $erc -eq 5 ]]; then
    rc=5
  elif [[ $erc -ne 0 ]]; then
    echo "jobs/nightly.sh: mlflow.genai.evaluate over the run failed (see above); the output is complete at $output" >&2
    [[ $rc -eq 0 ]] && rc=4
  fi
fi
exit $rc
