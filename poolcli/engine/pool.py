"""Compiled pooling loops.

Windows are described per axis, which covers fixed, padded, dilated, ceil-mode and adaptive
pooling alike: output row ``oy`` reads source rows ``rstart[oy] + i * dh`` for
``i < rcount[oy]`` that fall inside ``[0, H)`` (the others are padding), and likewise for
columns.  Images are C-contiguous ``(H, W, C)``; outputs ``(OH, OW, C)``.
"""

import numpy as np
from numba import prange

from ._jit import jit, pjit


@pjit
def pool_extreme(img, rstart, rcount, dh, cstart, ccount, dw, sign, fill, out):
    """out = max over the window's valid cells (sign > 0) or min (sign < 0); NaN propagates.

    Keeps the input dtype.  A window with no valid cell gives ``fill`` (−inf / +inf for
    floats, as PyTorch does).
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    for oy in prange(OH):
        best = np.empty(C, img.dtype)
        seen = np.zeros(C, np.bool_)
        for ox in range(OW):
            seen[:] = False
            for i in range(rcount[oy]):
                r = rstart[oy] + i * dh
                if r < 0 or r >= H:
                    continue
                for j in range(ccount[ox]):
                    x = cstart[ox] + j * dw
                    if x < 0 or x >= W:
                        continue
                    for c in range(C):
                        v = img[r, x, c]
                        if not seen[c]:
                            best[c] = v
                            seen[c] = True
                        elif sign > 0:
                            if v > best[c] or v != v:
                                best[c] = v
                        elif v < best[c] or v != v:
                            best[c] = v
            for c in range(C):
                if seen[c]:
                    out[oy, ox, c] = best[c]
                else:
                    out[oy, ox, c] = fill


@pjit
def pool_extreme_blocks(img, kh, kw, sign, out):
    """Non-overlapping max/min (stride = window, no padding or dilation): each pixel read once."""
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    n = OW * C
    for oy in prange(OH):
        ob = oy * n
        base = oy * kh * W * C
        for ox in range(OW):
            for c in range(C):
                outf[ob + ox * C + c] = flat[base + ox * kw * C + c]
        for i in range(kh):
            rb = (oy * kh + i) * W * C
            for ox in range(OW):
                sb = rb + ox * kw * C
                for j in range(kw):
                    for c in range(C):
                        v = flat[sb + j * C + c]
                        o = ob + ox * C + c
                        m = outf[o]
                        if sign > 0:
                            if v > m or v != v:
                                outf[o] = v
                        elif v < m or v != v:
                            outf[o] = v


@pjit
def pool_sum(img, rstart, rcount, dh, cstart, ccount, dw, power, div, mul, out):
    """out = (Σ_valid x^power / div[oy, ox] · mul) ^ (1/power), float32.

    power = 1 and mul = 1 is average pooling (PyTorch ``avg_pool2d`` with ``div`` its divisor);
    power = p and mul = kh·kw is ``lp_pool2d``, which PyTorch defines as an average pool of
    x^p times the window area.  Padding cells add nothing to the sum.
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    inv = 1.0 / power
    for oy in prange(OH):
        acc = np.empty(C, np.float64)
        for ox in range(OW):
            acc[:] = 0.0
            for i in range(rcount[oy]):
                r = rstart[oy] + i * dh
                if r < 0 or r >= H:
                    continue
                for j in range(ccount[ox]):
                    x = cstart[ox] + j * dw
                    if x < 0 or x >= W:
                        continue
                    for c in range(C):
                        v = np.float64(img[r, x, c])
                        acc[c] += v if power == 1.0 else v**power
            for c in range(C):
                s = acc[c] / div[oy, ox] * mul
                out[oy, ox, c] = s if power == 1.0 else s**inv


@pjit
def pool_avg_blocks(img, kh, kw, out):
    """Non-overlapping average pooling (stride = window, no padding or dilation), float32."""
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    n = OW * C
    area = np.float64(kh * kw)
    for oy in prange(OH):
        acc = np.zeros(n, np.float64)
        for i in range(kh):
            rb = (oy * kh + i) * W * C
            for ox in range(OW):
                sb = rb + ox * kw * C
                for j in range(kw):
                    for c in range(C):
                        acc[ox * C + c] += flat[sb + j * C + c]
        ob = oy * n
        for q in range(n):
            outf[ob + q] = acc[q] / area


@pjit
def pool_select(img, rstart, rcount, dh, cstart, ccount, dw, stochastic, seed, out):
    """Median (lower median of the valid cells) or stochastic pooling; keeps the dtype.

    Stochastic (Zeiler & Fergus 2013): one valid cell is picked with probability proportional
    to max(value, 0), uniformly when all are ≤ 0.  The random number of each output cell is a
    hash of (seed, position), so results do not depend on thread scheduling.
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    cap = 1
    for i in range(OH):
        cap = max(cap, rcount[i])
    capc = 1
    for j in range(OW):
        capc = max(capc, ccount[j])
    for oy in prange(OH):
        buf = np.empty(cap * capc, img.dtype)
        for ox in range(OW):
            for c in range(C):
                n = 0
                for i in range(rcount[oy]):
                    r = rstart[oy] + i * dh
                    if r < 0 or r >= H:
                        continue
                    for j in range(ccount[ox]):
                        x = cstart[ox] + j * dw
                        if 0 <= x < W:
                            buf[n] = img[r, x, c]
                            n += 1
                if n == 0:
                    out[oy, ox, c] = 0
                elif stochastic:
                    u = _uniform(seed, (oy * OW + ox) * C + c)
                    out[oy, ox, c] = buf[_pick(buf, n, u)]
                else:
                    s = np.sort(buf[:n])
                    out[oy, ox, c] = s[(n - 1) // 2]


@jit
def _pick(buf, n, u):
    """Index of the cell whose cumulative weight max(v, 0) first exceeds u · total."""
    total = 0.0
    for k in range(n):
        total += max(np.float64(buf[k]), 0.0)
    if not total > 0.0:
        return min(int(u * n), n - 1)
    target = u * total
    run = 0.0
    last = 0
    for k in range(n):
        w = max(np.float64(buf[k]), 0.0)
        if w > 0.0:
            last = k
            run += w
            if target < run:
                return k
    return last


@jit
def _uniform(seed, i):
    """Uniform [0, 1) from SplitMix64 of (seed, i)."""
    z = np.uint64(seed) + np.uint64(i + 1) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)
