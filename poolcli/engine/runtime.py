"""The engine's runtime: calling a compiled loop (:func:`run_compiled`), keeping compile (and
cache-load) time apart from compute time, the thread count, and the busy-core rule.

A parallel loop split over a core that another process keeps busy waits for that core's time
slice (4–8 ms) at its end; :func:`free_cores` tells how many threads a call can use without
waiting so.  The estimate is the CPU time all cores spent busy, less this process's own, over
the last window of at least 50 ms (the first window starts when the command starts, at
:func:`sample`), read from /proc/stat (Linux).  Nothing here imports NumPy or Numba until a
loop is called, so ``import poolcli`` (and the CLI's ``--help``) stays fast; the compiled loops
themselves do no I/O.
"""

from __future__ import annotations

import os
import sys
import time

from ..errors import UsageError

WINDOW = 0.05  # seconds: shorter windows are below the kernel's clock-tick resolution
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_last: tuple[float, int, int] | None = None
_free = _CORES
_compile_ms = 0.0


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
    if _last is not None and time.monotonic() - _last[0] < WINDOW:
        return _free  # within the window: nothing new to read (reading /proc costs a call ≈ 0.3 ms)
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


def take_compile_ms() -> float:
    """Milliseconds spent compiling or loading compiled code since the last call."""
    global _compile_ms
    ms, _compile_ms = _compile_ms, 0.0
    return ms


def compile_ms_so_far() -> float:
    """Milliseconds spent compiling since the last :func:`take_compile_ms`, without resetting."""
    return _compile_ms


def engine_loaded() -> bool:
    """Whether :func:`engine` has imported the compiled-loop modules (and Numba) already."""
    return "poolcli.engine.pool" in sys.modules


def engine():
    """The compiled-loop modules; importing Numba (≈0.2 s) counts as compile time."""
    global _compile_ms
    if not engine_loaded():
        t0 = time.perf_counter()
        from . import convolve, pixels, png, pool  # noqa: F401

        _compile_ms += (time.perf_counter() - t0) * 1e3
        if _wanted_threads:
            set_threads(_wanted_threads)
    from .. import engine as eng

    return eng


compile_notice = None  # the command line sets a callable: told once, before the first real compilation


# Arrays of fewer elements than this are computed on one thread (the serial twin): on them the
# parallel loop's dispatch costs about what it saves, and compiling the twin the first time
# takes half as long (a fresh install's first 0.3-MP Sobel: 10.8 → 5.8 s).
SERIAL_BELOW = 1 << 20


FORCE_PARALLEL = False  # `poolcli warmup` compiles the parallel forms whatever the image size and load


def _cached(fn, sig) -> bool:
    """Whether Numba's on-disk cache holds ``fn`` for ``sig`` (so compiling only loads it)."""
    try:
        cache = fn._cache
        return cache._index_key(sig, fn.targetctx.codegen()) in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - Numba's cache internals: when unsure, assume it is cached
        return True


def never_cached(fn) -> bool:
    """Whether Numba's on-disk cache holds nothing at all for ``fn`` yet (a fresh install or
    an empty ``NUMBA_CACHE_DIR``): its index file is missing."""
    try:
        return not os.path.exists(fn._cache._cache_file._index_path)
    except Exception:  # noqa: BLE001 - Numba's cache internals: when unsure, assume it is cached
        return False


def run_compiled(fn, *args) -> None:
    """Call a compiled engine function, timing its compilation (or cache load) separately; on
    one thread, its serial twin (see :func:`poolcli.engine._jit.pjit`)."""
    global _compile_ms, compile_notice
    from numba import typeof

    serial = getattr(fn, "serial", None)
    share = 0  # threads to use when fewer than configured: the machine is busy
    if serial is not None and not FORCE_PARALLEL:
        n = threads()
        if n == 1 or max(getattr(a, "size", 0) for a in args) < SERIAL_BELOW:
            fn = serial
        else:
            free = free_cores()
            if free <= 1:
                fn = serial
            elif free < n:
                share = free
    key = (fn, *map(_kind, args))
    if key not in _READY:  # Numba's own typeof costs ≈ 40 µs an array: asked once per kind of call
        sig = tuple(typeof(a) for a in args)
        if sig not in fn.overloads:
            if compile_notice is not None and not _cached(fn, sig):
                notice, compile_notice = compile_notice, None
                notice()
            t0 = time.perf_counter()
            fn.compile(sig)
            _compile_ms += (time.perf_counter() - t0) * 1e3
        _READY.add(key)
    if share:
        import numba

        before = numba.get_num_threads()
        numba.set_num_threads(share)
        try:
            fn(*args)
        finally:
            numba.set_num_threads(before)
        return
    fn(*args)


