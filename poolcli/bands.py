"""Images larger than memory: operations on bands of rows (contract §10).

A :class:`Rows` hands out an image's rows top to bottom, a band at a time.  Decoders are Rows
(:mod:`poolcli.io`), and so is every operation here: :class:`ConvolveRows`,
:class:`PoolRows`, :class:`MapRows` (element-wise stages) and :class:`NormalizeRows` each pull
from the Rows before them, keeping only the source rows their windows need, so a pipeline is a
chain of them and memory grows with the image's width times the windows' heights, not with
its area.

Each band is computed by the same compiled loops as the whole image, with the same arguments
restricted to the band (:class:`poolcli.api.ConvPlan`, :class:`poolcli.api.PoolPlan`), so the
result is bit-identical to the whole-image path whatever the band height.  Rows the window
needs out of order are kept for the whole run: the rows a boundary mode reads past the edges
(``wrap`` reads the last rows at the top: they are fetched by a first pass over the source).
``normalize`` reads its source once for the range, then again.
"""

from __future__ import annotations

import numpy as np

from . import api
from .errors import ImageError
from .layout import as_image
from .rows import Rows


class ArrayRows(Rows):
    """The rows of an array in memory (tests, and the whole-image path's comparisons)."""

    def __init__(self, array: np.ndarray):
        self.array = array if array.ndim == 3 else array[:, :, None]
        self.height, self.width, self.channels = self.array.shape
        self.dtype = self.array.dtype
        self.at = 0

    def read(self, n: int) -> np.ndarray:
        part = self.array[self.at : self.at + max(0, n)]
        self.at += part.shape[0]
        return np.ascontiguousarray(part)

    def rewind(self) -> None:
        self.at = 0


def collect(rows: Rows, band: int = 256) -> np.ndarray:
    """The whole image of ``rows``, read ``band`` rows at a time (tests, small results)."""
    parts = []
    left = rows.height
    while left > 0:
        part = rows.read(min(band, left))
        if part.shape[0] == 0:
            raise ImageError("the image ended early")
        parts.append(part)
        left -= part.shape[0]
    if not parts:
        return np.empty((0, rows.width, rows.channels), rows.dtype)
    return np.concatenate(parts, axis=0)


