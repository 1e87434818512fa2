"""A noisy neighbour for the benchmark's ``--neighbour``: one core kept busy while a system runs.

:class:`Neighbour` starts a Python subprocess that spins (a bounded busy loop), pinned with
``os.sched_setaffinity`` to the last CPU this process may use (where the kernel allows it), and ends it
when the run ends. The spinner also ends on its own: after ``deadline_s`` (default 30 minutes) and as
soon as its parent (the benchmark) is gone, so it never outlives the benchmark even if the benchmark is
killed before its ``finally``. Its CPU seconds are read from /proc before it is stopped, so a run can
say how busy the neighbour really was.

    with Neighbour() as n:
        ...            # the system under test runs here
    n.stats            # {"neighbour_cpu": 1, "neighbour_s": 12.3, "neighbour_cpu_s": 12.2, ...}
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from genai_batch.bench.procwatch import _cpu_ticks

DEADLINE_S = 1800.0

# The spinner: argv[1] deadline seconds, argv[2] CPU to pin to (-1: none), argv[3] the parent's pid.
SPIN = r"""
import os, sys, time
deadline, cpu, parent = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if cpu >= 0:
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass
end = time.monotonic() + deadline
x = 0
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(200000):
        x += 1
"""


def last_cpu() -> int:
    """The highest-numbered CPU this process may run on, or -1 where affinity is not available."""
    try:
        return max(os.sched_getaffinity(0))
    except (AttributeError, OSError, ValueError):
        return -1


def _affinity(pid: int) -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(pid))
    except (AttributeError, OSError):
        return None


class Neighbour:
    """A context manager: a spinning subprocess from __enter__ to __exit__ (killed there in any case)."""

    def __init__(self, deadline_s: float = DEADLINE_S, cpu: int | None = None):
        self.deadline_s = deadline_s
        self.cpu = last_cpu() if cpu is None else cpu
        self.proc: subprocess.Popen | None = None
        self.stats: dict = {}
        self._t0 = 0.0

    def start(self) -> "Neighbour":
        self.proc = subprocess.Popen([sys.executable, "-c", SPIN, str(self.deadline_s), str(self.cpu),
                                      str(os.getpid())], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self._t0 = time.monotonic()
        return self

    def stop(self) -> dict:
        p = self.proc
        if p is None:
            return self.stats
        self.proc = None
        ticks, pinned = _cpu_ticks(p.pid), _affinity(p.pid)
        alive = p.poll() is None
        try:
            if alive:
                p.kill()
        finally:
            p.wait()
        s = time.monotonic() - self._t0
        cpu_s = ticks / os.sysconf("SC_CLK_TCK") if ticks is not None else float("nan")
        self.stats = {"neighbour": True, "neighbour_cpu": self.cpu, "neighbour_pinned_to": pinned,
                      "neighbour_s": s, "neighbour_cpu_s": cpu_s,
                      "neighbour_busy": cpu_s / s if s > 0 else float("nan"),
                      "neighbour_ended_early": not alive}
        return self.stats

    def __enter__(self) -> "Neighbour":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class NoNeighbour:
    """The same interface, doing nothing (--neighbour off)."""

    stats: dict = {}

    def __enter__(self) -> "NoNeighbour":
        return self

    def __exit__(self, *exc) -> None:
        pass


def maybe(on: bool, deadline_s: float = DEADLINE_S):
    return Neighbour(deadline_s) if on else NoNeighbour()


if __name__ == "__main__":  # a quick look: spin for 2 s and print what was measured
    with Neighbour() as n:
        time.sleep(2)
    print(n.stats)
