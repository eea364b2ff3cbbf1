"""Hostile input (contract §2, §3; issue #9): every bad file fails alone with one line naming
it, exit 1 (2 for a bad option), never 70 or a traceback; memory and time stay bounded;
nothing is overwritten, lost or half-written.  Every file is built here, in tmp_path."""

from __future__ import annotations

import json
import os
import stat
import struct
import zlib

import numpy as np
import pytest

from hostile import (
    encoded,
    inflation_bomb_png,
    npy,
    photo,
    png,
    png_chunks,
    png_from_chunks,
    tiff16,
    tiff_strip_bomb,
    tiff_tag_bomb,
)
from test_cli import one_line_error

# The command line's own footprint (Python, NumPy, Numba, LLVM) plus a small image stays well
# under this; an unbounded decoder of the bombs below would need gigabytes.
PEAK_MB = 600


def no_traceback(run):
    assert "Traceback" not in run.stderr and run.code != 70, run
    return run


# ------------------------------------------------------------------ bounded decoding


def test_png_inflation_bomb_stops_at_the_header_size(tmp_path, measured):
    (tmp_path / "bomb.png").write_bytes(inflation_bomb_png(1 << 30))  # 1 GiB of image data, ~1 MB
    r = no_traceback(measured("pool", "bomb.png", "-m", "max", "-s", "2", "-f", "npy", "-o", "b.npy", "-q"))
    assert r.code == 0, r  # the first 6 bytes are the image, as libpng reads it
    assert np.load(tmp_path / "b.npy").shape == (1, 1)
    assert r.peak_mb < PEAK_MB, r.peak_mb
    assert r.seconds < 60


def test_tiff16_inflation_bomb_and_shared_strips_are_bounded(tmp_path, measured):
    """A strip that inflates past its announced size is refused by the codec (libdeflate stops
    at the buffer's end); strips that all point at one stream are refused from the tags."""
    (tmp_path / "one.tif").write_bytes(tiff_strip_bomb(1, 1 << 30))  # one 1×1 strip of 1 GiB
    (tmp_path / "many.tif").write_bytes(tiff_strip_bomb(3000, 1 << 20))  # 3000 strips → one stream
    r = no_traceback(measured("pool", "one.tif", "many.tif", "-m", "max", "-s", "1", "-f", "npy", "-o", "out/"))
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("poolcli: error:")]
    assert len(errors) == 2, r.stderr
    assert any("one.tif: truncated or corrupt image (image data inflates past" in e for e in errors), errors
    assert any("many.tif: corrupt TIFF" in e for e in errors), errors
    assert r.code == 1 and r.peak_mb < PEAK_MB and r.seconds < 60, (r, r.peak_mb)


def test_tiff_tag_table_bomb_is_refused_before_pillow_expands_it(tmp_path, measured):
    (tmp_path / "tags.tif").write_bytes(tiff_tag_bomb(400, 1_000_000))  # 2 MB → 400M numbers
    r = measured("pool", "tags.tif", "-m", "max", "-s", "1", "-o", "o.png")
    one_line_error(r, "tags.tif", "TIFF")
    assert r.code == 1 and r.peak_mb < PEAK_MB, (r, r.peak_mb)


def test_many_oversized_tags_print_no_warnings(tmp_path, cli):
    """Pillow warns once per odd tag; those warnings never reach stderr."""
    table = [(40000 + k, 2, 3, b"ab\0") for k in range(200)]  # ASCII tags, harmless but unusual
    table += [(41000 + k, 3, 1, 7) for k in range(200)]
    body = bytes([128])
    from hostile import tiff

    tags = [(256, 4, 1, 1), (257, 4, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, 1, 1), (282, 5, 1, 0)]  # fmt: skip
    (tmp_path / "t.tif").write_bytes(tiff(1, 1, tags + table, body))
    r = no_traceback(cli("pool", "t.tif", "-m", "max", "-s", "1", "-o", "o.png", "-q"))
    assert all(line.startswith("poolcli: error: t.tif") for line in r.stderr.splitlines()), r.stderr


