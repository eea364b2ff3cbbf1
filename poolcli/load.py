"""How many cores other processes keep busy right now, from /proc/stat (Linux).

A parallel loop split over a core that another process keeps busy waits for that core's time
slice (4–8 ms) at its end; :func:`free_cores` tells the engine how many threads a call can use
without waiting so.  The estimate is the CPU time all cores spent busy, less this process's own,
over the last window of at least 50 ms (the first window starts when the command starts).
Nothing here imports NumPy or Numba.
"""

from __future__ import annotations

import os
import time

WINDOW = 0.05  # seconds: shorter windows are below the kernel's clock-tick resolution
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_last: tuple[float, int, int] | None = None
_free = _CORES


def _read() -> tuple[float, int, int] | None:
    try:
        with open("/proc/stat", "rb") as fh:
            fields = fh.readline().split()[1:]
        with open("/proc/self/stat", "rb") as fh:
            own = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return time.monotonic(), user + nice + system + irq + softirq + steal, int(own[11]) + int(own[12])


def sample() -> None:
    """Start a window now (the command line calls this as it starts)."""
    global _last
    _last = _read()


def free_cores() -> int:
    """Cores that no other process kept busy during the last window (at least 1)."""
    global _last, _free
    now = _read()
    if now is None:
        return _CORES
    if _last is None:
        _last = now
        return _free
    seconds = now[0] - _last[0]
    if seconds >= WINDOW:
        others = ((now[1] - _last[1]) - (now[2] - _last[2])) / _TICK / seconds  # cores' worth
        _free = max(1, min(_CORES, _CORES - int(others + 0.5)))
        _last = now
    return _free
