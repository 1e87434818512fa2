#!/usr/bin/env bash
# genai-batch against the seed's way (PySpark + mlflow.pyfunc.spark_udf over the pyfunc wrapper)
# and against the engine alone, on the same prompts, model, greedy search and cores; prints one
# table (plus batch scaling, memory as partitions grow and the memory-bandwidth bound):
#   jobs/benchmark.sh [--workload uniform|mixed|decode|structured|shared] [--model tiny|phi3-mini|phi3-mini-4l|DIR]
#                     [--rows N] [--new-tokens N] [--repeats K] [--batch-size B] [--systems a,a0,a1,an,b,b2,p,c]
#                     [--neighbour]
#                     [--batch-sizes 1,2,4,8,16] [--memory-partitions 2,4,8]          (uniform only)
#                     [--engine-batches 1,8,16] [--engine-new-tokens 32] [--seed 0]   (mixed only)
#                     [--templates 3] [--seed 0]                                      (shared only)
#   jobs/benchmark.sh --model tiny --rows 16 --repeats 1     # smoke test, about a minute
# --workload uniform (default): every prompt 6-7 tokens, every answer exactly --new-tokens (16).
# --workload mixed: --rows (32) prompts of 10-500 tokens (log-uniform, Phi-3 chat markup, counted with
#   the model's tokenizer) in ONE Parquet file, greedy with at most --new-tokens (256) new tokens, on
#   --model phi3-mini-4l (Phi-3-mini's shapes, 4 layers, answers that stop at varied lengths;
#   generated into models/phi3-mini-4l-r03 when missing). Systems: a = the job with its defaults,
#   a0 = the static batches (--batching adaptive), a1 = --batch-size 1, b = spark_udf with onnxruntime's
#   default threads as its users run it, b2 = spark_udf with the rows spread over the cores, p = the limit
#   (the engine's prefill rate), c = the engine alone on the uniform prompts at --engine-batches.
# --workload decode: as mixed with 10-40-token prompts, so answers dominate.
# --workload structured: as mixed, every answer under a JSON Schema (--response-format); systems a (with
#   the schema), af (the same prompts free), a1 (--batch-size 1 with the schema), p: what guided rows cost.
#   Headline: total (prompt + completion) tokens/s; also cores busy, slot efficiency, a/a0 answers.
#   jobs/benchmark.sh --workload mixed --model tiny --rows 8 --repeats 1   # smoke test, a few minutes
#   nice -n 10 jobs/benchmark.sh --workload mixed                          # the real run
# --workload shared: a nightly evaluation: --rows (64) rows of --templates (3) instruction templates of 300-800
#   tokens (few-shot examples, Phi-3 chat markup, a literal token prefix of their rows) + 20-200 tokens of row
#   content, interleaved, about 5% exact duplicate rows, ONE Parquet file, at most --new-tokens (40). Systems
#   (default a,an,a1,b2,p): a = the job's defaults (prefix reuse and duplicate answering on), an =
#   --prefix-cache-mb 0 (reuse off; answers must equal a's, checked), a1 = --batch-size 1, b2, b (not default), p
#   as for mixed. Reports useful tok/s and its multiple of the limit (p), a/b2, a/an, a/a1, prompt tokens
#   computed, prefix hit rate, store MiB, duplicate rows answered, and the targets (>= 3x the limit, a/b2 >= 3x,
#   a/an >= 2.5x, computed <= 25% of prompt tokens).
#   jobs/benchmark.sh --workload shared --model tiny --rows 16 --repeats 1 --systems a,an,p   # smoke test
# --workload traces: what tracing every row costs the job (tracking on, trace_sample_rate 0 against 1, a local
#   MLflow server) beside the server taking the same spans from a client that does nothing else (the limit);
#   its own flags: [--rows 1000,10000] [--repeats 2] [--new-tokens 4] [--model tiny|DIR] (docs/traces.md).
#   jobs/benchmark.sh --workload traces --rows 200 --repeats 1   # smoke test, about two minutes
# --neighbour (any workload but traces): while each system runs, a Python busy loop pinned to the last CPU keeps one core
#   busy (killed when the run ends; exits by itself after 30 minutes or when the benchmark is gone); the
#   report says it was on.
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