def test_over_limit_16bit_tiff_names_the_limit(tmp_path, cli):
    (tmp_path / "big.tif").write_bytes(tiff16(np.zeros((40, 50, 3), np.uint16)))
    r = cli("pool", "big.tif", "-m", "max", "-s", "2", "--max-pixels", "1000", "-o", "o.png")
    one_line_error(r, "big.tif", "--max-pixels", "2,000")
    assert r.code == 1


# ------------------------------------------------------------------ legal but unsupported


def test_five_channel_npy_fails_alone_and_writes_as_npy(tmp_path, cli):
    arr = np.arange(8 * 8 * 5, dtype=np.float32).reshape(8, 8, 5)
    (tmp_path / "five.npy").write_bytes(npy(arr))
    r = cli("pool", "five.npy", "-m", "max", "-s", "2", "-o", "five.png")
    one_line_error(r, "five.npy", "5-channel", "--format npy")
    assert r.code == 1 and not (tmp_path / "five.png").exists()
    r = cli("pool", "five.npy", "-m", "max", "-s", "2", "-o", "five_max.npy", "-q")
    assert r.code == 0, r
    np.testing.assert_array_equal(np.load(tmp_path / "five_max.npy"), arr.reshape(4, 2, 4, 2, 5).max(axis=(1, 3)))


def test_two_channel_npy_as_jpeg_fails_alone(tmp_path, cli):
    (tmp_path / "two.npy").write_bytes(npy(np.zeros((8, 8, 2), np.float32)))
    r = cli("pool", "two.npy", "-m", "max", "-s", "2", "-o", "two.jpg")
    one_line_error(r, "two.npy", "JPG")
    assert r.code == 1 and not (tmp_path / "two.jpg").exists()


def test_gray_alpha_png_to_jpeg_drops_alpha(tmp_path, cli):
    la = np.stack([photo(channels=1), np.full((48, 64), 200, np.uint8)], axis=2)
    (tmp_path / "la.png").write_bytes(encoded(la, "PNG"))
    r = cli("pool", "la.png", "-m", "max", "-s", "2", "-o", "la.jpg", "-q")
    assert r.code == 0, r
    from PIL import Image

    assert Image.open(tmp_path / "la.jpg").mode == "L"


