"""PNG scanline filters: choosing and applying them (encoder) and undoing them (decoder)."""

import numpy as np
from numba import njit, prange

from ._jit import jit, pjit


@njit(cache=True, nogil=True, inline="always")
def _paeth(a, b, c):
    """The PNG Paeth predictor of a byte from its left (a), upper (b) and upper-left (c) bytes."""
    pa = abs(b - c)
    pb = abs(a - c)
    pc = abs(a + b - 2 * c)
    return a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)


@jit
def unfilter(rows, bpp, out):
    """out[y] = PNG scanline y with its filter (rows[y, 0]: None, Sub, Up, Average, Paeth) undone.

    One loop per filter type, so no branch runs per byte; uint8 arithmetic wraps modulo 256.
    """
    h, n = out.shape
    zero = np.zeros(n, np.uint8)
    for y in range(h):
        ft = rows[y, 0]
        x = rows[y, 1:]
        cur = out[y]
        up = out[y - 1] if y > 0 else zero
        if ft == 0:
            for i in range(n):
                cur[i] = x[i]
        elif ft == 1:
            for i in range(bpp):
                cur[i] = x[i]
            for i in range(bpp, n):
                cur[i] = x[i] + cur[i - bpp]
        elif ft == 2:
            for i in range(n):
                cur[i] = x[i] + up[i]
        elif ft == 3:
            for i in range(bpp):
                cur[i] = x[i] + (up[i] >> 1)
            for i in range(bpp, n):
                cur[i] = x[i] + np.uint8((np.int32(cur[i - bpp]) + np.int32(up[i])) >> 1)
        else:
            for i in range(bpp):
                cur[i] = x[i] + up[i]
            for i in range(bpp, n):
                cur[i] = x[i] + np.uint8(_paeth(np.int32(cur[i - bpp]), np.int32(up[i]), np.int32(up[i - bpp])))


@jit
def _filter_row(cur, up, bpp, ft, dst):
    """dst = scanline ``cur`` (the one above: ``up``) under PNG filter ``ft``; returns
    Σ|byte as signed|, libpng's cost of the choice."""
    n = cur.size
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
            dst[i] = cur[i] - np.uint8(_paeth(np.int32(cur[i - bpp]), np.int32(up[i]), np.int32(up[i - bpp])))
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
    zero = np.zeros(n, np.uint8)  # the row above the first
    for y in prange(h):
        cur = raw[y]
        up = raw[y - 1] if y > 0 else zero
        scratch = np.empty(n, np.uint8)
        best = 0
        best_cost = _filter_row(cur, up, bpp, 0, scratch)
        for ft in range(1, 5):
            cost = _filter_row(cur, up, bpp, ft, scratch)
            if cost < best_cost:
                best, best_cost = ft, cost
        out[y, 0] = best
        _filter_row(cur, up, bpp, best, out[y, 1:])
