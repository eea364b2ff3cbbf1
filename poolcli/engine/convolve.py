"""Compiled cross-correlation loops.

All loops take a C-contiguous ``(H, W, C)`` image of any supported dtype and write a float32
``(OH, OW, C)`` result.  Padding is never materialised for the whole image: each worker keeps a
small ring of padded, float32-converted source rows, so every source row is converted once per
worker and the image is never copied.  Rows and columns are flattened as ``x * C + c`` so the
innermost loops run over contiguous memory for every channel count and vectorise.
"""

import numpy as np
from numba import prange

from ._jit import jit, pjit


@jit
def _fill_row(flat, W, C, sr, colmap, pl, cval, dst):
    """dst[q*C + c] = image[sr, colmap[q], c] as float32, with cval where sr or colmap[q] < 0."""
    Wp = colmap.size
    if sr < 0:
        for q in range(Wp * C):
            dst[q] = cval
        return
    base = sr * W * C
    for q in range(pl):
        sc = colmap[q]
        for c in range(C):
            dst[q * C + c] = cval if sc < 0 else flat[base + sc * C + c]
    mid = dst[pl * C : (pl + W) * C]  # the middle of a padded row is the source row itself
    row = flat[base : base + W * C]
    for k in range(W * C):
        mid[k] = row[k]
    for q in range(pl + W, Wp):
        sc = colmap[q]
        for c in range(C):
            dst[q * C + c] = cval if sc < 0 else flat[base + sc * C + c]


@jit
def _ring_row(flat, W, C, rowmap, colmap, pl, cval, ring, tag, pr):
    """Padded row ``pr`` from the ring, filling its slot first if it holds another row."""
    slot = pr % ring.shape[0]
    if tag[slot] != pr:
        _fill_row(flat, W, C, rowmap[pr], colmap, pl, cval, ring[slot])
        tag[slot] = pr
    return ring[slot]


