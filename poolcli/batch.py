"""Inputs → tasks → results: expansion of files, folders and globs, output naming, and running
every task in this process or in a pool of worker processes.

Nothing here prints: progress and per-file outcomes go to an ``on_result`` callback, so the CLI
decides how to show them and tests can pass their own.
"""

from __future__ import annotations

import glob
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import images
from .errors import ImageError, UsageError


@dataclass(frozen=True)
class Task:
    """One input and where its result goes (``-`` is stdin / stdout)."""

    source: str
    dest: str
    fmt: str


@dataclass
class FileResult:
    input: str
    output: str | None
    width: int = 0
    height: int = 0
    channels: int = 0
    load_ms: float = 0.0
    compute_ms: float = 0.0
    save_ms: float = 0.0
    compile_ms: float = 0.0
    error: str | None = None
    skipped: bool = False
    values: list[float] | None = None
    out_width: int = 0
    out_height: int = 0
    dtype: str = ""

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


@dataclass
class Expanded:
    """What the INPUT arguments name: files to process and notes about what was passed over."""

    items: list[tuple[str, str]] = field(default_factory=list)  # (path, path relative to its root)
    notes: list[str] = field(default_factory=list)
    from_folder: bool = False


def is_glob(arg: str) -> bool:
    return any(ch in arg for ch in "*?[")


def expand_inputs(args: Iterable[str], *, recursive: bool = False, exclude: str | None = None) -> Expanded:
    """Files named by INPUT arguments: files, folders (``recursive`` descends), quoted globs, '-'.

    Files in a folder that are not images by their extension are passed over with a note; the
    folder ``exclude`` (the output folder) is never read back as input.
    """
    found = Expanded()
    skip_root = os.path.realpath(exclude) if exclude else None
    for arg in args:
        if arg == "-":
            found.items.append(("-", "-"))
        elif os.path.isdir(arg):
            found.from_folder = True
            _walk(arg, recursive, skip_root, found)
        elif not os.path.exists(arg) and is_glob(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                found.notes.append(f"{arg}: no file matches this pattern")
            for path in matches:
                if os.path.isdir(path):
                    found.from_folder = True
                    _walk(path, recursive, skip_root, found)
                else:
                    found.items.append((path, os.path.basename(path)))
        else:
            found.items.append((arg, os.path.basename(arg)))
    return found


def _inside(path: str, root: str | None) -> bool:
    if root is None:
        return False
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def _walk(folder: str, recursive: bool, skip_root: str | None, found: Expanded) -> None:
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(os.path.join(here, d), skip_root))
        if not recursive:
            dirs[:] = []
        for name in sorted(files):
            path = os.path.join(here, name)
            if name.startswith(".") or _inside(path, skip_root):
                continue
            if os.path.splitext(name)[1].lower() in images.IMAGE_SUFFIXES:
                found.items.append((path, os.path.relpath(path, folder)))
            else:
                found.notes.append(f"{path}: skipped, not an image file")


def plan(found: Expanded, *, output: str | None, fmt: str | None, tag: str, to_dir: bool) -> list[Task]:
    """Destination of every input.

    One file and no ``-o`` writes ``{stem}_{tag}.{ext}`` beside it; stdin with no ``-o`` writes to
    stdout; ``-o FILE`` / ``-o -`` names the one output; ``-o DIR`` (``to_dir``) writes there,
    keeping the inputs' sub-folders.  Two inputs that would share a name keep their extensions.
    """
    tasks: list[Task] = []
    ext_fmt = images.format_for(None if to_dir else output, fmt)
    names: dict[str, int] = {}
    planned = []
    for path, rel in found.items:
        if path == "-":
            dest = output if (output and not to_dir) else "-"
            if to_dir:
                dest = os.path.join(output, f"stdin_{tag}{images.EXTENSIONS[ext_fmt]}")
        elif output and not to_dir:
            dest = output
        else:
            stem, _ = os.path.splitext(rel)
            name = f"{stem}_{tag}{images.EXTENSIONS[ext_fmt]}"
            dest = os.path.join(output, name) if to_dir else os.path.join(os.path.dirname(path), os.path.basename(name))
        names[dest] = names.get(dest, 0) + 1
        planned.append((path, rel, dest))
    for path, rel, dest in planned:
        if names[dest] > 1 and path != "-":
            stem, ext = os.path.splitext(rel)
            name = f"{stem}_{ext.lstrip('.').lower()}_{tag}{images.EXTENSIONS[ext_fmt]}"
            dest = os.path.join(output, name) if to_dir else os.path.join(os.path.dirname(path), os.path.basename(name))
        tasks.append(Task(path, dest, ext_fmt))
    return tasks


