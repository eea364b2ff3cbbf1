"""``poolcli pool`` on real files: names, dtypes, alpha, palettes, pipes, global and adaptive."""

import io

import numpy as np
import pytest
from PIL import Image

import poolcli

from test_cli import decode, one_line_error


def test_name_and_result(cli, samples):
    r = cli("pool", samples / "chelsea.png", "-m", "max", "-s", "2")
    assert r.code == 0, r
    out = np.asarray(decode(samples / "chelsea_max2.png"))
    src = np.asarray(Image.open(samples / "chelsea.png"))
    np.testing.assert_array_equal(out, poolcli.pool(src, "max", 2))
    assert "mode max" in r.stderr and "compute" in r.stderr


@pytest.mark.parametrize(
    "args,name",
    [
        (["-m", "avg", "-s", "3"], "camera_avg3.png"),
        (["-m", "max", "-s", "3", "--stride", "2"], "camera_max3_s2.png"),
        (["-m", "max", "-s", "3", "--stride", "2", "--padding", "1"], "camera_max3_s2_p1.png"),
        (["-m", "min", "-s", "2x3"], "camera_min2x3.png"),
        (["-m", "max", "-s", "2", "--dilation", "2", "--ceil-mode"], "camera_max2_d2_ceil.png"),
        (["-m", "avg", "--to", "64x48"], "camera_avg_64x48.png"),
        (["-m", "max", "--global"], "camera_max_global.png"),
        (["-m", "l2", "-s", "2"], "camera_lp2_pow2.png"),
        (["-m", "lp", "--p", "3", "-s", "2"], "camera_lp2_pow3.png"),
    ],
)
def test_naming(cli, samples, args, name):
    r = cli("pool", samples / "camera.png", *args)
    assert r.code == 0, r
    assert (samples / name).exists(), sorted(p.name for p in samples.iterdir())


def test_every_mode_writes(cli, samples):
    for mode in ("max", "avg", "min", "lp", "median", "stochastic"):
        r = cli("pool", samples / "chelsea.png", "-m", mode, "-s", "3", "--seed", "1", "-o", f"{mode}.png")
        assert r.code == 0, (mode, r)
        assert decode(samples.parent / f"{mode}.png").size == (150, 100)


def test_avg_rounds_to_nearest_and_sixteen_bit(cli, samples):
    r = cli("pool", samples / "astronaut_gray16.png", "-m", "avg", "-s", "2", "-o", "a.png")
    assert r.code == 0, r
    im = decode(samples.parent / "a.png")
    assert im.mode == "I;16" and im.size == (128, 128)
    src = np.asarray(Image.open(samples / "astronaut_gray16.png"))
    np.testing.assert_array_equal(np.asarray(im), np.rint(poolcli.pool(src, "avg", 2)).astype(np.uint16))


def test_rgba_alpha_is_pooled(cli, samples):
    r = cli("pool", samples / "coffee_rgba.png", "-m", "min", "-s", "4")
    assert r.code == 0, r
    im = decode(samples / "coffee_rgba_min4.png")
    assert im.mode == "RGBA"
    src = np.asarray(Image.open(samples / "coffee_rgba.png"))
    np.testing.assert_array_equal(np.asarray(im), poolcli.pool(src, "min", 4))


def test_palette_image(cli, tmp_path):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3)).astype(np.uint8))
    rgb.convert("P").save(tmp_path / "pal.png")
    transparent = rgb.convert("P")
    transparent.info["transparency"] = 0
    transparent.save(tmp_path / "palt.png", transparency=0)
    r = cli("pool", "pal.png", "-m", "max", "-s", "2")
    assert r.code == 0, r
    assert decode(tmp_path / "pal_max2.png").mode == "RGB"
    r = cli("pool", "palt.png", "-m", "max", "-s", "2")
    assert r.code == 0, r
    assert decode(tmp_path / "palt_max2.png").mode == "RGBA"


