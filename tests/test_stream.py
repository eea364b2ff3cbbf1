"""Images larger than memory (contract §10): the banded path equals the whole-image path bit
for bit, its readers and writers equal the whole-image codecs, and a 108-MP PNG runs in flat
memory."""

import json
import os
import signal
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_run import STAGE_CALLS

from poolcli import api, bands, topixels
from poolcli import io as pio
from poolcli.io import png as pngio
from poolcli.io import tiff
from poolcli.pipeline import Pipeline, pipeline_rows

from conftest import ROOT, poolcli_command
from hostile import chunk, png

sys.path.insert(0, str(ROOT / "benchmarks"))
import synthetic  # noqa: E402

BANDS = (1, 2, 7, 64)
BOUNDARIES = ("reflect", "mirror", "nearest", "wrap", "constant", "valid")
DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def random_image(rng, H, W, C, dtype):
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, np.iinfo(dtype).max + 1, (H, W, C)).astype(dtype)
    return (rng.standard_normal((H, W, C)) * 50).astype(dtype)


def banded(rows_of, image, band):
    return bands.collect(rows_of(bands.ArrayRows(image)), band)


def same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


# --------------------------------------------------------------------------- bands = whole image


@pytest.mark.parametrize("seed", range(6))
def test_convolution_in_bands_equals_the_whole_image(seed):
    rng = np.random.default_rng(seed)
    kernels = ["sobel", "sharpen", "laplacian", "prewitt-x", np.arange(15.0).reshape(3, 5) - 7, [[1.0], [2.0], [-1.0]]]
    checked = 0
    for _ in range(40):
        H, W = int(rng.integers(1, 30)), int(rng.integers(1, 25))  # 1-row, 1-column, shorter than the window
        C = int(rng.choice([1, 2, 3, 4]))
        img = random_image(rng, H, W, C, DTYPES[int(rng.integers(0, 4))])
        k = kernels[int(rng.integers(0, len(kernels)))]
        boundary = BOUNDARIES[int(rng.integers(0, 6))]
        try:
            spec = api.convolve_spec(k, boundary=boundary, cval=2.5, stride=int(rng.integers(1, 4)),
                                     dilation=int(rng.integers(1, 4)))  # fmt: skip
            whole = api.apply_convolve(img, spec)
        except api.ImageError:  # smaller than the kernel with 'valid': the banded path says so too
            with pytest.raises(api.ImageError):
                bands.ConvolveRows(bands.ArrayRows(img), [spec], C)
            continue
        for band in BANDS:
            got = banded(lambda src, spec=spec, C=C: bands.ConvolveRows(src, [spec], C), img, band)
            assert same(got, whole), (H, W, C, img.dtype, k, boundary, spec.stride, spec.dilation, band)
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("seed", range(6))
def test_pooling_in_bands_equals_the_whole_image(seed):
    rng = np.random.default_rng(100 + seed)
    checked = 0
    for _ in range(50):
        H, W = int(rng.integers(1, 30)), int(rng.integers(1, 25))
        C = int(rng.choice([1, 2, 3, 4]))
        img = random_image(rng, H, W, C, DTYPES[int(rng.integers(0, 4))])
        mode = ["max", "avg", "min", "lp", "median", "stochastic"][int(rng.integers(0, 6))]
        k = int(rng.integers(1, 6))
        if rng.random() < 0.2:
            spec = api.pool_spec(mode, output_size=(int(rng.integers(1, H + 3)), int(rng.integers(1, W + 3))), seed=7)
        else:
            spec = api.pool_spec(
                mode, k, stride=int(rng.integers(1, 4)), padding=int(rng.integers(0, k // 2 + 1)),
                dilation=int(rng.integers(1, 4)), ceil_mode=bool(rng.integers(0, 2)),
                count_include_pad=bool(rng.integers(0, 2)), divisor=int(rng.choice([0, 3, -2])) or None,
                p=float(rng.choice([1.0, 2.0, 3.5])), seed=int(rng.integers(0, 2**63 - 1)),
            )  # fmt: skip
        try:
            whole = api.apply_pool(img, spec)
        except api.ImageError:
            continue
        for band in BANDS:
            got = banded(lambda src, spec=spec: bands.PoolRows(src, spec), img, band)
            assert same(got, whole), (H, W, C, img.dtype, spec, band)
        checked += 1
    assert checked > 25


def test_direct_pixels_and_a_random_stochastic_seed_in_bands():
    rng = np.random.default_rng(3)
    img = random_image(rng, 41, 30, 3, np.uint8)
    spec = api.pool_spec("avg", 2)
    whole = api.apply_pool(img, spec, as_pixels=True)
    assert whole.dtype == np.uint8
    assert same(banded(lambda src: bands.PoolRows(src, spec, as_pixels=True), img, 3), whole)
    rows = bands.PoolRows(bands.ArrayRows(img), api.pool_spec("stochastic", 2))  # seed drawn once, for all bands
    first = bands.collect(rows, 1)
    rows.rewind()
    assert same(bands.collect(rows, 5), first)


PIPELINES = [
    "gaussian sigma=1.5 | sobel | relu | max 2",
    "conv sobel boundary=wrap | normalize | avg 3 stride=2 padding=1",
    "gray | conv sobel-x,sobel-y dilation=2 | abs | lp 2 p=3",
    "sharpen boundary=constant cval=3 stride=2 | stochastic 2 seed=3 | median 3 stride=1",
    "box size=5 boundary=mirror | adaptive avg 7x5 | tanh",
    "laplacian boundary=valid | global max",
    "max 3 stride=1 dilation=2 padding=1 ceil_mode=true | gaussian sigma=2 boundary=wrap | normalize",
    "conv emboss,sobel-x,box boundary=nearest | leaky-relu alpha=0.2 | min 2 | scale 3 | clip 0 100",
]


@pytest.mark.parametrize("text", PIPELINES)
def test_pipelines_in_bands_equal_the_whole_image(text):
    pipe = Pipeline.parse(text)
    rng = np.random.default_rng(len(text))
    checked = 0
    for _ in range(12):
        H, W, C = int(rng.integers(1, 45)), int(rng.integers(1, 35)), int(rng.choice([1, 3, 4]))
        img = random_image(rng, H, W, C, np.uint8 if rng.random() < 0.7 else np.float32)
        colour = 3 if C == 4 else C
        try:
            whole, wc = pipe.apply(img, colour)
        except (api.ImageError, api.UsageError):
            continue
        for band in BANDS:
            rows, c = pipeline_rows(pipe, bands.ArrayRows(img), colour)
            assert c == wc and same(bands.collect(rows, band), whole), (text, H, W, C, band)
        checked += 1
    assert checked >= 4


def test_wrap_reads_the_last_rows_first_without_holding_the_image():
    """``wrap`` needs the last rows at the top: a first pass keeps only those."""
    img = np.arange(200 * 3, dtype=np.float32).reshape(200, 3, 1)
    spec = api.convolve_spec(np.ones((5, 1)), boundary="wrap")
    src = bands.ArrayRows(img)
    rows = bands.ConvolveRows(src, [spec], 1)
    got = bands.collect(rows, 4)
    assert same(got, api.apply_convolve(img, spec))
    assert sorted(rows.window.pinned) == [0, 1, 198, 199]  # the rows read past the edges, no more
    assert rows.window.run.shape[0] <= 4 + 4  # a band and the window's height


# --------------------------------------------------------------------------- readers and writers


def write_png(path, pixels, **kw):
    path.write_bytes(pio.encode(pixels, pixels.shape[2] in (2, 4), "png", **kw))


@pytest.mark.parametrize("C", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_rows_equal_the_whole_decoder(tmp_path, C, dtype):
    rng = np.random.default_rng(C)
    img = random_image(rng, 57, 31, C, dtype)
    img[20:40] //= 9  # some rows that filter differently
    path = tmp_path / "a.png"
    write_png(path, img, meta=pio.Meta(dpi=(300.0, 300.0)))
    for gray in (False, True):
        whole = pio.decode(path.read_bytes(), "a.png", gray=gray)
        for band in BANDS:
            rows = pio.open_rows(str(path), "a.png", gray=gray)
            assert same(bands.collect(rows, band), whole.pixels)
            assert rows.meta.dpi == whole.meta.dpi and rows.alpha == whole.alpha
            rows.close()


def test_png_rows_turn_a_colour_key_into_alpha(tmp_path):
    img = np.zeros((9, 8, 3), np.uint8)
    img[::2] = 7
    idat = zlib.compress(b"".join(b"\0" + row.tobytes() for row in img))
    data = png(8, 9, 8, 2, idat, extra=[chunk(b"tRNS", bytes([0, 7, 0, 7, 0, 7]))])
    (tmp_path / "k.png").write_bytes(data)
    rows = pio.open_rows(str(tmp_path / "k.png"), "k.png")
    assert same(bands.collect(rows, 2), pio.decode(data, "k.png").pixels)


def adam7_zeros(w: int, h: int) -> bytes:
    """An interlaced (Adam7) black RGB PNG."""
    raw = b"".join(bytes(ph * (pw * 3 + 1)) for *_, pw, ph in pngio.passes(w, h, 1))
    return png(w, h, 8, 2, zlib.compress(raw), interlace=1)


def test_interlaced_and_turned_pngs_are_read_whole(tmp_path):
    from PIL import Image

    (tmp_path / "i.png").write_bytes(adam7_zeros(30, 20))
    with pytest.raises(pio.NotStreamable):
        pio.open_rows(str(tmp_path / "i.png"), "i.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "t.png", exif=exif.tobytes())
    with pytest.raises(pio.NotStreamable):
        pio.open_rows(str(tmp_path / "t.png"), "t.png")


@pytest.mark.parametrize("C", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_sink_writes_what_the_whole_encoder_writes(tmp_path, C, dtype):
    rng = np.random.default_rng(10 + C)
    img = random_image(rng, 45, 23, C, dtype)
    meta = pio.Meta(icc=b"\0" * 200, dpi=(72.0, 96.0))
    for band in (1, 6, 45):
        with pio.atomic_output(str(tmp_path / "b.png")) as fh:
            sink = pngio.PngSink(fh, 23, 45, C, dtype, 1, meta, 2)
            for y in range(0, 45, band):
                sink.write(img[y : y + band])
            sink.close()
        data = (tmp_path / "b.png").read_bytes()
        pic = pio.decode(data, "b.png")
        assert (
            same(pic.pixels, img) and pic.meta.dpi == pytest.approx((72.0, 96.0), abs=0.05) and pic.meta.icc == meta.icc
        )
        if dtype == np.uint8:  # an independent reader agrees
            from PIL import Image

            assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")).reshape(img.shape), img)


@pytest.mark.parametrize(
    "layout",
    [
        dict(rowsperstrip=7),
        dict(rowsperstrip=100),
        dict(tile=(16, 32)),
        dict(compression=None),
        dict(compression=None, byteorder=">"),
    ],
)
@pytest.mark.parametrize("C,dtype", [(1, np.uint8), (3, np.uint8), (4, np.uint8), (1, np.uint16), (2, np.uint16),
                                     (3, np.uint16), (4, np.uint16), (1, np.float32)])  # fmt: skip
def test_tiff_rows_equal_the_whole_decoder(tmp_path, layout, C, dtype):
    import tifffile

    rng = np.random.default_rng(C)
    img = random_image(rng, 50, 37, C, dtype)
    layout = {"compression": "zlib", **layout}
    tifffile.imwrite(tmp_path / "a.tif", img if C > 1 else img[:, :, 0], photometric="rgb" if C >= 3 else "minisblack",
                     extrasamples=("unassalpha",) if C in (2, 4) else None, **layout)  # fmt: skip
    whole = pio.decode((tmp_path / "a.tif").read_bytes(), "a.tif").pixels
    for band in (1, 7, 64):
        rows = pio.open_rows(str(tmp_path / "a.tif"), "a.tif")
        assert same(bands.collect(rows, band), whole)
        rows.close()


def test_tiff_sink_writes_tiles_any_reader_reads(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(5)
    for C, dtype in ((3, np.uint8), (4, np.uint16), (1, np.uint8)):
        img = random_image(rng, 300, 270, C, dtype)
        with pio.atomic_output(str(tmp_path / "b.tif")) as fh:
            sink = tiff.TiffSink(fh, 270, 300, C, dtype, pio.Meta(dpi=(150.0, 150.0)))
            for y in range(0, 300, 37):
                sink.write(img[y : y + 37])
            sink.close()
        pic = pio.decode((tmp_path / "b.tif").read_bytes(), "b.tif")
        assert same(pic.pixels, img) and pic.meta.dpi == (150.0, 150.0)
        if dtype == np.uint8:
            assert np.array_equal(np.asarray(Image.open(tmp_path / "b.tif")).reshape(img.shape), img)


@pytest.mark.parametrize("dtype", ["<u1", "<u2", ">f8", "<f4", "<i2", "<i8"])
def test_npy_rows_equal_the_whole_decoder(tmp_path, dtype):
    rng = np.random.default_rng(2)
    for shape in ((30, 20), (30, 20, 3), (1, 5, 1)):
        arr = (rng.standard_normal(shape) * 100).astype(dtype)
        np.save(tmp_path / "a.npy", arr)
        for gray in (False, True):
            whole = pio.decode((tmp_path / "a.npy").read_bytes(), "a.npy", gray=gray).pixels
            rows = pio.open_rows(str(tmp_path / "a.npy"), "a.npy", gray=gray)
            assert same(bands.collect(rows, 7), whole)
            rows.close()
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((4, 5), np.float32)))
    with pytest.raises(pio.NotStreamable):  # Fortran order: read whole
        pio.open_rows(str(tmp_path / "f.npy"), "f.npy")


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 1200×900 RGBA picture with edges, as PNG (and 16-bit PNG, TIFF, .npy)."""
    folder = tmp_path_factory.mktemp("photo")
    rgb = synthetic.band(0, 900, 1200)
    alpha = np.full((900, 1200, 1), 255, np.uint8)
    alpha[100:300, 200:500] = 90
    rgba = np.concatenate([rgb, alpha], axis=2)
    write_png(folder / "p.png", rgba, meta=pio.Meta(dpi=(200.0, 200.0)))
    write_png(folder / "p16.png", rgb.astype(np.uint16) * 257 + 3)
    import tifffile

    tifffile.imwrite(folder / "p.tif", rgb, photometric="rgb", rowsperstrip=64, compression="zlib")
    np.save(folder / "p.npy", rgb.astype(np.float32) / 7)
    return folder


def decoded(path):
    return pio.decode(path.read_bytes(), path.name).pixels


CASES = [
    ("convolve", "p.png", ["-k", "sobel"], "png"),
    ("convolve", "p.png", ["-k", "gaussian", "--sigma", "2", "-b", "wrap", "--stride", "2"], "png"),
    ("convolve", "p16.png", ["-k", "sharpen", "-b", "constant", "--cval", "9", "--dilation", "3"], "png"),
    ("convolve", "p.tif", ["-k", "laplacian", "-b", "valid", "--gray"], "tiff"),
    ("convolve", "p.npy", ["-k", "sobel-x"], "npy"),
    ("convolve", "p.npy", ["-k", "emboss"], "png"),
    ("pool", "p.png", ["-m", "max", "-s", "2"], "png"),
    ("pool", "p.png", ["-m", "avg", "-s", "2"], "png"),
    ("pool", "p16.png", ["-m", "avg", "-s", "3", "--stride", "2", "--padding", "1", "--ceil-mode"], "tiff"),
    ("pool", "p.tif", ["-m", "median", "-s", "3", "--stride", "1"], "npy"),
    ("pool", "p.png", ["-m", "lp", "-s", "2", "--p", "3", "--to", "100x80"], "png"),
    ("pool", "p.png", ["-m", "avg", "--global"], "png"),
    ("run", "p.png", ["gaussian sigma=2 | conv sobel-x,sobel-y boundary=wrap | relu | max 2"], "png"),
    ("run", "p.png", ["sobel | normalize | avg 2", "--gray"], "tiff"),
    ("run", "p16.png", ["conv sobel boundary=mirror | abs | max 2"], "npy"),
]


@pytest.mark.parametrize("command,source,args,fmt", CASES)
def test_streamed_outputs_equal_whole_ones(cli, tmp_path, photo, command, source, args, fmt):
    args = [args[0], photo / source, *args[1:]] if command == "run" else [photo / source, *args]
    a = cli(command, *args, "-o", "a/", "-f", fmt, "--stream", "--report", "a.json")
    b = cli(command, *args, "-o", "b/", "-f", fmt, "--no-stream", "--report", "b.json")
    assert a.code == 0 and b.code == 0, (a, b)
    ra, rb = (json.loads((tmp_path / f"{k}.json").read_text())["files"][0] for k in "ab")
    assert ra["streamed"] is True and rb["streamed"] is False
    assert (ra["output_width"], ra["output_height"]) == (rb["output_width"], rb["output_height"])
    assert "streamed in bands of" in a.stderr and "streamed in bands" not in b.stderr
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == sorted(os.listdir(tmp_path / "b")) and names
    for name in names:
        if fmt == "npy":
            assert same(np.load(tmp_path / "a" / name), np.load(tmp_path / "b" / name)), name
        else:
            pa, pb = (pio.decode((tmp_path / k / name).read_bytes(), name) for k in "ab")
            assert same(pa.pixels, pb.pixels), name
            assert pa.meta.dpi == pytest.approx(pb.meta.dpi, abs=1e-3) and pa.meta.icc == pb.meta.icc


def test_a_bank_streams_one_file_per_map(cli, tmp_path, photo):
    r = cli("run", "conv sobel-x,sobel-y | relu", photo / "p.png", "-o", "a/", "--stream", "--json")
    assert r.code == 0, r
    row = r.json["files"][0]
    assert row["streamed"] and len(row["written"]) == 6  # 2 kernels × 3 colour channels, alpha in each
    whole = Pipeline.parse("conv sobel-x,sobel-y | relu").apply(decoded(photo / "p.png"), 3)[0]
    for n, path in enumerate(sorted(row["written"])):
        got = decoded(tmp_path / path)
        assert got.shape[2] == 2 and same(got[:, :, 1], decoded(photo / "p.png")[:, :, 3])
        want = topixels.to_pixels(np.ascontiguousarray(whole[:, :, [n, 6]]), np.uint8, "normalize", 1)  # auto: 0-sum
        assert same(got, want)


def test_the_choice_is_automatic_by_size(cli, tmp_path, monkeypatch, photo):
    small = cli("pool", photo / "p.png", "-m", "max", "-s", "2", "-o", "s.png", "--json")
    assert small.code == 0 and small.json["files"][0]["streamed"] is False  # 1.08 MP: whole
    (tmp_path / "i.png").write_bytes(adam7_zeros(301, 203))
    forced = cli("pool", "i.png", "-m", "max", "-s", "2", "-o", "i2.png", "--stream", "--json")
    assert forced.code == 0 and forced.json["files"][0]["streamed"] is False  # Adam7 cannot stream: whole
    jpg = cli("pool", photo / "p.png", "-m", "max", "-s", "2", "-o", "j.jpg", "--stream", "--json")
    assert jpg.code == 0 and jpg.json["files"][0]["streamed"] is False  # JPEG is written whole
    out = cli("pool", photo / "p.png", "-m", "max", "-s", "2", "-o", "-", "--stream")
    assert out.code == 0 and out.stdout.startswith(pngio.SIGNATURE)  # stdout: whole


def test_a_streamed_image_may_exceed_max_pixels(cli, photo):
    r = cli("convolve", photo / "p.png", "-k", "box", "-o", "o.png", "--max-pixels", "100000", "--stream")
    assert r.code == 0, r
    r = cli("convolve", photo / "p.png", "-k", "box", "-o", "o2.png", "--max-pixels", "100000", "--no-stream")
    assert r.code == 1 and "over the limit" in r.stderr


def test_a_bomb_is_still_refused(cli, tmp_path):
    """A tiny file claiming 50000×50000 pixels is a bomb, streamable or not."""
    (tmp_path / "bomb.png").write_bytes(png(50000, 50000, 8, 0, zlib.compress(bytes(64))))
    r = cli("pool", "bomb.png", "-m", "max", "-s", "2", "-o", "o.png")
    assert r.code == 1 and "decompression bomb" in r.stderr and not (tmp_path / "o.png").exists()


def corrupt_late(data: bytes) -> bytes:
    """The PNG with a byte of its last IDAT chunk flipped (its CRC no longer matches)."""
    at = data.rindex(b"IDAT") + 4 + 10
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def test_a_corrupt_stream_leaves_no_output(cli, tmp_path, photo):
    data = (photo / "p.png").read_bytes()
    (tmp_path / "c.png").write_bytes(corrupt_late(data))
    (tmp_path / "ok.png").write_bytes(data)
    r = cli("convolve", "c.png", "ok.png", "-k", "sobel", "-o", "out/", "--stream", "--json", "-j", "1")
    assert r.code == 1
    rows = {os.path.basename(f["input"]): f for f in r.json["files"]}
    assert "c.png: truncated or corrupt image" in rows["c.png"]["error"] and rows["ok.png"]["error"] is None
    assert sorted(os.listdir(tmp_path / "out")) == ["ok_sobel.png"]  # no partial file, no temp file
    # image data that ends early, in well-formed chunks
    from hostile import png_chunks, png_from_chunks

    chunks = [(k, b[: len(b) // 2] if k == b"IDAT" else b) for k, b in png_chunks(data)]
    (tmp_path / "t.png").write_bytes(png_from_chunks(chunks))
    r = cli("pool", "t.png", "-m", "max", "-s", "2", "-o", "out/", "--stream")
    assert r.code == 1 and "t.png" in r.stderr and "cut short" in r.stderr and "Traceback" not in r.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["ok_sobel.png"]


# --------------------------------------------------------------------------- 108 megapixels


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "p108.png"
    synthetic.write(str(path), 12000, 9000)
    return path


PEAK_MB = 300  # the bound; the whole-image path took 2.05 GB (Sobel), 0.90 GB (max pool 2)


def test_108_megapixels_stream_in_flat_memory(measured, tmp_path, big):
    r = measured("convolve", big, "-k", "sobel", "-o", "s.png", "--json", timeout=300)
    assert r.code == 0, r
    row = json.loads(r.stdout)["files"][0]
    assert row["streamed"] and (row["width"], row["height"]) == (12000, 9000)  # over --max-pixels: it streams
    assert r.peak_mb < PEAK_MB, f"peak RSS {r.peak_mb:.0f} MB"
    r = measured("pool", big, "-m", "max", "-s", "2", "-o", "m.png", timeout=300)
    assert r.code == 0 and r.peak_mb < PEAK_MB, f"peak RSS {r.peak_mb:.0f} MB"
    with open(tmp_path / "m.png", "rb") as fh:  # a spot check against the picture itself
        head = fh.read(33)
    assert head[16:24] == (6000).to_bytes(4, "big") + (4500).to_bytes(4, "big")
    rows = pio.open_rows(str(tmp_path / "m.png"), "m.png")
    top = rows.read(64)
    rows.close()
    want = api.pool(synthetic.band(0, 128, 12000), "max", 2)
    assert same(top, want)


def test_ctrl_c_while_streaming_leaves_no_file(tmp_path, big):
    proc = subprocess.Popen(
        poolcli_command() + ["convolve", str(big), "-k", "gaussian", "--sigma", "4", "-o", "g.png", "-q"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(n.endswith(".tmp") for n in os.listdir(tmp_path)):  # writing has begun
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert os.listdir(tmp_path) == []


def test_streamed_outputs_keep_icc_dpi_and_exif(cli, tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x013B] = "poolcli test"  # Artist
    icc = b"\0\0\2\0poolcli-test-profile" + bytes(100)
    Image.fromarray(synthetic.band(0, 60, 80)).save(tmp_path / "e.png", exif=exif.tobytes(), dpi=(300, 300),
                                                    icc_profile=icc)  # fmt: skip
    for fmt in ("png", "tiff"):
        r = cli("convolve", "e.png", "-k", "box", "-o", f"o.{fmt}", "--stream", "--json")
        assert r.code == 0 and r.json["files"][0]["streamed"], r
        im = Image.open(tmp_path / f"o.{fmt}")
        assert im.info.get("icc_profile") == icc
        assert im.info["dpi"] == pytest.approx((300, 300), abs=0.1)
        assert im.getexif().get(0x013B) == "poolcli test"


def test_a_stage_that_does_not_fit_the_image_fails_that_file(cli, tmp_path):
    write_png(tmp_path / "rgb.png", np.zeros((20, 20, 3), np.uint8))
    for flag in ("--stream", "--no-stream"):
        r = cli("run", "conv sobel-x,sobel-y | gray", "rgb.png", "-o", "x.png", flag)
        assert r.code == 1 and "rgb.png: gray needs 1 or 3 colour channels" in r.stderr and "internal" not in r.stderr
        r = cli("run", "conv sobel,gaussian boundary=valid", "rgb.png", "-o", "v.png", flag)
        assert r.code == 1 and "feature maps of different sizes" in r.stderr and "internal" not in r.stderr


def test_a_batch_streams_in_workers(cli, tmp_path, photo):
    for k in range(3):
        (tmp_path / f"in{k}.png").write_bytes((photo / "p.png").read_bytes())
    r = cli("pool", "in0.png", "in1.png", "in2.png", "-m", "max", "-s", "2", "-o", "out/", "--stream", "-j", "2",
            "--json")  # fmt: skip
    assert r.code == 0, r
    assert [f["streamed"] for f in r.json["files"]] == [True] * 3
    want = api.pool(decoded(photo / "p.png"), "max", 2)
    for k in range(3):
        assert same(decoded(tmp_path / "out" / f"in{k}_max2.png"), want)


@settings(max_examples=60, deadline=None)
@given(
    stages=st.lists(st.sampled_from([text for text, _ in STAGE_CALLS]), min_size=1, max_size=4),
    h=st.integers(1, 40),
    w=st.integers(1, 25),
    channels=st.sampled_from([1, 3, 4]),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    band=st.sampled_from([1, 2, 3, 7, 64]),
    seed=st.integers(0, 2**16),
)
def test_random_pipelines_in_bands_equal_the_whole_image(stages, h, w, channels, dtype, band, seed):
    """The stages of tests/test_run.py's random pipelines, banded: alpha is the 4th channel."""
    img = random_image(np.random.default_rng(seed), h, w, channels, dtype)
    pipe = Pipeline.parse(" | ".join(stages))
    colour = 3 if channels == 4 else channels
    try:
        whole, wc = pipe.apply(img, colour)
    except (api.ImageError, api.UsageError):
        return
    rows, c = pipeline_rows(pipe, bands.ArrayRows(img), colour)
    assert c == wc and same(bands.collect(rows, band), whole)


def test_skip_existing_and_dask_take_the_streamed_path_too(cli, tmp_path, photo):
    for k in range(2):
        (tmp_path / f"in{k}.png").write_bytes((photo / "p.png").read_bytes())
    first = cli("pool", "in0.png", "-m", "max", "-s", "2", "-o", "out/", "--stream")
    assert first.code == 0
    r = cli("pool", "in0.png", "in1.png", "-m", "max", "-s", "2", "-o", "out/", "--stream", "--skip-existing",
            "--json")  # fmt: skip
    rows = {f["input"]: f for f in r.json["files"]}
    assert r.code == 0 and rows["in0.png"]["skipped"] and rows["in1.png"]["streamed"]
    pytest.importorskip("distributed")
    r = cli("pool", "in0.png", "in1.png", "-m", "max", "-s", "2", "-o", "dask/", "--stream", "--executor", "dask",
            "-j", "2", "--json")  # fmt: skip
    assert r.code == 0, r
    assert [f["streamed"] for f in r.json["files"]] == [True, True]
    for k in range(2):
        assert same(decoded(tmp_path / "dask" / f"in{k}_max2.png"), decoded(tmp_path / "out" / "in1_max2.png"))
