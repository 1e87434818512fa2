"""Runs a command and samples the memory of its whole process tree from /proc (Linux).

Every ``interval`` seconds it finds the command's descendants (through the ppid field of
/proc/PID/stat) and reads VmHWM (peak resident set, which the kernel keeps per process) and
VmRSS from /proc/PID/status. A process's last VmHWM reading before it exits is its peak, up to
the sampling interval; the sum of VmRSS over the tree, at its largest, is the peak of the tree as
a whole; processes seen in fewer than three samples are left out of that sum (a JVM starting a
subprocess briefly shares its memory with the child, which would count it twice). It also counts the CPU time of the tree (utime + stime of /proc/PID/stat) against the
machine's busy time (/proc/stat), so a run says how much other work shared the machine with it.
"""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field


@dataclass
class ProcInfo:
    pid: int
    cmdline: str
    hwm_kb: int = 0
    cpu_ticks: int = 0


@dataclass
class Watched:
    returncode: int
    wall_s: float
    procs: dict[int, ProcInfo] = field(default_factory=dict)
    tree_peak_rss_kb: int = 0
    cpu_s: float = 0.0  # CPU seconds of the tree
    others_cores: float = 0.0  # average cores busy with other processes during the run
    # (epoch seconds, CPU ticks of the tree so far, busy ticks of the machine) at every sample
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def window(self, t0: float, t1: float) -> tuple[float, float]:
        """(CPU seconds of the tree, average CPUs busy with other processes) between epoch
        times t0 and t1, interpolated between samples."""
        if len(self.samples) < 2 or t1 <= t0:
            return float("nan"), float("nan")
        ts = [x[0] for x in self.samples]

        def at(t: float, i: int) -> float:
            if t <= ts[0]:
                return self.samples[0][i]
            for k in range(1, len(ts)):
                if t <= ts[k]:
                    a, b = self.samples[k - 1], self.samples[k]
                    f = (t - a[0]) / (b[0] - a[0]) if b[0] > a[0] else 1.0
                    return a[i] + f * (b[i] - a[i])
            return self.samples[-1][i]

        ours = (at(t1, 1) - at(t0, 1)) / TICKS
        busy = (at(t1, 2) - at(t0, 2)) / TICKS
        return ours, max(0.0, (busy - ours) / (t1 - t0))

    def find(self, *needles: str) -> list[ProcInfo]:
        """The processes whose command line holds every needle."""
        return [p for p in self.procs.values() if all(n in p.cmdline for n in needles)]


TICKS = os.sysconf("SC_CLK_TCK")


def busy_ticks() -> int:
    """Ticks all CPUs spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def busy_cores(seconds: float = 2.0) -> float:
    """Average number of busy CPUs over the next `seconds` (this process sleeps meanwhile)."""
    b0, t0 = busy_ticks(), time.monotonic()
    time.sleep(seconds)
    return (busy_ticks() - b0) / TICKS / (time.monotonic() - t0)


def wait_quiet(max_wait_s: float, threshold: float = 0.5, window_s: float = 2.0) -> tuple[float, float]:
    """Waits until fewer than `threshold` CPUs are busy over a window, or max_wait_s has passed.
    Returns (seconds waited, busy CPUs in the last window)."""
    t0 = time.monotonic()
    while True:
        busy = busy_cores(window_s)
        if busy < threshold or time.monotonic() - t0 >= max_wait_s:
            return time.monotonic() - t0, busy


def tree_cpu_s(root: int) -> float:
    """CPU seconds so far of root and its descendants (one that already ended is not counted)."""
    return sum(_cpu_ticks(pid) or 0 for pid in _tree(root)) / TICKS


def _cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()
    return int(rest[11]) + int(rest[12])  # utime, stime


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so cut at the last ')'.
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) > 1:
            kids.setdefault(int(rest[1]), []).append(int(name))
    return kids


def _tree(root: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _status_kb(pid: int) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) in kB, or None when the process is gone (or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            hwm = rss = None
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
            return None if hwm is None or rss is None else (hwm, rss)
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def run(cmd: list[str], *, env: dict | None = None, cwd: str | None = None, stdout=None, stderr=None,
        interval: float = 0.2, timeout: float | None = None) -> Watched:
    """Runs cmd to its end, sampling its tree; stdout/stderr are file objects (or None to inherit)."""
    t0 = time.monotonic()
    busy0 = busy_ticks()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=stdout, stderr=stderr)
    w = Watched(returncode=-1, wall_s=0.0)

    rss_samples: list[dict[int, int]] = []

    def sample() -> None:
        rss: dict[int, int] = {}
        for pid in _tree(proc.pid):
            st = _status_kb(pid)
            if st is None:
                continue
            info = w.procs.get(pid)
            if info is None:
                info = w.procs[pid] = ProcInfo(pid, "")
            # Read every time: spark-submit and spark-class exec into java under the same pid.
            info.cmdline = _cmdline(pid) or info.cmdline
            info.hwm_kb = max(info.hwm_kb, st[0])
            info.cpu_ticks = max(info.cpu_ticks, _cpu_ticks(pid) or 0)
            rss[pid] = st[1]
        rss_samples.append(rss)
        w.samples.append((time.time(), sum(p.cpu_ticks for p in w.procs.values()), busy_ticks()))

    try:
        while proc.poll() is None:
            sample()
            if timeout is not None and time.monotonic() - t0 > timeout:
                proc.kill()
                proc.wait()
                raise TimeoutError(f"{cmd[0]} ran past {timeout:.0f} s")
            time.sleep(interval)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    w.returncode = proc.returncode
    w.wall_s = time.monotonic() - t0
    seen: dict[int, int] = {}
    for rss in rss_samples:
        for pid in rss:
            seen[pid] = seen.get(pid, 0) + 1
    w.tree_peak_rss_kb = max((sum(v for pid, v in rss.items() if seen[pid] >= 3) for rss in rss_samples), default=0)
    # CPU of processes that ended between samples is missed (a fraction of a sample interval each).
    ours = sum(p.cpu_ticks for p in w.procs.values())
    w.cpu_s = ours / TICKS
    w.others_cores = max(0.0, (busy_ticks() - busy0 - ours) / TICKS / w.wall_s)
    return w