def same_file(a: str, b: str) -> bool:
    if a == "-" or b == "-":
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


# --------------------------------------------------------------------------- one file


def process_file(task: Task, job, *, max_pixels: int | None, png_level: int, skip_existing: bool = False) -> FileResult:
    """Read, run ``job`` on, and write one image; every failure is returned, never raised."""
    from .api import take_compile_ms

    name = "<stdin>" if task.source == "-" else task.source
    res = FileResult(input=name, output=None if task.dest == "-" else task.dest)
    if task.dest == "-":
        res.output = "-"
    try:
        if skip_existing and task.dest != "-" and os.path.exists(task.dest):
            res.skipped = True
            return res
        if same_file(task.source, task.dest):
            raise ImageError(f"{name}: refusing to overwrite the input with the output")
        take_compile_ms()
        t0 = time.perf_counter()
        data = images.read_bytes(task.source)
        pic = images.decode(data, name, gray=job.gray, max_pixels=max_pixels)
        del data  # peak memory: hold as few full-size buffers as possible at once
        t1 = time.perf_counter()
        res.height, res.width, res.channels = pic.pixels.shape
        res.dtype = str(pic.pixels.dtype)
        compiled = take_compile_ms()
        res.load_ms = (t1 - t0) * 1e3 - compiled
        try:
            out = job.apply(pic)
        except ImageError as exc:
            raise ImageError(f"{name}: {exc}") from None
        t2 = time.perf_counter()
        res.compile_ms = take_compile_ms()
        res.compute_ms = (t2 - t1) * 1e3 - res.compile_ms
        res.compile_ms += compiled
        res.out_height, res.out_width = out.array.shape[:2]
        res.values = out.values
        # peak memory: drop each full-size buffer as soon as the next one exists
        alpha = pic.alpha
        ready = prepare(job, out, pic.pixels.dtype, task.fmt)
        del out, pic
        if not isinstance(ready, bytes):
            ready = images.encode(ready, alpha, task.fmt, png_level=png_level)
        images.write_output(ready, task.dest)
        compiled = take_compile_ms()
        res.save_ms = (time.perf_counter() - t2) * 1e3 - compiled
        res.compile_ms += compiled
    except ImageError as exc:
        res.error = str(exc)
    except MemoryError:
        res.error = f"{name}: out of memory"
    return res


def prepare(job, out, source_dtype, fmt: str):
    """A job's result ready to encode: pixels of the input's bit depth, or the raw .npy bytes."""
    if fmt == "npy":
        return images.encode_npy(job.npy(out))
    pixels = out.array
    if pixels.dtype.kind == "f":
        target = source_dtype if source_dtype.kind == "u" else images.np.uint8
        # float sources (mode F, .npy) have no natural range: clip means normalize for them
        scale = out.scale if source_dtype.kind == "u" or out.scale != "clip" else "normalize"
        pixels = images.to_pixels(pixels, target, scale, out.colour)
    return pixels


