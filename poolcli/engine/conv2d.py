"""A CNN convolution layer across channels (``torch.nn.Conv2d``'s arithmetic), NumPy in and out.

The input arrives padded (by the caller's index tables: zeros, reflect, replicate, circular) and
in float32, channels first; each output row is a prange task that keeps its output channels'
rows in L1 and adds every tap as one contiguous sweep, so the inner loop vectorises.  Output
channels are taken four at a time (register blocking): one load of an input row feeds four
accumulating rows.
"""

from numba import prange

from ._jit import jit, pjit


@jit
def _sweep1(r0, r1, r2, r3, src, off, w0, w1, w2, w3, n):
    """r_k[x] += w_k · src[off + x] for x < n: four output channels from one input row."""
    for x in range(n):
        s = src[off + x]
        r0[x] += w0 * s
        r1[x] += w1 * s
        r2[x] += w2 * s
        r3[x] += w3 * s


@jit
def _sweep(r0, r1, r2, r3, src, off, step, w0, w1, w2, w3, n):
    """:func:`_sweep1` with a column stride ``step``."""
    for x in range(n):
        s = src[off + x * step]
        r0[x] += w0 * s
        r1[x] += w1 * s
        r2[x] += w2 * s
        r3[x] += w3 * s


@jit
def _sweep_one(r, src, off, step, w, n):
    """r[x] += w · src[off + x·step] for x < n: one output channel."""
    if step == 1:
        for x in range(n):
            r[x] += w * src[off + x]
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
            for kx in range(kw):
                w0, w1, w2, w3 = w[oc, i, ky, kx], w[oc + 1, i, ky, kx], w[oc + 2, i, ky, kx], w[oc + 3, i, ky, kx]
                if sw == 1:
                    _sweep1(r0, r1, r2, r3, src, kx * dw, w0, w1, w2, w3, ow)
                else:
                    _sweep(r0, r1, r2, r3, src, kx * dw, sw, w0, w1, w2, w3, ow)


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
                _sweep_one(r, src, kx * dw, sw, w[oc, i, ky, kx], ow)


@pjit
def conv2d(xp, w, bias, sh, sw, dh, dw, groups, out):
    """out[oc, y, x] = bias[oc] + Σ_{i, ky, kx} w[oc, i, ky, kx] · xp[g·Cg + i, y·sh + ky·dh, x·sw + kx·dw],
    g = oc // (C_out / groups), Cg = w.shape[1]: one image, channels first, float32, ``xp`` the
    padded input.  Taps are added in the order (i, ky, kx), each as one sweep over the row;
    output channels of one group go four at a time."""
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
