#!/usr/bin/env bash
# genai-batch against the seed's way (PySpark + mlflow.pyfunc.spark_udf over the pyfunc wrapper)
# and against the engine alone, on the same prompts, model, greedy search and cores; prints one
# table (plus batch scaling, memory as partitions grow and the memory-bandwidth bound):
#   jobs/benchmark.sh [--model tiny|phi3-mini|DIR] [--rows N] [--new-tokens N] [--repeats K]
#                     [--batch-size B] [--batch-sizes 1,2,4,8,16] [--memory-partitions 2,4,8]
#   jobs/benchmark.sh --model tiny --rows 16 --repeats 1     # smoke test, about a minute
# --help lists every flag; docs/benchmarks.md has the numbers and how to read them.
# On a shared machine, run it under `nice -n 10`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
case " $* " in
  *" --help "*|*" -h "*) ;;
  *) "$ROOT/jobs/setup.sh" >&2 ;;
esac
export PYTHONPATH="$ROOT/src/main/python${PYTHONPATH:+:$PYTHONPATH}"
exec "$ROOT/.venv/bin/python" -m genai_batch.bench "$@"
