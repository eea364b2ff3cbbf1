"""The Python API: :func:`convolve`, :func:`pool`, :func:`get_kernel`.

This layer validates and normalises arguments, chooses a compiled path, and keeps the
engine's compile time apart from its compute time.  Numba is imported on first use only, so
``import poolcli`` (and the CLI's ``--help``) stays fast.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .engine.runtime import row_blocks, run_loop
from .errors import ImageError, UsageError, did_you_mean
from .kernels import get_kernel
from .layout import as_image, in_layout
from .ops import BOUNDARIES, BOUNDARY_ALIASES, OPERATIONS, PICKS, POOL_MODES
from .topixels import as_dtype, result_dtype

__all__ = ["convolve", "pool", "get_kernel", "BOUNDARIES", "MODES", "resolve_boundary", "resolve_mode"]

MODES = POOL_MODES  # from the operation registry (poolcli.ops)
MODE_ALIASES = {alias: name for name in MODES for alias in OPERATIONS[name].aliases}

MAX_INT = 2**31 - 1  # every integer option: a C int, as PyTorch's and OpenCV's
MAX_REACH = 1 << 16  # (kernel side − 1) × dilation: how far one output looks, in pixels
MAX_OUTPUT_PIXELS = 1 << 28  # adaptive pooling's requested output size


def _choose(value: str, canon: Sequence[str], aliases: dict[str, str], what: str) -> str:
    key = str(value).strip().lower()
    key = aliases.get(key, key)
    if key in canon:
        return key
    hint = did_you_mean(key, canon, aliases)
    raise UsageError(f"unknown {what} '{value}'{hint} (choose from {', '.join(canon)})")


def resolve_boundary(boundary: str) -> str:
    """Canonical boundary mode for a name or an OpenCV/PyTorch/ImageMagick alias."""
    return _choose(boundary, BOUNDARIES, BOUNDARY_ALIASES, "boundary")


def resolve_mode(mode: str) -> str:
    """Canonical pooling mode for a name or an alias (``l2`` is ``lp`` with p = 2)."""
    return _choose(mode, MODES, MODE_ALIASES, "pooling mode")


def _positive_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    _in_range(value, name, 1)
    return int(value)


def _in_range(value, name: str, minimum: int, label=None) -> None:
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value if label is None else label}")
    if value > MAX_INT:
        raise UsageError(f"{name} must be at most {MAX_INT:,}, got {value if label is None else label}")


def parse_pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """(a, b) from an int, a 2-sequence, or a string 'K' / 'AxB', each from ``minimum`` to MAX_INT."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(-?\d+)\s*(?:[xX×,]\s*(-?\d+)\s*)?", value)
        if not m:
            raise UsageError(f"{name} must be N or AxB, got '{value}'")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
    elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        a = b = int(value)
    else:
        try:
            a, b = (int(v) for v in value)
        except (TypeError, ValueError, OverflowError):
            raise UsageError(f"{name} must be an integer or a pair of integers, got {value!r}") from None
    _in_range(min(a, b), name, minimum, value)
    _in_range(max(a, b), name, minimum, value)
    return a, b


