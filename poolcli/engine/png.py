"""PNG scanline filters: choosing and applying them (encoder) and undoing them (decoder).

Indices are unsigned (``_U``) so Numba emits no negative-index wrap-around code in the hot
loops; the decoder keeps each channel's left and upper-left bytes in registers for pixels of up
to 4 bytes, since Sub, Average and Paeth are a chain from each byte to the next.
"""

import numpy as np
from numba import prange

from ._jit import inline, jit, pjit

_I = np.int32
_U = np.uintp


@inline
def _paeth(a, b, c):
    """The PNG Paeth predictor of a byte from its left (a), upper (b) and upper-left (c) bytes
    (int32), computed without branches: its choice is data-dependent and mispredicts often."""
    pa = abs(b - c)
    pb = abs(a - c)
    pc = abs(a + b - 2 * c)
    take_a = _I((pa <= pb) & (pa <= pc))
    take_b = _I(pb <= pc)
    q = c + (b - c) * take_b
    return q + (a - q) * take_a


@inline
def _predict(ft, a, b, c):
    """The prediction of filter ``ft`` (1 Sub, 3 Average, 4 Paeth) from left, up, upper-left."""
    if ft == 1:
        return a
    if ft == 3:
        return (a + b) >> 1
    return _paeth(a, b, c)


@inline
def _undo(x, up, cur, i, ft, a, c):
    """cur[i] = x[i + 1] plus the prediction of filter ``ft``; returns (cur[i], up[i]): the
    next pixel's left and upper-left bytes in this channel."""
    b = _I(up[i])
    a = _I((_I(x[i + _U(1)]) + _predict(ft, a, b, c)) & 255)
    cur[i] = a
    return a, b


