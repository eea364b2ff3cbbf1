"""Float results to integer pixels in one pass (the ``--scale`` rules), without temporaries."""

import numpy as np
from numba import prange

from ._jit import pjit


@pjit
def colour_range(a, ncolour, nch, lohi):
    """lohi[k] = (min, max) of the finite colour channels (c < ncolour) in row block k."""
    H, W, C = a.shape
    for k in prange(nch):
        lo = np.inf
        hi = -np.inf
        for y in range(k * H // nch, (k + 1) * H // nch):
            for x in range(W):
                for c in range(ncolour):
                    v = a[y, x, c]
                    if v < lo:
                        lo = v
                    if v > hi:
                        hi = v
        lohi[k, 0] = lo
        lohi[k, 1] = hi


@pjit
def quantize(a, ncolour, rule, lo, gain, top, out):
    """out = round-half-even of the colour channels (|v| for rule 1, (v − lo)·gain for rule 2,
    v for rule 0), clipped to [0, top], NaN → 0; alpha channels (c ≥ ncolour) are only rounded."""
    H, W, C = a.shape
    for y in prange(H):
        for x in range(W):
            for c in range(C):
                v = np.float64(a[y, x, c])
                if c < ncolour:
                    if rule == 1:
                        v = abs(v)
                    elif rule == 2:
                        v = (v - lo) * gain
                v = np.rint(v)
                if not v >= 0.0:  # also NaN
                    v = 0.0
                elif v > top:
                    v = top
                out[y, x, c] = v
