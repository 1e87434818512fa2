"""Benchmarks of genai-batch against the seed's way (``mlflow.pyfunc.spark_udf`` over the pyfunc
wrapper) and against the engine alone; run through ``jobs/benchmark.sh`` (``python -m
genai_batch.bench``). See docs/benchmarks.md.

Modules: :mod:`.run` (the command: inputs, the systems, batch scaling, the tables; ``--workload
uniform|mixed``), :mod:`.workload` (the mixed workload's prompts, 10-500 tokens, log-uniform),
:mod:`.procwatch` (runs a command and samples its process tree's memory from /proc),
:mod:`.udf_runner` (system b, run in its own Python), :mod:`.timed_pyfunc` (the seed-style
wrapper plus load and generation timing), :mod:`.membw` (memory bandwidth),
:mod:`.weights` (bytes read per decoded token), :mod:`.table` (the printed tables).
"""
