"""Large synthetic photographs for the streaming benchmarks and tests (contract §10).

``python benchmarks/synthetic.py OUT.png WIDTH HEIGHT`` writes a smooth RGB picture with edges
(slow colour waves, a grid of discs) band by band through poolcli's streaming PNG writer, so a
gigapixel file is made in flat memory and stays a few hundred MB on disk.
"""

from __future__ import annotations

import sys

import numpy as np


def band(y0: int, rows: int, width: int) -> np.ndarray:
    """Rows y0 … y0 + rows − 1 of the picture, (rows, width, 3) uint8."""
    y = np.arange(y0, y0 + rows, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    r = 128 + 90 * np.sin(x / 410.0 + y / 730.0)
    g = 128 + 80 * np.sin(x / 290.0 - y / 510.0 + 1.0)
    b = 128 + 70 * np.cos((x + y) / 870.0)
    disc = ((x % 257 - 128) ** 2 + (y % 257 - 128) ** 2) < 60.0**2  # edges for the filters to find
    out = np.stack([r, g, b], axis=2)
    out[disc] = out[disc] * 0.5 + 40
    return out.astype(np.uint8)


def write(path: str, width: int, height: int, level: int = 1) -> None:
    from poolcli import io as pio
    from poolcli.io import png

    with pio.atomic_output(path) as fh:
        sink = png.PngSink(fh, width, height, 3, np.uint8, level, None, 2)
        step = max(1, (16 << 20) // (width * 3))
        for y0 in range(0, height, step):
            sink.write(band(y0, min(step, height - y0), width))
        sink.close()


if __name__ == "__main__":
    write(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