class _Window:
    """The source rows a band needs: a run [lo, hi) read in order, plus ``pinned`` rows (read
    out of order, or needed again later) kept for the whole run."""

    def __init__(self, src: Rows, pinned: set[int]):
        self.src = src
        self.pinned_rows = set(pinned)
        self.pinned: dict[int, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        self.lo = self.hi = 0  # rows lo … hi − 1 are in self.run; hi is also the read position
        self.run = np.empty((0, self.src.width, self.src.channels), self.src.dtype)

    def _take(self, n: int) -> np.ndarray:
        part = self.src.read(n)
        if part.shape[0] != n:
            raise ImageError(f"the image ended after {self.hi + part.shape[0]} of {self.src.height} rows")
        for r in self.pinned_rows.intersection(range(self.hi, self.hi + n)):
            self.pinned.setdefault(r, part[r - self.hi].copy())
        return part

    def prefetch(self, rows: set[int]) -> None:
        """Read the source once up to the last of ``rows``, keeping them; then rewind it."""
        if not rows:
            return
        self.src.rewind()
        self.reset()
        last = max(rows) + 1
        step = max(1, (8 << 20) // max(1, self.src.width * self.src.channels * self.src.dtype.itemsize))
        while self.hi < last:
            n = min(step, last - self.hi)
            self._take(n)
            self.hi += n
        self.src.rewind()
        self.reset()

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows lo … hi − 1 (lo never below an earlier call's), reading forward as needed."""
        if lo < self.lo:
            raise AssertionError("bands must move forward")
        if hi > self.hi:
            if lo >= self.hi:  # nothing kept is needed: skip ahead (dilated windows)
                step = max(1, (8 << 20) // max(1, self.src.width * self.src.channels * self.src.dtype.itemsize))
                while self.hi < lo:
                    n = min(lo - self.hi, step)
                    self._take(n)
                    self.hi += n
                self.run = self._take(hi - lo)
                self.lo, self.hi = lo, hi
                return self.run
            new = self._take(hi - self.hi)
            self.run = np.concatenate([self.run[lo - self.lo :], new], axis=0)
            self.lo, self.hi = lo, hi
            return self.run
        if lo > self.lo:
            self.run = self.run[lo - self.lo :]
            self.lo = lo
        return self.run[: hi - lo]


def _channels(band: np.ndarray, first: int, last: int | None = None) -> np.ndarray:
    """A C-contiguous engine-ready copy or view of channels first … last − 1."""
    return as_image(band[:, :, first:last])


class _Stage(Rows):
    """Rows computed from the Rows ``src`` before them; ``window`` keeps the source rows a band
    needs (None for element-wise stages)."""

    src: Rows
    window: _Window | None = None
    at = 0

    def rewind(self) -> None:
        self.src.rewind()
        if self.window is not None:
            self.window.reset()
        self.at = 0

    def close(self) -> None:
        self.src.close()


class ConvolveRows(_Stage):
    """:func:`poolcli.api.apply_convolve` of every spec (a bank: one map per spec and colour
    channel, kernel-major) on the ``colour`` first channels of ``src``; the channels after them
    (alpha) are sampled at the outputs' centres, as :func:`poolcli.api.sample_like` does."""

    def __init__(self, src: Rows, specs, colour: int):
        self.src, self.specs, self.colour = src, tuple(specs), colour
        shape = (src.height, src.width, colour)
        self.plans = [api.ConvPlan(shape, spec) for spec in self.specs]
        first = self.plans[0]
        if any((p.oh, p.ow) != (first.oh, first.ow) for p in self.plans):
            raise ImageError("the bank's kernels give feature maps of different sizes (boundary 'valid')")
        self.height, self.width = first.oh, first.ow
        self.alpha = src.channels - colour
        self.channels = colour * len(self.specs) + self.alpha
        self.dtype = np.dtype(np.float32)
        self.top, _ = self.specs[0].crop
        self.stride = self.specs[0].stride
        H = src.height
        # rows read past the edges (the boundary modes' images of the padding): kept all along
        pinned: set[int] = set()
        for p in self.plans:
            pad = np.concatenate([p.rowmap[: p.top], p.rowmap[p.top + H :]])
            pinned.update(r for r in np.unique(pad).tolist() if r >= 0)
        self.window = _Window(src, pinned)
        self.at = 0
        self.prefetched = False
        self.H = H

    def _needs(self, y0: int, y1: int) -> tuple[int, int, list[int]]:
        """[lo, hi): the run of source rows output rows y0 … y1 − 1 read in place, and the
        other rows they read (through the boundary mode), sorted."""
        lo, hi, extra = self.H, 0, set()
        for p in self.plans:
            first = max(0, y0 * p.stride - p.top)  # padded row i is source row i − top, inside
            last = min(self.H, (y1 - 1) * p.stride + p.span - p.top)
            if first < last:
                lo, hi = min(lo, first), max(hi, last)
            extra.update(np.unique(p.padded_rows(y0, y1)).tolist())
        if self.alpha:
            lo = min(lo, self.top + y0 * self.stride)
            hi = max(hi, self.top + (y1 - 1) * self.stride + 1)
        if lo >= hi:
            lo = hi = 0
        return lo, hi, sorted(r for r in extra if r >= 0 and not lo <= r < hi)

    def _prefetch(self) -> None:
        """Fetch the rows needed before the source reaches them (``wrap``'s last rows at the
        top): a padded row i is first read by output row ⌈(i − span + 1) / stride⌉, when the
        source has been read up to that row's in-place rows at least."""
        self.prefetched = True
        early = set()
        for p in self.plans:
            i = np.arange(len(p.rowmap))
            pad = (i < p.top) | (i >= p.top + self.H)
            i, r = i[pad], p.rowmap[pad]
            y = np.maximum(0, -(-(i - p.span + 1) // p.stride))
            used = (y < self.height) & (y * p.stride <= i) & (r >= 0)
            reached = np.minimum(self.H, y * p.stride + p.span - p.top)
            early.update(r[used & (r >= reached)].tolist())
        self.window.prefetch(early)

    def _source(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        """(the source rows output rows y0 … y1 − 1 read, each source row's row of them or −1)."""
        lo, hi, extra = self._needs(y0, y1)
        run = self.window.rows(lo, hi)
        local = np.full(self.H, -1, np.int64)  # source row → row of buf
        local[lo:hi] = np.arange(hi - lo)
        if not extra:
            return run, local
        missing = [r for r in extra if r not in self.window.pinned]
        if missing:
            raise AssertionError(f"rows {missing[:3]} were not kept")
        local[extra] = np.arange(hi - lo, hi - lo + len(extra))
        return np.concatenate([run, np.stack([self.window.pinned[r] for r in extra])], axis=0), local

    def read(self, n: int) -> np.ndarray:
        if not self.prefetched:
            self._prefetch()
        y0, y1 = self.at, min(self.height, self.at + max(0, n))
        if y1 <= y0:
            return np.empty((0, self.width, self.channels), self.dtype)
        buf, local = self._source(y0, y1)
        self.at = y1
        return self._compute(buf, local, y0, y1)

    def _compute(self, buf: np.ndarray, local: np.ndarray, y0: int, y1: int) -> np.ndarray:
        """Output rows y0 … y1 − 1 from the source rows ``buf`` (``local``: see :meth:`_source`)."""
        colour = _channels(buf, 0, self.colour)
        maps = []
        for p in self.plans:
            pr = p.padded_rows(y0, y1)
            rowmap = np.where(pr >= 0, local[np.maximum(pr, 0)], -1)
            out = np.empty((y1 - y0, self.width, self.colour), np.float32)
            p.compute(colour, rowmap, out)
            maps.append(out)
        if self.alpha:
            rows = local[self.top + np.arange(y0, y1) * self.stride]
            left = self.specs[0].crop[1]
            s = self.stride
            a = buf[rows][:, left : left + (self.width - 1) * s + 1 : s, self.colour :]
            maps.append(a.astype(np.float32))
        return maps[0] if len(maps) == 1 else np.ascontiguousarray(np.concatenate(maps, axis=2))


class LayerRows(ConvolveRows):
    """A conv2d layer (:func:`poolcli.layers.apply_hwc`) on the ``colour`` first channels of
    ``src``, band by band; alpha does not travel through it."""

    def __init__(self, src: Rows, spec, colour: int):
        from .layers import LayerPlan

        if colour != spec.in_channels:
            raise ImageError(f"the conv2d layer takes {spec.in_channels} input channels, the image has {colour}")
        self.src, self.colour = src, colour
        self.plans = [LayerPlan((src.height, src.width, colour), spec)]
        self.height, self.width = self.plans[0].oh, self.plans[0].ow
        self.alpha, self.channels, self.dtype = 0, spec.out_channels, np.dtype(np.float32)
        self.H = H = src.height
        p = self.plans[0]
        pad = np.concatenate([p.rowmap[: p.top], p.rowmap[p.top + H :]])
        self.window = _Window(src, {r for r in np.unique(pad).tolist() if r >= 0})
        self.at, self.prefetched = 0, False

    def _compute(self, buf: np.ndarray, local: np.ndarray, y0: int, y1: int) -> np.ndarray:
        p = self.plans[0]
        pr = p.padded_rows(y0, y1)
        out = np.empty((y1 - y0, self.width, self.channels), np.float32)
        p.compute(buf[:, :, : self.colour], np.where(pr >= 0, local[np.maximum(pr, 0)], -1), out)
        return out


class PoolRows(_Stage):
    """:func:`poolcli.api.apply_pool` of every channel of ``src`` (alpha pooled alike)."""

    def __init__(self, src: Rows, spec, *, as_pixels: bool = False):
        self.src = src
        self.in_dtype = dtype = as_image(np.zeros((1, 1, 1), src.dtype)).dtype
        self.plan = api.PoolPlan(src.shape, dtype, spec, as_pixels=as_pixels)
        self.height, self.width, self.channels = self.plan.oh, self.plan.ow, src.channels
        self.dtype = np.dtype(self.plan.dtype)
        self.window = _Window(src, set())
        self.at = 0

    def read(self, n: int) -> np.ndarray:
        y0, y1 = self.at, min(self.height, self.at + max(0, n))
        if y1 <= y0:
            return np.empty((0, self.width, self.channels), self.dtype)
        lo, hi = self.plan.source_rows(y0, y1)
        out = np.empty((y1 - y0, self.width, self.channels), self.dtype)
        if lo < hi:
            self.plan.compute(as_image(self.window.rows(lo, hi)), lo, y0, y1, out)
        else:  # every window of the band lies in the padding (dilation): a row far away stands in
            self.plan.compute(np.zeros((1, self.src.width, self.channels), self.in_dtype), -(1 << 40), y0, y1, out)
        self.at = y1
        return out


class MapRows(_Stage):
    """An element-wise stage: ``fn(band)`` of every band, ``channels`` and ``dtype`` given."""

    def __init__(self, src: Rows, fn, channels: int, dtype=np.float32):
        self.src, self.fn = src, fn
        self.height, self.width, self.channels, self.dtype = src.height, src.width, channels, np.dtype(dtype)

    def read(self, n: int) -> np.ndarray:
        band = self.src.read(n)
        if band.shape[0] == 0:
            return np.empty((0, self.width, self.channels), self.dtype)
        return np.ascontiguousarray(self.fn(band), dtype=self.dtype)


def value_range(rows: Rows, colour: int, band: int) -> tuple[float, float]:
    """(min, max) of the finite colour values of every row (0, 0 when there are none); rewinds."""
    rows.rewind()
    lo, hi, left = np.inf, -np.inf, rows.height
    while left > 0:
        part = rows.read(min(band, left))
        left -= part.shape[0]
        values = part[:, :, :colour]
        finite = values[np.isfinite(values)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    rows.rewind()
    return (0.0, 0.0) if lo > hi else (lo, hi)


class NormalizeRows(_Stage):
    """The ``normalize`` stage: a first pass over ``src`` finds the range, the second stretches."""

    def __init__(self, src: Rows, colour: int, band: int = 256):
        self.src, self.colour, self.band = src, colour, band
        self.height, self.width, self.channels = src.shape
        self.dtype = np.dtype(np.float32)
        self.range = None

    def read(self, n: int) -> np.ndarray:
        from .ops import stretch

        if self.range is None:
            self.range = value_range(self.src, self.colour, self.band)
        band = self.src.read(n)
        return stretch(np.asarray(band, np.float32), *self.range, self.colour)


def band_height(width: int, channels: int, itemsize: int, budget: int = 4 << 20) -> int:
    """Rows of a band: about ``budget`` bytes of the widest array it involves, at least 8."""
    return max(8, budget // max(1, width * channels * itemsize))
