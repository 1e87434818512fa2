"""The seed-style pyfunc wrapper, timed: system (b) of the benchmark.

:class:`TimedPhi3Model` is :class:`genai_batch.phi3_pyfunc.Phi3Model` unchanged (one prompt at a
time, as the seed's ``predict`` does) plus bookkeeping: when ``model_config`` holds
``bench_log`` (a folder), each Python process that loads the model appends JSON lines to
``bench_log/PID.jsonl``: one ``load`` event (wall time of ``load_context``: the native model and
tokenizer load), one ``gen`` event per prompt (start, end, generated tokens, finish reason) and
one ``predict`` event per call with the process's peak RSS (VmHWM). Writing a line per prompt
costs microseconds against a generation's milliseconds.
"""
from __future__ import annotations

import json
import os
import time

from genai_batch.phi3_pyfunc import Phi3Model


def _vmhwm_kb() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


class TimedPhi3Model(Phi3Model):
    def load_context(self, context):
        t0 = time.time()
        super().load_context(context)
        t1 = time.time()
        config = getattr(context, "model_config", None) or {}
        log_dir = config.get("bench_log")
        self._log_file = os.path.join(log_dir, f"{os.getpid()}.jsonl") if log_dir else None
        self._emit(event="load", start=t0, end=t1, load_ms=(t1 - t0) * 1e3)
        generate = self.runner.generate

        def timed(prompt, overrides=None, stop=None):
            start = time.time()
            out = generate(prompt, overrides, stop)
            self._emit(event="gen", start=start, end=time.time(), tokens=len(out["tokens"]),
                       prompt_tokens=out["prompt_tokens"], finish=out["finish_reason"])
            return out

        self.runner.generate = timed

    def predict(self, context, model_input, params=None):
        out = super().predict(context, model_input, params)
        self._emit(event="predict", rows=len(out), vmhwm_kb=_vmhwm_kb())
        return out

    def _emit(self, **event) -> None:
        if self._log_file:
            event["pid"] = os.getpid()
            with open(self._log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