def test_stdin_stdout(cli, samples):
    r = cli("pool", "-m", "max", "-s", "2", stdin=(samples / "chelsea.png").read_bytes())
    assert r.code == 0, r
    assert decode(r.stdout).size == (225, 150)


def test_global_prints_values_and_json(cli, samples):
    r = cli("pool", samples / "chelsea.png", "-m", "avg", "--global", "--json")
    assert r.code == 0, r
    src = np.asarray(Image.open(samples / "chelsea.png")).reshape(-1, 3).mean(axis=0)
    values = r.json["files"][0]["values"]
    np.testing.assert_allclose(values, src, rtol=1e-6)
    assert "global values per channel" in r.stderr
    assert decode(samples / "chelsea_avg_global.png").size == (1, 1)
    r = cli("pool", samples / "chelsea.png", "-m", "max", "--global", "-f", "npy", "-o", "g.npy")
    assert r.code == 0
    assert np.load(samples.parent / "g.npy").shape == (1, 1, 3)


def test_adaptive_to(cli, samples):
    r = cli("pool", samples / "camera.png", "-m", "max", "--to", "100x50", "-f", "npy", "-o", "ad.npy")
    assert r.code == 0, r
    src = np.asarray(Image.open(samples / "camera.png"))
    np.testing.assert_array_equal(np.load(samples.parent / "ad.npy"), poolcli.pool(src, "max", output_size=(50, 100)))


@pytest.mark.parametrize(
    "args,code,needles",
    [
        (["-m", "maxx", "-s", "2"], 2, ["unknown pooling mode 'maxx'", "did you mean 'max'"]),
        (["-m", "max", "-s", "0"], 2, ["--size must be at least 1"]),
        (["-m", "max", "-s", "2", "--stride", "0"], 2, ["--stride must be at least 1"]),
        (["-m", "max", "-s", "2", "--dilation", "0"], 2, ["--dilation must be at least 1"]),
        (["-m", "max", "-s", "2", "--padding", "2"], 2, ["more than half the window"]),
        (["-m", "max", "--to", "0x5"], 2, ["--to must be at least 1"]),
        (["-m", "max", "--to", "-3x5"], 2, ["--to"]),
        (["-m", "lp", "-s", "2", "--p", "0"], 2, ["--p must be a positive"]),
        (["-m", "lp", "-s", "2", "--p", "-1"], 2, ["--p must be a positive"]),
        (["-m", "avg", "-s", "2", "--divisor", "0"], 2, ["--divisor must not be 0"]),
        (["-m", "max"], 2, ["--size is required"]),
        (["-m", "max", "-s", "abc"], 2, ["--size must be N or AxB"]),
        (["-m", "max", "-s", "2000"], 1, ["camera.png", "smaller than the pooling window"]),
    ],
)
def test_bad_input(cli, samples, args, code, needles):
    r = cli("pool", samples / "camera.png", *args)
    assert r.code == code, r
    one_line_error(r, *needles)


def test_one_pixel_image_too_small(cli, tmp_path):
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "dot.png")
    r = cli("pool", "dot.png", "-m", "max", "-s", "2")
    assert r.code == 1
    one_line_error(r, "dot.png", "smaller than the pooling window")
    assert not (tmp_path / "dot_max2.png").exists()


def test_png_output_is_pillow_readable_16_bit_rgb(cli, tmp_path):
    from poolcli import io as pio

    rgb = np.random.default_rng(2).integers(0, 65536, (8, 10, 3)).astype(np.uint16)
    (tmp_path / "c16.png").write_bytes(pio.encode(rgb, False, "png"))
    r = cli("pool", "c16.png", "-m", "max", "-s", "2", "-o", "-", stdin=None)
    assert r.code == 0, r
    np.testing.assert_array_equal(pio.decode(r.stdout, "x").pixels, poolcli.pool(rgb, "max", 2))
    Image.open(io.BytesIO(r.stdout)).load()  # and any PNG reader can open it
