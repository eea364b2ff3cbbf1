"""The NumPy forms of the compiled loops (poolcli.engine.numpy_forms) equal the loops bit for
bit, over random shapes, dtypes, strides, paddings, signed zeros and NaN; and a small command
computed on them imports no Numba."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolcli
from poolcli.engine import numpy_forms, runtime

DTYPES = [np.uint8, np.uint16, np.float32, np.float64]


def both(name, module, *args):
    """(the compiled loop's out, the NumPy form's out) for the same arguments, ``out`` last."""
    import importlib

    out = args[-1]
    a, b = np.zeros_like(out), np.zeros_like(out)
    loop = getattr(importlib.import_module(f"poolcli.engine.{module}"), name)
    runtime.run_compiled(loop, *args[:-1], a)
    getattr(numpy_forms, name)(*args[:-1], b)
    return a, b


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def image(draw, dtype, h, w, c, specials=True):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if np.dtype(dtype).kind == "u":
        img = rng.integers(0, np.iinfo(dtype).max + 1, (h, w, c), dtype=dtype)
    else:
        img = (rng.standard_normal((h, w, c)) * 100).astype(dtype)
        if specials:
            mask = rng.random((h, w, c))
            img[mask < 0.05] = np.nan
            img[(mask > 0.05) & (mask < 0.1)] = 0.0
            img[(mask > 0.1) & (mask < 0.15)] = -0.0
    return img


@st.composite
def pool_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    c = draw(st.sampled_from([1, 2, 3, 4, 5]))
    oh, ow = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    h, w = oh * kh + draw(st.integers(0, kh - 1)), ow * kw + draw(st.integers(0, kw - 1))
    return image(draw, dtype, h, w, c), kh, kw, oh, ow


@settings(max_examples=150, deadline=None)
@given(pool_case(), st.sampled_from([1, -1]))
def test_extreme_blocks(case, sign):
    img, kh, kw, oh, ow = case
    a, b = both("pool_extreme_blocks", "pool", img, kh, kw, sign, 2, np.empty((oh, ow, img.shape[2]), img.dtype))
    same_bits(a, b)


@settings(max_examples=150, deadline=None)
@given(pool_case(), st.booleans())
def test_avg_blocks(case, pixels):
    img, kh, kw, oh, ow = case
    acc = np.zeros(0, np.float32 if img.dtype == np.uint8 else np.float64)
    pixels = pixels and img.dtype == np.uint8
    out = np.empty((oh, ow, img.shape[2]), np.uint8 if pixels else np.float32)
    a, b = both("pool_avg_blocks", "pool", img, kh, kw, 2, acc, 255.0 if pixels else 0.0, out)
    same_bits(a, b)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3, 4, 2]), st.integers(0, 2**32 - 1))
def test_avg2_u8(oh, ow, c, seed):
    img = np.random.default_rng(seed).integers(0, 256, (2 * oh + seed % 2, 2 * ow, c), dtype=np.uint8)
    a, b = both("pool_avg2_u8", "pool", img, 2, np.empty((oh, ow, c), np.uint8))
    same_bits(a, b)


@st.composite
def conv_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    h, w, c = draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.sampled_from([1, 2, 3, 4]))
    img = image(draw, dtype, h, w, c, specials=draw(st.booleans()))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = rng.standard_normal((kh, kw)).astype(np.float64)
    k[rng.random((kh, kw)) < draw(st.sampled_from([0.0, 0.3, 0.7]))] = 0.0
    if draw(st.booleans()):  # rank 1: the separable path
        k = np.outer(rng.standard_normal(kh), rng.standard_normal(kw))
    boundary = draw(st.sampled_from(["constant", "nearest", "mirror", "reflect", "wrap", "valid"]))
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2))
    if boundary == "valid" and (h <= (kh - 1) * dilation or w <= (kw - 1) * dilation):
        boundary = "constant"
    return img, k, boundary, stride, dilation


def engine_results(fn, *args, **kw):
    """fn's result computed by the compiled loops and by the NumPy forms."""
    got = []
    for name in ("numba", "numpy"):
        runtime.use_engine(name)
        try:
            got.append(fn(*args, **kw))
        finally:
            runtime.use_engine("numba")
    return got


@settings(max_examples=200, deadline=None)
@given(conv_case())
def test_convolve_through_the_api(case):
    img, k, boundary, stride, dilation = case
    a, b = engine_results(poolcli.convolve, img, k, boundary=boundary, stride=stride, dilation=dilation, layout="hwc")
    same_bits(a, b)


@settings(max_examples=60, deadline=None)
@given(conv_case(), st.sampled_from(["sobel", "scharr", "prewitt"]))
def test_gradient_pairs_through_the_api(case, kernel):
    img, _, boundary, stride, _ = case
    if boundary == "valid" and min(img.shape[:2]) < 3:
        boundary = "nearest"
    a, b = engine_results(poolcli.convolve, img, kernel, boundary=boundary, stride=stride, layout="hwc")
    same_bits(a, b)


