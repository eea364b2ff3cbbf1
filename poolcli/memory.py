"""How much memory a file's work may take, and how much it would take (contract §3: a file that
cannot fit is refused from its header's estimate before it is decoded, naming both numbers).

The budget is the smallest of what the address-space limit (``ulimit -v``) leaves this process,
what the cgroup's memory limit leaves (containers, CI runners), and the memory the kernel says is
available; the estimate counts the decoded image and the arrays a job holds at once (a bank's
maps, a pipeline's widest pair of stages).
"""

from __future__ import annotations

import os


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def budget() -> tuple[int, str] | None:
    """(bytes, what sets it) of memory this process may still use, or None when nothing says."""
    found: list[tuple[int, str]] = []
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        statm = _read("/proc/self/statm")
        if soft != resource.RLIM_INFINITY and statm:
            used = int(statm.split()[0]) * os.sysconf("SC_PAGE_SIZE")
            found.append((max(0, soft - used), "the address-space limit (ulimit -v)"))
    except (ImportError, ValueError, OSError):
        pass
    limit, current = _read("/sys/fs/cgroup/memory.max"), _read("/sys/fs/cgroup/memory.current")
    if limit and limit != "max" and current and limit.isdigit() and current.isdigit():
        found.append((max(0, int(limit) - int(current)), "the container's memory limit (cgroup memory.max)"))
    meminfo = _read("/proc/meminfo")
    if meminfo:
        for line in meminfo.splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "the memory available on this machine"))
    return min(found) if found else None


def estimate(job, width: int, height: int, colour: int) -> int:
    """Bytes a job holds at once on an image of this size and colour channels, read whole: the
    decoded pixels (as float64 at most) and the float32 arrays of its widest step."""
    px = width * height
    held = px * (colour + 1) * 8  # the decoded image, alpha included
    pipe = job.pipeline
    if pipe is None:
        return held + px * (colour + 1) * 4
    channels = [colour] + pipe.colours(colour)
    widest = max(a + b for a, b in zip(channels, channels[1:]))
    return held + px * (widest + 2) * 4


def human(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.0f} KB"
