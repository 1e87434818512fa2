"""Memory bandwidth of this machine, measured with numpy on arrays far larger than the caches.

Two numbers per process count (1, and one process per core in parallel):

* read: ``a.sum()`` over a float64 array (numpy's SIMD pairwise sum keeps up with memory);
  bytes read per second,
* copy: ``np.copyto(b, a)``: bytes read plus bytes written per second.

Batch-1 decoding of an int4 model streams every weight once per token, so the read bandwidth
bounds it: tokens/s <= read bandwidth / bytes of weights per token.

    python -m genai_batch.bench.membw [--mib 512] [--repeats 5] [--procs 2]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time

import numpy as np


def _one(mib: int, repeats: int, barrier, queue) -> None:
    n = mib * (1 << 20) // 8
    a = np.ones(n, dtype=np.float64)  # touched: every page resident
    b = np.empty_like(a)
    b.fill(0.0)
    out = {"read": 0.0, "copy": 0.0}
    for _ in range(repeats):
        barrier.wait()
        t = time.perf_counter()
        a.sum()
        dt = time.perf_counter() - t
        barrier.wait()
        out["read"] = max(out["read"], a.nbytes / dt / 1e9)
        t = time.perf_counter()
        np.copyto(b, a)
        dt = time.perf_counter() - t
        barrier.wait()
        out["copy"] = max(out["copy"], 2 * a.nbytes / dt / 1e9)
    queue.put(out)


def measure(procs: int, mib: int = 512, repeats: int = 5) -> dict:
    """Best-of-repeats GB/s, summed over procs processes running in step."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(procs)
    queue = ctx.Queue()
    ps = [ctx.Process(target=_one, args=(mib, repeats, barrier, queue)) for _ in range(procs)]
    for p in ps:
        p.start()
    results = [queue.get() for _ in ps]
    for p in ps:
        p.join()
    return {
        "procs": procs,
        "mib_per_proc": mib,
        "read_gbps": round(sum(r["read"] for r in results), 2),
        "copy_gbps": round(sum(r["copy"] for r in results), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m genai_batch.bench.membw", description=__doc__.split("\n")[0])
    p.add_argument("--mib", type=int, default=512, help="array size per process (MiB)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="largest process count")
    args = p.parse_args(argv)
    counts = sorted({1, args.procs})
    print(json.dumps({str(c): measure(c, args.mib, args.repeats) for c in counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
