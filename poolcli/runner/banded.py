"""One file's work band by band (contract §10): the job's operations pull rows from the input's
streaming reader and each band of the result is converted and written as it is ready, so an
image of any size runs in bounded memory; ``--scale normalize`` reads the result once for its
range first.  Every output appears whole or not at all."""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass

import numpy as np

from .. import io, topixels
from ..engine.runtime import take_compile_ms
from ..errors import ImageError
from ..jobs import Job, Result
from .plan import map_path
from .records import FileResult, Settings, Task

STREAM_ABOVE = 16_000_000  # pixels: larger images stream where their formats allow (--stream / --no-stream)
BOMB_RATIO = 256  # pixels per byte of file above which an image over --max-pixels is a decompression bomb
STREAM_ROWS = 16  # streamed, --max-pixels bounds width × this many rows (what bands and windows hold at once)
OPEN_SINKS = 32  # files a streamed run writes at once (a bank of 2,000 maps: 63 passes over the rows)


def stream_pixels(task: Task, job: Job, stream: bool | None, max_pixels: int | None, montage: str | None) -> int | None:
    """The input's pixel count when ``task`` should stream (contract §10), else None: both
    ends are files of streamable formats, nothing needs the whole image (a montage, saved
    stages), and ``stream`` is True or the image has more than :data:`STREAM_ABOVE` pixels.
    ``max_pixels`` guards what would be held in memory, so it does not stop a streamed image.

    An image over ``max_pixels`` streams only if its file holds at least one byte per
    :data:`BOMB_RATIO` pixels: a small file that claims a huge image is a decompression bomb
    (it would keep a core and the disk busy for nothing), and the whole path refuses it by the
    limit, as before; ``--max-pixels 0`` lifts that too."""
    if stream is False or task.source == "-" or task.dest == "-" or montage or task.fmt not in io.STREAMS_OUT:
        return None
    if job.save_stages:
        return None
    try:
        st = os.stat(task.source)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None  # FIFOs and devices: the whole path refuses them
    size = io.image_size(task.source)
    if size is None:
        return None
    pixels = size[0] * size[1]
    if min(size) <= 0:
        return None  # the whole path names the problem
    if max_pixels and size[0] * STREAM_ROWS > max_pixels:
        return None  # a band of rows this wide is over the limit: read whole, the limit refuses it
    over = bool(max_pixels) and pixels > max_pixels
    if over and pixels > st.st_size * BOMB_RATIO:
        return None
    if stream is None and pixels <= STREAM_ABOVE:
        return None
    return pixels


def probe_streams(task: Task, job: Job, settings: Settings) -> int | None:
    """:func:`stream_pixels` outside a file's own error handling (choosing what to prefetch):
    a file the probe cannot read is left to that file's handling, which names the problem."""
    try:
        return stream_pixels(task, job, settings.stream, settings.max_pixels, None)
    except Exception:  # noqa: BLE001 - never a whole run's failure: the file fails alone later
        return None


def stream_source(task: Task, job: Job, stream: bool | None, max_pixels: int | None, montage: str | None):
    """A :class:`~poolcli.rows.Rows` reading ``task``'s input band by band when it should and
    can stream; None to read it whole."""
    if stream_pixels(task, job, stream, max_pixels, montage) is None:
        return None
    try:
        return io.open_rows(task.source, task.source, gray=job.gray)
    except io.NotStreamable:
        return None


class _TimedRows:
    """A Rows that adds the seconds its reads take to ``seconds`` (the load time)."""

    def __init__(self, rows):
        self.rows, self.seconds = rows, 0.0
        for name in ("height", "width", "channels", "dtype", "shape"):
            setattr(self, name, getattr(rows, name))

    def read(self, n: int):
        t0 = time.perf_counter()
        try:
            return self.rows.read(n)
        finally:
            self.seconds += time.perf_counter() - t0

    def rewind(self) -> None:
        self.rows.rewind()

    def close(self) -> None:
        self.rows.close()


def run_streamed(task: Task, job: Job, settings: Settings, res: FileResult) -> bool:
    """Run ``task`` band by band when it should and can stream (see :func:`stream_pixels`),
    filling ``res``; False (nothing done) when it is to be read whole."""
    if settings.page or settings.layout == "chw":
        return False
    src = stream_source(task, job, settings.stream, settings.max_pixels, settings.montage)
    if src is None:
        return False
    note = io.frame_note(getattr(src, "frames", 1))
    if note:
        res.notes.append(note)
    try:
        _process_streamed(task, job, src, res, settings)
    finally:
        src.close()
    return True


@dataclass(frozen=True)
class _Band:
    """How a streamed result's bands become each output's: its colour channels, the ``--scale``
    rule and target dtype, whether it is float, the rows a band holds, and the metadata kept."""

    colour: int
    scale: str
    target: np.dtype
    floats: bool
    step: int
    meta: object
    settings: Settings


