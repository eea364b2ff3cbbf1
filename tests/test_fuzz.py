"""A seeded mutation fuzzer over every input format poolcli reads (issue #9).

Valid seed files (PNG through poolcli's codec and through Pillow, 16-bit PNG, JPEG, TIFF 8 and
16-bit, BMP, WebP, .npy) are mutated: random byte flips, truncations, insertions, repeated
slices, and, for PNG, chunk bodies rewritten with their CRC fixed (so the mutation gets past
the checksum to the decoder), and for TIFF, directory entries pointed at odd counts and
offsets.  All cases run through real ``poolcli`` batches, which must give each file an outcome
(written, or one line naming it), no traceback, no exit 70, no hang, bounded memory and no
stray temporary files; streamed (``--stream``), each file must get the outcome it gets read
whole.

``POOLCLI_FUZZ_CASES`` (default 300) sets the number of cases, ``POOLCLI_FUZZ_SEED`` the seed.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from hostile import encoded, npy, photo, png_chunks, png_from_chunks, tiff16

CASES = int(os.environ.get("POOLCLI_FUZZ_CASES", "300"))
SEED = int(os.environ.get("POOLCLI_FUZZ_SEED", "20261130"))
INTERESTING = [0, 1, 2, 3, 7, 8, 15, 16, 255, 256, 4096, 65535, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def seeds() -> dict[str, bytes]:
    rgb, gray = photo(24, 32), photo(24, 32, channels=1)
    rgba = np.concatenate([rgb, gray[:, :, None]], axis=2)
    return {
        "rgb.png": encoded(rgb, "PNG"), "rgba.png": encoded(rgba, "PNG"),
        "gray16.png": encoded(photo(24, 32, channels=1, dtype=np.uint16), "PNG"),
        "palette.png": encoded(gray // 32, "PNG"), "interlaced.png": encoded(rgb, "PNG", interlace=1),
        "photo.jpg": encoded(rgb, "JPEG"), "photo.tif": encoded(rgb, "TIFF"),
        "deep.tif": tiff16(photo(24, 32, dtype=np.uint16), rows_per_strip=5, predictor=2),
        "photo.bmp": encoded(rgb, "BMP"), "photo.webp": encoded(rgb, "WEBP"),
        "data.npy": npy(rgb.astype(np.float32)),
        **new_surfaces(gray),
    }  # fmt: skip


def new_surfaces(gray: np.ndarray) -> dict[str, bytes]:
    """Seeds for what issue #20 added: 1/2/4-bit grey and palette PNGs with tRNS (poolcli's own
    decoder now), an APNG, planar, tiled and multi-page TIFFs."""
    import io

    import tifffile

    from pngmaker import make_png

    rng = np.random.default_rng(1)
    out = {
        "bits1.png": make_png((gray[:, :, None] > 128).astype(np.uint8), 0, 1, trns=b"\0\1"),
        "grey4.png": make_png(gray[:, :, None] // 16, 0, 4, interlace=True),
        "pal2.png": make_png(gray[:, :, None] // 64, 3, 2, palette=rng.integers(0, 256, (4, 3)), trns=b"\x10\x80"),
        "anim.png": make_png(gray[:, :, None], 0, 8, frames=3),
    }
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=2)
    for name, kw in (("planar.tif", dict(planarconfig="separate", photometric="rgb")),
                     ("tiled.tif", dict(tile=(16, 16), photometric="rgb", compression="zlib"))):  # fmt: skip
        buf = io.BytesIO()
        data = np.ascontiguousarray(rgb.transpose(2, 0, 1)) if "planar" in name else rgb
        tifffile.imwrite(buf, data, **kw)
        out[name] = buf.getvalue()
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as w:
        for k in range(3):
            w.write(gray // (k + 1))
    out["pages.tif"] = buf.getvalue()
    return out


def mutate(data: bytes, name: str, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    kind = rng.integers(0, 6)
    if kind == 0:  # flip a few bytes
        for _ in range(rng.integers(1, 9)):
            buf[rng.integers(0, len(buf))] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # truncate
        del buf[rng.integers(0, len(buf)) :]
    elif kind == 2:  # insert random bytes
        at = rng.integers(0, len(buf))
        buf[at:at] = rng.integers(0, 256, rng.integers(1, 64), dtype=np.uint8).tobytes()
    elif kind == 3:  # repeat a slice
        a = rng.integers(0, len(buf))
        b = min(len(buf), a + rng.integers(1, 512))
        buf[b:b] = buf[a:b] * int(rng.integers(1, 4))
    elif kind == 4 and name.endswith(".png") and png_chunks(data):  # a chunk body rewritten, CRC fixed
        chunks = png_chunks(data)
        k = rng.integers(0, len(chunks))
        kind_, body = chunks[k]
        body = bytearray(body)
        if body:
            at = rng.integers(0, max(1, len(body) - 3))
            if rng.random() < 0.5 and len(body) >= at + 4:
                body[at : at + 4] = struct.pack(">I", INTERESTING[rng.integers(0, len(INTERESTING))])
            else:
                body[at] = rng.integers(0, 256)
        chunks[k] = (kind_, bytes(body))
        return png_from_chunks(chunks)
    elif kind == 5 and name.endswith(".tif") and len(data) >= 8:  # a directory entry made odd
        end = "<" if data[:2] == b"II" else ">"
        (ifd,) = struct.unpack(end + "I", data[4:8])
        count = struct.unpack(end + "H", data[ifd : ifd + 2])[0] if ifd + 2 <= len(data) else 1
        entry = ifd + 2 + 12 * int(rng.integers(0, max(1, count)))
        field = entry + (4 if rng.random() < 0.5 else 8)
        if field + 4 <= len(buf):
            buf[field : field + 4] = struct.pack(end + "I", INTERESTING[rng.integers(0, len(INTERESTING))])
    else:
        buf[rng.integers(0, len(buf))] = rng.integers(0, 256)
    return bytes(buf)


def fuzz_folder(folder, cases: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    corpus = seeds()
    names = sorted(corpus)
    folder.mkdir()
    written = []
    for i in range(cases):
        base = names[i % len(names)]
        data = corpus[base]
        for _ in range(rng.integers(1, 3)):  # one or two mutations on top of each other
            if data:
                data = mutate(data, base, rng)
        name = f"case{i:04d}_{base}"
        (folder / name).write_bytes(data)
        written.append(name)
    return written


def check_batch(r, tmp_path, names: list[str], out: str) -> None:
    assert "Traceback" not in r.stderr and r.code in (0, 1), r
    report = json.loads(r.stdout)
    rows = {os.path.basename(row["input"]): row for row in report["files"]}
    assert set(rows) == set(names)
    for name, row in rows.items():
        assert "internal error" not in (row["error"] or ""), row
        assert row["error"] is None or row["error"].startswith(os.path.join("fuzz", name)), row
        if row["error"] is None and not row["skipped"]:
            assert (tmp_path / row["output"]).stat().st_size > 0
    assert not [p for p in (tmp_path / out).iterdir() if p.name.startswith(".poolcli-")]


def test_mutated_files_fail_alone_in_a_batch(tmp_path, measured):
    names = fuzz_folder(tmp_path / "fuzz", CASES, SEED)
    common = ["--json", "-q", "--max-pixels", "4000000"]
    r = measured("pool", "fuzz", "-m", "max", "-s", "2", "-o", "pooled/", "--jobs", "2", *common, timeout=300)
    check_batch(r, tmp_path, names, "pooled")
    assert r.peak_mb < 600, r.peak_mb
    r = measured("convolve", "fuzz", "-k", "sobel", "-o", "edges/", "--jobs", "1", "--gray", *common, timeout=300)
    check_batch(r, tmp_path, names, "edges")
    assert r.peak_mb < 600, r.peak_mb


def test_mutated_files_stream_as_they_read_whole(tmp_path, measured):
    """Streamed, every mutated file gets the outcome it gets read whole: written with the same
    pixels (PNG and .npy, which both paths decode with the same code), or failed in one line."""
    from poolcli import io as pio

    names = fuzz_folder(tmp_path / "fuzz", CASES // 2, SEED + 1)
    common = ["--json", "-q", "--max-pixels", "4000000", "--jobs", "2"]
    runs = {}
    for flag, out in (("--stream", "streamed"), ("--no-stream", "whole")):
        r = measured("pool", "fuzz", "-m", "max", "-s", "2", "-o", f"{out}/", flag, *common, timeout=300)
        check_batch(r, tmp_path, names, out)
        assert r.peak_mb < 600, r.peak_mb
        runs[out] = {os.path.basename(row["input"]): row for row in json.loads(r.stdout)["files"]}
    assert sum(row["streamed"] for row in runs["streamed"].values()) > len(names) // 4
    assert not any(row["streamed"] for row in runs["whole"].values())
    for name in names:
        a, b = runs["streamed"][name], runs["whole"][name]
        if name.endswith((".png", ".npy")):
            assert (a["error"] is None) == (b["error"] is None), (name, a["error"], b["error"])
            if a["error"] is None:
                pa, pb = (pio.decode((tmp_path / row["output"]).read_bytes(), name).pixels for row in (a, b))
                assert np.array_equal(pa, pb), name


# ------------------------------------------------------------------ pipeline strings and explain options

PIPELINE_TOKENS = ["conv", "sobel", "gaussian", "sigma=2", "sigma=-1", "sigma=1e300", "max", "avg", "2", "0", "-3",
                   "3x2", "stride=2", "padding=1", "padding=9", "dilation=0", "relu", "scale", "1e300", "1e30", "nan",
                   "inf", "clip", "0", "1", "global", "adaptive", "4x3", "|", "||", "'", '"', "boundary=wrap",
                   "conv2d", "@nofile.npy", "gray", "normalize", "k=v", "=", "leaky-relu", "0.1", "sobel-x,sobel-y",
                   "threshold", "value=1", "lp", "p=0", "p=3", "seed=5", "stochastic", "ceil_mode=true", "é", "\\0"]


def test_random_pipeline_strings_parse_or_give_one_usage_error():
    from poolcli.errors import UsageError
    from poolcli.pipeline import Pipeline

    rng = np.random.default_rng(SEED)
    ok = 0
    for _ in range(CASES * 10):
        text = " ".join(PIPELINE_TOKENS[i] for i in rng.integers(0, len(PIPELINE_TOKENS), rng.integers(1, 9)))
        try:
            pipe = Pipeline.parse(text)
        except UsageError as exc:
            assert "\n" not in str(exc) and str(exc), text
            continue
        ok += 1
        assert pipe.tag and len(pipe.tag.encode()) < 255 or len(pipe.stages) > 40, text
        for stage in pipe.stages:  # numbers within float32: no stage is handed inf
            if isinstance(stage.spec, dict):
                assert all(abs(v) <= 3.4028234663852886e38 for v in stage.spec.values() if isinstance(v, float))
    assert ok > CASES // 30  # the generator reaches valid pipelines too


EXPLAIN_OPTIONS = [["-k", "sobel"], ["-k", "gaussian", "--sigma", "30"], ["-k", "box", "--size", "41"],
                   ["-m", "max", "-s", "3"], ["-m", "avg", "--global"], ["-m", "lp", "-s", "2", "--p", "0"],
                   ["-m", "max", "--to", "3x2"], ["--stride", "2"], ["--dilation", "3"], ["--padding", "1"],
                   ["--at", "0,0"], ["--at", "9999,0"], ["--at", "-1,2"], ["--at", "x"], ["--channel", "7"],
                   ["-b", "valid"], ["-b", "constant", "--cval", "1e40"], ["--json"], ["--png", "e.png"],
                   ["--ceil-mode"], ["--demo"], ["-k", "@missing.txt"], ["--png", "."]]  # fmt: skip


@pytest.mark.parametrize("case", range(24))
def test_random_explain_options_exit_cleanly(cli, tmp_path, case):
    from PIL import Image

    Image.fromarray(photo(40, 50)).save(tmp_path / "p.png")
    rng = np.random.default_rng(SEED + case)
    args = ["p.png"] if case % 6 else []
    for i in rng.choice(len(EXPLAIN_OPTIONS), int(rng.integers(1, 5)), replace=False):
        args += EXPLAIN_OPTIONS[i]
    r = cli("explain", *args, timeout=120)
    assert "Traceback" not in r.stderr and r.code in (0, 1, 2), (args, r)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("poolcli: error:")]
    assert (r.code == 0) == (not errors), (args, r)
    assert len(errors) <= 1, (args, r)
    if (tmp_path / "e.png").exists():
        assert max(Image.open(tmp_path / "e.png").size) <= 4096


# ------------------------------------------------------------------ kernel files and the files a run writes


def test_mutated_kernel_files_load_or_give_one_usage_error(tmp_path):
    import io

    from poolcli.errors import UsageError
    from poolcli.kernels import load_kernel_file

    buf = io.BytesIO()
    np.save(buf, np.arange(9, dtype=np.float64).reshape(3, 3))
    corpus = {"k.npy": buf.getvalue(), "k.txt": b"1 2 1\n2 4 2\n1 2 1\n", "k.csv": b"0,-1,0\n-1,5,-1\n0,-1,0\n"}
    rng = np.random.default_rng(SEED + 7)
    loaded = 0
    for i in range(CASES):
        base = sorted(corpus)[i % len(corpus)]
        data = mutate(corpus[base], base, rng)
        path = tmp_path / f"{i}_{base}"
        path.write_bytes(data)
        try:
            matrix = load_kernel_file(str(path))
        except UsageError as exc:
            assert str(exc).startswith(f"@{path}") and "\n" not in str(exc), exc
            continue
        loaded += 1
        assert matrix.ndim == 2 and matrix.dtype == np.float64 and np.isfinite(matrix).all()
    assert loaded > 0


@pytest.mark.parametrize("case", range(12))
def test_random_output_targets_never_touch_an_input(cli, tmp_path, case):
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.fromarray(photo(20, 24, seed=ord(name[0]))).save(tmp_path / name)
    before = {name: (tmp_path / name).read_bytes() for name in ("a.png", "b.png")}
    rng = np.random.default_rng(SEED + 100 + case)
    targets = ["a.png", "b.png", "o.png", "-", "m.png", "out/", "r.json"]
    inputs = [str(x) for x in rng.choice(["a.png", "b.png"], int(rng.integers(1, 3)), replace=False)]
    args = ["run", "conv sobel-x,sobel-y | max 2", *inputs]
    for flag in ("-o", "--montage", "--report"):
        if rng.random() < 0.7:
            args += [flag, str(rng.choice(targets))]
    if rng.random() < 0.5:
        args.append("--save-stages")
    r = cli(*args, "--tag", "t", "-q", timeout=120)
    assert "Traceback" not in r.stderr and r.code in (0, 1, 2), (args, r)
    for name in inputs:  # an input of the run is never overwritten (other files may be, as outputs)
        assert (tmp_path / name).read_bytes() == before[name], (args, name)
    if r.code == 2:  # refused: nothing written
        assert not [p for p in tmp_path.iterdir() if p.name not in ("a.png", "b.png")], (args, r)


# ------------------------------------------------------------------ scheduler addresses and terminals

ADDRESS_PARTS = ["tcp://", "tls://", "gopher://", "", "127.0.0.1", "[::1", "localhost", "::", "not a url", ":",
                 ":abc", ":-1", ":99999", ":1", "/x", "?q=1", "%", " "]  # fmt: skip


@pytest.mark.parametrize("case", range(6))
def test_random_scheduler_addresses_are_one_line(cli, tmp_path, case):
    pytest.importorskip("distributed")
    from PIL import Image

    Image.fromarray(photo(20, 24)).save(tmp_path / "a.png")
    rng = np.random.default_rng(SEED + 200 + case)
    address = "".join(ADDRESS_PARTS[i] for i in rng.integers(0, len(ADDRESS_PARTS), int(rng.integers(1, 5))))
    if not address.strip():
        address = "tcp://:abc"
    r = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "o.png", "--scheduler", address, timeout=90)
    assert "Traceback" not in r.stderr and r.code == 2, (address, r)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("poolcli: error:")]
    assert len(errors) == 1, (address, r)


@pytest.mark.parametrize("case", range(6))
def test_random_terminal_encodings_never_fail(cli, tmp_path, case):
    from PIL import Image

    Image.fromarray(photo(20, 24)).save(tmp_path / "a.png")
    rng = np.random.default_rng(SEED + 300 + case)
    encoding = str(rng.choice(["ascii", "latin-1", "cp1252", "cp437", "koi8-r", "utf-16"]))
    commands = [["kernels"], ["kernels", "gaussian"], ["explain", "--demo"], ["run", "--help"],
                ["explain", "a.png", "-m", "avg", "--global"], ["pool", "a.png", "-m", "max", "-s", "2", "-o", "o.png"],
                ["convolve", "a.png", "-k", "sobel", "--dry-run", "-o", "o.png"]]  # fmt: skip
    args = commands[int(rng.integers(0, len(commands)))]
    r = cli(*args, env={"PYTHONIOENCODING": encoding})
    assert r.code == 0 and "Traceback" not in r.stderr, (encoding, args, r)
