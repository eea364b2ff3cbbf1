"""Compiled pooling loops.

Windows are described per axis, which covers fixed, padded, dilated, ceil-mode and adaptive
pooling alike: output row ``oy`` reads source rows ``rstart[oy] + i * dh`` for
``i < rcount[oy]`` that fall inside ``[0, H)`` (the others are padding), and likewise for
columns.  Images are C-contiguous ``(H, W, C)``; outputs ``(OH, OW, C)``.
"""

import numpy as np
from numba import prange

from ._jit import inline, jit, pjit


@pjit
def pool_extreme(img, rstart, rcount, dh, cstart, ccount, dw, sign, fill, hk, nch, out):
    """out = max (sign > 0) or min over the window's valid cells, keeping the dtype.

    Max and min are separable: the valid rows of each window are reduced into one row buffer
    (contiguous, vectorised), then each output reduces its valid columns of that buffer.  With
    ``hk`` > 0 (every window ``hk`` columns wide, dilation 1) the columns are first reduced
    ``hk`` at a time over the whole row (contiguous, vectorised too) and windows inside the
    image just pick their value.  A window with no valid cell (possible with dilation) gives
    ``fill`` (−inf / +inf for floats).
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    n = W * C
    hm = (W - hk + 1) * C if hk > 0 else 0  # entries of the column-reduced row
    for ch in prange(nch):
        tmp = np.empty(n, img.dtype)
        hrow = np.empty(hm + 1, img.dtype)
        for oy in range(ch * OH // nch, (ch + 1) * OH // nch):
            orow = outf[oy * OW * C : (oy + 1) * OW * C]
            have = False
            for i in range(rcount[oy]):
                r = rstart[oy] + i * dh
                if r < 0 or r >= H:
                    continue
                row = flat[r * n : (r + 1) * n]
                if not have:
                    for q in range(n):
                        tmp[q] = row[q]
                    have = True
                else:
                    _reduce_rows(tmp, row, n, sign)
            if not have:
                orow[:] = fill
                continue
            if hm > 0:
                for q in range(hm):
                    hrow[q] = tmp[q]
                for j in range(1, hk):
                    _reduce_rows(hrow, tmp[j * C : j * C + hm], hm, sign)
            for ox in range(OW):
                cs = cstart[ox]
                cnt = ccount[ox]
                if hm > 0 and cs >= 0 and cs + hk <= W:  # inside: already reduced
                    for c in range(C):
                        orow[ox * C + c] = hrow[cs * C + c]
                    continue
                if cs >= 0 and cs + (cnt - 1) * dw < W:  # the window is inside: no checks
                    for c in range(C):
                        m = tmp[cs * C + c]
                        for j in range(1, cnt):
                            m = _pick2(m, tmp[(cs + j * dw) * C + c], sign)
                        orow[ox * C + c] = m
                    continue
                for c in range(C):
                    best = fill
                    seen = False
                    for j in range(cnt):
                        x = cs + j * dw
                        if x < 0 or x >= W:
                            continue
                        v = tmp[x * C + c]
                        if not seen:
                            best = v
                            seen = True
                        else:
                            best = _pick2(best, v, sign)
                    orow[ox * C + c] = best


@inline
def _pick2(a, b, sign):
    """max(a, b) (sign > 0) or min(a, b), NaN-propagating as PyTorch."""
    if sign > 0:
        return a if (a > b or a != a) else b
    return a if (a < b or a != a) else b


@jit
def _reduce_rows(tmp, row, n, sign):
    if sign > 0:
        for q in range(n):
            tmp[q] = _pick2(tmp[q], row[q], 1)
    else:
        for q in range(n):
            tmp[q] = _pick2(tmp[q], row[q], -1)


@pjit
def pool_extreme_blocks(img, kh, kw, sign, nch, out):
    """Non-overlapping max/min (stride = window, no padding or dilation): each pixel read once.

    Rows of a window are reduced element-wise (vectorised), then neighbouring columns; the
    common 2-wide window has unrolled loops for 1, 3 and 4 channels so they vectorise too.
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    n = OW * kw * C  # the part of a row that the windows cover
    for ch in prange(nch):
        tmp = np.empty(n, img.dtype)
        for oy in range(ch * OH // nch, (ch + 1) * OH // nch):
            first = flat[oy * kh * W * C : oy * kh * W * C + n]
            for q in range(n):
                tmp[q] = first[q]
            for i in range(1, kh):
                r = (oy * kh + i) * W * C
                _reduce_rows(tmp, flat[r : r + n], n, sign)
            orow = outf[oy * OW * C : (oy + 1) * OW * C]
            if kw == 1:
                for q in range(OW * C):
                    orow[q] = tmp[q]
            elif kw == 2 and C == 1:
                for ox in range(OW):
                    orow[ox] = _pick2(tmp[2 * ox], tmp[2 * ox + 1], sign)
            elif kw == 2 and C == 3:
                for ox in range(OW):
                    b = 6 * ox
                    orow[3 * ox] = _pick2(tmp[b], tmp[b + 3], sign)
                    orow[3 * ox + 1] = _pick2(tmp[b + 1], tmp[b + 4], sign)
                    orow[3 * ox + 2] = _pick2(tmp[b + 2], tmp[b + 5], sign)
            elif kw == 2 and C == 4:
                for ox in range(OW):
                    b = 8 * ox
                    orow[4 * ox] = _pick2(tmp[b], tmp[b + 4], sign)
                    orow[4 * ox + 1] = _pick2(tmp[b + 1], tmp[b + 5], sign)
                    orow[4 * ox + 2] = _pick2(tmp[b + 2], tmp[b + 6], sign)
                    orow[4 * ox + 3] = _pick2(tmp[b + 3], tmp[b + 7], sign)
            else:
                for ox in range(OW):
                    base = ox * kw * C
                    for c in range(C):
                        m = tmp[base + c]
                        for j in range(1, kw):
                            m = _pick2(m, tmp[base + j * C + c], sign)
                        orow[ox * C + c] = m


@pjit
def pool_sum(img, rstart, rcount, dh, cstart, ccount, dw, power, div, mul, acc_like, out):
    """out = (Σ_valid x^power / div[oy, ox] · mul) ^ (1/power), float32, summed separably.

    power = 1 and mul = 1 is average pooling (PyTorch ``avg_pool2d`` with ``div`` its divisor);
    power = p and mul = kh·kw is ``lp_pool2d``, which PyTorch defines as an average pool of
    x^p times the window area.  Padding cells add nothing.  Sums accumulate in ``acc_like``'s
    dtype (float32 where that is exact for the input, float64 otherwise).
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    n = W * C
    inv = 1.0 / power
    for oy in prange(OH):
        tmp = np.zeros(n, acc_like.dtype)
        for i in range(rcount[oy]):
            r = rstart[oy] + i * dh
            if r < 0 or r >= H:
                continue
            row = flat[r * n : (r + 1) * n]
            if power == 1.0:
                for q in range(n):
                    tmp[q] += row[q]
            else:
                for q in range(n):
                    tmp[q] += np.float64(row[q]) ** power
        orow = outf[oy * OW * C : (oy + 1) * OW * C]
        for ox in range(OW):
            for c in range(C):
                acc = 0.0
                for j in range(ccount[ox]):
                    x = cstart[ox] + j * dw
                    if 0 <= x < W:
                        acc += tmp[x * C + c]
                s = acc / div[oy, ox] * mul
                orow[ox * C + c] = s if power == 1.0 else s**inv


@pjit
def pool_avg_blocks(img, kh, kw, nch, acc_like, top, out):
    """Non-overlapping average pooling (stride = window, no padding or dilation), float32.

    Window rows are summed element-wise (vectorised), then neighbouring columns, with unrolled
    loops for the common 2-wide window on 1, 3 and 4 channels.  With ``top`` > 0 each float32
    mean is stored as a pixel (rounded half to even, clipped to 0…top: exactly what
    :func:`poolcli.engine.pixels.quantize` makes of it) in an integer ``out``.
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    n = OW * kw * C
    area = kh * kw
    # dividing by a power of two is multiplying by its exact inverse: same result, faster
    inv = np.float32(1.0 / area) if (area & (area - 1)) == 0 else np.float32(0.0)
    for ch in prange(nch):
        tmp = np.empty(n, acc_like.dtype)
        for oy in range(ch * OH // nch, (ch + 1) * OH // nch):
            first = flat[oy * kh * W * C : oy * kh * W * C + n]
            for q in range(n):
                tmp[q] = first[q]
            for i in range(1, kh):
                r = (oy * kh + i) * W * C
                row = flat[r : r + n]
                for q in range(n):
                    tmp[q] += row[q]
            orow = outf[oy * OW * C : (oy + 1) * OW * C]
            if kw == 2 and C == 3 and inv != 0:
                for ox in range(OW):
                    b = 6 * ox
                    orow[3 * ox] = _store((tmp[b] + tmp[b + 3]) * inv, top)
                    orow[3 * ox + 1] = _store((tmp[b + 1] + tmp[b + 4]) * inv, top)
                    orow[3 * ox + 2] = _store((tmp[b + 2] + tmp[b + 5]) * inv, top)
            elif kw == 2 and C == 1 and inv != 0:
                for ox in range(OW):
                    orow[ox] = _store((tmp[2 * ox] + tmp[2 * ox + 1]) * inv, top)
            else:
                for ox in range(OW):
                    base = ox * kw * C
                    for c in range(C):
                        acc = tmp[base + c]
                        for j in range(1, kw):
                            acc += tmp[base + j * C + c]
                        orow[ox * C + c] = _store(np.float32(acc / area), top)


@pjit
def pool_avg2_u8(img, nch, out):
    """2×2 average pooling of uint8 pixels straight into uint8, in integers.

    With t the window's sum (at most 1020), (t + 1 + ((t >> 2) & 1)) >> 2 is t / 4 rounded half
    to even: exactly what the float32 path's mean, rounded by :func:`_store`, gives.  Each row
    pair is first reduced at every byte j from bytes j and j + C of both rows (four contiguous
    streams: LLVM vectorises it without shuffles), then every other pixel of that is kept (the
    windows start at even pixels).  Measured at 2048² RGB on 2 threads: 0.63–0.95 ms, against
    1.3–1.6 for the same means gathered pixel by pixel (byte inserts) and OpenCV's INTER_AREA 1.0–1.2.
    """
    H, W, C = img.shape
    OH, OW = out.shape[0], out.shape[1]
    flat = img.reshape(H * W * C)
    outf = out.reshape(OH * OW * C)
    n = OW * 2 * C
    for ch in prange(nch):
        means = np.empty(n, np.uint8)  # means[j]: the window starting at byte j (half are kept)
        for oy in range(ch * OH // nch, (ch + 1) * OH // nch):
            a = flat[2 * oy * W * C : 2 * oy * W * C + n]
            b = flat[(2 * oy + 1) * W * C : (2 * oy + 1) * W * C + n]
            _mean4_run(a, a[C:], b, b[C:], n - C, means)
            orow = outf[oy * OW * C : (oy + 1) * OW * C]
            if C == 3:  # the channel count a constant: the copy unrolls
                for ox in range(OW):
                    orow[3 * ox] = means[6 * ox]
                    orow[3 * ox + 1] = means[6 * ox + 1]
                    orow[3 * ox + 2] = means[6 * ox + 2]
            elif C == 1:
                for ox in range(OW):
                    orow[ox] = means[2 * ox]
            else:
                for ox in range(OW):
                    for c in range(C):
                        orow[C * ox + c] = means[2 * C * ox + c]


@inline
def _mean4_run(a, a2, b, b2, m, dst):
    """dst[j] = (a[j] + a2[j] + b[j] + b2[j]) / 4 rounded half to even, for j < m, in 16-bit integers."""
    for j in range(m):
        t = np.uint16(np.uint16(a[j]) + np.uint16(a2[j]) + np.uint16(b[j]) + np.uint16(b2[j]))
        dst[j] = np.uint8((t + np.uint16(1) + ((t >> np.uint16(2)) & np.uint16(1))) >> np.uint16(2))


@inline
def _store(v, top):
    """The float32 value ``v`` as stored: itself, or (top > 0) rounded half to even and clipped."""
    if top > 0:
        r = np.rint(np.float64(v))
        r = r if r > 0.0 else 0.0
        return r if r < top else top
    return np.float64(v)


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
