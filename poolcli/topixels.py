"""The rules that turn results into pixels, in one home for the whole and the banded paths:
``--scale`` (clip, abs, normalize), the target dtype (the input's unsigned depth, else 8 bits),
16 bits rounded to 8 for formats that hold 8, and luma (``--gray``).  Each is one compiled pass
over interleaved channels (:mod:`poolcli.engine.pixels`)."""

from __future__ import annotations

import numpy as np

from .engine.runtime import row_blocks, run_loop
from .errors import UsageError

EIGHT_BIT_NOTE = "16-bit result written with 8 bits per channel ({fmt} holds 8)"


def target_dtype(source_dtype) -> np.dtype:
    """The pixels a float result becomes: the input's unsigned depth (uint8, uint16); 8 bits for
    float inputs (mode F, .npy), which have no natural range."""
    source = np.dtype(source_dtype)
    return source if source.kind == "u" else np.dtype(np.uint8)


def scale_for(source_dtype, scale: str) -> str:
    """The ``--scale`` rule used for an input of ``source_dtype``: for float sources, which have
    no natural range, ``clip`` means ``normalize``."""
    return scale if np.dtype(source_dtype).kind == "u" or scale != "clip" else "normalize"


def to_8_bits(pixels: np.ndarray) -> np.ndarray:
    """uint16 pixels rounded to uint8 (v + 128) // 257, for formats that hold 8 bits."""
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def gray_luma(gray: bool, channels: int) -> bool:
    """Whether ``--gray`` turns pixels of this many channels into luma (3 or more: colour)."""
    return gray and channels >= 3


def luma(pixels: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma of the first three channels of (H, W, C ≥ 3) pixels, with Pillow's
    weights and rounding (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16 for integer pixels, in one
    compiled pass (NumPy's int64 temporaries took 0.5 s for 12 MP); (H, W, 1)."""
    if pixels.dtype.kind == "f":
        return (pixels[:, :, 0:1] * 0.299 + pixels[:, :, 1:2] * 0.587 + pixels[:, :, 2:3] * 0.114).astype(pixels.dtype)
    out = np.empty(pixels.shape[:2], pixels.dtype)
    run_loop("pixels", "luma", np.ascontiguousarray(pixels), out)
    return out[:, :, None]


def gray(pixels: np.ndarray, alpha: bool) -> np.ndarray:
    """(H, W, C) pixels as one luma channel, alpha (when ``alpha``) kept after it; pixels of
    fewer than three channels are returned as they are."""
    if pixels.shape[2] < 3:
        return pixels
    out = luma(pixels)
    if alpha:
        out = np.concatenate([out, pixels[:, :, -1:]], axis=2)
    return np.ascontiguousarray(out)


def to_pixels(result: np.ndarray, dtype, scale: str, colour_channels: int, span=None) -> np.ndarray:
    """Round a float (H, W, C) result into ``dtype`` pixels by the ``--scale`` rule.

    ``clip``: round to nearest, clip to the type's range.  ``abs``: absolute value, then clip.
    ``normalize``: one min–max stretch over the colour channels (alpha is only clipped) to the
    full range; a flat image becomes 0.  ``span``: the (min, max) of the whole image when
    ``result`` is one band of it (:func:`value_span`).  One engine pass over the interleaved
    channels (compiled, or its NumPy form in a small job).
    """
    top = float(np.iinfo(dtype).max)
    H, W, C = result.shape
    flat = np.ascontiguousarray(result).reshape(H, W * C)  # interleaved channels, row by row
    out = np.empty(result.shape, dtype)
    rule, lo, gain = {"abs": 1, "normalize": 2}.get(scale, 0), 0.0, 1.0
    if rule == 2:
        lo, hi = span if span is not None else value_span(result, colour_channels)
        if hi > lo and np.isfinite(lo) and np.isfinite(hi):
            gain = top / (hi - lo)
        else:
            lo, gain = 0.0, 0.0  # flat: every colour pixel becomes 0
    run_loop("pixels", "quantize", flat, C, colour_channels, rule, lo, gain, top, out.reshape(H, W * C))
    return out


def value_span(result: np.ndarray, colour_channels: int, span=None) -> tuple[float, float]:
    """(min, max) of the colour values of a float (H, W, C) result, NaN passed over; with
    ``span`` (that of the bands before), of both together."""
    H, W, C = result.shape
    flat = np.ascontiguousarray(result).reshape(H, W * C)
    nch = row_blocks(H)
    lohi = np.empty((nch, 2), np.float64)
    run_loop("pixels", "colour_range", flat, C, colour_channels, nch, lohi)
    lo, hi = float(lohi[:, 0].min()), float(lohi[:, 1].max())
    return (lo, hi) if span is None else (min(lo, span[0]), max(hi, span[1]))


def result_dtype(dtype) -> np.dtype | None:
    """``dtype=`` checked: None (the default rule) or a NumPy integer or float type."""
    if dtype is None:
        return None
    try:
        target = np.dtype(dtype)
    except TypeError:
        raise UsageError(f"dtype must be a NumPy integer or float type, got {dtype!r}") from None
    if target.kind not in "uif":
        raise UsageError(f"dtype must be a NumPy integer or float type, got {target}")
    return target


def as_dtype(result: np.ndarray, target: np.dtype | None) -> np.ndarray:
    """``result`` as ``target``: integers rounded to nearest, half to even, and clipped to the
    type's range; floats cast."""
    if target is None or result.dtype == target:
        return result
    if target.kind in "ui" and result.dtype.kind == "f":
        info = np.iinfo(target)
        return np.clip(np.rint(result), info.min, info.max).astype(target)
    if target.kind in "ui" and result.dtype.kind in "ui":
        info = np.iinfo(target)
        return np.clip(result, info.min, info.max).astype(target)
    return result.astype(target)

