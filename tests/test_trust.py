"""Nothing silently wrong (issue #20): names that never collide, one meaning of -o, messages
once, --scheduler alone, multi-frame inputs, channels-first arrays."""

import itertools

import numpy as np
import pytest

from poolcli.jobs import ConvolveJob, PoolJob, RunJob
from poolcli.pipeline import Pipeline

from test_cli import one_line_error

# ------------------------------------------------------------------ names (point 3)


CONV_STAGES = [
    ("gaussian", dict(sigma=2.0)), ("gaussian", dict(sigma=5.0)), ("gaussian", dict(size=5)), ("sharpen", {}),
    ("box", dict(size=3)), ("0,1;1,0", {}),
]  # fmt: skip
CONV_OPTS = [{}, dict(boundary="wrap"), dict(boundary="constant", cval=0.5), dict(stride=2), dict(dilation=2),
             dict(flip=True), dict(boundary="valid", stride=3)]  # fmt: skip


def _stage_text(head: str, values: dict) -> str:
    return " ".join([head] + [f"{k}={v}" for k, v in values.items()])


@pytest.mark.parametrize(("kernel", "params"), CONV_STAGES)
def test_a_conv_stage_is_tagged_as_convolve_tags_it(kernel, params):
    for opts in CONV_OPTS:
        job = ConvolveJob.build(kernel, **params, **opts)
        stage = Pipeline.parse(_stage_text(f"conv '{kernel}'", {**params, **opts})).stages[0]
        assert stage.tag == job.tag, (kernel, params, opts)


POOL_CASES = [
    ("max 2", dict(mode="max", size="2")), ("max 3 stride=2", dict(mode="max", size="3", stride="2")),
    ("avg 3 padding=1 stride=1", dict(mode="avg", size="3", padding="1", stride="1")),
    ("avg 2 count_include_pad=false padding=1", dict(mode="avg", size="2", padding="1", count_include_pad=False)),
    ("avg 2 divisor=3", dict(mode="avg", size="2", divisor=3)), ("lp 2 p=3", dict(mode="lp", size="2", p=3.0)),
    ("l2 2", dict(mode="l2", size="2")), ("stochastic 2 seed=4", dict(mode="stochastic", size="2", seed=4)),
    ("max 2x3 dilation=2 ceil_mode=true", dict(mode="max", size="2x3", dilation="2", ceil_mode=True)),
    ("median 3", dict(mode="median", size="3")), ("global avg", dict(mode="avg", is_global=True)),
    ("adaptive max 64x48", dict(mode="max", to="64x48")),
]  # fmt: skip


@pytest.mark.parametrize(("text", "build"), POOL_CASES)
def test_a_pool_stage_is_tagged_as_pool_tags_it(text, build):
    assert Pipeline.parse(text).stages[0].tag == PoolJob.build(**build).tag


def test_pipelines_that_differ_in_any_option_never_share_a_name(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "k.txt").write_text("1 2 1\n")
    (tmp_path / "b" / "k.txt").write_text("1 4 1\n")
    stages = ["gaussian sigma=2", "gaussian sigma=5", "conv sharpen boundary=wrap", "conv sharpen", "sobel",
              f"conv @{tmp_path / 'a' / 'k.txt'}", f"conv @{tmp_path / 'b' / 'k.txt'}", "scale 2", "scale 3",
              "clip 0 1", "clip 0 2", "leaky-relu", "leaky-relu 0.2", "threshold 0.5", "threshold 0.5 value=1",
              "max 2", "avg 2", "max 2 stride=1", "relu"]  # fmt: skip
    seen: dict[str, str] = {}
    for a, b in itertools.product(stages, repeat=2):
        text = f"{a} | {b}"
        tag = RunJob.build(text).tag
        assert seen.setdefault(tag, text) == text, f"{text!r} and {seen[tag]!r} share {tag}"
    assert RunJob.build("sobel | max 2").tag != RunJob.build("sobel | max 2", gray=True).tag
    assert RunJob.build("blur").tag != RunJob.build("blur", scale="normalize").tag
    assert RunJob.build("blur").tag == RunJob.build("blur", scale="clip").tag  # what auto chooses anyway


