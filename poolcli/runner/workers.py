"""What every worker, local or on Dask, does before its first file: one compute thread (its
siblings use the other cores), malloc tuned to keep freed buffers, and the job's machine code
loaded (or compiled once) as the workers will run it."""

from __future__ import annotations

import os

from .. import io
from ..engine import runtime
from ..errors import ImageError
from ..jobs import Job
from .records import Settings


def setup_worker(settings: Settings) -> Settings:
    """Make this process (or thread) a worker: one compute thread and the malloc tuning; the
    settings it processes files with (one deflate thread)."""
    runtime.set_threads(1)
    reuse_freed_memory()  # workers from a fork server or Dask do not inherit the parent's setting
    return settings.for_worker()


def die_with_parent(parent: int | None, sig: int) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux's
    PR_SET_PDEATHSIG), so no worker is left running, orphaned, after a hard kill of poolcli;
    exits at once if the parent is already gone."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the worker later
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def reuse_freed_memory() -> None:
    """Have glibc's malloc keep the buffers of one image for the next instead of unmapping them.

    Each image allocates several buffers of a few hundred kB to a few MB (file bytes, inflated
    scanlines, pixels, results); by default glibc maps each one fresh and unmaps it on free, so
    every page of every buffer faults and is zeroed again: ≈ 1 ms of a 640×480 photo's ≈ 8 ms.
    Buffers up to 16 MB now come from the heap, which keeps up to 64 MB of freed memory.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 16 << 20)
    mallopt(M_TRIM_THRESHOLD, 64 << 20)


def warm(job: Job, fmt: str) -> float:
    """Compile (or load from the cache) the job's 8-bit path, encoder included, as the workers
    will run it (on one thread each: the serial twins of the parallel loops), before they
    start; returns the milliseconds that took.  On an empty cache the PNG codec's loops are
    compiled by a forked helper meanwhile, on the other core (:func:`codecs_ahead`)."""
    import numpy as np

    from .. import topixels
    from .work import prepare

    runtime.take_compile_ms()
    runtime.engine()
    before = runtime.threads()
    runtime.set_threads(1)
    helper = codecs_ahead(fmt)
    try:
        if job.gray:  # --gray converts while decoding
            topixels.luma(np.zeros((2, 2, 3), np.uint8))
        ready = []
        for channels in (1, 3):
            pic = io.Picture(np.zeros((16, 16, channels), np.uint8), False, "RGB")
            try:
                result = job.compute(pic, pixels=True)
                ready += [(px, pic.alpha) for _, px in prepare(job, result, pic.pixels.dtype, fmt, "warm-up")
                          if not isinstance(px, bytes)]  # fmt: skip
            except ImageError:
                pass  # a window too large for the tiny image: nothing to warm
        join(helper)
        for px, alpha in ready:  # loaded from the cache the helper filled, or compiled here
            io.decode(io.encode(px, alpha, fmt), "warm-up")
    finally:
        join(helper)
        runtime.set_threads(before)
    return runtime.take_compile_ms()


HELPERS = [False]  # whether codecs_ahead may fork: the command line's runs only (allow_helpers), never a library's


def allow_helpers() -> None:
    """Let this process fork compile helpers (:func:`codecs_ahead`): the command line calls it."""
    HELPERS[0] = True


def codecs_ahead(fmt: str) -> int | None:
    """On an empty cache, fork a helper that compiles the PNG codec's loops (decode and encode,
    8- and 16-bit alike: they work on bytes) into the cache while this process compiles the
    job's own; its pid, or None (cached already, another format, or no fork).  Measured in
    benchmarks/RESULTS.md (#26): the codec's loops are about half of a first run's compiling."""
    import threading

    if not HELPERS[0] or fmt != "png" or not hasattr(os, "fork") or runtime.numpy_engine():
        return None
    if threading.active_count() > 1:  # another thread may hold a lock (Numba's compiler lock) the child would need
        return None
    import numpy as np

    from ..engine import png as loops

    if not runtime.never_cached(loops.filter_rows.serial):
        return None
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid:
        return pid
    code = 0
    try:  # the child: nothing it does reaches the user (its output is discarded, its errors too)
        runtime.compile_notice = None  # the parent says it is compiling, once
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        io.decode(io.encode(np.zeros((16, 16, 3), np.uint8), False, "png"), "warm-up")
    except BaseException:  # noqa: BLE001 - the parent compiles whatever this did not
        code = 1
    finally:
        os._exit(code)


def join(pid: int | None) -> None:
    """Wait for a helper :func:`codecs_ahead` started (once: later calls do nothing)."""
    if pid is None:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # reaped already
        pass
