"""Teaching views (contract §9, issue #14): explain's numbers equal the API's result and an
independent NumPy reading of the window; --demo is the textbook example; montages lay out one
panel per stage with signed maps on a diverging scale."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import poolcli
from poolcli import api, teach

from test_cli import one_line_error

NUMPY_PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap", "constant": "constant"}


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 5), kw=st.integers(1, 5),
    boundary=st.sampled_from(["reflect", "mirror", "nearest", "wrap", "constant", "valid"]),
    stride=st.integers(1, 3), dilation=st.integers(1, 3), seed=st.integers(0, 2**16), data=st.data(),
)  # fmt: skip
def test_explain_convolution_matches_the_api_and_numpy(h, w, kh, kw, boundary, stride, dilation, seed, data):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 2)).astype(np.uint8)
    kernel = rng.integers(-3, 4, (kh, kw)).astype(np.float64)
    if boundary == "mirror" and (h == 1 or w == 1):
        boundary = "reflect"
    try:
        spec = api.convolve_spec(kernel, boundary=boundary, cval=7.0, stride=stride, dilation=dilation)
        full = poolcli.convolve(img, kernel, boundary=boundary, cval=7.0, stride=stride, dilation=dilation)
    except ValueError:  # smaller than the kernel's reach with 'valid'
        return
    oh, ow = full.shape[:2]
    x, y, c = data.draw(st.integers(0, ow - 1)), data.draw(st.integers(0, oh - 1)), data.draw(st.integers(0, 1))
    info = teach.explain_convolution(img, spec, (x, y), c)
    assert info["output"] == float(full[y, x, c])
    assert np.isclose(np.sum(info["products"]), info["sum"])
    assert np.isclose(info["sum"], info["output"], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(np.array(info["products"]), kernel * np.array(info["input_patch"]))
    # the patch, read independently from a padded copy of the image
    if boundary == "valid":
        patch = img[y * stride : y * stride + (kh - 1) * dilation + 1 : dilation,
                    x * stride : x * stride + (kw - 1) * dilation + 1 : dilation, c]  # fmt: skip
    else:
        r, q = (kh // 2) * dilation, (kw // 2) * dilation
        extra = {"constant_values": 7} if boundary == "constant" else {}
        padded = np.pad(img[:, :, c].astype(np.float64), ((r, (kh - 1) * dilation - r), (q, (kw - 1) * dilation - q)),
                        mode=NUMPY_PAD[boundary], **extra)  # fmt: skip
        cy, cx = y * stride, x * stride
        patch = padded[cy : cy + (kh - 1) * dilation + 1 : dilation, cx : cx + (kw - 1) * dilation + 1 : dilation]
    np.testing.assert_array_equal(np.array(info["input_patch"]), patch)


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(2, 12), w=st.integers(2, 12), k=st.integers(1, 4), stride=st.integers(1, 3),
    pad=st.integers(0, 2), dilation=st.integers(1, 2), ceil=st.booleans(), cip=st.booleans(),
    mode=st.sampled_from(["max", "avg", "min", "lp", "median", "stochastic"]), seed=st.integers(0, 2**16),
    data=st.data(),
)  # fmt: skip
def test_explain_pooling_matches_the_api(h, w, k, stride, pad, dilation, ceil, cip, mode, seed, data):
    rng = np.random.default_rng(seed)
    img = rng.integers(1, 256, (h, w)).astype(np.float32)
    try:
        spec = api.pool_spec(mode, k, stride=stride, padding=min(pad, k // 2), dilation=dilation, ceil_mode=ceil,
                             count_include_pad=cip, seed=3)  # fmt: skip
        full = api.apply_pool(img, spec)
    except ValueError:
        return
    oh, ow = full.shape[:2]
    x, y = data.draw(st.integers(0, ow - 1)), data.draw(st.integers(0, oh - 1))
    info = teach.explain_pooling(img, spec, (x, y))
    assert info["output"] == float(full[y, x]) and info["kernel"] is None and info["products"] is None
    cells = info["window"]["cells"]
    for r, q, v in cells:
        assert img[r, q] == v
    values = [v for *_, v in cells]
    if mode == "max":
        assert info["output"] == max(values)
    if mode == "min":
        assert info["output"] == min(values)
    if mode in ("max", "min", "median", "stochastic"):
        r, q = info["window"]["chosen"]
        assert img[r, q] == info["output"]
    if mode == "avg":
        assert np.isclose(info["sum"] / info["window"]["divisor"], info["output"], rtol=1e-6)


def test_explain_global_and_adaptive_windows():
    img = np.arange(30, dtype=np.float32).reshape(5, 6)
    info = teach.explain_pooling(img, api.pool_spec("avg", output_size=(2, 3)), (2, 1))
    assert info["window"]["rows"] == [2, 3, 4] and info["window"]["cols"] == [4, 5]
    assert info["output"] == pytest.approx(np.mean(img[2:5, 4:6]))


def test_demo_is_the_hand_worked_example():
    figures = teach.demo()
    assert figures[0]["input"] == [[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]]
    assert figures[0]["result"] == [[4, 8], [12, 16]]
    assert [s["window"]["chosen"] for s in figures[0]["steps"]] == [[1, 1], [1, 3], [3, 1], [3, 3]]
    assert figures[1]["result"] == [[2.5, 6.5], [10.5, 14.5]]
    assert [(s["sum"], s["window"]["divisor"]) for s in figures[1]["steps"]] == [(10, 4), (26, 4), (42, 4), (58, 4)]
    blur = figures[2]["steps"][0]
    # (20 + 2·20 + 200 + 2·20 + 4·200 + 2·200 + 200 + 2·200 + 200) / 16 = 2300 / 16: the edge softened
    assert blur["input_patch"] == [[20, 20, 200], [20, 200, 200], [200, 200, 200]]
    assert blur["sum"] == 143.75 and blur["output"] == 143.75
    assert figures[2]["result"] != [row[1:4] for row in figures[2]["input"][1:4]]  # the blur changes the values


def test_cli_explain(cli, samples):
    r = cli("explain", samples / "camera.png", "-k", "sobel-x", "--at", "0,0", "-b", "constant", "--json")
    assert r.code == 0, r
    info = r.json
    src = np.asarray(Image.open(samples / "camera.png")).astype(np.float64)
    assert info["output"] == float(poolcli.convolve(src, "sobel-x", boundary="constant")[0, 0])
    assert info["padding"][0] == [True, True, True] and info["input_patch"][1][1] == src[0, 0]
    r = cli("explain", samples / "chelsea.png", "-m", "max", "-s", "3", "--stride", "2", "--padding", "1",
            "--at", "4,5", "--channel", "2", "--png", samples / "ex.png")  # fmt: skip
    assert r.code == 0, r
    assert "output = " in r.stdout.decode() and Image.open(samples / "ex.png").size[0] > 300
    assert cli("explain", "--demo").code == 0


@pytest.mark.parametrize(
    "args,needle",
    [
        (["-k", "sobel", "--at", "600,0"], "--at 600,0 is outside the output"),
        (["-k", "sobel"], "--at X,Y is required"),
        (["-k", "sobel", "-m", "max", "--at", "0,0"], "give -k KERNEL"),
        (["-m", "max", "--at", "0,0"], "--size is required"),
        (["-k", "sobel", "--at", "0,0", "--channel", "3"], "--channel must be from 0 to 0"),
        (["-k", "sobel", "--at", "a,b"], "--at"),
    ],
)
def test_cli_explain_errors(cli, samples, args, needle):
    r = cli("explain", samples / "camera.png", *args)
    one_line_error(r, needle)
    assert r.code == 2


# ------------------------------------------------------------------ montages


def test_montage_has_one_panel_per_stage_at_true_scale():
    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3)).astype(np.uint8)
    panels = [("input", img, 3)]
    pipe = poolcli.Pipeline.parse("gaussian sigma=1 | sobel-x | relu | max 2 | conv sobel-x,sobel-y")
    pipe.apply(img, 3, lambda i, st_, a, c, s: panels.append((f"{i}. {st_.text}", a, c, st_.bank)))
    picture, layout = teach.montage(panels)
    assert [p["title"].split("  ")[0] for p in layout][:2] == ["input", "1. gaussian sigma=1"]
    assert len(layout) == 6
    assert (layout[4]["width"], layout[4]["height"]) == (30, 20)  # pooled: half the input, as drawn
    assert (
        layout[1]["scale"] == "rgb" and layout[2]["scale"] == "diverging" and layout[2]["low"] < 0 < layout[2]["high"]
    )
    assert layout[3]["scale"] in ("rgb", "gray") and layout[3]["low"] >= 0  # after relu: nothing negative
    assert layout[5]["maps"] == 6  # a bank of 2 kernels over 3 channels: a grid of 6 maps
    assert picture.width >= sum(p["width"] for p in layout)


def test_cli_montage(cli, samples):
    r = cli("run", "gaussian sigma=2 | sobel-x | max 2", samples / "camera.png", "--montage", samples / "m.png", "-q")
    assert r.code == 0, r
    m = Image.open(samples / "m.png")
    assert m.width > 512 + 512 + 256 and m.height > 512
    for command in (["convolve", "-k", "sobel"], ["pool", "-m", "max", "-s", "4"]):
        r = cli(*command, samples / "camera.png", "--montage", samples / "m2.png", "-q")
        assert r.code == 0 and (samples / "m2.png").exists(), r
    r = cli("pool", samples, "-m", "max", "-s", "2", "-o", f"{samples / 'out'}/", "--montage", samples / "m3.png")
    one_line_error(r, "--montage draws one input")
