"""PNG row unfiltering (the one sequential step of PNG decoding), for the 16-bit colour reader."""

import numpy as np
from numba import prange

from ._jit import jit, pjit


@jit
def unfilter(rows, bpp, out):
    """out[y] = PNG scanline y with its filter (rows[y, 0]: None, Sub, Up, Average, Paeth) undone."""
    h, n = out.shape
    for y in range(h):
        ft = rows[y, 0]
        for i in range(n):
            x = rows[y, i + 1]
            a = out[y, i - bpp] if i >= bpp else 0
            b = out[y - 1, i] if y > 0 else 0
            if ft == 0:
                v = x
            elif ft == 1:
                v = x + a
            elif ft == 2:
                v = x + b
            elif ft == 3:
                v = x + (a + b) // 2
            else:
                c = out[y - 1, i - bpp] if (y > 0 and i >= bpp) else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                v = x + (a if (pa <= pb and pa <= pc) else (b if pb <= pc else c))
            out[y, i] = v & 0xFF


@jit
def _filter_row(raw, y, bpp, ft, dst):
    """dst = scanline y of ``raw`` under PNG filter ``ft``; returns Σ|byte as signed| (libpng's cost)."""
    n = raw.shape[1]
    cur = raw[y]
    zero = np.zeros(n, np.uint8) if y == 0 else raw[0, :0]
    up = zero if y == 0 else raw[y - 1]
    if ft == 0:
        for i in range(n):
            dst[i] = cur[i]
    elif ft == 1:
        for i in range(bpp):
            dst[i] = cur[i]
        for i in range(bpp, n):
            dst[i] = cur[i] - cur[i - bpp]  # uint8 arithmetic wraps modulo 256, as PNG wants
    elif ft == 2:
        for i in range(n):
            dst[i] = cur[i] - up[i]
    elif ft == 3:
        for i in range(bpp):
            dst[i] = cur[i] - (up[i] >> 1)
        for i in range(bpp, n):
            dst[i] = cur[i] - np.uint8((np.int32(cur[i - bpp]) + np.int32(up[i])) >> 1)
    else:
        for i in range(bpp):
            dst[i] = cur[i] - up[i]
        for i in range(bpp, n):
            a = np.int32(cur[i - bpp])
            b = np.int32(up[i])
            c = np.int32(up[i - bpp])
            pa = abs(b - c)
            pb = abs(a - c)
            pc = abs(a + b - 2 * c)
            pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            dst[i] = cur[i] - np.uint8(pred)
    cost = 0
    for i in range(n):
        v = np.int32(dst[i])
        cost += min(v, 256 - v)
    return cost


@pjit
def filter_rows(raw, bpp, out):
    """PNG scanlines: out[y, 0] = filter type, out[y, 1:] = row y filtered with it.

    Each row takes the filter (None, Sub, Up, Average, Paeth) whose bytes have the least sum
    of absolute signed values, libpng's heuristic; rows are independent, so they run in parallel.
    """
    h, n = raw.shape
    for y in prange(h):
        scratch = np.empty(n, np.uint8)
        best = 0
        best_cost = _filter_row(raw, y, bpp, 0, scratch)
        for ft in range(1, 5):
            cost = _filter_row(raw, y, bpp, ft, scratch)
            if cost < best_cost:
                best, best_cost = ft, cost
        out[y, 0] = best
        _filter_row(raw, y, bpp, best, out[y, 1:])