@settings(max_examples=100, deadline=None)
@given(pool_case(), st.sampled_from(["max", "min", "avg"]), st.sampled_from([None, np.uint8]))
def test_pool_through_the_api(case, mode, dtype):
    img, kh, kw, _, _ = case
    if dtype is not None and img.dtype != np.uint8:
        dtype = None
    a, b = engine_results(poolcli.pool, img, mode, size=(kh, kw), dtype=dtype, layout="hwc")
    same_bits(a, b)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 2, 3, 4]), st.sampled_from([0, 1, 2]),
       st.sampled_from([np.uint8, np.uint16]), st.integers(0, 2**32 - 1))  # fmt: skip
def test_quantize_and_range(h, w, c, rule, dtype, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((h, w * c)) * 300).astype(np.float32)
    a[rng.random(a.shape) < 0.1] = np.nan
    a[rng.random(a.shape) < 0.1] = 0.5  # ties: half to even
    ncolour = c - 1 if c in (2, 4) else c
    top = float(np.iinfo(dtype).max)
    x, y = both("quantize", "pixels", a, c, ncolour, rule, -3.25, 0.7, top, np.empty((h, w * c), dtype))
    same_bits(x, y)
    x, y = both("colour_range", "pixels", a, c, ncolour, 3, np.empty((3, 2), np.float64))
    assert (x[:, 0].min(), x[:, 1].max()) == (y[:, 0].min(), y[:, 1].max())


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_luma(dtype):
    rgb = np.random.default_rng(3).integers(0, np.iinfo(dtype).max + 1, (7, 9, 4), dtype=dtype)
    a, b = both("luma", "pixels", rgb, np.empty((7, 9), dtype))
    same_bits(a, b)


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 12), st.integers(1, 20), st.sampled_from([1, 2, 3, 4, 6, 8]), st.integers(0, 2**32 - 1),
       st.sampled_from(["random", "flat", "ramp"]))  # fmt: skip
def test_png_filters(h, w, bpp, seed, content):
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (h, w * bpp), dtype=np.uint8)
    if content == "flat":
        raw[:] = raw[0, 0]
    elif content == "ramp":
        raw = (np.arange(h)[:, None] + np.arange(w * bpp)[None, :]).astype(np.uint8)
    a, b = both("filter_rows", "png", raw, bpp, np.empty((h, w * bpp + 1), np.uint8))
    same_bits(a, b)
    rows = a.copy()
    rows[:, 0] = rng.integers(0, 5, h)  # every filter type, whatever the encoder chose
    rows.flags.writeable = False
    out = np.empty((h, w * bpp), np.uint8)
    if not numpy_forms.unfilter_covers(rows, bpp, out):
        assert bpp > 4  # 16-bit colour: left to the compiled loop
        return
    x, y = both("unfilter", "png", rows, bpp, out)
    same_bits(x, y)
    x, y = both("unfilter", "png", a, bpp, out)  # the encoder's own choice decodes to the raw bytes
    assert x.tobytes() == y.tobytes() == raw.tobytes()


@pytest.fixture
def narrow_bands(monkeypatch):
    """Bands of a few rows, so that the forms' band edges fall inside the small test images."""
    monkeypatch.setattr(numpy_forms, "BAND", 40)


def test_band_edges(narrow_bands):
    """Every form worked band by band equals the loop: filters look one row up across a band's
    edge; convolution bands read their own padded rows; pooling bands their own windows."""
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, (37, 30), dtype=np.uint8)
    same_bits(*both("filter_rows", "png", raw, 3, np.empty((37, 31), np.uint8)))
    img = rng.integers(0, 256, (41, 23, 3), dtype=np.uint8)
    for stride in (1, 2):
        for kernel, sigma in (("sobel", None), ("sharpen", None), ("gaussian", 1.5), (np.arange(25.0).reshape(5, 5), None)):
            same_bits(*engine_results(poolcli.convolve, img, kernel, stride=stride, sigma=sigma))
    for mode in ("max", "avg"):
        same_bits(*engine_results(poolcli.pool, img, mode, size=3, layout="hwc"))
        same_bits(*engine_results(poolcli.pool, img, mode, size=2, dtype=np.uint8, layout="hwc"))
    f = (rng.standard_normal((41, 23 * 4)) * 200).astype(np.float32)
    same_bits(*both("quantize", "pixels", f, 4, 3, 2, -1.0, 0.5, 255.0, np.empty(f.shape, np.uint8)))
    x, y = both("colour_range", "pixels", f, 4, 3, 2, np.empty((2, 2), np.float64))
    assert (x[:, 0].min(), x[:, 1].max()) == (y[:, 0].min(), y[:, 1].max())
    same_bits(*both("luma", "pixels", img, np.empty((41, 23), np.uint8)))
    xp = rng.standard_normal((3, 43, 25)).astype(np.float32)  # a layer, its output rows in bands
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    same_bits(*both("conv2d", "conv2d", xp, w, np.ones(6, np.float32), 1, 1, 1, 1, 1, np.empty((6, 41, 23), np.float32)))