def _process_streamed(task: Task, job: Job, src, res: FileResult, settings: Settings) -> None:
    """:func:`~poolcli.runner.work.process_file` band by band: the job's operations pull rows
    from ``src`` and each band of the result is converted and written as it is ready (see
    :mod:`poolcli.bands`); ``--scale normalize`` reads the result once for its range first.
    Every output appears whole or not at all; a bank's maps are written :data:`OPEN_SINKS`
    files at a time."""
    from .. import bands

    t0 = time.perf_counter()
    res.height, res.width, res.channels = src.height, src.width, src.channels
    res.dtype = str(src.dtype)
    timed = _TimedRows(src)
    banded = job.banded(timed, src.alpha, pixels=task.fmt != "npy")
    rows, colour = banded.rows, banded.colour
    res.out_height, res.out_width = rows.height, rows.width
    step = bands.band_height(max(rows.width, src.width), max(rows.channels, src.channels), 4)
    res.band = step
    how = _Band(colour, topixels.scale_for(src.dtype, banded.scale), topixels.target_dtype(src.dtype),
                rows.dtype.kind == "f", step, None if settings.strip else src.meta, settings)  # fmt: skip
    # what goes to each file: (path, channels of the result it holds, colour channels among them)
    outputs = [(task.dest, None, colour)]
    if banded.maps and task.fmt != "npy":  # a bank's maps: one file each, alpha in every one
        tail = list(range(colour, rows.channels))
        outputs = [(map_path(task.dest, n), [n, *tail], 1) for n in range(colour)]
    if task.fmt != "npy":
        for _, pick, _ in outputs:
            io.check_channels(len(pick) if pick else rows.channels, task.fmt)
    spans = [None] * len(outputs)
    s0 = 0.0
    if task.fmt != "npy" and how.floats and how.scale == "normalize":  # first pass: the range of each output
        left = rows.height
        while left > 0:
            band = rows.read(min(step, left))
            left -= band.shape[0]
            for k, (_, pick, ncolour) in enumerate(outputs):
                spans[k] = topixels.value_span(band if pick is None else band[:, :, pick], ncolour, spans[k])
        rows.rewind()
    for first in range(0, len(outputs), OPEN_SINKS):  # at most OPEN_SINKS files and writer threads at once
        if first:
            rows.rewind()  # the next group of a bank's maps: the rows again
        group = outputs[first : first + OPEN_SINKS]
        s0 += _write_group(task, job, rows, group, spans[first : first + OPEN_SINKS], res, how)
    res.written.extend(path for path, _, _ in outputs)
    total = time.perf_counter() - t0
    compiled = take_compile_ms()
    res.compile_ms += compiled
    res.load_ms = timed.seconds * 1e3
    res.save_ms = s0 * 1e3
    res.compute_ms = max(0.0, total * 1e3 - res.load_ms - res.save_ms - compiled)


def _write_group(task: Task, job: Job, rows, outputs, spans, res: FileResult, how: _Band) -> float:
    """Write ``outputs`` (path, channels picked, colour channels) from one pass over ``rows``,
    each file whole or not at all; returns the seconds spent converting and writing."""
    import contextlib

    s0 = 0.0
    with contextlib.ExitStack() as stack:
        sinks = []
        for path, pick, _ in outputs:
            fh = stack.enter_context(io.atomic_output(path))
            channels = len(pick) if pick else rows.channels
            if task.fmt == "npy":
                channels = job.npy(Result(np.zeros((1, 1, rows.channels), np.float32), how.colour, how.scale)).shape[2]
            sink = io.open_sink(fh, task.fmt, rows.width, rows.height, channels,
                                how.target if how.floats else rows.dtype, level=how.settings.png_level, meta=how.meta,
                                threads=how.settings.png_threads)  # fmt: skip
            if hasattr(sink, "abort"):
                stack.callback(sink.abort)
            sinks.append(sink)
        left = rows.height
        while left > 0:
            band = rows.read(min(how.step, left))
            if band.shape[0] == 0:
                raise ImageError(f"{task.source}: the image ended early")
            left -= band.shape[0]
            if res.values is None and job.is_global:
                res.values = [float(v) for v in band.reshape(-1, band.shape[2])[0]]
            s1 = time.perf_counter()
            for sink, (_, pick, ncolour), span in zip(sinks, outputs, spans):  # this group's outputs
                if task.fmt == "npy":
                    sink.write(job.npy(Result(band, how.colour, how.scale)))
                    continue
                part = band if pick is None else band[:, :, pick]
                if how.floats:
                    part = topixels.to_pixels(part, how.target, how.scale, ncolour, span)
                sink.write(part)
            s0 += time.perf_counter() - s1
        s1 = time.perf_counter()
        for sink in sinks:
            sink.close()
    return s0 + time.perf_counter() - s1
