"""Faithful images (contract §2, issue #11): ICC profiles, DPI and EXIF travel to every format
that holds them; every PNG colour type, depth and interlace is read (tRNS as alpha); TIFF of
every compression, layout and depth at full depth; every Pillow output format; --quality."""

from __future__ import annotations

import io
import itertools
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from poolcli import io as pio
from poolcli.io import png

from hostile import PNG_SIGNATURE, chunk, photo

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def source_with_metadata(path, size=(40, 30)):
    """A JPEG with an ICC profile, 300 dpi and EXIF (orientation 6 and an Artist tag)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x013B] = "poolcli test"
    Image.fromarray(photo(size[1], size[0])).save(path, "JPEG", icc_profile=ICC, dpi=(300, 300), exif=exif)


HOLDS = {  # format: (ICC, DPI, EXIF) as the README's table says
    "png": (True, True, True), "jpg": (True, True, True), "tiff": (True, True, True), "webp": (True, False, True),
    "avif": (True, False, True), "bmp": (False, True, False), "gif": (False, False, False),
}  # fmt: skip


@pytest.mark.parametrize("fmt", list(HOLDS))
def test_metadata_travels_to_each_format(cli, tmp_path, fmt):
    source_with_metadata(tmp_path / "in.jpg")
    r = cli("pool", "in.jpg", "-m", "max", "-s", "1", "-o", f"out.{fmt}", "-q")
    assert r.code == 0, r
    im = Image.open(tmp_path / f"out.{fmt}")
    assert im.size == (30, 40)  # orientation 6 applied: turned upright
    icc, dpi, exif = HOLDS[fmt]
    assert (im.info.get("icc_profile") == ICC) == icc
    if dpi:
        assert tuple(round(v) for v in im.info["dpi"]) == (300, 300)
    info = im.getexif()
    if exif:
        assert info.get(0x013B) == "poolcli test" and info.get(0x0112, 1) == 1
    r = cli("pool", "in.jpg", "-m", "max", "-s", "1", "-o", f"bare.{fmt}", "--strip", "-q")
    assert r.code == 0, r
    bare = Image.open(tmp_path / f"bare.{fmt}")
    assert not bare.info.get("icc_profile") and 0x013B not in bare.getexif()
    assert bare.info.get("dpi") in (None, (72, 72), (72.0, 72.0), (1, 1)) or fmt == "bmp"


def test_sixteen_bit_tiff_keeps_icc_and_dpi(cli, tmp_path):
    import tifffile

    px = photo(20, 30, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", px, photometric="rgb", iccprofile=ICC, resolution=(150, 150),
                     resolutionunit="INCH")  # fmt: skip
    for out in ("out.tif", "out.png"):
        r = cli("pool", "in.tif", "-m", "max", "-s", "1", "-o", out, "-q")
        assert r.code == 0, r
        im = Image.open(tmp_path / out)
        assert im.info.get("icc_profile") == ICC and tuple(round(v) for v in im.info["dpi"]) == (150, 150)
    back = pio.decode((tmp_path / "out.tif").read_bytes(), "x")
    assert back.pixels.dtype == np.uint16
    np.testing.assert_array_equal(back.pixels, px)


def test_sixteen_bit_tiff_keeps_exif_with_its_exif_directory(cli, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x013B] = "poolcli test"
    exif.get_ifd(0x8769)[0x9003] = "2024:01:02 03:04:05"  # DateTimeOriginal, in the Exif directory
    px = photo(10, 20, dtype=np.uint16)
    (tmp_path / "in.png").write_bytes(png.encode_png(px, 1, pio.Meta(exif=exif.tobytes(), dpi=(200, 200))))
    r = cli("pool", "in.png", "-m", "max", "-s", "1", "-o", "out.tif", "-q")
    assert r.code == 0, r
    im = Image.open(tmp_path / "out.tif")
    info = im.getexif()
    assert info.get(0x013B) == "poolcli test" and info.get(0x0112) == 1
    assert info.get_ifd(0x8769).get(0x9003) == "2024:01:02 03:04:05"
    assert tuple(round(v) for v in im.info["dpi"]) == (200, 200)
    back = pio.decode((tmp_path / "out.tif").read_bytes(), "x")
    assert back.pixels.dtype == np.uint16 and back.pixels.shape == (20, 10, 3)  # turned upright once
    np.testing.assert_array_equal(back.pixels, np.rot90(px, -1))


def test_exif_orientation_of_16bit_png_and_tiff_is_applied(cli, tmp_path):
    import tifffile

    px = photo(10, 20, dtype=np.uint16)  # 10 rows, 20 columns
    exif = Image.Exif()
    exif[0x0112] = 6
    data = png.encode_png(px, 1, pio.Meta(exif=exif.tobytes()))
    (tmp_path / "in.png").write_bytes(data)
    tifffile.imwrite(tmp_path / "in.tif", px, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    for name in ("in.png", "in.tif"):
        pic = pio.decode((tmp_path / name).read_bytes(), name)
        assert pic.pixels.shape == (20, 10, 3), name
        np.testing.assert_array_equal(pic.pixels, np.rot90(px, -1))  # 90° clockwise, as Pillow turns it


# ------------------------------------------------------------------ every PNG


def spec_png(pixels: np.ndarray, depth: int, colour_type: int, interlace: bool, trns: bytes | None = None) -> bytes:
    """A PNG written straight from the specification: filter type 0 on every row, Adam7 passes."""
    h, w = pixels.shape[:2]
    dt = ">u2" if depth == 16 else np.uint8
    passes = png.ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\0" + np.ascontiguousarray(row, dtype=dt).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, int(interlace))
    extra = chunk(b"tRNS", trns) if trns else b""
    return (PNG_SIGNATURE + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))  # fmt: skip


@pytest.mark.parametrize("colour_type,depth,interlace", list(itertools.product([0, 2, 4, 6], [8, 16], [False, True])))
def test_every_png_colour_type_depth_and_interlace(colour_type, depth, interlace):
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    px = photo(13, 11, channels, np.uint16 if depth == 16 else np.uint8, seed=colour_type)
    px = px[:, :, None] if px.ndim == 2 else px
    data = spec_png(px, depth, colour_type, interlace)
    pic = pio.decode(data, "x")
    np.testing.assert_array_equal(pic.pixels, px)
    assert pic.alpha == (colour_type in (4, 6))
    if depth == 8:  # Pillow reads these at full depth: the same pixels
        np.testing.assert_array_equal(pic.pixels[:, :, :], np.asarray(Image.open(io.BytesIO(data))).reshape(px.shape))


@pytest.mark.parametrize("colour_type,depth", list(itertools.product([0, 2], [8, 16])))
def test_trns_colour_key_becomes_alpha(colour_type, depth):
    channels = 1 if colour_type == 0 else 3
    px = photo(9, 10, channels, np.uint16 if depth == 16 else np.uint8, seed=7)
    px = px[:, :, None] if px.ndim == 2 else px
    key = px[2, 3].copy()
    trns = struct.pack(f">{channels}H", *(int(v) for v in key))
    pic = pio.decode(spec_png(px, depth, colour_type, True, trns), "x")
    assert pic.alpha and pic.pixels.shape[2] == channels + 1
    want_alpha = np.where((px == key).all(axis=2), 0, np.iinfo(px.dtype).max)
    np.testing.assert_array_equal(pic.pixels[:, :, -1], want_alpha)
    np.testing.assert_array_equal(pic.pixels[:, :, :-1], px)


@pytest.mark.parametrize("mode,bits", [("1", 1), ("L", 2), ("L", 4), ("P", 8), ("P", 4)])
def test_low_depth_and_palette_pngs_match_pillow(mode, bits):
    im = Image.fromarray(photo(12, 17, channels=1)).convert(mode) if mode != "P" else \
        Image.fromarray(photo(12, 17)).quantize(2**bits)  # fmt: skip
    buf = io.BytesIO()
    im.save(buf, "PNG", bits=bits)
    pic = pio.decode(buf.getvalue(), "x")
    want = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB" if mode == "P" else "L"))
    np.testing.assert_array_equal(pic.pixels.reshape(want.shape), want)


# ------------------------------------------------------------------ every TIFF


@pytest.mark.parametrize(
    "compression,tile,planar,dtype,channels",
    [c for c in itertools.product([None, "lzw", "zlib", "zstd", "packbits", "jpeg"], [None, (16, 16)],
                                  ["contig", "separate"], [np.uint8, np.uint16], [1, 3])
     if not (c[0] == "jpeg" and c[3] == np.uint16)],
)  # fmt: skip
def test_every_tiff_layout_at_full_depth(compression, tile, planar, dtype, channels):
    import tifffile

    px = photo(32, 48, channels, dtype, seed=3).reshape(32, 48, channels)
    buf = io.BytesIO()
    separate = planar == "separate" and channels > 1  # tifffile takes planar samples first: (S, H, W)
    data = np.moveaxis(px, 2, 0) if separate else px if channels > 1 else px[:, :, 0]
    tifffile.imwrite(buf, data, compression=compression, tile=tile,
                     planarconfig=planar if channels > 1 else None,
                     photometric="rgb" if channels == 3 else "minisblack")  # fmt: skip
    want = tifffile.imread(io.BytesIO(buf.getvalue()))
    want = np.moveaxis(want, 0, 2) if separate else want[:, :, None] if want.ndim == 2 else want
    np.testing.assert_array_equal(want.shape, px.shape)
    pic = pio.decode(buf.getvalue(), "x")
    assert pic.pixels.dtype == dtype
    if compression == "jpeg":  # lossy: Pillow and tifffile may use different IDCTs
        assert np.abs(pic.pixels.astype(int) - want.astype(int)).max() <= 2
    else:
        np.testing.assert_array_equal(pic.pixels, want)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float16, np.float32, np.float64, np.uint32])
def test_signed_and_float_tiff_samples_are_float(dtype):
    import tifffile

    px = (np.arange(24).reshape(4, 6) - 12).astype(dtype) if np.dtype(dtype).kind != "u" else \
        np.arange(24, dtype=dtype).reshape(4, 6) * 1000000  # fmt: skip
    buf = io.BytesIO()
    tifffile.imwrite(buf, px)
    pic = pio.decode(buf.getvalue(), "x")
    assert pic.pixels.dtype.kind == "f"
    np.testing.assert_array_equal(pic.pixels[:, :, 0], px.astype(np.float64))


# ------------------------------------------------------------------ every output format, quality


@pytest.mark.parametrize("ext", ["avif", "jp2", "gif", "tga", "qoi", "ppm", "pcx", "ico"])
def test_every_pillow_output_format(cli, samples, ext):
    r = cli("pool", samples / "chelsea.png", "-m", "max", "-s", "2", "-o", samples / f"o.{ext}", "-q")
    assert r.code == 0, r
    assert Image.open(samples / f"o.{ext}").size in ((225, 150), (225, 150)) or ext == "ico"
    r = cli("pool", samples / "chelsea.png", "-m", "max", "-s", "2", "-f", ext, "-q")
    assert r.code == 0 and (samples / f"chelsea_max2.{ext}").exists(), r


def test_unknown_output_extension_is_a_usage_error(cli, samples):
    r = cli("pool", samples / "chelsea.png", "-m", "max", "-s", "2", "-o", samples / "o.xyz")
    assert r.code == 2 and "'xyz' is not a format poolcli writes" in r.stderr


@pytest.mark.parametrize("ext", ["jpg", "webp", "avif"])
def test_quality(cli, samples, ext):
    sizes = {}
    for q in (20, 95):
        r = cli("pool", samples / "chelsea.png", "-m", "max", "-s", "1", "-o", samples / f"q{q}.{ext}",
                "--quality", str(q), "-q")  # fmt: skip
        assert r.code == 0, r
        sizes[q] = (samples / f"q{q}.{ext}").stat().st_size
    assert sizes[20] < sizes[95]
    r = cli("pool", samples / "chelsea.png", "-m", "max", "-s", "1", "-o", samples / f"q.{ext}", "--quality", "0")
    assert r.code == 2 and "--quality" in r.stderr


def test_sixteen_bit_to_an_eight_bit_format_says_so(cli, samples):
    r = cli("pool", samples / "astronaut_gray16.png", "-m", "max", "-s", "2", "-o", samples / "a.jpg")
    assert r.code == 0, r
    assert "note:" in r.stderr and "written with 8 bits per channel (JPG holds 8)" in r.stderr
    assert Image.open(samples / "a.jpg").mode == "L"