def hostile_folder(folder):
    """Good images and every kind of bad file side by side; returns (good names, bad names)."""
    folder.mkdir()
    good, bad = [], []
    base = photo()
    ok_png = encoded(base, "PNG")
    files = {
        "good_rgb.png": ok_png, "good_gray.png": encoded(photo(channels=1), "PNG"),
        "good.jpg": encoded(base, "JPEG"), "good.bmp": encoded(base, "BMP"), "good.webp": encoded(base, "WEBP"),
        "good.tif": encoded(base, "TIFF"), "good16.tif": tiff16(photo(dtype=np.uint16)),
        "good.npy": npy(base.astype(np.float32)),
        "good_palette.png": encoded(photo(channels=1) // 64, "PNG"),
    }  # fmt: skip
    good += list(files)
    bad_files = {
        "empty.png": b"",
        "text.png": b"this is not an image at all\n" * 10,
        "five.npy": npy(np.zeros((8, 8, 5), np.float32)),
        "pickled.npy": npy(np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "strings.npy": npy(np.array([["a", "b"], ["c", "d"]])),
        "zero_size.npy": npy(np.zeros((0, 5), np.float32)),
        "no_channels.npy": npy(np.zeros((4, 4, 0), np.float32)),
        "one_d.npy": npy(np.zeros(10, np.float32)),
        "bad_crc.png": ok_png[:30] + bytes([ok_png[30] ^ 0xFF]) + ok_png[31:],
        "zero_width.png": png(0, 4, 8, 0, zlib.compress(b"\0" * 4)),
        "illegal_depth.png": png(4, 4, 7, 0, zlib.compress(b"\0" * 20)),
        "illegal_combo.png": png(4, 4, 16, 3, zlib.compress(b"\0" * 40)),
        "bad_method.png": png(4, 4, 8, 0, zlib.compress(b"\0" * 20), method=1),
        "bad_filter.png": png(4, 4, 8, 0, zlib.compress(b"\x07" + b"\0" * 4 + b"\0" * 15)),
        "short_data.png": png(64, 64, 8, 0, zlib.compress(b"\0" * 100)),
        "not_zlib.png": png(4, 4, 8, 0, b"garbage that is not deflate"),
        "no_idat.png": png_from_chunks([(k, b) for k, b in png_chunks(ok_png) if k != b"IDAT"]),
        "bad_length.png": ok_png[:33] + struct.pack(">I", 0x7FFFFFF0) + ok_png[37:],
        "bad.jpg": encoded(base, "JPEG")[:200],
        "bad.tif": tiff16(photo(dtype=np.uint16))[:300],
        "huge_header.png": png(0x7FFFFFFF, 0x7FFFFFFF, 8, 0, zlib.compress(b"\0" * 10)),
    }  # fmt: skip
    files.update(bad_files)
    bad += list(bad_files)
    for k in (10, 40, 100, len(ok_png) // 2, len(ok_png) - 5):
        name = f"truncated_{k}.png"
        files[name] = ok_png[:k]
        bad.append(name)
    # a palette image with no palette: refused, as libpng refuses it (Pillow read it as gray)
    files["missing_plte.png"] = png(4, 4, 8, 3, zlib.compress(b"\0" * 20))
    bad.append("missing_plte.png")
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return good, bad


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_batch_with_hostile_files_writes_every_good_one(tmp_path, measured, jobs):
    good, bad = hostile_folder(tmp_path / "in")
    r = measured("pool", "in", "-m", "max", "-s", "2", "-o", "out/", "--jobs", jobs, "--json", "-q", timeout=180)
    no_traceback(r)
    assert r.code == 1, r
    report = json.loads(r.stdout)
    rows = {os.path.basename(row["input"]): row for row in report["files"]}
    assert set(rows) == set(good) | set(bad)
    assert "no PLTE chunk" in rows["missing_plte.png"]["error"]
    for name in good:
        assert rows[name]["error"] is None, rows[name]
        assert (tmp_path / rows[name]["output"]).exists()
    for name in bad:
        assert rows[name]["error"] and rows[name]["error"].startswith(os.path.join("in", name)), rows[name]
        assert "internal error" not in rows[name]["error"]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("poolcli: error:")]
    assert len(errors) == len(bad) and all(len(ln) < 400 for ln in errors), r.stderr
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".poolcli-")]
    assert r.peak_mb < PEAK_MB


def test_nan_and_inf_npy_data_is_processed(tmp_path, cli):
    arr = np.array([[np.nan, 1.0, np.inf, -np.inf], [0.0, 2.0, 3.0, 4.0]], np.float32)
    (tmp_path / "nan.npy").write_bytes(npy(arr))
    for kernel in ("sobel", "blur"):
        r = cli("convolve", "nan.npy", "-k", kernel, "-o", f"{kernel}.png", "-q")
        assert r.code == 0, r


def test_signed_and_half_float_tiff_samples_are_read_as_float(tmp_path, cli):
    signed = np.array([[[-1, 0, 1], [-32768, 32767, 5]]], np.int16)
    half = np.array([[[-1.5, 0.25, 65504], [0.5, -2.0, 3.0]]], np.float16)
    (tmp_path / "s.tif").write_bytes(tiff16(signed, sample_format=2))
    (tmp_path / "h.tif").write_bytes(tiff16(half, sample_format=3))
    (tmp_path / "p.tif").write_bytes(tiff16(signed, sample_format=2, predictor=2))
    for name, want in (("s", signed), ("h", half), ("p", signed)):
        r = cli("pool", f"{name}.tif", "-m", "max", "-s", "1", "-o", f"{name}.npy", "-q")
        assert r.code == 0, r
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.npy"), want.astype(np.float32))


# ------------------------------------------------------------------ options and kernels