@jit
def _unfilter_carried(x, up, cur, bpp, ft):
    """Undo Sub, Average or Paeth (``ft``) on one scanline of pixels of ``bpp`` ≤ 4 bytes.

    ``x`` is the filtered scanline with its filter byte first.  Each channel's left (a) and
    upper-left (c) bytes stay in registers, so the chain from pixel to pixel does not pass
    through memory; the branches on ``bpp`` and ``ft`` are the same for every pixel.
    """
    B = _U(bpp)
    a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = _I(0)
    for p in range(cur.size // bpp):
        i = _U(p) * B
        a0, c0 = _undo(x, up, cur, i, ft, a0, c0)
        if bpp > 1:
            a1, c1 = _undo(x, up, cur, i + _U(1), ft, a1, c1)
        if bpp > 2:
            a2, c2 = _undo(x, up, cur, i + _U(2), ft, a2, c2)
        if bpp > 3:
            a3, c3 = _undo(x, up, cur, i + _U(3), ft, a3, c3)


@jit
def _unfilter_wide(x, up, cur, bpp, ft):
    """Undo Sub, Average or Paeth (``ft``) on one scanline of pixels of more than 4 bytes
    (16-bit RGB and RGBA): the left bytes are read back from the row being written."""
    B = _U(bpp)
    for k in range(bpp):
        i = _U(k)
        cur[i] = np.uint8((_I(x[i + _U(1)]) + _predict(ft, _I(0), _I(up[i]), _I(0))) & 255)
    for k in range(cur.size - bpp):
        i = _U(k) + B
        pred = _predict(ft, _I(cur[i - B]), _I(up[i]), _I(up[i - B]))
        cur[i] = np.uint8((_I(x[i + _U(1)]) + pred) & 255)


@jit
def unfilter(rows, bpp, out):
    """out[y] = PNG scanline y with its filter (rows[y, 0]: None, Sub, Up, Average, Paeth) undone.

    uint8 arithmetic wraps modulo 256, as PNG wants.
    """
    h, n = out.shape
    zero = np.zeros(n, np.uint8)  # the row above the first
    for y in range(h):
        ft = rows[y, 0]
        x = rows[y]
        cur = out[y]
        up = out[y - 1] if y > 0 else zero
        if ft == 0:
            for k in range(n):
                cur[_U(k)] = x[_U(k) + _U(1)]
        elif ft == 2:
            for k in range(n):
                cur[_U(k)] = x[_U(k) + _U(1)] + up[_U(k)]
        elif bpp <= 4:
            _unfilter_carried(x, up, cur, bpp, ft)
        else:
            _unfilter_wide(x, up, cur, bpp, ft)


@inline
def _cost(v):
    """libpng's cost of a filtered byte: its absolute value read as a signed byte."""
    v = _I(v & 255)
    return _I(min(v, _I(256 - v)))


_CHUNK = 8192  # bytes per int32 partial sum (8192 · 128 fits easily)


@jit
def _choose_filter(cur, up, bpp):
    """The filter (0–4) whose output bytes have the least sum of absolute signed values, libpng's
    heuristic, computed for all five in one vectorisable pass over the scanline."""
    n = cur.size
    B = _U(bpp)
    t0 = t1 = t2 = t3 = t4 = 0
    for k in range(min(bpp, n)):
        i = _U(k)
        x = _I(cur[i])
        b = _I(up[i])
        t0 += _cost(x)
        t1 += _cost(x)
        t2 += _cost(x - b)
        t3 += _cost(x - (b >> 1))
        t4 += _cost(x - b)
    for start in range(bpp, n, _CHUNK):
        s0 = s1 = s2 = s3 = s4 = _I(0)
        for k in range(start, min(n, start + _CHUNK)):
            i = _U(k)
            x = _I(cur[i])
            a = _I(cur[i - B])
            b = _I(up[i])
            c = _I(up[i - B])
            s0 = _I(s0 + _cost(x))
            s1 = _I(s1 + _cost(x - a))
            s2 = _I(s2 + _cost(x - b))
            s3 = _I(s3 + _cost(x - ((a + b) >> 1)))
            s4 = _I(s4 + _cost(x - _paeth(a, b, c)))
        t0 += s0
        t1 += s1
        t2 += s2
        t3 += s3
        t4 += s4
    best, best_cost = 0, t0  # ties go to the lower filter number, as in libpng
    if t1 < best_cost:
        best, best_cost = 1, t1
    if t2 < best_cost:
        best, best_cost = 2, t2
    if t3 < best_cost:
        best, best_cost = 3, t3
    if t4 < best_cost:
        best = 4
    return best


@jit
def _filter_row(cur, up, bpp, ft, dst):
    """dst[1:] = scanline ``cur`` (the one above: ``up``) under PNG filter ``ft``; dst[0] = ft."""
    n = cur.size
    B = _U(bpp)
    dst[0] = ft
    if ft == 0:
        for k in range(n):
            dst[_U(k) + _U(1)] = cur[_U(k)]
        return
    if ft == 2:
        for k in range(n):
            dst[_U(k) + _U(1)] = cur[_U(k)] - up[_U(k)]
        return
    for k in range(min(bpp, n)):
        i = _U(k)
        dst[i + _U(1)] = np.uint8((_I(cur[i]) - _predict(ft, _I(0), _I(up[i]), _I(0))) & 255)
    for k in range(bpp, n):
        i = _U(k)
        pred = _predict(ft, _I(cur[i - B]), _I(up[i]), _I(up[i - B]))
        dst[i + _U(1)] = np.uint8((_I(cur[i]) - pred) & 255)


@pjit
def filter_rows(raw, bpp, out):
    """PNG scanlines: out[y, 0] = filter type, out[y, 1:] = row y filtered with it.

    Each row takes the filter (None, Sub, Up, Average, Paeth) whose bytes have the least sum
    of absolute signed values, libpng's heuristic; rows are independent, so they run in parallel.
    """
    h, n = raw.shape
    zero = np.zeros(n, np.uint8)  # the row above the first
    for y in prange(h):
        up = raw[y - 1] if y > 0 else zero
        _filter_row(raw[y], up, bpp, _choose_filter(raw[y], up, bpp), out[y])
