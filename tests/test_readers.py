"""Readers checked differentially (issue #20): what poolcli decodes, whole and streamed, equals
what the reference decoders give (libpng through imagecodecs, Pillow, tifffile), over generated
files of every layout.  CI runs a seeded subset; ``POOLCLI_READER_SWEEP=N`` runs N cases of
each kind by hand (the README gives the counts of the last such sweep)."""

import io
import itertools
import os
import struct

import numpy as np
import pytest
from PIL import Image

from poolcli import io as pio
from poolcli.bands import collect

from pngmaker import LEGAL, chunk, make_png, random_case

imagecodecs = pytest.importorskip("imagecodecs")
tifffile = pytest.importorskip("tifffile")

REPEATS = int(os.environ.get("POOLCLI_READER_SWEEP", "2"))
PNG_KINDS = [(ct, d, inter, trns) for ct, depths in LEGAL.items() for d in depths
             for inter, trns in itertools.product((False, True), (False, True)) if not (trns and ct in (4, 6))]  # fmt: skip


def libpng(data: bytes) -> np.ndarray:
    ref = imagecodecs.png_decode(data)
    return ref[:, :, None] if ref.ndim == 2 else ref


def streamed(path, name="x.png") -> np.ndarray:
    rows = pio.open_rows(str(path), name)
    try:
        return collect(rows, band=3)
    finally:
        rows.close()


@pytest.mark.parametrize(("colour_type", "depth", "interlace", "trns"), PNG_KINDS)
def test_every_png_kind_reads_as_libpng_reads_it(tmp_path, colour_type, depth, interlace, trns):
    rng = np.random.default_rng([colour_type, depth, interlace, trns])
    for i in range(REPEATS):
        data, _ = random_case(rng, colour_type, depth, interlace=interlace, with_trns=trns, gama=bool(i % 2))
        ref = libpng(data)
        pic = pio.decode(data, "x.png")
        assert pic.pixels.dtype == ref.dtype and pic.pixels.shape == ref.shape
        np.testing.assert_array_equal(pic.pixels, ref)
        assert pic.alpha == (ref.shape[2] in (2, 4))
        if not interlace:  # Adam7 is read whole; every other PNG streams band by band
            path = tmp_path / f"{i}.png"
            path.write_bytes(data)
            np.testing.assert_array_equal(streamed(path), ref)


@pytest.mark.parametrize("depth", [1, 2, 4, 8])
def test_low_bit_grey_with_a_transparency_key_has_alpha(depth):
    """Pillow reads 1-bit grey with tRNS as 'L' without alpha; the PNG specification and libpng
    make the key transparent."""
    top = (1 << depth) - 1
    samples = np.array([[[0], [top], [0], [top]]], np.uint8)
    data = make_png(samples, 0, depth, trns=bytes([0, top]))
    pic = pio.decode(data, "x.png")
    assert pic.alpha and pic.pixels[0, :, 1].tolist() == [255, 0, 255, 0]
    assert pic.pixels[0, :, 0].tolist() == [0, 255, 0, 255]


@pytest.mark.parametrize(("colour_type", "depth"), [(0, 1), (0, 2), (0, 4), (3, 1), (3, 4), (3, 8), (2, 8), (0, 16)])
def test_a_bad_idat_crc_is_refused_at_every_depth(tmp_path, colour_type, depth):
    samples = np.zeros((4, 9, 1 if colour_type != 2 else 3), np.uint8)
    palette = [[0, 0, 0], [255, 255, 255]] if colour_type == 3 else None
    data = make_png(samples, colour_type, depth, palette=palette, bad_idat_crc=True)
    with pytest.raises(Exception):  # noqa: B017 - libpng refuses it too (its own exception class)
        imagecodecs.png_decode(data)
    with pytest.raises(pio.ImageError, match="CRC error in IDAT"):
        pio.decode(data, "bad.png")
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(pio.ImageError, match="CRC error in IDAT"):
        streamed(path)


def test_illegal_depths_and_a_missing_palette_are_refused():
    good = make_png(np.zeros((2, 2, 3), np.uint8), 2, 8)
    illegal = good[:8] + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 4, 2, 0, 0, 0)) + good[33:]
    with pytest.raises(pio.ImageError, match="bit depth 4 with colour type 2"):
        pio.decode(illegal, "x.png")
    with pytest.raises(pio.ImageError, match="no PLTE"):
        pio.decode(make_png(np.zeros((2, 2, 1), np.uint8), 3, 8), "x.png")


