"""A CNN convolution layer across channels (``torch.nn.Conv2d``'s arithmetic), NumPy in and out.

The input arrives padded (by the caller's index tables: zeros, reflect, replicate, circular) and
in float32, channels first; each output row is a prange task.  Output channels of one group go
four at a time (register blocking: one load of an input value feeds four accumulating rows, held
in L1), and with stride and dilation 1 the taps of a kernel row go three (then two) at a time
into one update of each accumulator (the 3×3 specialisation: a third of the accumulator
traffic).  Measured on one core in throw-away micro-benchmarks while writing it (benchmarks/
times the whole layer against PyTorch): a tap-by-tap sweep 9.7 GMAC/s, four
channels 11, four channels × three taps 22; eight channels, or channels interleaved in one array,
did not vectorise (2–3 GMAC/s).
"""

from numba import prange

from ._jit import jit, pjit


@jit
def _taps3(r0, r1, r2, r3, src, off, a0, a1, a2, b0, b1, b2, c0, c1, c2, e0, e1, e2, n):
    """r_k[x] += w_k0·src[off + x] + w_k1·src[off + x + 1] + w_k2·src[off + x + 2] for the four
    channels' weights (a, b, c, e): stride and dilation 1, the weights as scalars and the input as
    views indexed by x alone (an index off + x may be negative as far as Numba knows, and its
    wraparound check keeps the loop from vectorising: 3.6 against 8.7 GMAC/s a core)."""
    p, q, u = src[off : off + n], src[off + 1 : off + 1 + n], src[off + 2 : off + 2 + n]  # no wraparound checks
    for x in range(n):
        s0, s1, s2 = p[x], q[x], u[x]
        r0[x] += a0 * s0 + a1 * s1 + a2 * s2
        r1[x] += b0 * s0 + b1 * s1 + b2 * s2
        r2[x] += c0 * s0 + c1 * s1 + c2 * s2
        r3[x] += e0 * s0 + e1 * s1 + e2 * s2


@jit
def _taps2(r0, r1, r2, r3, src, off, a0, a1, b0, b1, c0, c1, e0, e1, n):
    """:func:`_taps3` for the two taps left of a kernel row (5×5: 3 + 2)."""
    p, q = src[off : off + n], src[off + 1 : off + 1 + n]
    for x in range(n):
        s0, s1 = p[x], q[x]
        r0[x] += a0 * s0 + a1 * s1
        r1[x] += b0 * s0 + b1 * s1
        r2[x] += c0 * s0 + c1 * s1
        r3[x] += e0 * s0 + e1 * s1


@jit
def _tap(r0, r1, r2, r3, src, off, step, w0, w1, w2, w3, n):
    """r_k[x] += w_k · src[off + x·step]: one tap, four output channels."""
    if step == 1:
        p = src[off : off + n]  # indexed by x ≥ 0 alone: no negative-index checks, so it vectorises
        for x in range(n):
            s = p[x]
            r0[x] += w0 * s
            r1[x] += w1 * s
            r2[x] += w2 * s
            r3[x] += w3 * s
    else:
        for x in range(n):
            s = src[off + x * step]
            r0[x] += w0 * s
            r1[x] += w1 * s
            r2[x] += w2 * s
            r3[x] += w3 * s


@jit
def _tap1(r, src, off, step, w, n):
    """r[x] += w · src[off + x·step]: one tap, one output channel."""
    if step == 1:
        p = src[off : off + n]
        for x in range(n):
            r[x] += w * p[x]
    else:
        for x in range(n):
            r[x] += w * src[off + x * step]


@jit
def _four(xp, w, bias, y, oc, c, sh, sw, dh, dw, out):
    """Output row ``y`` of channels oc … oc+3 (one group, its first input channel ``c``)."""
    cg, kh, kw, ow = w.shape[1], w.shape[2], w.shape[3], out.shape[2]
    r0, r1, r2, r3 = out[oc, y], out[oc + 1, y], out[oc + 2, y], out[oc + 3, y]
    r0[:] = bias[oc]
    r1[:] = bias[oc + 1]
    r2[:] = bias[oc + 2]
    r3[:] = bias[oc + 3]
    for i in range(cg):
        for ky in range(kh):
            src = xp[c + i, y * sh + ky * dh]
            kx = 0
            if sw == 1 and dw == 1:  # taps three at a time
                while kx + 3 <= kw:
                    _taps3(r0, r1, r2, r3, src, kx, w[oc, i, ky, kx], w[oc, i, ky, kx + 1], w[oc, i, ky, kx + 2],
                           w[oc + 1, i, ky, kx], w[oc + 1, i, ky, kx + 1], w[oc + 1, i, ky, kx + 2],
                           w[oc + 2, i, ky, kx], w[oc + 2, i, ky, kx + 1], w[oc + 2, i, ky, kx + 2],
                           w[oc + 3, i, ky, kx], w[oc + 3, i, ky, kx + 1], w[oc + 3, i, ky, kx + 2], ow)  # fmt: skip
                    kx += 3
                if kx + 2 == kw:
                    _taps2(r0, r1, r2, r3, src, kx, w[oc, i, ky, kx], w[oc, i, ky, kx + 1], w[oc + 1, i, ky, kx],
                           w[oc + 1, i, ky, kx + 1], w[oc + 2, i, ky, kx], w[oc + 2, i, ky, kx + 1],
                           w[oc + 3, i, ky, kx], w[oc + 3, i, ky, kx + 1], ow)  # fmt: skip
                    kx += 2
            while kx < kw:
                _tap(r0, r1, r2, r3, src, kx * dw, sw, w[oc, i, ky, kx], w[oc + 1, i, ky, kx], w[oc + 2, i, ky, kx],
                     w[oc + 3, i, ky, kx], ow)  # fmt: skip
                kx += 1


@jit
def _one(xp, w, bias, y, oc, c, sh, sw, dh, dw, out):
    """Output row ``y`` of channel ``oc`` (its group's first input channel ``c``)."""
    cg, kh, kw, ow = w.shape[1], w.shape[2], w.shape[3], out.shape[2]
    r = out[oc, y]
    r[:] = bias[oc]
    for i in range(cg):
        for ky in range(kh):
            src = xp[c + i, y * sh + ky * dh]
            for kx in range(kw):
                _tap1(r, src, kx * dw, sw, w[oc, i, ky, kx], ow)


@pjit
def conv2d(xp, w, bias, sh, sw, dh, dw, groups, out):
    """out[oc, y, x] = bias[oc] + Σ_{i, ky} Σ_kx w[oc, i, ky, kx] · xp[g·Cg + i, y·sh + ky·dh, x·sw + kx·dw],
    g = oc // (C_out / groups), Cg = w.shape[1]: one image, channels first, float32, ``xp`` the
    padded input.  Channels of a group go four at a time, the rest one by one."""
    c_out, oh = out.shape[0], out.shape[1]
    cg = w.shape[1]
    per_group = c_out // groups
    for y in prange(oh):
        oc = 0
        while oc < c_out:
            g = oc // per_group
            if oc + 3 < c_out and (oc + 3) // per_group == g:
                _four(xp, w, bias, y, oc, g * cg, sh, sw, dh, dw, out)
                oc += 4
            else:
                _one(xp, w, bias, y, oc, g * cg, sh, sw, dh, dw, out)
                oc += 1
