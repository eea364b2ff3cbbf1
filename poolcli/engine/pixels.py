"""Float results to integer pixels in one pass (the ``--scale`` rules), without temporaries.

Images arrive as (H, W·C) rows of interleaved channels; the first ``ncolour`` of every C are
colour, the rest alpha.  Without alpha every byte is colour and the loops are plain runs over
contiguous memory, which LLVM vectorises.
"""

import numpy as np
from numba import prange

from ._jit import jit, pjit


@pjit
def colour_range(a, C, ncolour, nch, lohi):
    """lohi[k] = (min, max) of the colour values in row block k (NaN passed over)."""
    H, M = a.shape
    for k in prange(nch):
        lo = np.inf
        hi = -np.inf
        for y in range(k * H // nch, (k + 1) * H // nch):
            row = a[y]
            if ncolour == C:
                for j in range(M):
                    v = row[j]
                    lo = v if v < lo else lo
                    hi = v if v > hi else hi
            else:
                for j in range(M):
                    if j % C < ncolour:
                        v = row[j]
                        lo = v if v < lo else lo
                        hi = v if v > hi else hi
        lohi[k, 0] = lo
        lohi[k, 1] = hi


@jit
def _round_clip(v, top):
    """round half to even, then clip to [0, top]; NaN → 0."""
    v = np.rint(v)
    v = v if v > 0.0 else 0.0
    return v if v < top else top


@jit
def _quantize_run(src, rule, lo, gain, top, dst):
    """dst = the ``rule`` (0 clip, 1 abs, 2 normalize) of every value of src, rounded and clipped."""
    if rule == 1:
        for j in range(src.size):
            dst[j] = _round_clip(abs(np.float64(src[j])), top)
    elif rule == 2:
        for j in range(src.size):
            dst[j] = _round_clip((np.float64(src[j]) - lo) * gain, top)
    else:
        for j in range(src.size):
            dst[j] = _round_clip(np.float64(src[j]), top)


@pjit
def quantize(a, C, ncolour, rule, lo, gain, top, out):
    """out = round-half-even of the colour values (|v| for rule 1, (v − lo)·gain for rule 2,
    v for rule 0), clipped to [0, top], NaN → 0; alpha values (j mod C ≥ ncolour) are only
    rounded and clipped."""
    H, M = a.shape
    for y in prange(H):
        if ncolour == C:
            _quantize_run(a[y], rule, lo, gain, top, out[y])
        else:
            src = a[y]
            dst = out[y]
            for j in range(M):
                v = np.float64(src[j])
                if j % C < ncolour:
                    if rule == 1:
                        v = abs(v)
                    elif rule == 2:
                        v = (v - lo) * gain
                dst[j] = _round_clip(v, top)


@pjit
def luma(rgb, out):
    """out[y, x] = (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16 of the first three channels: ITU-R
    601-2 luma with Pillow's integer weights and rounding (uint8 and uint16 pixels alike)."""
    H, W = out.shape
    for y in prange(H):
        row = rgb[y]
        dst = out[y]
        for x in range(W):
            v = np.int64(row[x, 0]) * 19595 + np.int64(row[x, 1]) * 38470 + np.int64(row[x, 2]) * 7471 + 32768
            dst[x] = v >> 16
