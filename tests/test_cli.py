"""The installed ``poolcli`` command on real files: outputs, names, pipes, JSON, bad input."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import poolcli
from poolcli.kernels import KERNELS

from conftest import SAMPLES, poolcli_command

JSON_FILE_KEYS = {"input", "output", "width", "height", "channels", "load_ms", "compute_ms", "save_ms", "error"}
JSON_TOTAL_KEYS = {"files", "failed", "wall_ms", "megapixels", "compile_ms"}


def decode(path_or_bytes):
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    im = Image.open(src)
    im.load()
    return im


def one_line_error(run, *needles):
    """Exactly one error line on stderr naming the problem, and no traceback."""
    assert "Traceback" not in run.stderr, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("poolcli: error:")]
    assert len(lines) == 1, run.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ------------------------------------------------------------------ basics


def test_version_and_help(cli):
    r = cli("--version")
    assert r.code == 0 and r.stdout.decode().splitlines()[0] == f"poolcli {poolcli.__version__}"  # then the engine's
    for args in (["--help"], ["convolve", "--help"], ["pool", "--help"], ["kernels", "--help"], ["warmup", "--help"]):
        r = cli(*args)
        assert r.code == 0 and b"Usage" in r.stdout, args


def test_every_command_has_help_with_examples(cli):
    for command in ("convolve", "pool", "kernels"):
        assert b"Examples" in cli(command, "--help").stdout


def test_help_does_not_import_numba():
    code = (
        "import sys\nfrom poolcli import cli\nsys.argv = ['poolcli', 'convolve', '--help']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "assert 'numba' not in sys.modules and 'numpy' not in sys.modules, 'slow import on --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_kernels_lists_every_kernel(cli):
    r = cli("kernels")
    assert r.code == 0
    text = r.stdout.decode()
    for name in KERNELS:
        assert name in text


def test_kernels_shows_one(cli):
    r = cli("kernels", "gaussian", "--sigma", "2")
    assert r.code == 0 and "17×17" in r.stdout.decode()
    r = cli("kernels", "sobel-x")
    assert r.code == 0 and "-2" in r.stdout.decode()
    r = cli("kernels", "sobell")
    assert r.code == 2
    one_line_error(r, "unknown kernel 'sobell'", "did you mean 'sobel'")


# ------------------------------------------------------------------ convolve outputs


def test_default_name_beside_input_and_summary(cli, samples):
    r = cli("convolve", samples / "chelsea.png", "-k", "sobel")
    assert r.code == 0, r
    out = samples / "chelsea_sobel.png"
    im = decode(out)
    assert im.size == (451, 300) and im.mode == "RGB"
    for stage in ("load", "compute", "save"):
        assert stage in r.stderr
    assert "MP/s" in r.stderr and "boundary reflect" in r.stderr


def test_output_file_matches_api(cli, samples):
    r = cli("convolve", samples / "camera.png", "-k", "gaussian", "--sigma", "2", "-o", samples / "blur.png")
    assert r.code == 0, r
    src = np.asarray(Image.open(samples / "camera.png"))
    want = np.clip(np.rint(poolcli.convolve(src, "gaussian", sigma=2)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(decode(samples / "blur.png")), want)


def test_npy_is_the_exact_feature_map(cli, samples):
    r = cli("convolve", samples / "chelsea.png", "-k", "sobel-x", "-o", samples / "gx.npy", "--stride", "2")
    assert r.code == 0, r
    got = np.load(samples / "gx.npy")
    src = np.asarray(Image.open(samples / "chelsea.png"))
    np.testing.assert_array_equal(got, poolcli.convolve(src, "sobel-x", stride=2))
    assert got.dtype == np.float32 and got.shape == (150, 226, 3)


@pytest.mark.parametrize("fmt,mode", [("jpg", "RGB"), ("webp", "RGB"), ("tiff", "RGB"), ("bmp", "RGB"), ("png", "RGB")])
def test_formats(cli, samples, fmt, mode):
    r = cli("convolve", samples / "chelsea.png", "-k", "blur", "--format", fmt)
    assert r.code == 0, r
    im = decode(samples / f"chelsea_blur.{'tiff' if fmt == 'tiff' else fmt}")
    assert im.mode == mode and im.size == (451, 300)


def test_sixteen_bit_stays_sixteen_bit(cli, samples):
    r = cli("convolve", samples / "astronaut_gray16.png", "-k", "blur")
    assert r.code == 0, r
    im = decode(samples / "astronaut_gray16_blur.png")
    assert im.mode == "I;16"
    arr = np.asarray(im)
    assert arr.max() > 255  # real 16-bit values, not 8-bit ones
    src = np.asarray(Image.open(samples / "astronaut_gray16.png"))
    want = np.clip(np.rint(poolcli.convolve(src, "blur")), 0, 65535).astype(np.uint16)
    np.testing.assert_array_equal(arr, want)


def test_sixteen_bit_rgb_png_round_trip(cli, tmp_path):
    from poolcli import io as pio

    rgb = np.random.default_rng(1).integers(0, 65536, (20, 30, 3)).astype(np.uint16)
    (tmp_path / "rgb16.png").write_bytes(pio.encode(rgb, False, "png"))
    r = cli("convolve", "rgb16.png", "-k", "identity", "-o", "same.png")
    assert r.code == 0, r
    data = (tmp_path / "same.png").read_bytes()
    assert data[24] == 16 and data[25] == 2  # a 16-bit RGB PNG
    np.testing.assert_array_equal(pio.decode(data, "x").pixels, rgb)


def test_alpha_is_carried_through(cli, samples):
    r = cli("convolve", samples / "coffee_rgba.png", "-k", "sharpen", "--stride", "2")
    assert r.code == 0, r
    im = decode(samples / "coffee_rgba_sharpen_s2.png")
    assert im.mode == "RGBA" and im.size == (300, 200)
    src_alpha = np.asarray(Image.open(samples / "coffee_rgba.png"))[::2, ::2, 3]
    np.testing.assert_array_equal(np.asarray(im)[:, :, 3], src_alpha)


def test_gray(cli, samples):
    r = cli("convolve", samples / "chelsea.png", "-k", "identity", "--gray", "-o", samples / "g.png")
    assert r.code == 0, r
    im = decode(samples / "g.png")
    assert im.mode == "L"
    np.testing.assert_array_equal(np.asarray(im), np.asarray(Image.open(samples / "chelsea.png").convert("L")))


def test_scale_rules(cli, samples):
    for scale in ("clip", "normalize", "abs"):
        r = cli("convolve", samples / "camera.png", "-k", "sobel-x", "--scale", scale, "-o", samples / f"{scale}.png")
        assert r.code == 0, r
    src = np.asarray(Image.open(samples / "camera.png"))
    gx = poolcli.convolve(src, "sobel-x")
    np.testing.assert_array_equal(np.asarray(decode(samples / "clip.png")), np.clip(np.rint(gx), 0, 255))
    np.testing.assert_array_equal(np.asarray(decode(samples / "abs.png")), np.clip(np.rint(np.abs(gx)), 0, 255))
    norm = np.asarray(decode(samples / "normalize.png"))
    assert norm.min() == 0 and norm.max() == 255
    # auto: a zero-sum kernel is normalised
    r = cli("convolve", samples / "camera.png", "-k", "sobel-x", "-o", samples / "auto.png")
    np.testing.assert_array_equal(np.asarray(decode(samples / "auto.png")), norm)


def test_inline_matrix_and_kernel_files(cli, samples, tmp_path):
    (tmp_path / "k.csv").write_text("0,-1,0\n-1,5,-1\n0,-1,0\n")
    np.save(tmp_path / "k.npy", np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float))
    outs = []
    for spec in ("0,-1,0;-1,5,-1;0,-1,0", "0 -1 0; -1 5 -1; 0 -1 0", "@k.csv", "@k.npy", "sharpen"):
        name = f"o{len(outs)}.png"
        r = cli("convolve", samples / "camera.png", "-k", spec, "-o", name)
        assert r.code == 0, (spec, r)
        outs.append(np.asarray(decode(tmp_path / name)))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_every_boundary_and_options(cli, samples):
    for b in ("reflect", "mirror", "nearest", "wrap", "constant", "valid", "reflect101", "replicate", "zero"):
        r = cli("convolve", samples / "camera.png", "-k", "box", "--size", "5", "--boundary", b, "--cval", "9",
                "--dilation", "2", "--flip", "--threads", "1", "-o", f"b_{b}.png", "--json")  # fmt: skip
        assert r.code == 0, (b, r)
        row = r.json["files"][0]
        size = 512 - 8 if b == "valid" else 512
        assert (row["width"], row["height"]) == (512, 512)
        assert decode(samples.parent / f"b_{b}.png").size == (size, size)
    assert "boundary mirror" in cli("convolve", samples / "camera.png", "-k", "blur", "-b", "reflect101",
                                    "-o", "x.png").stderr  # fmt: skip


# ------------------------------------------------------------------ pipes


def test_stdin_to_stdout(cli, samples):
    data = (samples / "chelsea.png").read_bytes()
    r = cli("convolve", "-k", "blur", stdin=data)
    assert r.code == 0, r
    assert decode(r.stdout).size == (451, 300)
    r2 = cli("convolve", "-", "-k", "blur", "-o", "-", stdin=data)
    assert r2.code == 0 and r2.stdout == r.stdout


def test_pipe_between_two_poolcli_processes(tmp_path, samples):
    cmd = poolcli_command()
    with open(samples / "chelsea.png", "rb") as src, open(tmp_path / "b.png", "wb") as dst:
        first = subprocess.Popen(cmd + ["convolve", "-k", "gaussian", "--sigma", "2", "-q"], stdin=src,
                                 stdout=subprocess.PIPE)  # fmt: skip
        second = subprocess.run(cmd + ["pool", "-m", "max", "-s", "2", "-q"], stdin=first.stdout, stdout=dst)
        first.stdout.close()
        assert first.wait() == 0 and second.returncode == 0
    assert decode(tmp_path / "b.png").size == (225, 150)


def test_json_schema(cli, samples):
    r = cli("convolve", samples / "camera.png", "-k", "sobel", "--json", "-q", "--report", "rep.json")
    assert r.code == 0, r
    doc = r.json
    assert JSON_FILE_KEYS <= set(doc["files"][0])
    assert JSON_TOTAL_KEYS <= set(doc["totals"])
    row = doc["files"][0]
    assert row["error"] is None and (row["width"], row["height"], row["channels"]) == (512, 512, 1)
    assert doc["totals"]["files"] == 1 and doc["totals"]["failed"] == 0
    assert doc["totals"]["megapixels"] == pytest.approx(512 * 512 / 1e6)
    assert r.stderr == ""  # --quiet
    import json

    assert json.loads((samples.parent / "rep.json").read_text())["files"][0]["input"] == row["input"]


def test_json_not_with_stdout_image(cli, samples):
    r = cli("convolve", "-k", "blur", "--json", stdin=(samples / "camera.png").read_bytes())
    assert r.code == 2
    one_line_error(r, "--report")


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "args,code,needles",
    [
        (["-k", "sobell"], 2, ["unknown kernel 'sobell'", "did you mean 'sobel'"]),
        (["-k", "1,2;3"], 2, ["row 2 has 1 values but row 1 has 2"]),
        (["-k", "1,x;3,4"], 2, ["'x' is not a number"]),
        (["-k", "1,inf"], 2, ["finite"]),
        (["-k", ";"], 2, ["empty"]),
        (["-k", "@missing.csv"], 2, ["@missing.csv", "no such kernel file"]),
        (["-k", "blur", "--boundary", "reflekt"], 2, ["unknown boundary 'reflekt'", "did you mean 'reflect'"]),
        (["-k", "blur", "--stride", "0"], 2, ["--stride must be at least 1"]),
        (["-k", "blur", "--dilation", "0"], 2, ["--dilation must be at least 1"]),
        (["-k", "blur", "--scale", "wild"], 2, ["--scale"]),
        (["-k", "sobel", "--size", "3"], 2, ["takes no --size"]),
        (["-k", "blur", "-f", "xyz"], 2, ["--format"]),
    ],
)
def test_bad_options(cli, samples, args, code, needles):
    r = cli("convolve", samples / "camera.png", *args)
    assert r.code == code, r
    one_line_error(r, *needles)
    assert sorted(p.name for p in samples.iterdir()) == sorted(p.name for p in SAMPLES.iterdir()), "nothing written"


def test_bad_kernel_files(cli, samples, tmp_path):
    (tmp_path / "ragged.txt").write_text("1 2 3\n4 5\n")
    (tmp_path / "words.csv").write_text("a,b\nc,d\n")
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    (tmp_path / "nan.txt").write_text("1 nan\n")
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    for name, needle in [("ragged.txt", "row 2 has 2 values"), ("words.csv", "'a' is not a number"),
                         ("empty.txt", "empty"), ("nan.txt", "finite"), ("cube.npy", "2-D")]:  # fmt: skip
        r = cli("convolve", samples / "camera.png", "-k", f"@{name}")
        assert r.code == 2, (name, r)
        one_line_error(r, f"@{name}", needle)


def test_missing_file(cli):
    r = cli("convolve", "nope.png", "-k", "blur")
    assert r.code == 1
    one_line_error(r, "nope.png", "no such file")


def test_directory_without_output(cli, samples):
    r = cli("convolve", samples, "-k", "blur")
    assert r.code == 2
    one_line_error(r, "-o DIR")


def test_not_an_image(cli, tmp_path):
    (tmp_path / "notes.png").write_text("hello, not a picture\n")
    r = cli("convolve", "notes.png", "-k", "blur")
    assert r.code == 1
    one_line_error(r, "notes.png", "not an image")
    assert not (tmp_path / "notes_blur.png").exists()


def test_empty_file(cli, tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    r = cli("convolve", "zero.png", "-k", "blur")
    assert r.code == 1
    one_line_error(r, "zero.png", "empty file")


def test_truncated_and_corrupt_images(cli, samples, tmp_path):
    png = (samples / "chelsea.png").read_bytes()
    jpg = (samples / "rocket.jpg").read_bytes()
    (tmp_path / "trunc.png").write_bytes(png[: len(png) // 2])
    bad = bytearray(png)
    bad[len(bad) // 2 : len(bad) // 2 + 64] = b"\x00" * 64
    (tmp_path / "corrupt.png").write_bytes(bytes(bad))
    (tmp_path / "trunc.jpg").write_bytes(jpg[: len(jpg) // 3])
    for name in ("trunc.png", "corrupt.png", "trunc.jpg"):
        r = cli("convolve", name, "-k", "blur")
        assert r.code == 1, (name, r)
        one_line_error(r, name, "corrupt")
        assert not list(tmp_path.glob(f"{name.split('.')[0]}_*")), "no partial output"
        assert not list(tmp_path.glob(".poolcli-*")), "no temp files"


def test_zero_size_image(cli, tmp_path):
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 0, 5, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "empty.png").write_bytes(data)
    r = cli("convolve", "empty.png", "-k", "blur")
    assert r.code == 1
    one_line_error(r, "empty.png")


def test_output_folder_missing_or_not_a_folder(cli, samples, tmp_path):
    r = cli("convolve", samples / "camera.png", "-k", "blur", "-o", "no/such/dir/out.png")
    assert r.code == 2
    one_line_error(r, "does not exist")
    (tmp_path / "afile").write_text("x")
    r = cli("convolve", samples / "camera.png", "-k", "blur", "-o", "afile/out.png")
    assert r.code == 2
    one_line_error(r, "afile")


def test_output_equal_to_input_is_refused(cli, samples):
    before = (samples / "camera.png").read_bytes()
    r = cli("convolve", samples / "camera.png", "-k", "blur", "-o", samples / "camera.png")
    assert r.code == 2
    one_line_error(r, "never overwritten")
    assert (samples / "camera.png").read_bytes() == before


def test_no_input_on_a_terminal_is_a_usage_error(tmp_path):
    """With a terminal on stdin and no INPUT, poolcli says how to call it."""
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(poolcli_command() + ["convolve", "-k", "blur"], stdin=follower, capture_output=True,
                              cwd=tmp_path, timeout=120)  # fmt: skip
    finally:
        os.close(leader)
        os.close(follower)
    assert proc.returncode == 2
    assert b"no input" in proc.stderr and b"Traceback" not in proc.stderr


def test_image_mode_coverage(cli, tmp_path):
    """Every Pillow mode named by the contract converts and writes."""
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3)).astype(np.uint8))
    cases = {
        "l.png": rgb.convert("L"), "la.png": rgb.convert("LA"), "rgba.png": rgb.convert("RGBA"),
        "p.png": rgb.convert("P"), "one.png": rgb.convert("1"), "cmyk.jpg": rgb.convert("CMYK"),
        "i.tiff": rgb.convert("I"), "f.tiff": rgb.convert("F"), "i16.png": rgb.convert("I;16"),
    }  # fmt: skip
    expected = {"l.png": "L", "la.png": "LA", "rgba.png": "RGBA", "p.png": "RGB", "one.png": "L",
                "cmyk.jpg": "RGB", "i.tiff": "L", "f.tiff": "L", "i16.png": "I;16"}  # fmt: skip
    # i.tiff: 32-bit signed samples are read as float (contract §2), written as 8-bit normalized
    for name, im in cases.items():
        im.save(tmp_path / name)
        r = cli("convolve", name, "-k", "identity", "-o", f"out_{name.split('.')[0]}.png")
        assert r.code == 0, (name, r)
        assert decode(tmp_path / f"out_{name.split('.')[0]}.png").mode == expected[name], name


def test_exif_orientation_is_applied(cli, tmp_path):
    im = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    r = cli("convolve", "rot.jpg", "-k", "identity")
    assert r.code == 0, r
    assert decode(tmp_path / "rot_identity.png").size == (10, 20)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_sixteen_bit_colour_tiff_round_trip(cli, tmp_path, channels):
    """Pillow writes 16-bit TIFF for gray only; poolcli keeps 16 bits for colour too."""
    from poolcli import io as pio

    px = np.random.default_rng(channels).integers(0, 65536, (20, 30, channels)).astype(np.uint16)
    (tmp_path / "c16.tiff").write_bytes(pio.encode(px, channels in (2, 4), "tiff"))
    r = cli("pool", "c16.tiff", "-m", "max", "-s", "2", "-o", "out.tiff")
    assert r.code == 0, r
    pic = pio.decode((tmp_path / "out.tiff").read_bytes(), "out.tiff")
    assert pic.pixels.dtype == np.uint16 and pic.alpha == (channels in (2, 4))
    np.testing.assert_array_equal(pic.pixels, poolcli.pool(px, "max", 2))