# --------------------------------------------------------------------------- many files


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the results so far are in ``results``."""

    def __init__(self, results: list[FileResult]):
        super().__init__("interrupted")
        self.results = results


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _worker_init(threads: int) -> None:
    # The parent owns interruption: workers finish the file in hand and are then shut down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    images.PNG_THREADS = threads


_worker_warm_ms = 0.0  # a worker's own cache load, charged to the first file it finishes


def _worker_start(threads: int, job, fmt: str) -> None:
    """Initializer of a worker forked before Numba was loaded: it loads the machine code
    itself, from a cache the stamp says is warm, while its siblings do the same."""
    global _worker_warm_ms
    _worker_init(threads)
    _worker_warm_ms = _warm(job, fmt)


def _process_in_worker(task: Task, job, **kwargs) -> FileResult:
    global _worker_warm_ms
    res = process_file(task, job, **kwargs)
    res.compile_ms += _worker_warm_ms
    _worker_warm_ms = 0.0
    return res


def warm_stamp(job, fmt: str) -> str | None:
    """A file whose existence says this job's machine code is in Numba's cache, or None when
    there is nowhere to keep one (or the job is not one of poolcli's dataclasses).

    Its name hashes what the cached code depends on: the engine's sources, Numba's and
    Python's versions, the job and the output format.  ``_run_pool`` writes it after warming
    in the parent; later runs then fork workers at once and let each load the code itself.
    """
    import dataclasses
    import hashlib
    import importlib.util

    from . import engine

    if not dataclasses.is_dataclass(job):
        return None  # only poolcli's own jobs have a repr that says everything they compile
    folder = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(engine.__file__), "__pycache__")
    spec = importlib.util.find_spec("numba")
    parts = [repr(job), fmt, sys.version, str(spec.origin if spec else None)]
    for path in sorted(glob.glob(os.path.join(os.path.dirname(engine.__file__), "*.py"))) + [
        spec.origin if spec and spec.origin else ""
    ]:
        try:
            st = os.stat(path)
        except OSError:
            continue
        parts.append(f"{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]
    return os.path.join(folder, f"poolcli-warm-{digest}.stamp") if os.path.isdir(folder) else None


def _warm(job, fmt: str) -> float:
    """Compile (or load from the cache) the job's 8-bit path, encoder included, before workers
    start; returns the milliseconds that took."""
    import numpy as np

    from .api import take_compile_ms
    from .images import Picture

    take_compile_ms()
    for channels in (1, 3):
        pic = Picture(np.zeros((16, 16, channels), np.uint8), False, "RGB")
        try:
            ready = prepare(job, job.apply(pic), pic.pixels.dtype, fmt)
            if not isinstance(ready, bytes):
                images.decode(images.encode(ready, pic.alpha, fmt), "warm-up")
        except ImageError:
            pass  # a window too large for the tiny image: nothing to warm
    return take_compile_ms()


def run(
    tasks: list[Task],
    job,
    *,
    jobs: int,
    max_pixels: int | None,
    png_level: int,
    skip_existing: bool = False,
    on_result: Callable[[FileResult], None] = lambda r: None,
) -> list[FileResult]:
    """Run every task; ``jobs`` > 1 uses that many worker processes, one compute thread each.

    Raises :class:`Interrupted` (holding the results so far) on SIGINT/SIGTERM after in-flight
    files have finished or been discarded; no temporary file is left behind.
    """
    results: list[FileResult] = []
    kwargs = dict(max_pixels=max_pixels, png_level=png_level, skip_existing=skip_existing)
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                res = process_file(task, job, **kwargs)
                results.append(res)
                on_result(res)
            return results
        return _run_pool(tasks, job, jobs, kwargs, results, on_result)
    except KeyboardInterrupt:
        raise Interrupted(results) from None
    finally:
        signal.signal(signal.SIGTERM, old_term)


def _run_pool(tasks, job, jobs, kwargs, results, on_result) -> list[FileResult]:
    """Run ``tasks`` on ``jobs`` worker processes.

    A worker that dies (killed, or out of memory) breaks the whole pool: the files in flight
    are then run again one at a time in a fresh worker, so only a file that kills it again is
    failed, and the rest of the batch goes on in a fresh pool.
    """
    from collections import deque

    fmt = tasks[0].fmt
    started = time.time()
    warm_ms, start_pool = _pool_starter(job, fmt)
    todo, suspects = deque(tasks), deque()
    while todo or suspects:
        alone = bool(suspects)
        pool = start_pool(1 if alone else jobs)
        try:
            warm_ms = _feed(pool, suspects if alone else todo, 1 if alone else 2 * jobs, job, kwargs, results,
                            on_result, warm_ms)  # fmt: skip
        except _WorkerDied as died:
            pool.shutdown(wait=True, cancel_futures=True)
            _remove_orphans(died.tasks, started)
            if not alone:
                suspects.extend(died.tasks)
                continue
            for task in died.tasks:
                res = FileResult(input=task.source, output=task.dest)
                res.error = f"{task.source}: the worker process died on it (killed, or out of memory)"
                results.append(res)
                on_result(res)
            continue
        pool.shutdown(wait=True)
    return results


def _pool_starter(job, fmt: str):
    """(warm-up ms, a function making a pool of n workers) for ``job``: workers forked now,
    each loading the cached code, when the stamp says it is cached; else the parent compiles
    or loads it first and the workers inherit it."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    stamp = warm_stamp(job, fmt)
    if stamp is not None and os.path.exists(stamp) and "numba" not in sys.modules:
        # The cache holds this job's code: fork now, before Numba is even imported, and let
        # every worker load it in parallel (≈0.5 s each) instead of the parent alone first.
        warm_ms, ctx, init, initargs = 0.0, mp.get_context("fork"), _worker_start, (1, job, fmt)
    else:
        import numba

        warm_ms = _warm(job, fmt)  # compiles once (or loads), then workers inherit the code
        if stamp is not None:
            try:
                with open(stamp, "x"):
                    pass
            except OSError:
                pass  # already there, or a read-only cache: the next run warms here again
        init, initargs = _worker_init, (1,)
        if numba.config.THREADING_LAYER == "workqueue":
            # fork-safe threads: workers start instantly, with the warmed machine code in memory
            ctx = mp.get_context("fork")
        else:  # GNU OpenMP aborts a forked child: start workers from a clean server process
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(
                ["poolcli.batch", "poolcli.api", "poolcli.engine.convolve", "poolcli.engine.pool"]
            )

    def start(n: int):
        return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=init, initargs=initargs)

    return warm_ms, start