@pytest.mark.parametrize(
    "args,needle",
    [
        (["convolve", "-k", "sobel", "--stride", "99999999999999999999"], "--stride"),
        (["convolve", "-k", "sobel", "--dilation", "99999999999999999999"], "--dilation"),
        (["convolve", "-k", "sobel", "--dilation", "100000"], "--dilation"),
        (["pool", "-m", "max", "-s", "2", "--stride", "99999999999999999999"], "--stride"),
        (["pool", "-m", "max", "-s", "99999999999999999999"], "--size"),
        (["pool", "-m", "max", "-s", "2", "--dilation", "99999999999999999999"], "--dilation"),
        (["pool", "-m", "max", "--to", "1x99999999999999999999"], "--to"),
        (["pool", "-m", "max", "--to", "100000x100000"], "--to"),
        (["pool", "-m", "avg", "-s", "2", "--divisor", "99999999999999999999"], "--divisor"),
        (["pool", "-m", "stochastic", "-s", "2", "--seed", "99999999999999999999"], "--seed"),
        (["pool", "-m", "lp", "-s", "2", "--p", "nan"], "--p"),
        (["pool", "-m", "lp", "-s", "2", "--p", "-1"], "--p"),
        (["convolve", "-k", "gaussian", "--sigma", "1e6"], "--sigma"),
        (["convolve", "-k", "gaussian", "--sigma", "1e300"], "--sigma"),
        (["convolve", "-k", "gaussian", "--sigma", "nan"], "--sigma"),
        (["convolve", "-k", "gaussian", "--sigma", "0"], "--sigma"),
        (["convolve", "-k", "box", "--size", "100000"], "--size"),
        (["convolve", "-k", "box", "--size", "1000001"], "--size"),
        (["convolve", "-k", "box", "--size", "0"], "--size"),
        (["convolve", "-k", "sharpen", "-b", "constant", "--cval", "1e308"], "--cval"),
        (["convolve", "-k", "sharpen", "-b", "constant", "--cval", "inf"], "--cval"),
        (["convolve", "-k", "sharpen", "--threads", "0"], "--threads"),
        (["pool", "-m", "max", "-s", "2", "--jobs", "0"], "--jobs"),
        (["pool", "-m", "max", "-s", "2", "--jobs", "-1"], "--jobs"),
        (["pool", "-m", "max", "-s", "2", "--compress-level", "10"], "--compress-level"),
        (["pool", "-m", "max", "-s", "2", "--max-pixels", "-1"], "--max-pixels"),
        (["convolve", "-k", "sobel", "--stride", "abc"], "--stride"),
        (["convolve", "-k", "sobel", "--no-such-option"], "--no-such-option"),
        (["kernels", "gaussian", "--sigma", "1e6"], "--sigma"),
        (["kernels", "box", "--size", "100000"], "--size"),
    ],
)
def test_bad_numbers_are_one_line_usage_errors(cli, tmp_path, args, needle):
    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    r = cli(*args, *(["a.png"] if args[0] != "kernels" else []))
    one_line_error(r, needle)
    assert r.code == 2, r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name != "a.png"]


@pytest.mark.parametrize("sigma", ["1e-200", "1e-160", "1e-5"])
def test_tiny_sigma_is_the_identity(cli, tmp_path, sigma):
    img = photo()
    (tmp_path / "a.png").write_bytes(encoded(img, "PNG"))
    r = cli("convolve", "a.png", "-k", "gaussian", "--sigma", sigma, "-o", "g.npy", "-q")
    assert r.code == 0, r
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), img.astype(np.float32))
    r = cli("kernels", "gaussian", "--sigma", sigma)
    assert r.code == 0 and "Traceback" not in r.stderr, r


def test_huge_text_kernel_is_refused_quickly(cli, tmp_path, measured):
    row = " ".join(["1"] * 4000)
    (tmp_path / "k.txt").write_text("\n".join([row] * 4000))
    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    r = measured("convolve", "a.png", "-k", "@k.txt")
    one_line_error(r, "@k.txt", "row 1", "1025")
    assert r.code == 2 and r.seconds < 30


