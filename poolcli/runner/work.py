"""One file's work, whoever runs it (this process, a pool worker, a Dask worker): read → job →
pixels → write, whole (here) or band by band (:mod:`poolcli.runner.banded`).  Every failure is
returned in the file's :class:`~poolcli.runner.records.FileResult`, never raised."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import io, memory, topixels
from ..engine.runtime import engine, engine_loaded, numpy_engine, take_compile_ms
from ..errors import ImageError
from ..io import png
from ..io.npy import encode_npy
from ..jobs import Job
from .banded import run_streamed
from .plan import map_path, same_file, single_path, suffixed, task_done
from .records import FileResult, Settings, Task


def process_file(task: Task, job: Job, settings: Settings, inflated=None) -> FileResult:
    """Read, run ``job`` on, and write one image; every failure is returned, never raised.

    ``inflated`` is the input already read, checked and inflated by
    :class:`~poolcli.runner.prefetch.Prefetcher`."""
    name = "<stdin>" if task.source == "-" else task.source
    res = FileResult(input=name, output=task.dest)
    try:
        if settings.skip_existing and task.dest != "-" and task_done(job, task):
            res.skipped = True
            return res
        if same_file(task.source, task.dest):
            raise ImageError(f"{name}: refusing to overwrite the input with the output")
        take_compile_ms()
        if not run_streamed(task, job, settings, res):
            _run_whole(task, job, settings, res, name, inflated)
    except ImageError as exc:
        message = str(exc)
        res.error = message if message.startswith(name) else f"{name}: {message}"
    except Exception as exc:  # noqa: BLE001 - one file's failure never stops the others
        problem = environment_problem(exc)
        if problem is not None:
            res.error = f"{name}: {problem}"
        else:  # a bug in poolcli: this file fails, the run goes on, the exit code says 70
            import traceback

            res.error = f"{name}: internal error: {exc.__class__.__name__}: {first_line(exc)} (a bug: please report it)"
            res.bug = traceback.format_exc()
    return res


@dataclass(frozen=True)
class _Written:
    """How one input's results are written: its depth, alpha and metadata, and the settings."""

    dtype: np.dtype
    fmt: str
    layout: str | None
    alpha: bool
    meta: io.Meta | None
    settings: Settings


def _run_whole(task: Task, job: Job, settings: Settings, res: FileResult, name: str, inflated) -> None:
    """:func:`process_file` on the image read whole: the timings of loading, computing and saving
    kept apart from compile time, each full-size buffer dropped as soon as the next exists."""
    if task.source != "-":
        check_fits(task, job, name, settings.max_pixels)
    t0 = time.perf_counter()
    pic = read_picture(task, job, name, settings, None if settings.page else inflated)
    note = io.frame_note(pic.frames, pic.page)
    if note:
        res.notes.append(note)
    t1 = time.perf_counter()
    res.height, res.width, res.channels = pic.pixels.shape
    res.dtype = str(pic.pixels.dtype)
    compiled = take_compile_ms()
    res.load_ms = (t1 - t0) * 1e3 - compiled
    panels = None
    if settings.montage:  # each panel kept small as it arrives: a montage's memory does not grow with its stages
        from ..teach import Panels

        panels = Panels()
        panels.append(("input", pic.pixels, pic.colour.shape[2]))
    written = _Written(pic.pixels.dtype, task.fmt, settings.layout if pic.mode == "npy" else None, pic.alpha,
                       None if settings.strip else pic.meta, settings)  # fmt: skip
    saving = [0.0]

    def save_stage(suffix: str, result) -> None:  # --save-stages: each stage written as it finishes
        s1 = time.perf_counter()
        write_result(job, result, suffixed(task.dest, suffix), res, written)
        saving[0] += time.perf_counter() - s1

    out = job.compute(pic, panels=panels, save=save_stage, pixels=task.fmt != "npy")
    t2 = time.perf_counter()
    res.compile_ms = take_compile_ms()
    res.compute_ms = (t2 - t1 - saving[0]) * 1e3 - res.compile_ms
    res.compile_ms += compiled
    res.out_height, res.out_width = out.array.shape[:2]
    res.values = out.values
    res.stages = [{"stage": s, "ms": round(ms, 3)} for s, ms in out.stage_ms] or None
    if panels is not None:
        from ..teach import montage

        montage(panels, settings.montage)
        res.written.append(settings.montage)
        del panels
    del pic  # peak memory: drop each full-size buffer as soon as the next one exists
    if written.dtype == np.uint16 and task.fmt != "npy" and not io.holds_16_bits(task.fmt):
        res.notes.append(topixels.EIGHT_BIT_NOTE.format(fmt=task.fmt.upper()))
    write_result(job, out, task.dest, res, written)
    del out
    t2 -= saving[0]
    compiled = take_compile_ms()
    res.save_ms = (time.perf_counter() - t2) * 1e3 - compiled
    res.compile_ms += compiled


