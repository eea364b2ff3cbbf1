"""poolcli.conv2d against an independent NumPy reference (always) and torch.nn.Conv2d (when
installed): shapes, strides, paddings ('same' and 'valid' too), dilations, groups, the four
padding modes, dtypes, layouts and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolcli


def pad_reference(x: np.ndarray, pads, mode: str) -> np.ndarray:
    """(C, H, W) padded as torch.nn.functional.pad pads (top, bottom, left, right), written out
    per mode from its definition: zeros; reflect (the edge not repeated); replicate; circular."""
    t, b, left, right = pads
    c, h, w = x.shape

    def source(i: int, n: int) -> int | None:
        if 0 <= i < n:
            return i
        if mode == "zeros":
            return None
        if mode == "replicate":
            return min(max(i, 0), n - 1)
        if mode == "circular":
            return i % n
        while not 0 <= i < n:  # reflect: about the first and last sample
            i = -i if i < 0 else 2 * (n - 1) - i
        return i

    out = np.zeros((c, h + t + b, w + left + right), np.float64)
    for yy in range(-t, h + b):
        for xx in range(-left, w + right):
            sy, sx = source(yy, h), source(xx, w)
            if sy is not None and sx is not None:
                out[:, yy + t, xx + left] = x[:, sy, sx]
    return out


def conv2d_reference(x, w, b, stride, pads, dilation, groups, mode) -> np.ndarray:
    """The layer's definition, one output at a time, in float64 (N, C, H, W)."""
    n, c, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    oh = (h + pads[0] + pads[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pads[2] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, cout, oh, ow))
    per = cout // groups
    for k in range(n):
        xp = pad_reference(x[k].astype(np.float64), pads, mode)
        for o in range(cout):
            g = o // per
            for y in range(oh):
                for xx in range(ow):
                    patch = xp[g * cg : (g + 1) * cg, y * sh : y * sh + dh * (kh - 1) + 1 : dh,
                               xx * sw : xx * sw + dw * (kw - 1) + 1 : dw]  # fmt: skip
                    out[k, o, y, xx] = (patch * w[o]).sum() + (b[o] if b is not None else 0.0)
    return out


def same_pads(k, d):
    total = [di * (ki - 1) for ki, di in zip(k, d)]
    return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)


def close(got, want, terms: int):
    """Equal within float32 rounding: a few ulps of the largest term, per term summed."""
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=scale * 4e-7 * terms + 1e-5)


CASES = [  # (C_in, C_out, k, stride, padding, dilation, groups, mode)
    (3, 8, (3, 3), (1, 1), 1, (1, 1), 1, "zeros"),
    (3, 5, (3, 3), (2, 2), 1, (1, 1), 1, "reflect"),
    (4, 6, (3, 3), (1, 1), "same", (2, 2), 2, "replicate"),
    (6, 6, (3, 3), (1, 1), 1, (1, 1), 6, "circular"),
    (3, 5, (4, 4), (1, 1), "same", (1, 1), 1, "zeros"),
    (2, 3, (2, 3), (2, 1), (0, 1), (1, 2), 1, "zeros"),
    (3, 7, (5, 5), (1, 1), "valid", (1, 1), 1, "zeros"),
    (4, 8, (1, 1), (1, 1), 0, (1, 1), 4, "zeros"),
    (6, 9, (3, 2), (3, 2), (2, 1), (1, 1), 3, "reflect"),
]


