"""PNG row unfiltering (the one sequential step of PNG decoding), for the 16-bit colour reader."""

from ._jit import jit


@jit
def unfilter(rows, bpp, out):
    """out[y] = PNG scanline y with its filter (rows[y, 0]: None, Sub, Up, Average, Paeth) undone."""
    h, n = out.shape
    for y in range(h):
        ft = rows[y, 0]
        for i in range(n):
            x = rows[y, i + 1]
            a = out[y, i - bpp] if i >= bpp else 0
            b = out[y - 1, i] if y > 0 else 0
            if ft == 0:
                v = x
            elif ft == 1:
                v = x + a
            elif ft == 2:
                v = x + b
            elif ft == 3:
                v = x + (a + b) // 2
            else:
                c = out[y - 1, i - bpp] if (y > 0 and i >= bpp) else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                v = x + (a if (pa <= pb and pa <= pc) else (b if pb <= pc else c))
            out[y, i] = v & 0xFF