@jit
def _madd(dst, rows, slots, cols, ws, m, n, stride, C):
    """dst[x·C + c] += Σ_t ws[t] · rows[slots[t], cols[t] + x·stride·C + c] for t < m.

    Eight, then four taps per sweep over ``dst`` (fewer loads and stores of ``dst``);
    with stride 1 each source is a contiguous slice, so the loop vectorises.
    """
    if stride != 1:
        for t in range(m):
            src = rows[slots[t]]
            w = ws[t]
            co = cols[t]
            for x in range(n // C):
                sb = co + x * stride * C
                for c in range(C):
                    dst[x * C + c] += w * src[sb + c]
        return
    t = 0
    while t + 8 <= m:
        a = rows[slots[t], cols[t] : cols[t] + n]
        b = rows[slots[t + 1], cols[t + 1] : cols[t + 1] + n]
        c = rows[slots[t + 2], cols[t + 2] : cols[t + 2] + n]
        d = rows[slots[t + 3], cols[t + 3] : cols[t + 3] + n]
        e = rows[slots[t + 4], cols[t + 4] : cols[t + 4] + n]
        f = rows[slots[t + 5], cols[t + 5] : cols[t + 5] + n]
        g = rows[slots[t + 6], cols[t + 6] : cols[t + 6] + n]
        h = rows[slots[t + 7], cols[t + 7] : cols[t + 7] + n]
        w0, w1, w2, w3 = ws[t], ws[t + 1], ws[t + 2], ws[t + 3]
        w4, w5, w6, w7 = ws[t + 4], ws[t + 5], ws[t + 6], ws[t + 7]
        for q in range(n):
            dst[q] += (w0 * a[q] + w1 * b[q] + w2 * c[q] + w3 * d[q]) + (w4 * e[q] + w5 * f[q] + w6 * g[q] + w7 * h[q])
        t += 8
    while t + 4 <= m:
        a = rows[slots[t], cols[t] : cols[t] + n]
        b = rows[slots[t + 1], cols[t + 1] : cols[t + 1] + n]
        c = rows[slots[t + 2], cols[t + 2] : cols[t + 2] + n]
        d = rows[slots[t + 3], cols[t + 3] : cols[t + 3] + n]
        w0, w1, w2, w3 = ws[t], ws[t + 1], ws[t + 2], ws[t + 3]
        for q in range(n):
            dst[q] += w0 * a[q] + w1 * b[q] + w2 * c[q] + w3 * d[q]
        t += 4
    if t + 2 <= m:
        a = rows[slots[t], cols[t] : cols[t] + n]
        b = rows[slots[t + 1], cols[t + 1] : cols[t + 1] + n]
        w0, w1 = ws[t], ws[t + 1]
        for q in range(n):
            dst[q] += w0 * a[q] + w1 * b[q]
        t += 2
    if t < m:
        a = rows[slots[t], cols[t] : cols[t] + n]
        w0 = ws[t]
        for q in range(n):
            dst[q] += w0 * a[q]


@pjit
def correlate_taps(img, rowmap, colmap, pl, cval, stride, nch, roffs, trow, tcol, tw, out):
    """out[y, x, c] = Σ_t tw[t] · P[y·s + roffs[trow[t]], x·s + tcol[t], c].

    P is the image padded through ``rowmap``/``colmap`` (index −1 reads ``cval``); ``roffs``
    are the distinct padded-row offsets the taps use and ``tcol`` their column offsets.  Only
    non-zero taps are passed, so sparse kernels (sharpen, Laplacian) cost what they touch.
    Output rows are split into ``nch`` blocks for ``prange``; each keeps its own row ring.
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    WpC = colmap.size * C
    n = OW * C
    span = roffs[-1] + 1
    m = tw.size
    cols = tcol * C
    for ch in prange(nch):
        ring = np.empty((span, WpC), np.float32)
        tag = np.full(span, -1, np.int64)
        rslot = np.empty(roffs.size, np.int64)
        slots = np.empty(m, np.int64)
        for y in range(ch * OH // nch, (ch + 1) * OH // nch):
            for r in range(roffs.size):
                pr = y * stride + roffs[r]
                _ring_row(flat, W, C, rowmap, colmap, pl, cval, ring, tag, pr)
                rslot[r] = pr % span
            for t in range(m):
                slots[t] = rslot[trow[t]]
            orow = outf[y * n : (y + 1) * n]
            orow[:] = 0.0
            _madd(orow, ring, slots, cols, tw, m, n, stride, C)


@pjit
def correlate_separable(img, rowmap, colmap, pl, cval, stride, nch, roffs, rsel, rw, rcount, csel, cw, ccount, out):
    """Rank-1 kernels k = u ⊗ v as a vertical then a horizontal 1-D pass.

    Kernel k has ``rcount[k]`` non-zero vertical taps on padded-row offsets
    ``roffs[rsel[k, i]]`` with weights ``rw[k, i]``, and ``ccount[k]`` horizontal taps on
    column offsets ``csel[k, j]`` with weights ``cw[k, j]``.  With one kernel the output is its
    correlation; with two it is the gradient magnitude √(a² + b²), computed in one sweep that
    shares the padded rows (Sobel, Scharr, Prewitt).
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    nk = rw.shape[0]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    WpC = colmap.size * C
    n = OW * C
    span = roffs[-1] + 1
    ccols = csel * C
    for ch in prange(nch):
        ring = np.empty((span, WpC), np.float32)
        tag = np.full(span, -1, np.int64)
        tmp = np.empty((nk, WpC), np.float32)
        acc = np.empty((nk, n), np.float32)
        rslot = np.empty(roffs.size, np.int64)
        slots = np.empty(rsel.shape[1], np.int64)
        zeros = np.zeros(max(rsel.shape[1], csel.shape[1]), np.int64)
        kslot = np.empty(csel.shape[1], np.int64)
        for y in range(ch * OH // nch, (ch + 1) * OH // nch):
            for r in range(roffs.size):
                pr = y * stride + roffs[r]
                _ring_row(flat, W, C, rowmap, colmap, pl, cval, ring, tag, pr)
                rslot[r] = pr % span
            for k in range(nk):
                for i in range(rcount[k]):
                    slots[i] = rslot[rsel[k, i]]
                t = tmp[k]
                t[:] = 0.0
                _madd(t, ring, slots, zeros, rw[k], rcount[k], WpC, 1, C)
                a = acc[k]
                a[:] = 0.0
                kslot[:] = k
                _madd(a, tmp, kslot, ccols[k], cw[k], ccount[k], n, stride, C)
            orow = outf[y * n : (y + 1) * n]
            a0 = acc[0]
            if nk == 1:
                for q in range(n):
                    orow[q] = a0[q]
            else:
                a1 = acc[1]
                for q in range(n):
                    orow[q] = np.sqrt(a0[q] * a0[q] + a1[q] * a1[q])