class _WorkerDied(Exception):
    def __init__(self, tasks: list[Task]):
        super().__init__("a worker process died")
        self.tasks = tasks


def _feed(pool, source, limit: int, job, kwargs, results, on_result, warm_ms: float) -> float:
    """Keep up to ``limit`` tasks from the deque ``source`` in flight on ``pool`` until it is
    empty; returns the warm-up ms not yet charged.  _WorkerDied names the tasks in flight when
    the pool broke (the ones not yet sent stay in ``source``)."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    running: dict = {}
    try:
        while True:
            while len(running) < limit and source:
                task = source.popleft()
                running[pool.submit(_process_in_worker, task, job, **kwargs)] = task
            if not running:
                return warm_ms
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            lost = []
            for fut in done:
                task = running.pop(fut)
                try:
                    res = fut.result()
                except BrokenProcessPool:
                    lost.append(task)
                    continue
                res.compile_ms += warm_ms  # the warm-up is charged to the first file
                warm_ms = 0.0
                results.append(res)
                on_result(res)
            if lost:
                raise _WorkerDied(lost + list(running.values()))
    except KeyboardInterrupt:
        for fut in running:
            fut.cancel()
        _drain(running, results, on_result)
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def _remove_orphans(tasks: list[Task], since: float) -> None:
    """Delete the temporary files a dead worker may have left beside the outputs of ``tasks``
    (every worker of the broken pool has exited, so none is still being written)."""
    for folder in {os.path.dirname(os.path.abspath(t.dest)) for t in tasks if t.dest != "-"}:
        for tmp in glob.glob(os.path.join(glob.escape(folder), ".poolcli-*.tmp")):
            try:
                if os.stat(tmp).st_mtime >= since - 1:
                    os.unlink(tmp)
            except OSError:
                pass


def _drain(running, results, on_result) -> None:
    """Collect the files already being written when an interrupt came (they finish whole)."""
    from concurrent.futures import wait

    while True:
        try:
            wait(running)
            break
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            return
    for fut in running:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            res = fut.result()
            results.append(res)
            on_result(res)


def check_output_target(output: str, to_dir: bool) -> None:
    """UsageError if the ``-o`` target's folder cannot take the result."""
    if output == "-":
        return
    folder = output if to_dir else (os.path.dirname(os.path.abspath(output)) or ".")
    if to_dir:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UsageError(f"-o {output}: exists and is not a folder")
        parent = os.path.dirname(os.path.abspath(folder.rstrip(os.sep))) or "."
        if not os.path.isdir(folder) and not os.path.isdir(parent):
            raise UsageError(f"-o {output}: the folder above it does not exist")
        return
    if not os.path.exists(folder):
        raise UsageError(f"-o {output}: output folder '{os.path.dirname(output) or '.'}' does not exist")
    if not os.path.isdir(folder):
        raise UsageError(f"-o {output}: '{os.path.dirname(output)}' is not a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"-o {output}: output folder '{os.path.dirname(output) or '.'}' is not writable")