def test_auto_uses_the_loops_once_numba_is_loaded(monkeypatch):
    """auto: NumPy forms only while Numba is not imported, and for calls below NUMPY_BELOW."""
    calls = []
    monkeypatch.setitem(numpy_forms.FORMS, "luma", lambda *a: calls.append(a))
    runtime.use_engine("auto")
    try:
        rgb = np.zeros((4, 4, 3), np.uint8)
        runtime.engine()  # Numba is loaded in this test process
        runtime.run_loop("pixels", "luma", rgb, np.empty((4, 4), np.uint8))
        assert calls == []
        runtime.use_engine("numpy")
        runtime.run_loop("pixels", "luma", rgb, np.empty((4, 4), np.uint8))
        assert len(calls) == 1
    finally:
        runtime.use_engine("numba")


def test_a_bad_engine_name_is_refused(monkeypatch):
    monkeypatch.setenv("POOLCLI_ENGINE", "gpu")
    with pytest.raises(poolcli.errors.UsageError, match="POOLCLI_ENGINE must be one of"):
        runtime.engine_choice()


# Runs the command line in this interpreter and says, as it exits, whether Numba was imported.
PROBE = """
import os, sys
sys.argv = ["poolcli"] + sys.argv[1:]
real = os._exit
def check(code):
    sys.stderr.write("NUMBA=%d\\n" % ("numba" in sys.modules))
    sys.stderr.flush()
    real(code)
os._exit = check
from poolcli.cli import main
main()
"""


@pytest.mark.parametrize("args", [
    ["pool", "{src}", "-m", "max", "-s", "2", "-o", "{dst}"],
    ["pool", "{src}", "-m", "avg", "-s", "2", "-o", "{dst}"],
    ["pool", "{src}", "-m", "max", "-s", "3", "--stride", "2", "--padding", "1", "-o", "{dst}"],
    ["pool", "{src}", "-m", "avg", "--global", "-o", "{dst}"],
    ["convolve", "{src}", "-k", "sobel", "-o", "{dst}"],
    ["run", "gaussian sigma=2 | sobel-x | relu | max 2", "{src}", "-o", "{dst}"],
])  # fmt: skip
def test_a_small_command_imports_no_numba(tmp_path, args):
    """The README's first commands on a small PNG compute on NumPy forms: Numba is not imported,
    and the file written is the one the compiled loops write."""
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(src)
    files = {}
    for engine in ("numpy", "numba"):
        dst = tmp_path / f"{engine}.png"
        argv = [a.format(src=src, dst=dst) for a in args]
        env = dict(os.environ)
        env.pop("POOLCLI_ENGINE", None)
        if engine == "numba":
            env["POOLCLI_ENGINE"] = "numba"
        done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        assert f"NUMBA={int(engine == 'numba')}" in done.stderr
        files[engine] = dst.read_bytes()
    assert files["numpy"] == files["numba"]