_READY: set = set()  # (dispatcher, argument kinds) already compiled or loaded in this process


def _kind(a):
    """What Numba's type of ``a`` depends on, cheaply: an array's dtype, dimensions, layout,
    writability and alignment; a scalar's Python type (an int is int64, a float float64)."""
    if isinstance(a, (tuple, list)):
        return type(a), tuple(map(_kind, a))
    flags = getattr(a, "flags", None)
    if flags is None:
        return type(a)
    return (a.dtype, a.ndim, flags.c_contiguous, flags.f_contiguous, flags.writeable, flags.aligned)


def row_blocks(rows: int) -> int:
    """How many blocks of output rows to hand to ``prange``: a few per thread, for balance."""
    return max(1, min(rows, 4 * threads()))


_wanted_threads: int | None = None  # --threads before Numba is imported: applied when it is


def threads() -> int:
    """How many compute threads the engine uses now (without importing Numba for it)."""
    if "numba" not in sys.modules:
        default = int(os.environ.get("NUMBA_NUM_THREADS") or _CORES)
        return min(_wanted_threads, default) if _wanted_threads else default
    import numba

    return numba.get_num_threads()


def set_threads(n: int | None) -> None:
    """Bound the compute threads (``--threads``); None leaves Numba's default (all cores)."""
    global _wanted_threads
    if n is None:
        return
    if n < 1:
        raise UsageError(f"--threads must be at least 1, got {n}")
    if "numba" not in sys.modules:
        _wanted_threads = n
        return
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


# --------------------------------------------------------------------------- NumPy forms

# Which code computes a loop (see :mod:`poolcli.engine.numpy_forms`): "numba", the compiled
# loops (a library's default); "numpy", the NumPy forms where a loop has one; "auto" (the
# command line's), the NumPy forms while Numba is not imported and a call's arrays are smaller
# than NUMPY_BELOW elements.  POOLCLI_ENGINE overrides all three.  The results are equal.
ENGINES = ("auto", "numba", "numpy")
_engine = "numba"
NUMPY_BELOW = 4 << 20  # elements: ≈ 1.3 MP of RGB; NumPy's time there ≈ Numba's import alone
NUMPY_JOB = 4_000_000  # pixels: a command whose inputs hold fewer in all computes on NumPy
NUMPY_FILES = 200  # ... and has at most this many inputs (each costs the forms' per-call overhead, in one process)


def _engine_name(name: str) -> str:
    if name not in ENGINES:
        raise UsageError(f"POOLCLI_ENGINE must be one of {', '.join(ENGINES)}, got {name!r}")
    return name


def use_engine(name: str) -> None:
    """Choose which code computes the loops from now on (one of :data:`ENGINES`)."""
    global _engine
    _engine = _engine_name(name)


def engine_choice() -> str:
    """The engine in force: POOLCLI_ENGINE when it is set, else the last :func:`use_engine`."""
    forced = os.environ.get("POOLCLI_ENGINE")
    return _engine_name(forced) if forced else _engine


def plan_job(pixels: int | None) -> None:
    """The command line's choice for a whole run of ``pixels`` input pixels (None: unknown, as
    for standard input): NumPy forms below :data:`NUMPY_JOB`, compiled loops above, else auto."""
    if pixels is None:
        use_engine("auto")
    else:
        use_engine("numpy" if pixels < NUMPY_JOB else "numba")


def numpy_engine() -> bool:
    """Whether calls are computed by NumPy forms now (so Numba need not be imported for them)."""
    choice = engine_choice()
    return choice == "numpy" or (choice == "auto" and not engine_loaded())


def run_loop(module: str, name: str, *args) -> None:
    """Compute loop ``name`` of ``poolcli.engine.<module>`` on ``args``: by its NumPy form when
    the engine in force says so and one exists for these arguments, else compiled
    (:func:`run_compiled`, Numba's import counting as compile time)."""
    if numpy_engine():
        from . import numpy_forms

        form = numpy_forms.FORMS.get(name)
        covers = numpy_forms.COVERS.get(name)
        big = engine_choice() == "auto" and max(getattr(a, "size", 0) for a in args) >= NUMPY_BELOW
        if form is not None and not big and (covers is None or covers(*args)):
            form(*args)
            return
    engine()
    import importlib

    run_compiled(getattr(importlib.import_module(f"poolcli.engine.{module}"), name), *args)