def test_low_bit_pngs_through_the_command_line(cli, tmp_path):
    samples = np.array([[[0], [1], [1], [0]], [[1], [1], [0], [0]]], np.uint8)
    (tmp_path / "bits.png").write_bytes(make_png(samples, 0, 1, trns=bytes([0, 1])))
    r = cli("pool", "bits.png", "-m", "max", "-s", "1", "-o", "out.png", "-q")
    assert r.code == 0, r
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (2, 4, 2)  # grey and alpha: the key is transparent
    np.testing.assert_array_equal(out[:, :, 1], np.where(samples[:, :, 0] == 1, 0, 255))
    bad = make_png(samples, 0, 1, bad_idat_crc=True)
    (tmp_path / "bad.png").write_bytes(bad)
    r = cli("pool", "bad.png", "-m", "max", "-s", "1", "-o", "bad_out.png")
    assert r.code == 1 and "bad.png" in r.stderr and "CRC error in IDAT" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad_out.png").exists()


def test_pillow_written_palette_pngs_read_as_pillow_reads_them():
    rng = np.random.default_rng(5)
    for bits in (1, 2, 4, 8):
        im = Image.fromarray(rng.integers(0, 1 << bits, (7, 13)).astype(np.uint8), "P")
        im.putpalette(list(rng.integers(0, 256, 3 * 256)))
        buf = io.BytesIO()
        im.save(buf, "PNG", bits=bits, transparency=bytes(rng.integers(0, 256, 1 << bits).astype(np.uint8)))
        data = buf.getvalue()
        ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
        np.testing.assert_array_equal(pio.decode(data, "p.png").pixels, ref)
        np.testing.assert_array_equal(pio.decode(data, "p.png").pixels, libpng(data))


# ------------------------------------------------------------------ TIFF

TIFF_CODECS = ["none", "lzw", "adobe_deflate", "zstd", "packbits", "jpeg"]
TIFF_KINDS = [(codec, layout, planar, channels, kind) for codec, layout, planar, channels, kind in
              itertools.product(TIFF_CODECS, ("strips", "tiles"), ("contig", "separate"), (1, 3),
                                ("u8", "u16", "i16", "f32"))
              if not (channels == 1 and planar == "separate")  # one channel has no planar configuration
              and not (codec == "jpeg" and kind != "u8")]  # JPEG in TIFF holds 8-bit samples  # fmt: skip


def _tiff_case(rng, codec, layout, planar, channels, kind):
    dtype = {"u8": np.uint8, "u16": np.uint16, "i16": np.int16, "f32": np.float32}[kind]
    h, w = int(rng.integers(17, 60)), int(rng.integers(17, 60))
    if kind == "f32":
        arr = rng.standard_normal((h, w, channels)).astype(np.float32)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, (h, w, channels), endpoint=True).astype(dtype)
    data = arr if planar == "contig" else np.ascontiguousarray(arr.transpose(2, 0, 1))
    if channels == 1:
        data = arr[:, :, 0]
    buf = io.BytesIO()
    kw = dict(compression=None if codec == "none" else codec, photometric="rgb" if channels == 3 else "minisblack")
    if channels == 3:
        kw["planarconfig"] = planar
    if layout == "tiles":
        kw["tile"] = (16, 16)
    else:
        kw["rowsperstrip"] = int(rng.integers(1, 9))
    if codec == "jpeg":
        kw["compressionargs"] = {"level": 95}
    tifffile.imwrite(buf, data, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(("codec", "layout", "planar", "channels", "kind"), TIFF_KINDS)
def test_every_tiff_layout_reads_as_tifffile_reads_it(tmp_path, codec, layout, planar, channels, kind):
    rng = np.random.default_rng(TIFF_KINDS.index((codec, layout, planar, channels, kind)))
    for i in range(max(1, REPEATS // 2)):
        data = _tiff_case(rng, codec, layout, planar, channels, kind)
        ref = tifffile.imread(io.BytesIO(data))
        if ref.ndim == 3 and ref.shape[0] == channels and planar == "separate":
            ref = ref.transpose(1, 2, 0)
        ref = ref.reshape(ref.shape[0], ref.shape[1], -1)
        pic = pio.decode(data, "x.tif")
        assert pic.pixels.shape == ref.shape
        got = pic.pixels.astype(np.float64)
        want = ref.astype(np.float64)
        if kind in ("i16", "f32"):  # signed and float samples are read as float, never wrapped
            assert pic.pixels.dtype.kind == "f"
        else:
            assert pic.pixels.dtype == ref.dtype
        if codec == "jpeg":  # Pillow's libjpeg and imagecodecs' libjpeg-turbo may round apart by 1
            assert np.abs(got - want).max() <= 1
        else:
            np.testing.assert_array_equal(got, want)
        path = tmp_path / f"{i}.tif"
        path.write_bytes(data)
        try:
            rows = pio.open_rows(str(path), "x.tif")
        except pio.NotStreamable:
            continue
        try:
            np.testing.assert_array_equal(collect(rows, band=5), pic.pixels)
        finally:
            rows.close()
