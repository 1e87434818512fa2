"""Prefill and decode-step rates of a model's decoder graph on 2 intra-op threads under onnxruntime
session settings (thread spinning, dynamic block sizes), alone and with a neighbour process spinning on
one core: what docs/scheduling.md's "Thread settings" measured before choosing the loop's session.

    .venv/bin/python -m genai_batch.bench.thread_settings models/phi3-mini-4l-r03
"""
import json, sys, time, subprocess, os
import numpy as np, onnxruntime as ort
d = sys.argv[1]
cfg = json.load(open(f"{d}/genai_config.json"))["model"]["decoder"]
L, kv, hd = cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_size"]
MAX = 512
def session(extra):
    so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.inter_op_num_threads = 1
    for k, v in extra.items(): so.add_session_config_entry(k, v)
    return ort.InferenceSession(f"{d}/{cfg['filename']}", so, providers=["CPUExecutionProvider"])
def run(s, rows, width, cached, bufs):
    io = s.io_binding()
    io.bind_cpu_input("input_ids", np.ones((rows, width), np.int64) * 100)
    io.bind_cpu_input("attention_mask", np.ones((rows, cached + width), np.int64))
    io.bind_output("logits")
    for i in range(L):
        for k in ("key", "value"):
            io.bind_ortvalue_input(f"past_key_values.{i}.{k}", bufs[(i, k)])
            io.bind_ortvalue_output(f"present.{i}.{k}", bufs[(i, k)])
    s.run_with_iobinding(io)
def bench(s):
    bufs = {(i, k): ort.OrtValue.ortvalue_from_numpy(np.zeros((8, kv, MAX, hd), np.float32)) for i in range(L) for k in ("key", "value")}
    b1 = {(i, k): ort.OrtValue.ortvalue_from_numpy(np.zeros((1, kv, MAX, hd), np.float32)) for i in range(L) for k in ("key", "value")}
    run(s, 1, 128, 0, b1)
    t = time.perf_counter(); n = 0
    while time.perf_counter() - t < 6: run(s, 1, 128, 0, b1); n += 128
    pre = n / (time.perf_counter() - t)
    t = time.perf_counter(); n = 0
    while time.perf_counter() - t < 6: run(s, 8, 1, 200, bufs); n += 8
    dec = n / (time.perf_counter() - t)
    return pre, dec
variants = {"default": {}, "nospin": {"session.intra_op.allow_spinning": "0"},
            "dynblock": {"session.dynamic_block_base": "4"},
            "nospin+dyn": {"session.intra_op.allow_spinning": "0", "session.dynamic_block_base": "4"}}
for nb in (False, True):
    p = subprocess.Popen([sys.executable, "-c", "import os,time\nos.sched_setaffinity(0,{1})\nt=time.time()\nwhile time.time()-t<600: pass"]) if nb else None
    try:
        for name, extra in variants.items():
            s = session(extra)
            pre, dec = bench(s)
            print(f"neighbour={nb} {name:12s} prefill {pre:7.1f} tok/s  decode(8 rows) {dec:6.1f} tok/s", flush=True)
    finally:
        if p: p.kill()
