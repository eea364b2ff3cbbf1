"""``poolcli run`` and ``poolcli.run`` (contract §7, issue #10): pipelines equal the same
sequence of API calls, every registry entry and parameter edge works, malformed pipelines are
one-line usage errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import poolcli
from poolcli import ops
from poolcli.pipeline import Pipeline

from test_cli import decode, one_line_error

# ------------------------------------------------------------------ the API against its parts


def elementwise(name: str, x: np.ndarray, *args, **kw) -> np.ndarray:
    """The element-wise stages written out in NumPy, as a user would (float32)."""
    x = np.asarray(x, np.float32)
    f = np.float32
    if name == "relu":
        return np.maximum(x, f(0))
    if name == "leaky-relu":
        return np.where(x >= 0, x, x * f(kw.get("alpha", 0.01)))
    if name == "abs":
        return np.abs(x)
    if name == "sigmoid":
        with np.errstate(over="ignore"):
            return f(1) / (f(1) + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "scale":
        return x * f(args[0])
    if name == "bias":
        return x + f(args[0])
    if name == "clip":
        return np.clip(x, f(args[0]), f(args[1]))
    if name == "threshold":
        return np.where(x > f(args[0]), x, f(kw.get("value", 0)))
    if name == "normalize":
        lo, hi = x.min(), x.max()
        return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    raise AssertionError(name)


STAGE_CALLS = [  # (stage text, the same as API calls); tests/test_stream.py bands them too
        ("sobel", lambda x: poolcli.convolve(x, "sobel")),
        ("gaussian sigma=1.5", lambda x: poolcli.convolve(x, "gaussian", sigma=1.5)),
        ("conv '0,-1,0;-1,5,-1;0,-1,0' boundary=valid", lambda x: poolcli.convolve(x, [[0, -1, 0], [-1, 5, -1], [0, -1, 0]], boundary="valid")),
        ("blur stride=2 boundary=wrap", lambda x: poolcli.convolve(x, "blur", stride=2, boundary="wrap")),
        ("laplacian dilation=2 boundary=constant cval=3", lambda x: poolcli.convolve(x, "laplacian", dilation=2, boundary="constant", cval=3)),
        ("sobel-x flip=true", lambda x: poolcli.convolve(x, "sobel-x", flip=True)),
        ("max 2", lambda x: poolcli.pool(x, "max", 2)),
        ("avg 3 stride=2 padding=1 count_include_pad=false", lambda x: poolcli.pool(x, "avg", 3, stride=2, padding=1, count_include_pad=False)),
        ("pool min 2x3 ceil_mode=true", lambda x: poolcli.pool(x, "min", (2, 3), ceil_mode=True)),
        ("lp 2 p=3", lambda x: poolcli.pool(x, "lp", 2, p=3)),
        ("l2 2", lambda x: poolcli.pool(x, "lp", 2, p=2)),
        ("median 3 stride=1", lambda x: poolcli.pool(x, "median", 3, stride=1)),
        ("stochastic 2 seed=5", lambda x: poolcli.pool(x, "stochastic", 2, seed=5)),
        ("adaptive avg 3x2", lambda x: poolcli.pool(x, "avg", output_size=(2, 3))),
        ("global max", lambda x: poolcli.pool(x, "max", output_size=(1, 1))),
        ("relu", lambda x: elementwise("relu", x)),
        ("leaky-relu alpha=0.2", lambda x: elementwise("leaky-relu", x, alpha=0.2)),
        ("abs", lambda x: elementwise("abs", x)),
        ("sigmoid", lambda x: elementwise("sigmoid", x)),
        ("tanh", lambda x: elementwise("tanh", x)),
        ("scale 0.5", lambda x: elementwise("scale", x, 0.5)),
        ("bias -3", lambda x: elementwise("bias", x, -3)),
        ("clip 0 100", lambda x: elementwise("clip", x, 0, 100)),
        ("threshold 10 value=-1", lambda x: elementwise("threshold", x, 10, value=-1)),
        ("normalize", lambda x: elementwise("normalize", x)),
]  # fmt: skip
STAGES = st.sampled_from(STAGE_CALLS)


@settings(max_examples=60, deadline=None)
@given(
    stages=st.lists(STAGES, min_size=1, max_size=4),
    h=st.integers(6, 20),
    w=st.integers(6, 20),
    channels=st.sampled_from([1, 3]),
    dtype=st.sampled_from([np.uint8, np.float32]),
    seed=st.integers(0, 2**16),
)
def test_run_equals_the_same_api_calls(stages, h, w, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, channels)) * 255).astype(dtype)
    expected = img
    try:
        for _, call in stages:
            expected = call(expected)
    except ValueError:  # the image became smaller than a window: run must say so too
        with pytest.raises(ValueError):
            poolcli.run(img, " | ".join(text for text, _ in stages))
        return
    got = poolcli.run(img, " | ".join(text for text, _ in stages))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.asarray(expected, np.float32))


def test_a_bank_is_kernel_major(tmp_path):
    img = np.random.default_rng(1).random((9, 11, 3)).astype(np.float32)
    (tmp_path / "k.txt").write_text("1 0 -1\n")
    got = poolcli.run(img, f"conv sobel-x,sobel-y,blur,@{tmp_path / 'k.txt'}")
    assert got.shape == (9, 11, 12)
    for k, kernel in enumerate(["sobel-x", "sobel-y", "blur", [[1, 0, -1]]]):
        np.testing.assert_array_equal(got[:, :, 3 * k : 3 * k + 3], poolcli.convolve(img, kernel))
    tag = Pipeline.parse(f"conv sobel-x,@{tmp_path / 'k.txt'}").tag
    assert tag.startswith("sobel-x+k-") and len(tag) == len("sobel-x+k-") + 8  # the file's stem and a hash


def test_the_api_convolve_takes_every_kernel_form(tmp_path):
    img = np.random.default_rng(2).random((8, 9)).astype(np.float32)
    (tmp_path / "k.txt").write_text("0 -1 0\n-1 5 -1\n0 -1 0\n")
    want = poolcli.convolve(img, "sharpen")
    for form in ("sharpen", "0,-1,0;-1,5,-1;0,-1,0", f"@{tmp_path / 'k.txt'}", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]):
        np.testing.assert_array_equal(poolcli.convolve(img, form), want)


def test_positional_values_may_be_named():
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(poolcli.run(x, "pool max size=2"), poolcli.run(x, "max 2"))
    np.testing.assert_array_equal(poolcli.run(x, "clip low=0 high=5"), poolcli.run(x, "clip 0 5"))
    with pytest.raises(ValueError, match="'size' is given twice"):
        Pipeline.parse("max 2 size=3")


def test_parse_and_describe():
    pipe = Pipeline.parse("gaussian sigma=2 | sobel | relu | max 2")
    assert [s.op.name for s in pipe.stages] == ["conv", "conv", "relu", "max"]
    assert pipe.tag == "gaussian_sigma2-sobel-relu-max2"
    assert pipe.auto_scale() == "normalize"
    assert Pipeline.parse("sobel | sigmoid").auto_scale() == "clip"
    assert Pipeline.parse("sobel | normalize | relu").auto_scale() == "clip"
    assert Pipeline.parse("blur | max 2").auto_scale() == "clip"
    text = pipe.describe()
    assert "1. conv gaussian (kernel 17x17)" in text and "4. pool max 2x2 stride=2x2" in text


# ------------------------------------------------------------------ the registry


def test_every_pool_mode_and_alias_is_a_stage():
    img = np.arange(64, dtype=np.float32).reshape(8, 8) + 1
    for name in ops.POOL_MODES:
        op = ops.OPERATIONS[name]
        for spelling in (name, *op.aliases):
            extra = " seed=1" if name == "stochastic" else ""
            got = poolcli.run(img, f"{spelling} 2{extra}")
            want = poolcli.pool(img, spelling, 2, seed=1 if name == "stochastic" else None)
            np.testing.assert_array_equal(got, np.asarray(want, np.float32))


@pytest.mark.parametrize("name", [n for n, op in ops.OPERATIONS.items() if op.kind == "elementwise"])
def test_every_elementwise_operation_runs_with_its_defaults(name):
    op = ops.OPERATIONS[name]
    values = {"factor": "2", "value": "1", "low": "0", "high": "1", "threshold": "0.5", "alpha": "0.1"}
    text = " ".join([name, *(values[p] for p in op.positional)])
    img = np.random.default_rng(3).random((4, 5, 3)).astype(np.float32) - 0.5
    assert poolcli.run(img, text).shape[:2] == (4, 5)
    for alias in op.aliases:
        np.testing.assert_array_equal(poolcli.run(img, text.replace(name, alias, 1)), poolcli.run(img, text))


@pytest.mark.parametrize(
    "op,param",
    [(op, p) for op in ops.OPERATIONS.values() for p in op.params if p.low is not None or p.high is not None],
)
def test_every_parameter_range_edge(op, param):
    """Just inside a numeric parameter's range parses; just outside is a usage error naming it."""
    stage = {"conv": "conv box", "pool": f"{op.name} 2"}.get(op.kind, op.name)
    fill = {"factor": "2", "value": "1", "low": "0", "high": "1", "threshold": "0.5", "alpha": "0.1"}
    positional = " ".join(fill[p] for p in op.positional if p != param.name and op.kind == "elementwise")
    edge = param.low if param.low is not None else param.high
    if param.name == "sigma":
        stage = "conv gaussian"
    inside = edge + (1 if param.open_low else 0) if param.low is not None else edge
    outside = edge - 1 if param.low is not None and not param.open_low else (edge if param.open_low else edge + 1)
    kind = int if param.kind is int else float
    Pipeline.parse(f"{stage} {positional} {param.name}={kind(inside)}")
    with pytest.raises(ValueError, match=param.name):
        Pipeline.parse(f"{stage} {positional} {param.name}={kind(outside)}")


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("max 2 |", "stage 2"),
        ("| max 2", "stage 1"),
        ("max 2 || relu", "empty stage"),
        ("foo", "unknown operation 'foo'"),
        ("sobell", "did you mean 'sobel'"),
        ("max", "needs SIZE"),
        ("pool", "MODE"),
        ("pool maxx 2", "unknown pooling mode"),
        ("global", "needs a MODE"),
        ("adaptive max", "needs SIZE"),
        ("adaptive max 0x3", "at least 1"),
        ("max 2 strid=2", "did you mean 'stride'"),
        ("max 2 stride=", "has no value"),
        ("max 2 stride=abc", "stride"),
        ("max 2 stride=2 stride=3", "twice"),
        ("max 2 3", "unexpected value '3'"),
        ("max 2 padding=2", "more than half"),
        ("relu 3", "unexpected value"),
        ("leaky-relu alpha=x", "alpha must be a number"),
        ("scale", "needs FACTOR"),
        ("clip 1", "needs HIGH"),
        ("conv", "needs a KERNEL"),
        ("conv sobel size=3", "takes no --size"),
        ("conv '1 2", "unclosed quote"),
        ("conv 1,2;3", "row 2 has 1 values"),
        ("gaussian sigma=0", "sigma"),
        ("gaussian sigma=1e9", "sigma"),
        ("blur boundary=nowhere", "unknown boundary"),
        ("blur stride=0", "stride"),
        ("lp 2 p=-1", "p must be"),
        ("stochastic 2 seed=-1", "seed"),
        ("max 99999999999999999999", "at most"),
        ("gray | conv sobel-x,nosuch", "stage 2"),
    ],
)
def test_malformed_pipelines_are_usage_errors(text, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        Pipeline.parse(text)


def test_malformed_pipeline_on_the_command_line(cli, samples):
    r = cli("run", "gaussian sigma=2 | sobell | max 2", samples / "camera.png")
    one_line_error(r, "stage 2 'sobell'", "did you mean 'sobel'")
    assert r.code == 2
    r = cli("run")
    assert r.code == 2 and "PIPELINE" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_help_lists_exactly_the_registry(cli):
    wide = {"COLUMNS": "400"}  # no wrapped help lines
    pool_help = cli("pool", "--help", env=wide).stdout.decode()
    assert f"{ops.help_list('pool')} (l2 = lp with --p 2)" in pool_help
    assert ops.boundary_help() in cli("convolve", "--help", env=wide).stdout.decode()
    for option, (op, param) in {
        "--p": ("lp", "p"),
        "--seed": ("stochastic", "seed"),
        "--divisor": ("avg", "divisor"),
    }.items():
        assert ops.param_help(op, param) in pool_help, option
    run_help = cli("run", "--help")
    assert run_help.code == 0 and "PIPELINE" in run_help.stdout.decode()


# ------------------------------------------------------------------ the command line


def test_cli_npy_equals_the_api(cli, samples):
    text = "gaussian sigma=2 | sobel | relu | max 2"
    r = cli("run", text, samples / "chelsea.png", "-o", samples / "p.npy", "--json")
    assert r.code == 0, r
    src = np.asarray(Image.open(samples / "chelsea.png"))
    np.testing.assert_array_equal(np.load(samples / "p.npy"), poolcli.run(src, text))
    row = r.json["files"][0]
    assert [s["stage"] for s in row["stages"]] == ["gaussian sigma=2", "sobel", "relu", "max 2"]
    assert all(s["ms"] >= 0 for s in row["stages"])


def test_cli_default_tag_scale_and_alpha(cli, samples):
    r = cli("run", "blur | max 2", samples / "coffee_rgba.png", "-q")
    assert r.code == 0, r
    out = decode(samples / "coffee_rgba_blur-max2.png")
    assert out.mode == "RGBA" and out.size == (300, 200)
    src = np.asarray(Image.open(samples / "coffee_rgba.png"))
    want = poolcli.run(src[:, :, :3], "blur | max 2")
    np.testing.assert_array_equal(np.asarray(out)[:, :, :3], np.clip(np.rint(want), 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(np.asarray(out)[:, :, 3], poolcli.pool(src[:, :, 3], "max", 2))
    r = cli("run", "sobel | max 2", samples / "camera.png", "--tag", "edges", "-q")
    assert r.code == 0 and (samples / "camera_edges.png").exists()
    edges = np.asarray(decode(samples / "camera_edges.png"))
    assert edges.min() == 0 and edges.max() == 255  # auto → normalize for a zero-sum kernel


def test_cli_bank_writes_one_image_per_map_or_one_npy(cli, samples):
    r = cli("run", "conv sobel-x,sobel-y | relu", samples / "camera.png", "-o", samples / "b.png", "-q")
    assert r.code == 0, r
    assert sorted(p.name for p in samples.glob("b_*.png")) == ["b_0.png", "b_1.png"]
    r = cli("run", "conv sobel-x,sobel-y | relu", samples / "chelsea.png", "-o", samples / "b.npy", "-q")
    assert r.code == 0 and np.load(samples / "b.npy").shape == (300, 451, 6)
    r = cli("run", "conv sobel-x,sobel-y", "-", stdin=(samples / "camera.png").read_bytes())
    one_line_error(r, "-o")


def test_cli_save_stages(cli, samples):
    r = cli("run", "gaussian sigma=1 | sobel | max 2", samples / "camera.png", "--save-stages", "-q")
    assert r.code == 0, r
    stem = "camera_gaussian_sigma1-sobel-max2"
    names = sorted(p.name for p in samples.glob(stem + "*"))
    assert names == [f"{stem}.1-gaussian_sigma1.png", f"{stem}.2-sobel.png", f"{stem}.3-max2.png", f"{stem}.png"]
    assert decode(samples / f"{stem}.1-gaussian_sigma1.png").size == (512, 512)
    assert decode(samples / f"{stem}.3-max2.png").size == (256, 256)


def test_cli_batch_jobs_and_pipes(cli, samples, tmp_path):
    r = cli("run", "blur | relu | max 2", samples, "-o", f"{tmp_path / 'out'}/", "--jobs", "2", "--json", "-q")
    assert r.code == 0, r
    assert len(r.json["files"]) == 5 and all(f["stages"] for f in r.json["files"])
    r = cli("run", "blur | max 2", stdin=(samples / "camera.png").read_bytes())
    assert r.code == 0 and Image.open(__import__("io").BytesIO(r.stdout)).size == (256, 256)
