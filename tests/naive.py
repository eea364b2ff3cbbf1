"""Slow, obviously-correct references, written from the formulas, independent of poolcli."""

import math

import numpy as np


def out_size(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape."""
    num = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    o = num // s + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def pool(x, mode, k, s=None, p=0, d=1, ceil_mode=False, count_include_pad=True, divisor=None, power=2.0):
    """Per-channel reference of max/min/avg/lp/median pooling on an (H, W, C) array, in float64.

    Follows PyTorch's CPU kernels literally: avg's divisor counts the window clipped to the
    padded image (count_include_pad) or to the image; lp = (avg_pool(x^p) * kh*kw)^(1/p).
    """
    kh, kw = (k, k) if np.isscalar(k) else k
    s = (kh, kw) if s is None else ((s, s) if np.isscalar(s) else s)
    p = (p, p) if np.isscalar(p) else p
    d = (d, d) if np.isscalar(d) else d
    H, W, C = x.shape
    oh = out_size(H, kh, s[0], p[0], d[0], ceil_mode)
    ow = out_size(W, kw, s[1], p[1], d[1], ceil_mode)
    out = np.zeros((oh, ow, C))
    for oy in range(oh):
        for ox in range(ow):
            hs, ws = oy * s[0] - p[0], ox * s[1] - p[1]
            rows = [hs + i * d[0] for i in range(kh)]
            cols = [ws + j * d[1] for j in range(kw)]
            vr = [r for r in rows if 0 <= r < H]
            vc = [c for c in cols if 0 <= c < W]
            pad_r = sum(1 for r in rows if r < H + p[0])
            pad_c = sum(1 for c in cols if c < W + p[1])
            for c in range(C):
                vals = np.array([float(x[r, cc, c]) for r in vr for cc in vc])
                if vals.size == 0:  # a window of padding only (dilation): the reduction's identity
                    out[oy, ox, c] = {"max": -np.inf, "min": np.inf}.get(mode, 0.0)
                elif mode == "max":
                    out[oy, ox, c] = vals.max()
                elif mode == "min":
                    out[oy, ox, c] = vals.min()
                elif mode == "median":
                    out[oy, ox, c] = np.sort(vals)[(len(vals) - 1) // 2]
                elif mode == "avg":
                    if divisor is not None:
                        div = divisor
                    elif count_include_pad:
                        div = pad_r * pad_c
                    else:
                        div = len(vr) * len(vc)
                    out[oy, ox, c] = vals.sum() / div
                elif mode == "lp":
                    area = pad_r * pad_c
                    out[oy, ox, c] = (np.sum(vals**power) / area * kh * kw) ** (1.0 / power)
    return out


def adaptive(x, mode, oh, ow):
    """adaptive_{max,avg}_pool2d: windows [floor(i·n/o), ceil((i+1)·n/o))."""
    H, W, C = x.shape
    out = np.zeros((oh, ow, C))
    for i in range(oh):
        r0, r1 = (i * H) // oh, math.ceil((i + 1) * H / oh)
        for j in range(ow):
            c0, c1 = (j * W) // ow, math.ceil((j + 1) * W / ow)
            win = x[r0:r1, c0:c1].astype(np.float64).reshape(-1, C)
            out[i, j] = win.max(axis=0) if mode == "max" else win.mean(axis=0)
    return out
