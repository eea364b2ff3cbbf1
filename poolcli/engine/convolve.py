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
    off = pl * C
    for k in range(W * C):  # the middle of a padded row is the source row itself
        dst[off + k] = flat[base + k]
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


@pjit
def correlate_taps(img, rowmap, colmap, pl, cval, stride, nch, roffs, tstart, tcol, tw, out):
    """out[y, x, c] = Σ_t tw[t] · P[y·s + roffs[r(t)], x·s + tcol[t], c].

    P is the image padded through ``rowmap``/``colmap`` (index −1 reads ``cval``).  Taps are
    grouped by kernel row: taps ``tstart[r]:tstart[r+1]`` lie on padded-row offset ``roffs[r]``.
    Only non-zero taps are passed, so sparse kernels (sharpen, Laplacian) cost what they touch.
    Output rows are split into ``nch`` blocks for ``prange``; each keeps its own row ring.
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    WpC = colmap.size * C
    n = OW * C
    span = roffs[-1] + 1
    for ch in prange(nch):
        ring = np.empty((span, WpC), np.float32)
        tag = np.full(span, -1, np.int64)
        acc = np.empty(n, np.float32)
        for y in range(ch * OH // nch, (ch + 1) * OH // nch):
            acc[:] = 0.0
            for r in range(roffs.size):
                src = _ring_row(flat, W, C, rowmap, colmap, pl, cval, ring, tag, y * stride + roffs[r])
                for t in range(tstart[r], tstart[r + 1]):
                    w = tw[t]
                    co = tcol[t] * C
                    if stride == 1:
                        for q in range(n):
                            acc[q] += w * src[co + q]
                    else:
                        for x in range(OW):
                            sb = x * stride * C + co
                            for c in range(C):
                                acc[x * C + c] += w * src[sb + c]
            ob = y * n
            for q in range(n):
                outf[ob + q] = acc[q]


@pjit
def correlate_separable(img, rowmap, colmap, pl, cval, stride, nch, roffs, rw, coffs, cw, out):
    """Rank-1 kernels k_k = rw[k] ⊗ cw[k] as a vertical then a horizontal 1-D pass.

    With one kernel (``rw.shape[0] == 1``): out = Σ_i rw[i] Σ_j cw[j] P[y·s + roffs[i], x·s + coffs[j]].
    With two kernels the result is the gradient magnitude √(a² + b²) of the two correlations,
    computed in one sweep that shares the padded rows (Sobel, Scharr, Prewitt).
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    nk = rw.shape[0]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    WpC = colmap.size * C
    n = OW * C
    span = roffs[-1] + 1
    for ch in prange(nch):
        ring = np.empty((span, WpC), np.float32)
        tag = np.full(span, -1, np.int64)
        tmp = np.empty((nk, WpC), np.float32)
        acc = np.empty((nk, n), np.float32)
        for y in range(ch * OH // nch, (ch + 1) * OH // nch):
            tmp[:] = 0.0
            for r in range(roffs.size):
                src = _ring_row(flat, W, C, rowmap, colmap, pl, cval, ring, tag, y * stride + roffs[r])
                for k in range(nk):
                    w = rw[k, r]
                    if w != 0.0:
                        t = tmp[k]
                        for q in range(WpC):
                            t[q] += w * src[q]
            acc[:] = 0.0
            for k in range(nk):
                t = tmp[k]
                a = acc[k]
                for j in range(coffs.size):
                    w = cw[k, j]
                    if w == 0.0:
                        continue
                    co = coffs[j] * C
                    if stride == 1:
                        for q in range(n):
                            a[q] += w * t[co + q]
                    else:
                        for x in range(OW):
                            sb = x * stride * C + co
                            for c in range(C):
                                a[x * C + c] += w * t[sb + c]
            ob = y * n
            if nk == 1:
                for q in range(n):
                    outf[ob + q] = acc[0, q]
            else:
                for q in range(n):
                    outf[ob + q] = np.sqrt(acc[0, q] * acc[0, q] + acc[1, q] * acc[1, q])