def check_fits(task: Task, job: Job, name: str, max_pixels: int | None) -> None:
    """ImageError, before decoding, when the input's header says the job would need more memory
    than this process may use (contract §3), naming both; nothing when the header says nothing,
    and nothing for what decoding refuses anyway (over the pixel limit, a header that claims more
    than the file holds, not a regular file): its own message says more."""
    try:
        st = os.stat(task.source)
        if not stat.S_ISREG(st.st_mode):
            return
        size = io.image_size(task.source)
        if not size or min(size) <= 0 or (max_pixels and size[0] * size[1] > max_pixels):
            return
        have = memory.budget()
        npy = task.source.lower().endswith(".npy")  # any channel count; its header is cheap to read
        if have is None or (not npy and memory.estimate(job, size[0], size[1], 4) <= have[0]):
            return  # fits even with four colour channels: no need to look further (the common case)
        colour = io.probe_colour(task.source)
    except Exception:  # noqa: BLE001 - a header this cannot read: decoding names the problem
        return
    if not colour or size[0] * size[1] * colour > st.st_size * 1024:  # a claim decoding refuses itself
        return
    need = memory.estimate(job, size[0], size[1], colour)
    if need > have[0]:
        raise ImageError(f"{name}: {size[0]}x{size[1]} needs about {memory.human(need)} of memory for this "
                         f"job, more than the {memory.human(have[0])} that {have[1]} leaves")  # fmt: skip


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


_LOADING = ("failed to map segment", "Cannot allocate memory", "libllvmlite", "cannot open shared object")


def environment_problem(exc: BaseException) -> str | None:
    """What ran out, when ``exc`` says the machine ran out of something (memory, address
    space, file descriptors, disk, processes) rather than poolcli going wrong; else None."""
    import errno

    limit = "is a memory or address-space limit set? see `ulimit -v`; poolcli needs about 1 GB of address space"
    if isinstance(exc, MemoryError):
        return f"out of memory ({limit})"
    text = str(exc)
    if isinstance(exc, (OSError, ImportError)) and any(sign in text for sign in _LOADING):
        return f"out of memory or address space while loading compiled code ({limit})"
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOMEM:
            return f"out of memory ({limit})"
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return "too many open files (raise the limit with `ulimit -n`)"
        if exc.errno == errno.ENOSPC:
            return "no space left on the device"
        if exc.errno == errno.EAGAIN:
            return "a resource is temporarily unavailable (too many processes or threads? see `ulimit -u`)"
    return None


def _load_decoder() -> None:
    """Import Numba and load the compiled PNG row-filter decoder (both count as compile time)."""
    engine()
    png.png_picture((1, 1, 8, 0), bytes(2), {}, "warm-up")  # a 1×1 gray PNG's scanline