def _finite(value, name: str, *, float32: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{name} must be a number, got {value!r}") from None
    top = float(np.finfo(np.float32).max) if float32 else float("inf")
    if not (math.isfinite(v) and abs(v) <= top):
        raise UsageError(f"{name} must be a finite number{' within float32 (±3.4e38)' if float32 else ''}, got {value}")
    return v


# --------------------------------------------------------------------------- convolution


def index_map(n: int, before: int, after: int, boundary: str) -> np.ndarray:
    """Source index of each padded position −before … n+after−1 (−1 reads the constant)."""
    i = np.arange(-before, n + after, dtype=np.int64)
    if boundary == "reflect":  # dcba|abcd|dcba, period 2n
        m = i % (2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if boundary == "mirror":  # dcb|abcd|cba, period 2n − 2
        if n == 1:
            return np.zeros_like(i)
        m = i % (2 * n - 2)
        return np.where(m < n, m, 2 * n - 2 - m)
    if boundary == "nearest":
        return np.clip(i, 0, n - 1)
    if boundary == "wrap":
        return i % n
    return np.where((i >= 0) & (i < n), i, -1)  # constant, and valid (never padded)


def _rank1(k: np.ndarray):
    """(u, v) with outer(u, v) == k when k is separable, else None."""
    i0, j0 = np.unravel_index(np.argmax(np.abs(k)), k.shape)
    pivot = k[i0, j0]
    if pivot == 0:
        return None
    u = k[:, j0] / pivot
    v = k[i0, :].copy()
    if np.allclose(np.outer(u, v), k, rtol=1e-10, atol=1e-12 * abs(pivot)):
        return u, v
    return None


def _as_kernel(kernel, size, sigma, flip: bool) -> np.ndarray:
    from .kernels import MAX_KERNEL_SIDE

    if size is not None or sigma is not None:
        raise UsageError("size and sigma apply to named kernels only")
    try:
        k = np.array(kernel, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise UsageError("kernel must be a name or a 2-D array of numbers") from None
    if k.ndim == 1:
        k = k[None, :]
    if not (k.ndim == 2 or (k.ndim == 3 and k.shape[0] == 2)) or k.size == 0:
        raise UsageError(f"kernel must be a non-empty 2-D array (or a (2, kh, kw) pair), got shape {k.shape}")
    if max(k.shape[-2:]) > MAX_KERNEL_SIDE:
        raise UsageError(f"kernel sides must be at most {MAX_KERNEL_SIDE}, got {k.shape[-2]}x{k.shape[-1]}")
    if not np.isfinite(k).all():
        raise UsageError("kernel values must be finite")
    if flip:
        k = k[..., ::-1, ::-1]
    k = np.ascontiguousarray(k)
    k.flags.writeable = False
    return k


@dataclass(frozen=True, eq=False)
class ConvolveSpec:
    """Validated arguments of :func:`convolve`, built once by :func:`convolve_spec`: what
    jobs hold and the engine path reads.  ``kernel`` is already flipped when ``flip`` was
    asked."""

    kernel: np.ndarray  # (kh, kw) or (2, kh, kw) float64, read-only
    boundary: str = "reflect"
    cval: float = 0.0
    stride: int = 1
    dilation: int = 1

    @property
    def crop(self) -> tuple[int, int]:
        """(top, left): the input row and column of output (0, 0)'s centre ('valid' crops)."""
        if self.boundary != "valid":
            return 0, 0
        kh, kw = self.kernel.shape[-2:]
        return (kh // 2) * self.dilation, (kw // 2) * self.dilation


def convolve_spec(
    kernel, *, boundary="reflect", cval=0.0, stride=1, dilation=1, flip=False, size=None, sigma=None, prefix=""
) -> ConvolveSpec:
    """Check every argument of :func:`convolve` and resolve the kernel; ``prefix`` ('--' for
    the command line) is put before option names in messages.  Raises UsageError."""
    mode = resolve_boundary(boundary)
    if isinstance(kernel, str):  # a name, an inline matrix or @FILE, as the command line takes
        from .kernels import choose_kernel

        kernel, size, sigma = choose_kernel(kernel, size=size, sigma=sigma).matrix, None, None
    k = _as_kernel(kernel, size, sigma, flip)
    stride = _positive_int(stride, f"{prefix}stride")
    dilation = _positive_int(dilation, f"{prefix}dilation")
    cval = _finite(cval, f"{prefix}cval", float32=True)
    reach = (max(k.shape[-2:]) - 1) * dilation
    if reach > MAX_REACH:
        raise UsageError(
            f"{prefix}dilation {dilation} spreads the {k.shape[-2]}x{k.shape[-1]} kernel over {reach + 1:,} pixels; "
            f"at most {MAX_REACH + 1:,}"
        )
    return ConvolveSpec(k, mode, cval, stride, dilation)


def convolve(
    image,
    kernel,
    *,
    boundary: str = "reflect",
    cval: float = 0.0,
    stride: int = 1,
    dilation: int = 1,
    flip: bool = False,
    size: int | None = None,
    sigma: float | None = None,
    layout: str | None = None,
    dtype=None,
) -> np.ndarray:
    """Correlate every channel of an image with a kernel, as ``scipy.ndimage.correlate``.

    output[y, x] = Σ k[i, j] · image[y + (i − kh//2)·D, x + (j − kw//2)·D], sampled at every
    ``stride``-th row and column.  A (2, kh, kw) kernel pair gives the gradient magnitude
    √(a² + b²) of its two correlations.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
        uint8, uint16, float32 or float64 (other integer types are read as float64).
    kernel : str or (kh, kw) array_like or (2, kh, kw) array_like
        A name from :data:`poolcli.kernels.KERNELS`, an inline matrix ``"0,-1,0;-1,5,-1;0,-1,0"``,
        ``"@FILE"`` (text rows or ``.npy``), or the weights.
    boundary : {'reflect', 'mirror', 'nearest', 'wrap', 'constant', 'valid'}
        How the image is extended past its edges; aliases such as ``replicate`` accepted.
    cval : float
        The value outside the image for ``constant``.
    stride, dilation : int
        Keep every ``stride``-th output; spread taps ``dilation`` pixels apart.
    flip : bool
        Rotate the kernel by 180° first (true convolution).
    size, sigma : optional
        Parameters of named kernels (``box``, ``gaussian``).
    layout : {'hwc', 'chw', 'nhwc', 'nchw'}, optional
        How ``image``'s axes are laid out (a PyTorch tensor's (C, H, W) or (N, C, H, W) as it
        is); the result is laid out alike.  Without it a 3-D array that looks channels-first
        is refused, and 4-D input needs it.
    dtype : numpy dtype, optional
        The result's type (default float32); an integer type is rounded to nearest, half to
        even (as ``np.rint``), and clipped to its range.

    Returns
    -------
    (OH, OW) or (OH, OW, C) float32 ndarray (or the ``layout`` and ``dtype`` given)

    Examples
    --------
    >>> import numpy as np, poolcli
    >>> img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> poolcli.convolve(img, "sobel-x", boundary="nearest")[0]
    array([4., 8., 8., 4.], dtype=float32)
    """
    spec = convolve_spec(
        kernel, boundary=boundary, cval=cval, stride=stride, dilation=dilation, flip=flip, size=size, sigma=sigma
    )
    target = result_dtype(dtype)
    return in_layout(image, layout, lambda x: as_dtype(apply_convolve(x, spec), target))


def sample_like(plane: np.ndarray, spec: ConvolveSpec, oh: int, ow: int) -> np.ndarray:
    """The (oh, ow, …) cells of ``plane`` (an alpha channel) that :func:`apply_convolve`'s
    outputs are centred on: every ``stride``-th one, cropped as ``valid`` crops."""
    top, left = spec.crop
    s = spec.stride
    return plane[top : top + (oh - 1) * s + 1 : s, left : left + (ow - 1) * s + 1 : s]


def apply_convolve(image, spec: ConvolveSpec) -> np.ndarray:
    """:func:`convolve` with arguments already checked into a :class:`ConvolveSpec`."""
    squeeze = np.ndim(image) == 2
    img = as_image(image)
    out = _correlate(img, spec.kernel, spec.boundary, spec.cval, spec.stride, spec.dilation)
    return out[:, :, 0] if squeeze else out


def _correlate(img: np.ndarray, k: np.ndarray, mode: str, cval: float, stride: int, dilation: int) -> np.ndarray:
    plan = ConvPlan(img.shape, ConvolveSpec(k, mode, cval, stride, dilation))
    out = np.empty((plan.oh, plan.ow, img.shape[2]), np.float32)
    plan.compute(img, plan.rowmap, out)
    return out


class ConvPlan:
    """How :func:`apply_convolve` computes an image of one shape, split so that any band of
    output rows can be computed alone from the source rows it needs (:mod:`poolcli.bands`),
    through the same compiled loops with the same arguments: bit-identical by construction.

    ``rowmap`` gives the source row of every padded row (−1: the constant); output row ``y``
    reads padded rows ``y·stride … y·stride + span − 1``.
    """

    def __init__(self, shape: tuple[int, int, int], spec: ConvolveSpec):
        H, W, C = shape
        k, mode, dilation = spec.kernel, spec.boundary, spec.dilation
        kh, kw = k.shape[-2:]
        eh, ew = (kh - 1) * dilation, (kw - 1) * dilation
        if mode == "valid":
            fh, fw = H - eh, W - ew
            if fh < 1 or fw < 1:
                raise ImageError(
                    f"image {W}x{H} is smaller than the kernel's reach {ew + 1}x{eh + 1} with boundary 'valid'"
                )
            self.top = self.left = 0
            self.rowmap = np.arange(H, dtype=np.int64)
            self.colmap = np.arange(W, dtype=np.int64)
        else:
            fh, fw = H, W
            self.top, self.left = (kh // 2) * dilation, (kw // 2) * dilation
            self.rowmap = index_map(H, self.top, eh - self.top, mode)
            self.colmap = index_map(W, self.left, ew - self.left, mode)
        self.spec, self.dilation, self.stride, self.span = spec, dilation, spec.stride, eh + 1
        self.oh, self.ow = (fh - 1) // spec.stride + 1, (fw - 1) // spec.stride + 1
        self.kernels = [k] if k.ndim == 2 else [k[0], k[1]]
        factors = [_rank1(kk) for kk in self.kernels]
        self.separable = all(f is not None for f in factors) and (
            len(self.kernels) == 2
            or np.count_nonzero(factors[0][0]) + np.count_nonzero(factors[0][1]) < np.count_nonzero(k)
        )
        if self.separable:
            self.roffs = np.arange(kh, dtype=np.int64) * dilation
            self.rsel, self.rw, self.rcount = _taps([f[0] for f in factors])
            csel, self.cw, self.ccount = _taps([f[1] for f in factors])
            self.csel = csel * dilation

    def padded_rows(self, y0: int, y1: int) -> np.ndarray:
        """The source row (−1: the constant) of each padded row that output rows y0 … y1 − 1 read."""
        return self.rowmap[y0 * self.stride : (y1 - 1) * self.stride + self.span]

    def compute(self, img: np.ndarray, rowmap: np.ndarray, out: np.ndarray) -> None:
        """``out`` (rows, OW, C) float32: the output rows whose padded rows ``rowmap`` maps to
        rows of ``img`` (the whole image and :attr:`rowmap`, or a band of both)."""
        head = (img, rowmap, self.colmap, self.left, np.float32(self.spec.cval), self.stride, row_blocks(out.shape[0]))
        if self.separable:
            args = (self.roffs, self.rsel, self.rw, self.rcount, self.csel, self.cw, self.ccount, out)
            run_loop("convolve", "correlate_separable", *head, *args)
        elif len(self.kernels) == 2:
            other = np.empty_like(out)
            _correlate_taps(head, self.kernels[0], self.dilation, out)
            _correlate_taps(head, self.kernels[1], self.dilation, other)
            np.hypot(out, other, out=out)
        else:
            _correlate_taps(head, self.kernels[0], self.dilation, out)


def _taps(vectors):
    """Non-zero entries of 1-D kernels as (index, weight) rows padded to one length, and counts."""
    nz = [np.flatnonzero(v) for v in vectors]
    width = max(1, max(len(i) for i in nz))
    sel = np.zeros((len(vectors), width), np.int64)
    ws = np.zeros((len(vectors), width), np.float32)
    for k, (v, idx) in enumerate(zip(vectors, nz)):
        sel[k, : len(idx)] = idx
        ws[k, : len(idx)] = v[idx]
    return sel, ws, np.array([len(i) for i in nz], np.int64)


def _correlate_taps(head, k: np.ndarray, dilation: int, out: np.ndarray) -> None:
    """The general path: only non-zero taps, grouped by kernel row."""
    rows, cols = np.nonzero(k)
    if rows.size == 0:  # an all-zero kernel: every output is 0
        out[:] = 0.0
        return
    used, trow = np.unique(rows, return_inverse=True)
    roffs = used.astype(np.int64) * dilation
    tcol = cols.astype(np.int64) * dilation
    weights = k[rows, cols].astype(np.float32)
    run_loop("convolve", "correlate_taps", *head, roffs, trow.astype(np.int64), tcol, weights, out)


# --------------------------------------------------------------------------- pooling


def pool_output_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size; in ceil mode a last window starting in the padding is dropped."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1  # floor division, as div_rtn
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _axis_windows(n: int, k: int, s: int, p: int, d: int, o: int):
    """Per output index: first tap, tap count, taps inside the padded extent, taps inside the image."""
    start = np.arange(o, dtype=np.int64) * s - p
    taps = start[:, None] + np.arange(k, dtype=np.int64)[None, :] * d
    in_padded = (taps < n + p).sum(axis=1)
    in_image = ((taps >= 0) & (taps < n)).sum(axis=1)
    return start, np.full(o, k, np.int64), in_padded, in_image


def adaptive_windows(n: int, o: int):
    """adaptive_*_pool2d windows: [floor(i·n/o), ceil((i+1)·n/o))."""
    i = np.arange(o, dtype=np.int64)
    start = (i * n) // o
    end = -((-(i + 1) * n) // o)
    return start, end - start


def pool(
    image,
    mode: str = "max",
    size=2,
    *,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor: int | None = None,
    p: float = 2.0,
    seed: int | None = None,
    output_size=None,
    layout: str | None = None,
    dtype=None,
) -> np.ndarray:
    """Pool every channel of an image as a CNN pooling layer, equal to PyTorch's functions.

    ``max``, ``avg`` and ``lp`` give what ``torch.nn.functional.max_pool2d``, ``avg_pool2d``
    and ``lp_pool2d`` give for the same arguments; ``min`` is −max_pool2d(−x); ``median`` is
    the lower median of the window's cells inside the image; ``stochastic`` picks one cell of
    each window with probability proportional to its value (Zeiler & Fergus).  With
    ``output_size=(H, W)`` the windows are those of ``adaptive_max_pool2d`` /
    ``adaptive_avg_pool2d`` and ``size``, ``stride``, ``padding``, ``dilation`` and
    ``ceil_mode`` are not used.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
        uint8, uint16, float32 or float64.
    mode : {'max', 'avg', 'min', 'lp', 'median', 'stochastic'}
        ``l2`` is ``lp`` with p = 2.
    size, stride, padding, dilation : int or (int, int)
        Window, step (default: the window), implicit padding per side (at most half the
        window) and spacing of the taps.
    ceil_mode : bool
        Round the output size up instead of down.
    count_include_pad : bool
        ``avg``: count padded cells in the divisor.
    divisor : int, optional
        ``avg``: divide every window sum by this instead (PyTorch's ``divisor_override``).
    p : float
        ``lp``: the power (> 0).
    seed : int, optional
        ``stochastic``: makes the choice repeatable.
    output_size : (int, int), optional
        Adaptive pooling to this (H, W).
    layout : {'hwc', 'chw', 'nhwc', 'nchw'}, optional
        How ``image``'s axes are laid out; the result is laid out alike, so an (N, C, H, W)
        batch pools exactly as ``torch.nn.functional.max_pool2d`` pools it.  Without it a 3-D
        array that looks channels-first is refused, and 4-D input needs it.
    dtype : numpy dtype, optional
        The result's type (default: the rule below); an integer type is rounded to nearest,
        half to even (as ``np.rint``), and clipped to its range.  8-bit average pooling in
        non-overlapping windows with ``dtype=np.uint8`` writes the bytes directly.

    Returns
    -------
    (OH, OW) or (OH, OW, C) ndarray: the input dtype for max, min, median and stochastic;
    float32 for avg and lp (or ``dtype``).

    Examples
    --------
    >>> import numpy as np, poolcli
    >>> x = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]], np.uint8)
    >>> poolcli.pool(x, "max", 2)
    array([[ 4,  8],
           [12, 16]], dtype=uint8)
    >>> poolcli.pool(x, "avg", 2)
    array([[ 2.5,  6.5],
           [10.5, 14.5]], dtype=float32)
    """
    spec = pool_spec(
        mode, size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
        count_include_pad=count_include_pad, divisor=divisor, p=p, seed=seed, output_size=output_size,
    )  # fmt: skip
    target = result_dtype(dtype)

    def one(x):
        if target == np.uint8 and direct_pixels(as_image(x), spec):  # straight to bytes, as OpenCV's INTER_AREA
            return apply_pool(x, spec, as_pixels=True)
        return as_dtype(apply_pool(x, spec), target)

    return in_layout(image, layout, one, per_image=spec.mode == "stochastic")


@dataclass(frozen=True)
class PoolSpec:
    """Validated arguments of :func:`pool`, built once by :func:`pool_spec`.  ``size`` is None
    for adaptive pooling (``output_size`` set); ``stride`` is resolved (the window by default)."""

    mode: str = "max"
    size: tuple[int, int] | None = (2, 2)
    stride: tuple[int, int] | None = (2, 2)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor: int | None = None
    p: float = 2.0
    seed: int | None = None
    output_size: tuple[int, int] | None = None


def pool_spec(
    mode="max", size=2, *, stride=None, padding=0, dilation=1, ceil_mode=False, count_include_pad=True,
    divisor=None, p=2.0, seed=None, output_size=None, prefix="",
) -> PoolSpec:  # fmt: skip
    """Check every argument of :func:`pool`; ``prefix`` ('--' for the command line) is put
    before option names in messages.  Raises UsageError."""
    raw_mode = str(mode).strip().lower()
    mode = resolve_mode(mode)
    if raw_mode == "l2":
        p = 2.0
    p = _finite(p, f"{prefix}p")
    if mode == "lp" and not p > 0:
        raise UsageError(f"{prefix}p must be a positive finite number, got {p}")
    if divisor is not None:
        if isinstance(divisor, (bool, np.bool_)) or not isinstance(divisor, (int, np.integer)):
            raise UsageError(f"{prefix}divisor must be a non-zero integer, got {divisor!r}")
        if divisor == 0:
            raise UsageError(f"{prefix}divisor must not be 0")
        if abs(divisor) > MAX_INT:
            raise UsageError(f"{prefix}divisor must be at most {MAX_INT:,} (either sign), got {divisor}")
        divisor = int(divisor)
    if seed is not None:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise UsageError(f"{prefix}seed must be an integer from 0 to 2**63 - 1, got {seed!r}")
        seed = int(seed)
    if output_size is not None:
        oh, ow = parse_pair(output_size, "output_size" if not prefix else f"{prefix}to")
        if oh * ow > MAX_OUTPUT_PIXELS:
            raise UsageError(f"{'output_size' if not prefix else prefix + 'to'} asks for {oh * ow:,} pixels; "
                             f"at most {MAX_OUTPUT_PIXELS:,}")  # fmt: skip
        return PoolSpec(mode, None, None, (0, 0), (1, 1), False, count_include_pad, divisor, p, seed, (oh, ow))
    kh, kw = parse_pair(size, f"{prefix}size")
    sh, sw = (kh, kw) if stride is None else parse_pair(stride, f"{prefix}stride")
    ph, pw = parse_pair(padding, f"{prefix}padding", minimum=0)
    dh, dw = parse_pair(dilation, f"{prefix}dilation")
    if ph > kh // 2 or pw > kw // 2:
        raise UsageError(
            f"{prefix}padding {ph}x{pw} is more than half the window {kh}x{kw}; use at most {kh // 2}x{kw // 2}"
        )
    reach = max((kh - 1) * dh, (kw - 1) * dw)
    if reach > MAX_REACH or max(kh, kw) > MAX_REACH:
        raise UsageError(f"the pooling window spans {reach + 1:,} pixels; at most {MAX_REACH + 1:,}")
    return PoolSpec(mode, (kh, kw), (sh, sw), (ph, pw), (dh, dw), bool(ceil_mode), bool(count_include_pad),
                    divisor, p, seed, None)  # fmt: skip


def direct_pixels(image: np.ndarray, spec: PoolSpec) -> bool:
    """Whether :func:`apply_pool` can give 8-bit pixels straight away (``as_pixels``): average
    pooling of 8-bit images in non-overlapping windows, the common thumbnail case."""
    return (
        image.dtype == np.uint8 and spec.mode == "avg" and spec.output_size is None and spec.divisor is None
        and spec.stride == spec.size and spec.padding == (0, 0) and spec.dilation == (1, 1)
    )  # fmt: skip


def apply_pool(image, spec: PoolSpec, *, as_pixels: bool = False) -> np.ndarray:
    """:func:`pool` with arguments already checked into a :class:`PoolSpec`.  ``as_pixels``
    (where :func:`direct_pixels` allows it): uint8 pixels, exactly what rounding the float32
    result by the ``clip`` rule gives, without the float32 array (for the command line)."""
    squeeze = np.ndim(image) == 2
    img = as_image(image)
    plan = PoolPlan(img.shape, img.dtype, spec, as_pixels=as_pixels)
    out = np.empty((plan.oh, plan.ow, img.shape[2]), plan.dtype)
    plan.compute(img, 0, 0, plan.oh, out)
    return out[:, :, 0] if squeeze else out


_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment (engine.pool._uniform)


class PoolPlan:
    """How :func:`apply_pool` pools an image of one shape and dtype, split so that any band of
    output rows can be computed alone from the band of source rows its windows cover
    (:mod:`poolcli.bands`), through the same compiled loops: bit-identical by construction.
    A random stochastic seed is drawn once here, so every band uses the same one."""

    def __init__(self, shape: tuple[int, int, int], dtype, spec: PoolSpec, *, as_pixels: bool = False):
        H, W, C = shape
        self.spec, self.H, self.W, self.mode = spec, H, W, spec.mode
        dtype = np.dtype(dtype)
        if spec.output_size is not None:
            oh, ow = spec.output_size
            self.rstart, self.rcount = adaptive_windows(H, oh)
            self.cstart, self.ccount = adaptive_windows(W, ow)
            self.dh = self.dw = 1
            kh = kw = 0
            self.fast = False
            self.rpad = self.rval = self.rcount
            self.cpad = self.cval = self.ccount
        else:
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = spec.size, spec.stride, spec.padding, spec.dilation
            oh = pool_output_size(H, kh, sh, ph, dh, spec.ceil_mode)
            ow = pool_output_size(W, kw, sw, pw, dw, spec.ceil_mode)
            if oh < 1 or ow < 1:
                raise ImageError(
                    f"image {W}x{H} is smaller than the pooling window "
                    f"{dw * (kw - 1) + 1}x{dh * (kh - 1) + 1} (with padding {pw}x{ph})"
                )
            self.dh, self.dw = dh, dw
            self.fast = (sh, sw) == (kh, kw) and ph == pw == 0 and dh == dw == 1 and oh * kh <= H and ow * kw <= W
            if not self.fast:  # the blocked loops need no window tables (≈ 90 µs a call saved)
                self.rstart, self.rcount, self.rpad, self.rval = _axis_windows(H, kh, sh, ph, dh, oh)
                self.cstart, self.ccount, self.cpad, self.cval = _axis_windows(W, kw, sw, pw, dw, ow)
        self.oh, self.ow, self.kh, self.kw = oh, ow, kh, kw
        self.pixels = as_pixels and self.fast and direct_pixels(np.empty(0, dtype), spec)
        if spec.mode in PICKS:
            self.dtype = dtype
        else:
            self.dtype = np.dtype(np.uint8 if self.pixels else np.float32)
        self.seed = spec.seed if spec.seed is not None else 0
        if spec.mode == "stochastic" and spec.seed is None:
            self.seed = int(np.random.SeedSequence().entropy) & 0x7FFFFFFFFFFFFFFF

    def _tables(self) -> None:
        """The per-window tables, for the loops that read them (the blocked ones do not)."""
        if not hasattr(self, "rstart"):
            spec = self.spec
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = spec.size, spec.stride, spec.padding, spec.dilation
            self.rstart, self.rcount, self.rpad, self.rval = _axis_windows(self.H, kh, sh, ph, dh, self.oh)
            self.cstart, self.ccount, self.cpad, self.cval = _axis_windows(self.W, kw, sw, pw, dw, self.ow)

    def source_rows(self, y0: int, y1: int) -> tuple[int, int]:
        """[lo, hi): the source rows that output rows y0 … y1 − 1 read."""
        if self.fast:
            return y0 * self.kh, y1 * self.kh
        first = self.rstart[y0:y1]
        last = first + (self.rcount[y0:y1] - 1) * self.dh
        return max(0, int(first.min())), min(self.H, int(last.max()) + 1)

    def compute(self, img: np.ndarray, lo: int, y0: int, y1: int, out: np.ndarray) -> None:
        """``out``: output rows y0 … y1 − 1, from ``img`` holding source rows lo … (the whole
        image with lo = 0, or the band :meth:`source_rows` names)."""
        spec, mode = self.spec, self.mode
        if self.fast:
            img = img[y0 * self.kh - lo : y1 * self.kh - lo]
            if mode in ("max", "min"):
                sign = 1 if mode == "max" else -1
                run_loop("pool", "pool_extreme_blocks", img, self.kh, self.kw, sign, row_blocks(y1 - y0), out)
                return
            if mode == "avg" and spec.divisor is None:
                if self.pixels and self.kh == self.kw == 2:  # 8-bit 2×2 thumbnails: integers throughout
                    run_loop("pool", "pool_avg2_u8", img, row_blocks(y1 - y0), out)
                    return
                acc_like = np.zeros(0, np.float32 if img.dtype == np.uint8 else np.float64)  # exact for 8 bits
                top = 255.0 if self.pixels else 0.0
                run_loop("pool", "pool_avg_blocks", img, self.kh, self.kw, row_blocks(y1 - y0), acc_like, top, out)
                return
            self._tables()  # the other modes read the window tables
        rstart = self.rstart[y0:y1] - lo
        rcount = self.rcount[y0:y1]
        cstart, ccount, dh, dw, ow = self.cstart, self.ccount, self.dh, self.dw, self.ow
        if mode in ("max", "min"):
            sign = 1 if mode == "max" else -1
            # a window of padding only (possible with dilation) gets the reduction's identity
            if img.dtype.kind == "f":
                fill = img.dtype.type(-np.inf if sign > 0 else np.inf)
            else:
                fill = np.iinfo(img.dtype).min if sign > 0 else np.iinfo(img.dtype).max
                fill = img.dtype.type(fill)
            # windows of one width, no dilation, covering at least half of each row together:
            # reduce the columns a whole row at a time (vectorised), then pick (max pool 3/2: 2.8x)
            W = img.shape[1]
            width = int(ccount[0])
            hk = width if dw == 1 and (ccount == width).all() and width <= W and ow * width * 2 >= W else 0
            run_loop("pool", "pool_extreme", img, rstart, rcount, dh, cstart, ccount, dw, sign, fill, hk,
                         row_blocks(y1 - y0), out)  # fmt: skip
        elif mode in ("avg", "lp"):
            # float32 sums are exact for 8-bit pixels (up to 65,793 per window); else float64
            acc_like = np.zeros(0, np.float32 if img.dtype == np.uint8 and mode == "avg" else np.float64)
            rows = slice(y0, y1)
            if mode == "avg":
                power, mul = 1.0, 1.0
                if spec.divisor is not None:
                    div = np.full((y1 - y0, ow), float(spec.divisor))
                elif spec.count_include_pad or spec.output_size is not None:
                    div = np.outer(self.rpad[rows], self.cpad).astype(np.float64)
                else:
                    div = np.outer(self.rval[rows], self.cval).astype(np.float64)
            else:
                power = spec.p
                if spec.output_size is not None:  # adaptive lp: (Σ x^p)^(1/p) over each window
                    div, mul = np.ones((y1 - y0, ow)), 1.0
                else:  # lp_pool2d = avg_pool2d(x^p, padding=0, ceil_mode) · kh·kw, then ^(1/p)
                    div, mul = np.outer(self.rpad[rows], self.cpad).astype(np.float64), float(self.kh * self.kw)
            div = np.ascontiguousarray(div)
            run_loop("pool", "pool_sum", img, rstart, rcount, dh, cstart, ccount, dw, power, div, mul, acc_like, out)
        else:
            seed = self.seed
            if y0:  # the engine hashes (seed, oy·OW·C + …): shifting the seed shifts oy (mod 2⁶⁴)
                seed = (seed + y0 * ow * img.shape[2] * _GOLDEN) & 0xFFFFFFFFFFFFFFFF
                seed = seed - (1 << 64) if seed >= 1 << 63 else seed  # the same 64 bits, as int64
            stochastic = mode == "stochastic"
            run_loop("pool", "pool_select", img, rstart, rcount, dh, cstart, ccount, dw, stochastic, seed, out)