@pytest.mark.parametrize("cin,cout,k,stride,padding,dilation,groups,mode", CASES)
def test_against_the_numpy_reference(cin, cout, k, stride, padding, dilation, groups, mode):
    rng = np.random.default_rng(cin * 31 + cout)
    x = (rng.random((2, cin, 11, 13)) * 255).astype(np.float32)
    w = rng.standard_normal((cout, cin // groups, *k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    pads = same_pads(k, dilation) if padding == "same" else (0, 0, 0, 0) if padding == "valid" else \
        (lambda p: (p[0], p[0], p[1], p[1]))(padding if isinstance(padding, tuple) else (padding, padding))  # fmt: skip
    want = conv2d_reference(x, w, b, stride, pads, dilation, groups, mode)
    got = poolcli.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    assert got.dtype == np.float32 and got.shape == want.shape
    close(got, want, cin // groups * k[0] * k[1])


@pytest.mark.parametrize("cin,cout,k,stride,padding,dilation,groups,mode", CASES)
def test_equal_to_torch(cin, cout, k, stride, padding, dilation, groups, mode):
    t = pytest.importorskip("torch")
    rng = np.random.default_rng(cin * 7 + cout)
    x = (rng.random((2, cin, 12, 15)) * 255).astype(np.float32)
    layer = t.nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                        padding_mode=mode)  # fmt: skip
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    with t.no_grad():
        want = layer(t.from_numpy(x)).numpy()
    got = poolcli.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    close(got, want, cin // groups * k[0] * k[1])
    functional = t.nn.functional.conv2d(t.from_numpy(x[0]), layer.weight, layer.bias, stride, padding, dilation,
                                        groups) if mode == "zeros" else None  # fmt: skip
    if functional is not None:  # an unbatched (C, H, W) input, as F.conv2d takes it
        close(poolcli.conv2d(x[0], w, b, stride, padding, dilation, groups), functional.detach().numpy(), 27)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_layers(data):
    """Random shapes, strides, paddings, dilations, groups and modes against the reference."""
    groups = data.draw(st.integers(1, 3))
    cin = groups * data.draw(st.integers(1, 3))
    cout = groups * data.draw(st.integers(1, 3))
    k = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    d = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    mode = data.draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    same = data.draw(st.booleans())
    if same:
        s, pads, padding = (1, 1), same_pads(k, d), "same"
    else:
        s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
        p = (data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3)))
        pads, padding = (p[0], p[0], p[1], p[1]), p
    if mode == "reflect" and (max(pads[:2]) >= h or max(pads[2:]) >= w):
        mode = "zeros"  # torch refuses such reflect padding too
    if mode == "circular" and (max(pads[:2]) > h or max(pads[2:]) > w):
        mode = "zeros"
    oh = (h + pads[0] + pads[1] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + pads[2] + pads[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if oh < 1 or ow < 1:
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    dtype = data.draw(st.sampled_from([np.uint8, np.uint16, np.float32, np.float64]))
    x = (rng.random((1, cin, h, w)) * 200).astype(dtype)
    wt = rng.standard_normal((cout, cin // groups, *k)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32) if data.draw(st.booleans()) else None
    got = poolcli.conv2d(x, wt, bias, s, padding, d, groups, mode)
    close(got, conv2d_reference(x, wt, bias, s, pads, d, groups, mode), cin // groups * k[0] * k[1])


def test_layouts_and_dtypes():
    rng = np.random.default_rng(3)
    x = (rng.random((2, 3, 9, 10)) * 255).astype(np.uint8)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nchw = poolcli.conv2d(x, w, padding=1)
    nhwc = poolcli.conv2d(np.moveaxis(x, 1, -1), w, padding=1, layout="nhwc")
    np.testing.assert_array_equal(np.moveaxis(nhwc, -1, 1), nchw)
    hwc = poolcli.conv2d(np.moveaxis(x[1], 0, -1), w, padding=1, layout="hwc")
    np.testing.assert_array_equal(np.moveaxis(hwc, -1, 0), nchw[1])
    np.testing.assert_array_equal(poolcli.conv2d(x.astype(np.float32), w, padding=1), nchw)  # uint8 = its floats


@pytest.mark.parametrize("kwargs,needle", [
    (dict(weight=np.ones((2, 3, 3))), "weight"),
    (dict(weight=np.ones((4, 3, 3, 3)), groups=3), "groups"),
    (dict(weight=np.ones((4, 2, 3, 3))), "channels"),
    (dict(weight=np.ones((4, 3, 3, 3)), bias=np.ones(3)), "bias"),
    (dict(weight=np.ones((4, 3, 3, 3)), stride=0), "stride"),
    (dict(weight=np.ones((4, 3, 3, 3)), stride=2, padding="same"), "same"),
    (dict(weight=np.ones((4, 3, 3, 3)), padding=-1), "padding"),
    (dict(weight=np.ones((4, 3, 3, 3)), padding="full"), "padding"),
    (dict(weight=np.ones((4, 3, 3, 3)), dilation=(1, 0)), "dilation"),
    (dict(weight=np.ones((4, 3, 3, 3)), padding_mode="mirror"), "padding_mode"),
    (dict(weight=np.ones((4, 3, 3, 3)), padding=9, padding_mode="reflect"), "reflect"),
    (dict(weight=np.ones((4, 3, 30, 30))), "smaller"),
    (dict(weight=np.ones((4, 3, 3, 3)), layout="hwcn"), "layout"),
])  # fmt: skip
def test_bad_arguments_are_value_errors_naming_the_argument(kwargs, needle):
    x = np.zeros((3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=needle):
        poolcli.conv2d(x, **kwargs)


# ------------------------------------------------------------------ the pipeline stage


def _layer(tmp_path, name="layer.npz", cout=4, cin=3, k=3, bias=True, keys=("weight", "bias")):
    rng = np.random.default_rng(cout * 10 + k)
    w = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) if bias else None
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, w)
    else:
        arrays = {keys[0]: w}
        if b is not None:
            arrays[keys[1]] = b
        np.savez(path, **arrays)
    return path, w, b


@pytest.mark.parametrize("name,keys", [("a.npz", ("weight", "bias")), ("b.npz", ("conv1.weight", "conv1.bias")),
                                       ("c.npy", None)])  # fmt: skip
def test_the_stage_equals_the_api(tmp_path, name, keys):
    path, w, b = _layer(tmp_path, name, keys=keys or ("weight", "bias"))
    b = None if name.endswith(".npy") else b
    img = (np.random.default_rng(1).random((20, 17, 3)) * 255).astype(np.uint8)
    got = poolcli.run(img, f"conv2d @{path} padding=1 stride=2")
    want = poolcli.conv2d(img, w, b, stride=2, padding=1, layout="hwc")
    np.testing.assert_array_equal(got, want)
    relu = poolcli.run(img, f"conv2d @{path} padding=same | relu | max 2")
    np.testing.assert_array_equal(relu, poolcli.pool(np.maximum(poolcli.conv2d(img, w, b, padding="same",
                                                                                 layout="hwc"), 0), "max", 2))


def test_npz_of_another_layout_names_the_keys(tmp_path):
    np.savez(tmp_path / "odd.npz", kernel=np.ones((1, 3, 3, 3)), other=np.ones(1))
    with pytest.raises(ValueError, match="found kernel, other"):
        poolcli.run(np.zeros((8, 8, 3)), f"conv2d @{tmp_path / 'odd.npz'}")
    np.savez(tmp_path / "two.npz", **{"a.weight": np.ones((1, 3, 3, 3)), "b.weight": np.ones((1, 3, 3, 3))})
    with pytest.raises(ValueError, match="a.weight, b.weight"):
        poolcli.run(np.zeros((8, 8, 3)), f"conv2d @{tmp_path / 'two.npz'}")
    with pytest.raises(ValueError, match="from a file"):
        poolcli.run(np.zeros((8, 8, 3)), "conv2d sobel")


def test_a_layer_for_other_channels_fails_that_file_naming_both(cli, tmp_path):
    from PIL import Image

    path, _, _ = _layer(tmp_path, "l.npz", cin=3)
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "rgb.png")
    out = cli("run", f"conv2d @{path}", str(tmp_path / "gray.png"), str(tmp_path / "rgb.png"), "-o",
              f"{tmp_path / 'out'}/", "-f", "npy")  # fmt: skip
    assert out.code == 1
    assert "gray.png: the conv2d layer takes 3 input channels, the image has 1" in out.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"rgb_{_tag_of(path)}.npy"]


def _tag_of(path) -> str:
    from poolcli.pipeline import Pipeline

    return Pipeline.parse(f"conv2d @{path}").tag


def test_the_stage_writes_one_map_per_output_channel_and_counts_as_signed(cli, tmp_path):
    from PIL import Image

    path, w, b = _layer(tmp_path, "l.npz", cout=5)
    img = (np.random.default_rng(2).random((12, 10, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    out = cli("run", f"conv2d @{path}", str(tmp_path / "in.png"), "-o", f"{tmp_path / 'o'}/", "--json")
    assert out.code == 0, out.stderr
    maps = sorted((tmp_path / "o").iterdir())
    assert len(maps) == 5
    layer = poolcli.conv2d(img, w, b, layout="hwc")
    for n, p in enumerate(maps):  # auto scale: normalize, each map stretched over its own range
        got = np.asarray(Image.open(p))
        m = layer[:, :, n]
        want = np.rint((m - m.min()) * (255 / (m.max() - m.min())))
        assert np.abs(got.astype(float) - want).max() <= 1, p.name


# ------------------------------------------------------------------ ready layers: kernels --layer


def test_kernels_layer_gabor_and_random(cli, tmp_path):
    out = cli("kernels", "--layer", "gabor", "-o", str(tmp_path / "g.npz"))
    assert out.code == 0, out.stderr
    g = np.load(tmp_path / "g.npz")
    assert g["weight"].shape == (16, 3, 7, 7) and g["bias"].shape == (16,) and not g["bias"].any()
    per_map = g["weight"].reshape(16, 3, -1)
    np.testing.assert_allclose(per_map.sum(axis=2), 0, atol=1e-5)  # zero mean: flat regions give 0
    assert len({tuple(np.round(m.ravel(), 4)) for m in g["weight"]}) == 16  # 16 different filters
    out = cli("kernels", "--layer", "random", "--seed", "4", "--out-channels", "8", "--size", "5", "-o",
              str(tmp_path / "r.npz"))  # fmt: skip
    assert out.code == 0, out.stderr
    r = np.load(tmp_path / "r.npz")
    bound = 1 / np.sqrt(3 * 5 * 5)  # torch.nn.Conv2d's default (Kaiming-uniform, a = √5): ±1/√fan_in
    assert r["weight"].shape == (8, 3, 5, 5) and np.abs(r["weight"]).max() <= bound
    assert np.abs(r["weight"]).max() > 0.9 * bound and np.abs(r["bias"]).max() <= bound
    again = cli("kernels", "--layer", "random", "--seed", "4", "--out-channels", "8", "--size", "5", "-o",
                str(tmp_path / "r2.npz"))  # fmt: skip
    assert again.code == 0 and (tmp_path / "r.npz").read_bytes() == (tmp_path / "r2.npz").read_bytes()
    bad = cli("kernels", "--layer", "gabor", "-o", str(tmp_path / "g.png"))
    assert bad.code == 2 and ".npz" in bad.stderr and not (tmp_path / "g.png").exists()


def test_random_layer_draws_what_torch_draws():
    t = pytest.importorskip("torch")
    from poolcli.layers import random_layer

    ours = random_layer(64, 3, seed=1)[0]
    theirs = t.nn.Conv2d(3, 64, 3).weight.detach().numpy()
    for a, b in ((ours.min(), theirs.min()), (ours.max(), theirs.max()), (ours.std(), theirs.std())):
        assert abs(a - b) < 0.02


# ------------------------------------------------------------------ explain across channels


def test_explain_a_layer_across_channels(cli, tmp_path):
    import json

    from PIL import Image

    path, w, b = _layer(tmp_path, "l.npz", cout=5)
    img = (np.random.default_rng(5).random((14, 11, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    layer = poolcli.conv2d(img, w, b, padding=1, stride=2, padding_mode="reflect", layout="hwc")
    for x, y, k in ((0, 0, 0), (3, 4, 4), (5, 6, 2)):
        out = cli("explain", str(tmp_path / "in.png"), "--stage", f"conv2d @{path} padding=1 stride=2 "
                  "padding_mode=reflect", "--at", f"{x},{y}", "--out-channel", str(k), "--json")  # fmt: skip
        assert out.code == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["output"] == pytest.approx(float(layer[y, x, k]), rel=1e-6)
        assert len(info["partial_sums"]) == 3 and info["bias"] == pytest.approx(float(b[k]))
        assert info["sum"] == pytest.approx(sum(info["partial_sums"]) + info["bias"])
        assert info["sum"] == pytest.approx(info["output"], rel=1e-5, abs=1e-3)
        for c, ch in enumerate(info["channels"]):  # each channel's products are its patch × its kernel
            np.testing.assert_allclose(ch["kernel"], w[k, c], rtol=1e-6)
            np.testing.assert_allclose(np.multiply(ch["input_patch"], ch["kernel"]), ch["products"])
            assert ch["partial_sum"] == pytest.approx(np.sum(ch["products"]))
    text = cli("explain", str(tmp_path / "in.png"), "--stage", f"conv2d @{path}", "--at", "2,2", "--png",
               str(tmp_path / "x.png"))  # fmt: skip
    assert text.code == 0 and b"partial sum, input channel 2" in text.stdout and b"bias" in text.stdout
    assert Image.open(tmp_path / "x.png").size[0] > 100
    bad = cli("explain", str(tmp_path / "in.png"), "--stage", f"conv2d @{path}", "--at", "2,2", "--out-channel", "9")
    assert bad.code == 2 and "--out-channel must be from 0 to 4" in bad.stderr


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_the_stage_streams_band_by_band_bit_identical(tmp_path, mode):
    from poolcli import bands
    from poolcli.pipeline import Pipeline, pipeline_rows

    rng = np.random.default_rng(11)
    img = (rng.random((23, 19, 3)) * 255).astype(np.uint8)
    for k, stride, padding, dilation in ((3, 1, "same", 1), (4, 2, "2", 1), (3, 1, "1", 2), (5, 3, "0", 1)):
        np.save(tmp_path / "w.npy", rng.standard_normal((5, 3, k, k)).astype(np.float32))
        pipe = Pipeline.parse(f"conv2d @{tmp_path / 'w.npy'} stride={stride} padding={padding} "
                              f"dilation={dilation} padding_mode={mode} | relu")  # fmt: skip
        whole = pipe.apply(img, 3)[0]
        for band in (1, 3, 64):
            rows, colour = pipeline_rows(pipe, bands.ArrayRows(img), 3)
            assert colour == 5
            np.testing.assert_array_equal(bands.collect(rows, band), whole)


def test_the_stage_streams_through_the_command_line(cli, tmp_path):
    from PIL import Image

    path, _, _ = _layer(tmp_path, "l.npz", cout=3)
    img = (np.random.default_rng(4).random((70, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    import json

    for flag, name in (("--stream", "s"), ("--no-stream", "w")):
        out = cli("run", f"conv2d @{path} padding=same | relu | max 2", str(tmp_path / "in.png"), "-f", "npy",
                  "-o", str(tmp_path / f"{name}.npy"), flag, "--json")  # fmt: skip
        assert out.code == 0, out.stderr
        assert json.loads(out.stdout)["files"][0]["streamed"] == (flag == "--stream")
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), np.load(tmp_path / "w.npy"))


def test_the_stage_through_a_batch_the_pool_and_dask(tmp_path):
    """A conv2d stage in a batch: the local pool (two workers) and the in-process Dask executor
    write the same files as one process, with per-stage times in the report."""
    import json
    import subprocess

    from PIL import Image

    from conftest import poolcli_command

    path, _, _ = _layer(tmp_path, "l.npz", cout=2)
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(8)
    for i in range(4):
        Image.fromarray((rng.random((20 + i, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / "in" / f"p{i}.png")
    got = {}
    for name, extra in (("one", ["--jobs", "1"]), ("pool", ["--jobs", "2"]), ("dask", ["--executor", "dask"])):
        if name == "dask":
            pytest.importorskip("distributed")
        proc = subprocess.run(poolcli_command() + ["run", f"conv2d @{path} padding=1 | relu | max 2",
                                                   str(tmp_path / "in"), "-o", f"{tmp_path / name}/", "--json", "-q",
                                                   *extra], capture_output=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert all(len(f["stages"]) == 3 for f in doc["files"])
        got[name] = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
    assert len(got["one"]) == 8 and got["one"] == got["pool"] == got["dask"]