@pytest.mark.parametrize(
    "text,row", [("1 2\n3 x\n", "row 2"), ("1 2\n# c\nnan 1\n", "row 2 (line 3)"), ("inf", "row 1")]
)
def test_kernel_file_errors_name_the_row(cli, tmp_path, text, row):
    (tmp_path / "k.txt").write_text(text)
    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    one_line_error(cli("convolve", "a.png", "-k", "@k.txt"), "@k.txt", row)


# ------------------------------------------------------------------ nothing overwritten, nothing lost


def test_an_output_that_is_another_input_is_refused(cli, tmp_path):
    a, b = encoded(photo(seed=1), "PNG"), encoded(photo(seed=2), "PNG")
    (tmp_path / "a.png").write_bytes(a)
    (tmp_path / "a_max2.png").write_bytes(b)
    r = cli("pool", "a.png", "a_max2.png", "-m", "max", "-s", "2", "-o", ".")
    one_line_error(r, "a.png", "a_max2.png", "never overwritten")
    assert r.code == 2
    assert (tmp_path / "a_max2.png").read_bytes() == b
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_max2.png"]


def test_two_inputs_with_one_output_are_refused_naming_both(cli, tmp_path):
    for d in ("d1", "d2"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.png").write_bytes(encoded(photo(), "PNG"))
    r = cli("pool", "d1/x.png", "d2/x.png", "-m", "max", "-s", "2", "-o", "out/")
    one_line_error(r, "d1/x.png", "d2/x.png")
    assert r.code == 2
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_fifo_device_and_symlink_inputs(cli, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.png").write_bytes(encoded(photo(), "PNG"))
    os.mkfifo(tmp_path / "in" / "b.png")
    os.symlink(tmp_path / "in" / "good.png", tmp_path / "in" / "link.png")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "in" / "dangling.png")
    r = cli("pool", "in", "-m", "max", "-s", "2", "-o", "out/", "--json", "-q", timeout=60)
    assert r.code == 1, r
    rows = {os.path.basename(row["input"]): row for row in r.json["files"]}
    assert "FIFO" in rows["b.png"]["error"]
    assert rows["good.png"]["error"] is None and rows["link.png"]["error"] is None
    assert "no such file" in rows["dangling.png"]["error"]
    r = cli("pool", "in/b.png", "-m", "max", "-s", "2", "-o", "o.png", timeout=60)
    one_line_error(r, "in/b.png", "FIFO")
    r = cli("pool", "/dev/zero", "-m", "max", "-s", "2", "-o", "z.png", timeout=60)
    one_line_error(r, "/dev/zero", "character device")


def test_a_device_on_standard_input_is_refused(tmp_path):
    import subprocess

    from conftest import poolcli_command

    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run(poolcli_command() + ["pool", "-m", "max", "-s", "2", "-o", str(tmp_path / "z.png")],
                              stdin=zero, capture_output=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1 and b"standard input" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(cli, tmp_path):
    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", stat.S_IRUSR | stat.S_IXUSR)
    one_line_error(cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "ro/x.png"), "ro")


def test_unreadable_input_fails_alone(cli, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(encoded(photo(), "PNG"))
    (tmp_path / "in" / "b.png").write_bytes(encoded(photo(), "PNG"))
    os.chmod(tmp_path / "in" / "b.png", 0)
    r = cli("pool", "in", "-m", "max", "-s", "2", "-o", "out/", "-q")
    no_traceback(r)
    assert (tmp_path / "out" / "a_max2.png").exists()
    if os.geteuid() != 0:
        assert r.code == 1 and "permission denied" in r.stderr


def test_a_bad_png_chunk_crc_fixed_mutation_is_one_line(cli, tmp_path):
    """An IHDR rewritten with a valid CRC but a width the data cannot fill."""
    chunks = png_chunks(encoded(photo(), "PNG"))
    ihdr = bytearray(chunks[0][1])
    ihdr[0:4] = struct.pack(">I", 5000)
    chunks[0] = (b"IHDR", bytes(ihdr))
    (tmp_path / "wide.png").write_bytes(png_from_chunks(chunks))
    r = cli("pool", "wide.png", "-m", "max", "-s", "2", "-o", "o.png")
    one_line_error(r, "wide.png")
    assert r.code == 1
