"""NumPy forms of the compiled loops a first command runs, bit-identical to them.

A command over a few small images spends more time importing Numba and loading (or, on an empty
cache, compiling) its loops than computing: about 1 s warm and 10–20 s cold, against a few
milliseconds of NumPy.  Small jobs of the command line therefore run these forms instead
(:func:`poolcli.engine.runtime.run_loop` chooses).  Each takes exactly the arguments of the loop
of the same name and writes the same ``out``: the same operations in the same order on the same
types (float32 products summed in the loops' groups, the same comparisons for max and min, the
same rounding), so the results are equal bit for bit; ``tests/test_numpy_forms.py`` proves it
over random shapes, dtypes, strides, paddings and NaN.  No Numba is imported here.

Each form works through its output in bands of rows (:func:`_bands`) whose temporaries stay in
the caches and in memory already mapped: whole-image temporaries made them 2–4× slower here.
"""

from __future__ import annotations

import zlib

import numpy as np

BAND = 1 << 16  # elements of a band's widest temporary (256 kB of float32)


def _bands(rows: int, per_row: int):
    """(y0, y1) bands of output rows, each about :data:`BAND` elements of ``per_row`` a row."""
    step = max(1, BAND // max(per_row, 1))
    for y0 in range(0, rows, step):
        yield y0, min(rows, y0 + step)


# ----------------------------------------------------------------------------- pooling


def _pick(a, b, sign):
    """Element-wise :func:`poolcli.engine.pool._pick2`: max (sign > 0) or min, NaN-propagating,
    ``b`` on ties (so signed zeros come out as the loop's)."""
    keep = (a > b) if sign > 0 else (a < b)
    return np.where(keep | (a != a), a, b)


def pool_extreme_blocks(img, kh, kw, sign, nch, out):
    OH, OW, C = out.shape
    for y0, y1 in _bands(OH, kh * OW * kw * C):
        win = img[y0 * kh : y1 * kh, : OW * kw].reshape(y1 - y0, kh, OW, kw, C)
        rows = win[:, 0]
        for i in range(1, kh):
            rows = _pick(rows, win[:, i], sign)
        m = rows[:, :, 0]
        for j in range(1, kw):
            m = _pick(m, rows[:, :, j], sign)
        out[y0:y1] = m


def _columns(tmp, cstart, ccount, dw):
    """(valid, values) for each window's j-th column of a row-reduced ``tmp`` (W, C), j = 0, 1, …:
    which windows have a j-th column inside the image, and its values (OW, C) (clamped where not)."""
    W = tmp.shape[0]
    for j in range(int(ccount.max(initial=0))):
        x = cstart + j * dw
        yield (j < ccount) & (x >= 0) & (x < W), tmp[np.clip(x, 0, W - 1)]


def _fold_columns(tmp, cstart, ccount, dw, sign, fill):
    """Each window's columns of the row-reduced ``tmp`` (W, C), picked left to right over the
    valid ones (``fill`` where none is), as the loop's three column paths all do: (OW, C)."""
    best = np.full((cstart.size, tmp.shape[1]), fill, tmp.dtype)
    seen = np.zeros(cstart.size, bool)
    for valid, v in _columns(tmp, cstart, ccount, dw):
        picked = np.where(seen[:, None], _pick(best, v, sign), v)
        best = np.where(valid[:, None], picked, best)
        seen |= valid
    return best


def pool_extreme(img, rstart, rcount, dh, cstart, ccount, dw, sign, fill, hk, nch, out):
    H, W, C = img.shape
    for oy in range(out.shape[0]):
        tmp = None
        for i in range(rcount[oy]):
            r = rstart[oy] + i * dh
            if 0 <= r < H:
                tmp = img[r] if tmp is None else _pick(tmp, img[r], sign)
        out[oy] = fill if tmp is None else _fold_columns(tmp, cstart, ccount, dw, sign, fill)


def pool_sum(img, rstart, rcount, dh, cstart, ccount, dw, power, div, mul, acc_like, out):
    """Average pooling (``power`` 1: the only case taken, :func:`pool_sum_covers`): each window's
    valid rows summed in order in ``acc_like``'s dtype, then its valid columns in float64 from
    0.0 (adding 0.0 for a padding column changes nothing: the sum is never −0.0)."""
    H, W, C = img.shape
    for oy in range(out.shape[0]):
        tmp = np.zeros((W, C), acc_like.dtype)
        for i in range(rcount[oy]):
            r = rstart[oy] + i * dh
            if 0 <= r < H:
                tmp += img[r]
        acc = np.zeros((cstart.size, C), np.float64)
        for valid, v in _columns(tmp, cstart, ccount, dw):
            acc += np.where(valid[:, None], v, 0.0)
        out[oy] = acc / div[oy][:, None] * mul


def pool_sum_covers(img, rstart, rcount, dh, cstart, ccount, dw, power, div, mul, acc_like, out) -> bool:
    """Average pooling only: lp's x^p is libm's pow in the loop, which NumPy does not always call."""
    return power == 1.0


def _store(v, top):
    """:func:`poolcli.engine.pool._store` over an array: float32 means as float32, or rounded half
    to even and clipped to 0…top for an integer ``out``."""
    if top > 0:
        r = np.rint(v.astype(np.float64))
        r = np.where(r > 0.0, r, 0.0)
        return np.where(r < top, r, top)
    return v


def pool_avg_blocks(img, kh, kw, nch, acc_like, top, out):
    OH, OW, C = out.shape
    acc, area = acc_like.dtype, kh * kw
    for y0, y1 in _bands(OH, kh * OW * kw * C):
        win = img[y0 * kh : y1 * kh, : OW * kw].reshape(y1 - y0, kh, OW, kw, C)
        rows = win[:, 0].astype(acc)
        for i in range(1, kh):
            rows = rows + win[:, i].astype(acc)
        if kw == 2 and C in (1, 3) and area & (area - 1) == 0:  # the loop's unrolled branch
            mean = (rows[:, :, 0] + rows[:, :, 1]) * np.float32(1.0 / area)
        else:
            total = rows[:, :, 0]
            for j in range(1, kw):
                total = total + rows[:, :, j]
            mean = (total.astype(np.float64) / area).astype(np.float32)
        out[y0:y1] = _store(mean, top)


def pool_avg2_u8(img, nch, out):
    OH, OW, C = out.shape
    for y0, y1 in _bands(OH, 4 * OW * C):
        win = img[2 * y0 : 2 * y1, : 2 * OW].reshape(y1 - y0, 2, OW, 2, C).astype(np.uint16)
        t = win[:, 0, :, 0] + win[:, 0, :, 1] + win[:, 1, :, 0] + win[:, 1, :, 1]
        out[y0:y1] = (t + 1 + ((t >> 2) & 1)) >> 2


# ----------------------------------------------------------------------------- convolution


def _padded(img, rowmap, colmap, cval):
    """The image as float32 padded rows: P[r, q, c] = img[rowmap[r], colmap[q], c], ``cval``
    where either index is −1 (the loops' row ring, for all of a band's padded rows at once)."""
    p = img[np.maximum(rowmap, 0)][:, np.maximum(colmap, 0)].astype(np.float32, copy=False)
    p[rowmap < 0] = cval
    p[:, colmap < 0] = cval
    return p


def _madd(dst, srcs, ws, grouped):
    """:func:`poolcli.engine.convolve._madd`: dst += Σ ws[t]·srcs[t], eight then four, two and
    one taps per sweep (``grouped``, stride 1) or one tap at a time, in the loop's order."""
    m, t = len(srcs), 0
    w = [ws[k] for k in range(m)]
    s = srcs
    if not grouped:
        for k in range(m):
            dst += w[k] * s[k]
        return
    while t + 8 <= m:
        first = w[t] * s[t] + w[t + 1] * s[t + 1] + w[t + 2] * s[t + 2] + w[t + 3] * s[t + 3]
        second = w[t + 4] * s[t + 4] + w[t + 5] * s[t + 5] + w[t + 6] * s[t + 6] + w[t + 7] * s[t + 7]
        dst += first + second
        t += 8
    while t + 4 <= m:
        dst += w[t] * s[t] + w[t + 1] * s[t + 1] + w[t + 2] * s[t + 2] + w[t + 3] * s[t + 3]
        t += 4
    if t + 2 <= m:
        dst += w[t] * s[t] + w[t + 1] * s[t + 1]
        t += 2
    if t < m:
        dst += w[t] * s[t]


def _rows(p, start, count, step):
    return p[start : start + (count - 1) * step + 1 : step]


def _band_rows(rowmap, y0, y1, stride, span):
    """The padded rows output rows y0 … y1 − 1 read (the first is row y0·stride)."""
    return rowmap[y0 * stride : (y1 - 1) * stride + span]


def correlate_taps(img, rowmap, colmap, pl, cval, stride, nch, roffs, trow, tcol, tw, out):
    OH, OW, C = out.shape
    span = roffs[-1] + 1
    for y0, y1 in _bands(OH, colmap.size * C):
        p = _padded(img, _band_rows(rowmap, y0, y1, stride, span), colmap, cval)
        srcs = [_rows(p, roffs[trow[t]], y1 - y0, stride)[:, tcol[t] : tcol[t] + (OW - 1) * stride + 1 : stride]
                for t in range(tw.size)]  # fmt: skip
        acc = np.zeros((y1 - y0, OW, C), np.float32)
        _madd(acc, srcs, tw, stride == 1)
        out[y0:y1] = acc


def correlate_separable(img, rowmap, colmap, pl, cval, stride, nch, roffs, rsel, rw, rcount, csel, cw, ccount, out):
    OH, OW, C = out.shape
    span = roffs[-1] + 1
    for y0, y1 in _bands(OH, colmap.size * C):
        n = y1 - y0
        p = _padded(img, _band_rows(rowmap, y0, y1, stride, span), colmap, cval)
        acc = []
        for k in range(rw.shape[0]):
            vertical = np.zeros((n,) + p.shape[1:], np.float32)
            _madd(vertical, [_rows(p, roffs[rsel[k, i]], n, stride) for i in range(rcount[k])], rw[k], True)
            a = np.zeros((n, OW, C), np.float32)
            srcs = [vertical[:, csel[k, j] : csel[k, j] + (OW - 1) * stride + 1 : stride] for j in range(ccount[k])]
            _madd(a, srcs, cw[k], stride == 1)
            acc.append(a)
        out[y0:y1] = acc[0] if len(acc) == 1 else np.sqrt(acc[0] * acc[0] + acc[1] * acc[1])


def _conv_blocks(c_out, per_group):
    """The loop's split of output channels: (first channel, 4) for a block of four inside one
    group, (channel, 1) for the rest, in the loop's order."""
    blocks, oc = [], 0
    while oc < c_out:
        n = 4 if oc + 3 < c_out and (oc + 3) // per_group == oc // per_group else 1
        blocks.append((oc, n))
        oc += n
    return blocks


def conv2d(xp, w, bias, sh, sw, dh, dw, groups, out):
    """:func:`poolcli.engine.conv2d.conv2d`: each output channel starts at its bias and adds its
    group's input channels kernel row by kernel row; in blocks of four channels (stride and
    dilation 1) three taps, then two, per update, else (and for the channels left over) one.
    The blocks of one group and kind are computed together (the same order for each)."""
    c_out, oh, ow = out.shape
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    per_group = c_out // groups
    grouped = sw == 1 and dw == 1
    kinds: dict = {}
    for oc, n in _conv_blocks(c_out, per_group):
        kinds.setdefault((oc // per_group, n == 4 and grouped), []).extend(range(oc, oc + n))
    for (g, three), chans in kinds.items():
        ch = np.array(chans)
        for y0, y1 in _bands(oh, len(chans) * ow):
            r = np.empty((len(chans), y1 - y0, ow), np.float32)
            r[...] = bias[ch][:, None, None]
            for i in range(cg):
                for ky in range(kh):
                    rows = xp[g * cg + i, ky * dh + y0 * sh : ky * dh + (y1 - 1) * sh + 1 : sh]
                    t = [rows[None, :, kx * dw : kx * dw + (ow - 1) * sw + 1 : sw] for kx in range(kw)]
                    k = [w[ch, i, ky, kx][:, None, None] for kx in range(kw)]
                    kx = 0
                    if three:
                        while kx + 3 <= kw:
                            r += k[kx] * t[kx] + k[kx + 1] * t[kx + 1] + k[kx + 2] * t[kx + 2]
                            kx += 3
                        if kx + 2 == kw:
                            r += k[kx] * t[kx] + k[kx + 1] * t[kx + 1]
                            kx += 2
                    while kx < kw:
                        r += k[kx] * t[kx]
                        kx += 1
            out[ch, y0:y1] = r


# ----------------------------------------------------------------------------- pixels


def _colour(M, C, ncolour):
    """Which of the M interleaved values of a row are colour (the first ``ncolour`` of every C)."""
    return np.arange(M) % C < ncolour


def colour_range(a, C, ncolour, nch, lohi):
    lo, hi = np.inf, -np.inf  # every block gets the extremes of them all: the caller reduces the blocks
    mask = None if ncolour == C else _colour(a.shape[1], C, ncolour)
    for y0, y1 in _bands(a.shape[0], a.shape[1]):
        v = a[y0:y1] if mask is None else a[y0:y1, mask]
        if v.size:  # fmin and fmax pass NaN over, as the loop's comparisons do
            lo = min(lo, np.float64(np.fmin.reduce(v, axis=None)))
            hi = max(hi, np.float64(np.fmax.reduce(v, axis=None)))
    lohi[:, 0] = lo if lo == lo else np.inf  # NaN: every value was NaN
    lohi[:, 1] = hi if hi == hi else -np.inf


def quantize(a, C, ncolour, rule, lo, gain, top, out):
    mask = None if ncolour == C else _colour(a.shape[1], C, ncolour)
    for y0, y1 in _bands(a.shape[0], a.shape[1]):
        v = a[y0:y1].astype(np.float64)
        ruled = np.abs(v) if rule == 1 else (v - lo) * gain if rule == 2 else v
        if mask is not None:
            ruled = np.where(mask, ruled, v)
        r = np.rint(ruled)
        r = np.where(r > 0.0, r, 0.0)
        out[y0:y1] = np.where(r < top, r, top)


def luma(rgb, out):
    for y0, y1 in _bands(out.shape[0], out.shape[1]):
        px = rgb[y0:y1]
        v = px[..., 0].astype(np.int64) * 19595 + px[..., 1].astype(np.int64) * 38470
        v += px[..., 2].astype(np.int64) * 7471 + 32768
        out[y0:y1] = v >> 16


# ----------------------------------------------------------------------------- PNG filters

_PILLOW_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # modes whose bytes are the samples as they are


def unfilter(rows, bpp, out):
    """Undone by Pillow's PNG decoder (its C code, given the scanlines as a stored zlib stream; the
    PNG filters are fully specified, and tests/test_numpy_forms.py checks every one): pixels of
    more than 4 bytes (16-bit colour) are left to the compiled loop (:func:`unfilter_covers`)."""
    from PIL import Image

    h, n = out.shape
    mode = _PILLOW_MODES[bpp]
    stream = zlib.compress(rows.tobytes(), 0)
    plain = Image.frombytes(mode, (n // bpp, h), stream, "zip", mode).tobytes()
    out[...] = np.frombuffer(plain, np.uint8).reshape(h, n)


def unfilter_covers(rows, bpp, out) -> bool:
    """Whether :func:`unfilter` takes these arguments (whole pixels of 1–4 bytes, one row or more)."""
    n = out.shape[1]
    return bpp in _PILLOW_MODES and n % bpp == 0 and n > 0 and out.shape[0] > 0


def _paeth(a, b, c):
    """The Paeth prediction of uint8 arrays (left, up, upper-left), computed in int16."""
    a, b, c = (v.astype(np.int16) for v in (a, b, c))
    pa = np.abs(b - c)
    pb = np.abs(a - c)
    pc = np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)).astype(np.uint8)


def _cost(v):
    """libpng's cost of filtered bytes (uint8): their absolute values read as signed bytes,
    summed per row (exactly: in int64)."""
    return np.minimum(v, -v).sum(axis=1, dtype=np.int64)  # uint8 negation is 256 − v


def filter_rows(raw, bpp, out):
    """Every filter's bytes computed in uint8 (wrapping modulo 256, as PNG wants), the cheapest
    row by row (ties: the lower filter number, as libpng)."""
    h, n = raw.shape
    for y0, y1 in _bands(h, n):
        x = raw[y0:y1]
        b = raw[y0 - 1 : y1 - 1] if y0 else np.concatenate([np.zeros((1, n), np.uint8), x[:-1]])
        a = np.zeros_like(x)
        a[:, bpp:] = x[:, : max(n - bpp, 0)]
        c = np.zeros_like(x)
        c[:, bpp:] = b[:, : max(n - bpp, 0)]
        average = (a >> 1) + (b >> 1) + (a & b & 1)  # (a + b) >> 1 without leaving 8 bits
        candidates = [x, x - a, x - b, x - average, x - _paeth(a, b, c)]
        best = np.argmin(np.stack([_cost(f) for f in candidates]), axis=0)  # the first of equal costs
        dst = out[y0:y1]
        dst[:, 0] = best
        for f, bytes_ in enumerate(candidates):
            pick = best == f
            if pick.any():
                dst[pick, 1:] = bytes_[pick]


# The loops with a NumPy form, by name; a form with a ``*_covers`` check takes only some arguments.
FORMS = {
    f.__name__: f
    for f in (pool_extreme_blocks, pool_extreme, pool_avg_blocks, pool_avg2_u8, pool_sum, correlate_taps,
              correlate_separable, conv2d, colour_range, quantize, luma, unfilter, filter_rows)  # fmt: skip
}
COVERS = {"unfilter": unfilter_covers, "pool_sum": pool_sum_covers}