def test_kernel_files_of_one_name_write_two_names(cli, samples):
    (samples / "ka").mkdir()
    (samples / "kb").mkdir()
    (samples / "ka" / "k.txt").write_text("1 2 1\n")
    (samples / "kb" / "k.txt").write_text("1 4 1\n")
    for folder in ("ka", "kb"):
        r = cli("convolve", "chelsea.png", "-k", f"@{folder}/k.txt", "-q", cwd=samples)
        assert r.code == 0, r
    for text in ("gaussian sigma=2 | max 2", "gaussian sigma=5 | max 2"):
        r = cli("run", text, "chelsea.png", "-q", cwd=samples)
        assert r.code == 0, r
    made = sorted(p.name for p in samples.glob("chelsea_*"))
    assert len(made) == 4, made
    assert "chelsea_gaussian_sigma2-max2.png" in made and "chelsea_gaussian_sigma5-max2.png" in made
    assert len([name for name in made if name.startswith("chelsea_k-")]) == 2  # the stem and each file's hash


def test_long_default_tags_end_in_a_hash_and_stay_distinct():
    a = RunJob.build(" | ".join(["blur"] * 80) + " | max 2").tag
    b = RunJob.build(" | ".join(["blur"] * 81) + " | max 2").tag
    assert len(a.encode()) <= 200 and len(b.encode()) <= 200 and a != b
    assert a.startswith("blur-blur-")


# ------------------------------------------------------------------ messages once (point 8)


def test_bare_poolcli_prints_the_help_once_and_exits_2(cli):
    r = cli()
    assert r.code == 2, r
    out = r.stdout.decode()
    assert out.count("Usage:") == 1 and "convolve" in out
    assert "Usage:" not in r.stderr


def test_a_mistyped_command_gets_one_suggestion(cli):
    r = cli("poool")
    assert r.code == 2
    one_line_error(r, "No such command 'poool'", "Did you mean 'pool'?")
    assert r.stderr.count("Did you mean") == 1, r.stderr


# ------------------------------------------------------------------ --scheduler alone (point 7)


def test_scheduler_alone_means_dask(cli, samples):
    pytest.importorskip("distributed")
    r = cli("pool", "camera.png", "-m", "max", "-s", "2", "-o", "o.png", "--scheduler", "tcp://127.0.0.1:1",
            cwd=samples, timeout=120)  # fmt: skip
    assert r.code == 2, r
    one_line_error(r, "tcp://127.0.0.1:1", "cannot reach the Dask scheduler")
    assert not (samples / "o.png").exists()


def test_scheduler_with_executor_local_is_refused(cli, samples):
    r = cli("pool", "camera.png", "-m", "max", "-s", "2", "-o", "o.png", "--scheduler", "tcp://127.0.0.1:1",
            "--executor", "local", cwd=samples)  # fmt: skip
    assert r.code == 2
    one_line_error(r, "--scheduler tcp://127.0.0.1:1", "--executor local")


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:abc", "not a url", "gopher://127.0.0.1:1", "tcp://[::1"])
def test_malformed_scheduler_addresses_are_one_line(cli, samples, address):
    pytest.importorskip("distributed")
    r = cli("pool", "camera.png", "-m", "max", "-s", "2", "-o", "o.png", "--scheduler", address, cwd=samples,
            timeout=120)  # fmt: skip
    assert r.code == 2, r
    one_line_error(r, address)


def test_poolcli_scheduler_applies_under_executor_dask_only(cli, samples):
    r = cli("pool", "camera.png", "-m", "max", "-s", "2", "-o", "o.png", "-q", cwd=samples,
            env={"POOLCLI_SCHEDULER": "tcp://127.0.0.1:1"})  # fmt: skip
    assert r.code == 0, r  # local: the variable names the cluster for --executor dask
    assert np.asarray(__import__("PIL.Image").Image.open(samples / "o.png")).shape == (256, 256)
