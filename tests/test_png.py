"""poolcli's own PNG codec against the PNG specification's filters (written out in plain Python
below) and against Pillow, for every filter type, pixel size and bit depth it handles."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from poolcli import io as pio
from poolcli import topixels
from poolcli.io import png

CHANNELS_TO_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


def paeth(a, b, c):
    """PNG specification, section 9.4, as written there."""
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    if pb <= pc:
        return b
    return c


def predict(ft, a, b, c):
    return {0: 0, 1: a, 2: b, 3: (a + b) // 2, 4: paeth(a, b, c)}[ft]


def filter_row(ft, row, up, bpp):
    """The scanline ``row`` (ints, the one above: ``up``) filtered with type ``ft``."""
    out = []
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        c = up[i - bpp] if i >= bpp else 0
        out.append((x - predict(ft, a, up[i], c)) % 256)
    return out


def cost(filtered):
    return sum(min(v, 256 - v) for v in filtered)


def png_bytes(pixels, filters):
    """A PNG of (H, W, C) uint8/uint16 ``pixels`` whose row y uses filter ``filters[y]``."""
    h, w, C = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    raw = pixels.astype(">u2" if depth == 16 else np.uint8).tobytes()
    stride = w * C * depth // 8
    bpp = C * depth // 8
    rows = [list(raw[y * stride : (y + 1) * stride]) for y in range(h)]
    body = b""
    for y, ft in enumerate(filters):
        up = rows[y - 1] if y else [0] * stride
        body += bytes([ft] + filter_row(ft, rows[y], up, bpp))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, depth, CHANNELS_TO_COLOUR_TYPE[C], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def pixels_for(rng, h, w, C, depth):
    """Photo-like rows (smooth, so every filter wins somewhere) mixed with noisy ones."""
    top = 255 if depth == 8 else 65535
    ramp = np.linspace(0, top, w)[None, :, None] * rng.uniform(0.2, 1, (h, 1, C))
    noisy = rng.integers(0, top + 1, (h, w, C))
    img = np.where(rng.random((h, 1, 1)) < 0.5, ramp, noisy)
    return np.rint(img).astype(np.uint8 if depth == 8 else np.uint16)


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("C", [1, 2, 3, 4])
@pytest.mark.parametrize("w", [1, 2, 5, 33])
def test_decoder_undoes_every_filter(depth, C, w):
    rng = np.random.default_rng(depth * 100 + C * 10 + w)
    h = 15
    px = pixels_for(rng, h, w, C, depth)
    filters = [y % 5 for y in range(h)]  # every filter, including on the first row
    rng.shuffle(filters)
    pic = pio.decode(png_bytes(px, filters), "x.png")
    np.testing.assert_array_equal(pic.pixels, px)


@pytest.mark.parametrize("C", [1, 2, 3, 4])
def test_decoder_equals_pillow_on_pillow_files(C):
    rng = np.random.default_rng(C)
    px = pixels_for(rng, 40, 57, C, 8)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[C]
    buf = io.BytesIO()
    Image.fromarray(px if C > 1 else px[:, :, 0], mode).save(buf, "PNG")
    got = pio.decode(buf.getvalue(), "x.png").pixels
    want = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    np.testing.assert_array_equal(got, want.reshape(got.shape))


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("C", [1, 2, 3, 4])
def test_encoder_round_trips_and_picks_libpngs_filter(depth, C):
    rng = np.random.default_rng(7 * C + depth)
    px = pixels_for(rng, 24, 19, C, depth)
    data = png.encode_png(px, 1)
    np.testing.assert_array_equal(pio.decode(data, "x.png").pixels, px)
    pil = np.asarray(Image.open(io.BytesIO(data)))
    if depth == 8:  # Pillow reads 16-bit colour as 8 bits: compare only where it keeps all 16
        np.testing.assert_array_equal(pil.reshape(px.shape), px)
    # each row's filter is the one with the least sum of |signed bytes| (ties: lowest type)
    h, w, _ = px.shape
    bpp = C * depth // 8
    raw = px.astype(">u2" if depth == 16 else np.uint8).tobytes()
    stride = w * bpp
    scan = zlib.decompress(data[data.index(b"IDAT") + 4 :])
    for y in range(h):
        row = list(raw[y * stride : (y + 1) * stride])
        up = list(raw[(y - 1) * stride : y * stride]) if y else [0] * stride
        costs = [cost(filter_row(ft, row, up, bpp)) for ft in range(5)]
        ft = scan[y * (stride + 1)]
        assert ft == costs.index(min(costs)), (y, costs)
        assert list(scan[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]) == filter_row(ft, row, up, bpp)


def test_scale_rules_on_interleaved_channels():
    """to_pixels: normalize stretches colour channels only; alpha is rounded and clipped."""
    a = np.array([[[-1.0, 2.0, 3.0, 300.0], [5.0, np.nan, 7.0, -4.0]]], np.float32)
    got = topixels.to_pixels(a, np.uint8, "normalize", 3)
    lo, hi = -1.0, 7.0
    colour = np.rint((np.nan_to_num(a[..., :3], nan=lo) - lo) * (255 / (hi - lo)))
    colour[0, 1, 1] = 0  # NaN becomes 0
    np.testing.assert_array_equal(got[..., :3], colour.astype(np.uint8))
    np.testing.assert_array_equal(got[..., 3], [[255, 0]])
    np.testing.assert_array_equal(topixels.to_pixels(a, np.uint8, "abs", 4)[0, :, 0], [1, 5])
    np.testing.assert_array_equal(topixels.to_pixels(a, np.uint8, "clip", 4)[0, 0], [0, 2, 3, 255])