def _read_ahead(source: str, name: str, max_pixels: int | None, meanwhile: Callable[[], object]):
    """(file bytes, :func:`~poolcli.io.png.inflate_png`'s result or None) of ``source``, read on a
    thread while ``meanwhile()`` runs here; what the reading raised is raised here, after it."""
    import threading

    from ..io.threads import quiet_thread

    got: list = []

    def read() -> None:
        quiet_thread()
        try:
            data = io.read_bytes(source, max_pixels)
            got.extend([data, png.inflate_png(data, name, max_pixels)])
        except Exception as exc:  # ImageError, MemoryError, or a bug: all belong to the caller
            got.append(exc)

    reader = threading.Thread(target=read, name="poolcli-read-ahead", daemon=True)
    reader.start()
    meanwhile()  # if this raises (Ctrl-C), the reader is left to finish its file unwaited for
    while reader.is_alive():  # in slices: a signal taken by another thread still gets handled
        reader.join(0.05)
    if len(got) == 1:
        raise got[0]
    return got[0], got[1]


def read_picture(task: Task, job: Job, name: str, settings: Settings, inflated) -> io.Picture:
    """The input decoded whole: from what the prefetcher inflated, else read (the first file of
    a process on a thread while Numba loads: that is compile time, not load time; never standard
    input, where a Ctrl-C that Numba's start-up swallows would leave us waiting)."""
    max_pixels, page = settings.max_pixels, settings.page
    data = None
    if not numpy_engine():  # a small job computes on NumPy forms: no Numba to load
        if inflated is None and task.source != "-" and not engine_loaded() and not page:
            data, inflated = _read_ahead(task.source, name, max_pixels, _load_decoder)
        else:
            engine()
    if inflated is not None:
        header, raw, extras = inflated
        if extras is None:  # the prefetcher inflated it; its metadata chunks are read here
            extras = png.png_extras(io.read_bytes(task.source, max_pixels), name)
        return png.png_picture(header, raw, extras, name, gray=job.gray)
    data = data if data is not None else io.read_bytes(task.source, max_pixels)
    return io.decode(data, name, gray=job.gray, max_pixels=max_pixels, page=page, layout=settings.layout)


def write_result(job: Job, result, dest: str, res: FileResult, written: _Written) -> None:
    """Encode and write one result (its maps one file each), noting every file in ``res``."""
    s = written.settings
    ready = prepare(job, result, written.dtype, written.fmt, dest, written.layout)
    while ready:
        path, data = ready.pop(0)
        if not isinstance(data, bytes):
            data = io.encode(data, written.alpha, written.fmt, png_level=s.png_level, meta=written.meta,
                             quality=s.quality, threads=s.png_threads)  # fmt: skip
        io.write_output(data, path)
        res.written.append(path)
        data = None


def prepare(job: Job, out, source_dtype, fmt: str, dest: str, layout: str | None = None) -> list[tuple[str, object]]:
    """A job's result ready to encode, as (path, pixels of the input's bit depth or the raw
    .npy bytes): one item, or one per feature map (``{stem}_{tag}_{N}``) for a kernel bank's
    maps in an image format.  A .npy result is laid out as its input was (``layout``)."""
    if fmt == "npy":
        array = job.npy(out)
        if layout == "chw" and array.ndim == 3:
            array = np.ascontiguousarray(np.moveaxis(array, -1, 0))
        return [(single_path(dest), encode_npy(array))]
    pixels = out.array
    target, scale = topixels.target_dtype(source_dtype), topixels.scale_for(source_dtype, out.scale)
    if out.maps:
        if dest == "-":
            raise ImageError("a kernel bank's feature maps are written one file each: give -o, or use -f npy")
        alpha = pixels[:, :, out.colour :]
        return [
            (map_path(dest, n), topixels.to_pixels(np.concatenate([pixels[:, :, n : n + 1], alpha], axis=2),
                                                   target, scale, 1))
            for n in range(out.colour)
        ]  # fmt: skip
    if pixels.dtype.kind == "f":
        pixels = topixels.to_pixels(pixels, target, scale, out.colour)
    return [(single_path(dest), pixels)]