@st.composite
def layer_case(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 3))
    per_group = draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    sh, sw, dh, dw = (draw(st.integers(1, 2)) for _ in range(4))
    oh, ow = draw(st.integers(1, 6)), draw(st.integers(1, 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xp = rng.standard_normal((groups * cg, (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1))
    w = rng.standard_normal((groups * per_group, cg, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(groups * per_group).astype(np.float32)
    return xp.astype(np.float32), w, bias, sh, sw, dh, dw, groups, np.empty((groups * per_group, oh, ow), np.float32)


@settings(max_examples=150, deadline=None)
@given(layer_case())
def test_conv2d_layer(case):
    a, b = both("conv2d", "conv2d", *case)
    same_bits(a, b)


def test_the_command_line_chooses_by_the_job_size(tmp_path):
    """A run's inputs are counted from their headers (FIFOs and unreadable files count nothing,
    counting stops once the limit is reached): NumPy forms below runtime.NUMPY_JOB pixels in
    all, the compiled loops from there, and call by call (auto) when the size is unknown."""
    from PIL import Image

    from poolcli.runner.execute import planned_pixels
    from poolcli.runner.records import Task

    Image.new("RGB", (300, 200)).save(tmp_path / "a.png")
    Image.new("L", (100, 50)).save(tmp_path / "b.jpg")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    os.mkfifo(tmp_path / "pipe.png")
    tasks = [Task(str(tmp_path / n), str(tmp_path / f"o{n}"), "png") for n in ("a.png", "b.jpg", "junk.png", "pipe.png")]
    assert planned_pixels(tasks, 10**9) == 300 * 200 + 100 * 50
    assert planned_pixels(tasks, 1000) == 300 * 200  # stopped at the first file past the limit
    try:
        runtime.plan_job(runtime.NUMPY_JOB - 1)
        assert runtime.engine_choice() == "numpy"
        runtime.plan_job(runtime.NUMPY_JOB)
        assert runtime.engine_choice() == "numba"
        runtime.plan_job(None)
        assert runtime.engine_choice() == "auto"
    finally:
        runtime.use_engine("numba")


@st.composite
def general_pool_case(draw):
    """Overlapping, padded, dilated, ceil-mode and adaptive windows: the general loops."""
    dtype = draw(st.sampled_from(DTYPES))
    h, w, c = draw(st.integers(1, 11)), draw(st.integers(1, 11)), draw(st.sampled_from([1, 2, 3, 4]))
    img = image(draw, dtype, h, w, c)
    if draw(st.booleans()):
        return img, dict(output_size=(draw(st.integers(1, h)), draw(st.integers(1, w))))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = draw(st.integers(1, 2))
    kw_ = dict(size=(kh, kw), stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), dilation=dil,
               padding=(draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))), ceil_mode=draw(st.booleans()),
               count_include_pad=draw(st.booleans()))  # fmt: skip
    if draw(st.booleans()):
        kw_["divisor"] = draw(st.integers(1, 9))
    return img, kw_


@settings(max_examples=200, deadline=None)
@given(general_pool_case(), st.sampled_from(["max", "min", "avg"]))
def test_general_pooling_through_the_api(case, mode):
    img, options = case
    if mode != "avg":
        options = {k: v for k, v in options.items() if k not in ("count_include_pad", "divisor")}
    try:
        a, b = engine_results(poolcli.pool, img, mode, layout="hwc", **options)
    except poolcli.errors.PoolcliError:
        return  # a window larger than the padded image: refused alike, nothing to compare
    same_bits(a, b)


def test_lp_pooling_is_left_to_the_loop():
    """lp pooling's x^p is libm's pow in the loop; NumPy's power takes shortcuts (x·x for p = 2),
    so its NumPy form covers average pooling only."""
    args = (np.zeros((2, 2, 1), np.float32), None, None, 1, None, None, 1, 2.0, None, 1.0, None, None)
    assert not numpy_forms.pool_sum_covers(*args)
    assert numpy_forms.pool_sum_covers(*args[:7], 1.0, *args[8:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_signed_zeros_and_nan_are_picked_as_the_loops_pick(dtype):
    """Windows of ±0, ±1 and NaN only: which of two equal zeros a max or min keeps (and so the
    sign bit) depends on the order of the comparisons, which the forms must repeat exactly."""
    rng = np.random.default_rng(11)
    values = np.array([-0.0, 0.0, -1.0, 1.0, np.nan], dtype)
    for _ in range(40):
        h, w, c = rng.integers(1, 9, 3)
        img = values[rng.integers(0, 5 if rng.random() < 0.5 else 3, (h, w, c))]
        for mode in ("max", "min"):
            for options in (dict(size=2), dict(size=3, stride=1, padding=1), dict(size=2, stride=1, dilation=2)):
                if min(h, w) < 2:
                    continue
                try:
                    same_bits(*engine_results(poolcli.pool, img, mode, layout="hwc", **options))
                except poolcli.errors.PoolcliError:
                    pass  # a window larger than the image: refused alike


def test_a_bad_engine_name_is_a_usage_error_on_the_command_line(cli, tmp_path):
    from hostile import encoded, photo

    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    r = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "b.png", env={"POOLCLI_ENGINE": "gpu"})
    assert r.code == 2 and "POOLCLI_ENGINE must be one of auto, numba, numpy" in r.stderr, r
    assert "Traceback" not in r.stderr and not (tmp_path / "b.png").exists()


def test_many_small_files_are_a_batch_for_the_compiled_loops(tmp_path, monkeypatch):
    """Past runtime.NUMPY_FILES inputs a run uses the compiled loops whatever their pixels (the
    forms' per-call overhead, in one process, would exceed Numba's start-up and the workers)."""
    from PIL import Image

    from poolcli.runner.execute import Execution, RunOptions
    from poolcli.runner.records import Task

    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    run = Execution.__new__(Execution)
    run.executor, run.opts = "local", RunOptions()
    monkeypatch.setattr(runtime, "NUMPY_FILES", 3)
    try:
        for count, expected in ((3, "numpy"), (4, "numba")):
            run.planned = type("P", (), {"tasks": [Task(str(tmp_path / "a.png"), f"o{i}.png", "png") for i in range(count)]})
            run.choose_engine()
            assert runtime.engine_choice() == expected
    finally:
        runtime.use_engine("numba")
