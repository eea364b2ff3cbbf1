"""Nothing silently wrong (issue #20): names that never collide, one meaning of -o, messages
once, --scheduler alone, multi-frame inputs, channels-first arrays."""

import io
import itertools
import os
import stat
import threading
import time

import numpy as np
import pytest
from PIL import Image

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


# ------------------------------------------------------------------ -o means one thing (point 4)


def test_o_without_extension_or_slash_is_a_usage_error_that_says_which(cli, samples):
    r = cli("pool", "chelsea.png", "-m", "max", "-s", "2", "-o", "newdir", cwd=samples)
    assert r.code == 2
    one_line_error(r, "-o newdir", "newdir.png", "newdir/")
    assert not (samples / "newdir").exists()


def test_o_file_with_several_inputs_is_a_usage_error_that_creates_nothing(cli, samples):
    r = cli("pool", "chelsea.png", "camera.png", "-m", "max", "-s", "2", "-o", "result.png", cwd=samples)
    assert r.code == 2
    one_line_error(r, "-o result.png", "several")
    assert not (samples / "result.png").exists()


def test_a_usage_error_leaves_no_output_folder(cli, samples):
    (samples / "d1").mkdir()
    (samples / "d2").mkdir()
    for d in ("d1", "d2"):
        (samples / d / "x.png").write_bytes((samples / "camera.png").read_bytes())
    r = cli("pool", "d1/x.png", "d2/x.png", "-m", "max", "-s", "2", "-o", "newout/", cwd=samples)
    assert r.code == 2
    one_line_error(r, "d1/x.png", "d2/x.png")
    assert not (samples / "newout").exists()


@pytest.mark.parametrize("inputs", [["chelsea.png"], ["chelsea.png", "camera.png"]])
def test_o_slash_is_a_folder_whatever_the_number_of_inputs(cli, samples, inputs):
    r = cli("pool", *inputs, "-m", "max", "-s", "2", "-o", "out/", "-q", cwd=samples)
    assert r.code == 0, r
    assert sorted(p.name for p in (samples / "out").iterdir()) == sorted(f"{i[:-4]}_max2.png" for i in inputs)


def test_o_existing_folder_without_slash_is_that_folder(cli, samples):
    (samples / "there").mkdir()
    r = cli("pool", "chelsea.png", "-m", "max", "-s", "2", "-o", "there", "-q", cwd=samples)
    assert r.code == 0, r
    assert (samples / "there" / "chelsea_max2.png").exists()


def test_o_without_extension_but_with_format_is_that_file(cli, samples):
    r = cli("pool", "chelsea.png", "-m", "max", "-s", "2", "-o", "plain", "-f", "png", "-q", cwd=samples)
    assert r.code == 0, r
    assert (samples / "plain").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_device_output_is_written_through_never_replaced(cli, samples):
    """A scratch node made with mknod (CI runs as root: a regression must not touch /dev/null)."""
    node = samples / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    r = cli("pool", "chelsea.png", "camera.png", "-m", "max", "-s", "2", "-o", "null", "-q", cwd=samples)
    assert r.code == 0, r
    assert stat.S_ISCHR(os.stat(node).st_mode)  # still the device, not a PNG
    assert not [p for p in samples.iterdir() if p.name.startswith(".poolcli-")]


def test_a_fifo_output_with_no_reader_fails_that_file_never_hangs(cli, samples):
    fifo = samples / "ff"
    os.mkfifo(fifo)
    r = cli("pool", "chelsea.png", "-m", "max", "-s", "2", "-o", "ff", cwd=samples, timeout=60)
    assert r.code == 1, r
    assert "ff: a FIFO with no reader" in r.stderr and "Traceback" not in r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_fifo_output_with_a_reader_gets_the_image(cli, samples):
    fifo = samples / "ff"
    os.mkfifo(fifo)
    got = {}

    def read():
        with open(fifo, "rb") as fh:
            got["data"] = fh.read()

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)
    r = cli("pool", "chelsea.png", "-m", "max", "-s", "2", "-o", "ff", "-q", cwd=samples, timeout=60)
    reader.join(30)
    assert r.code == 0, r
    assert Image.open(io.BytesIO(got["data"])).size == (225, 150)


# ------------------------------------------------------------------ multi-frame inputs (point 1)


def _frames(folder):
    import tifffile

    frames = [Image.fromarray(np.full((20, 30, 3), i * 60, np.uint8)) for i in range(4)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(folder / "anim.png", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(folder / "anim.webp", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    with tifffile.TiffWriter(folder / "pages.tif") as w:
        for i in range(4):
            w.write(np.full((20, 30), i * 60, np.uint8))
    with tifffile.TiffWriter(folder / "pages16.tif") as w:
        for i in range(4):
            w.write(np.full((20, 30, 3), i * 6000, np.uint16), photometric="rgb")


@pytest.mark.parametrize("name", ["anim.gif", "anim.png", "anim.webp", "pages.tif", "pages16.tif"])
def test_multi_frame_inputs_say_which_frame_and_page_picks_one(cli, tmp_path, name):
    _frames(tmp_path)
    r = cli("pool", name, "-m", "max", "-s", "2", "-o", "f0.npy", "--json")
    assert r.code == 0, r
    assert f"{name}: frame 1 of 4" in r.stderr
    assert "frame 1 of 4" in " ".join(r.json["files"][0]["notes"])
    step = 6000 if "16" in name else 60
    assert np.load(tmp_path / "f0.npy").max() == 0
    r = cli("pool", name, "-m", "max", "-s", "2", "-o", "f2.npy", "--page", "2", "-q")
    assert r.code == 0, r
    assert np.load(tmp_path / "f2.npy").min() == 2 * step
    r = cli("pool", name, "-m", "max", "-s", "2", "-o", "f9.npy", "--page", "9")
    assert r.code == 1 and "has 4 frames; --page 9" in r.stderr and "Traceback" not in r.stderr
    r = cli("pool", name, "-m", "max", "-s", "2", "--page", "3", "-q")
    assert r.code == 0, r
    assert (tmp_path / f"{name.rsplit('.', 1)[0]}_max2_page3.png").exists()  # the page is in the default name


def test_a_multi_page_tiff_streams_with_the_note(cli, tmp_path):
    _frames(tmp_path)
    r = cli("pool", "pages.tif", "-m", "max", "-s", "2", "-o", "s.png", "--stream")
    assert r.code == 0, r
    assert "frame 1 of 4" in r.stderr and "streamed" in r.stderr


def test_a_single_frame_file_has_no_note_and_no_page_one(cli, samples):
    r = cli("pool", "chelsea.png", "-m", "max", "-s", "2", "-o", "o.png", cwd=samples)
    assert r.code == 0 and "frame" not in r.stderr
    r = cli("pool", "chelsea.png", "-m", "max", "-s", "2", "-o", "o.png", "--page", "1", cwd=samples)
    assert r.code == 1 and "has 1 frame; --page 1" in r.stderr


def test_a_planar_rgb_tiff_is_one_page_read_as_hwc(cli, tmp_path):
    import tifffile

    rgb = np.random.default_rng(3).integers(0, 256, (21, 17, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "planar.tif", np.ascontiguousarray(rgb.transpose(2, 0, 1)), photometric="rgb",
                     planarconfig="separate")  # fmt: skip
    for flag in ("--stream", "--no-stream"):
        r = cli("pool", "planar.tif", "-m", "max", "-s", "1", "-o", "p.npy", flag)
        assert r.code == 0 and "frame" not in r.stderr, r
        np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), rgb.astype(np.float32))


# ------------------------------------------------------------------ layouts (point 6)


def _batch(seed=0, n=2, c=3, h=13, w=17, dtype=np.float32):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(dtype)


def test_a_channels_first_array_is_refused_naming_layout_chw():
    import poolcli

    img = np.random.default_rng(0).integers(0, 256, (300, 451, 3)).astype(np.uint8)
    with pytest.raises(ValueError, match='layout="chw"'):
        poolcli.pool(img.transpose(2, 0, 1), "max", 2)
    with pytest.raises(ValueError, match='layout="chw"'):
        poolcli.convolve(img.transpose(2, 0, 1), "sobel")
    with pytest.raises(ValueError, match='layout="chw"'):
        poolcli.run(img.transpose(2, 0, 1), "max 2")
    got = poolcli.pool(img.transpose(2, 0, 1), "max", 2, layout="chw")
    np.testing.assert_array_equal(got, poolcli.pool(img, "max", 2).transpose(2, 0, 1))
    assert poolcli.pool(np.zeros((2, 2, 3), np.uint8), "max", 1).shape == (2, 2, 3)  # tiny HWC stays legal
    assert poolcli.pool(np.zeros((3, 2, 9), np.uint8), "max", 1, layout="hwc").shape == (3, 2, 9)  # guard off


def test_batches_need_a_layout_and_keep_it():
    import poolcli

    x = _batch()
    with pytest.raises(ValueError, match='layout="nchw"'):
        poolcli.pool(x, "max", 2)
    with pytest.raises(ValueError, match="unknown layout"):
        poolcli.pool(x, "max", 2, layout="ncwh")
    with pytest.raises(ValueError, match='layout="chw" takes a 3-D'):
        poolcli.pool(x, "max", 2, layout="chw")
    for fn in (lambda a, **k: poolcli.pool(a, "max", 3, stride=2, padding=1, **k),
               lambda a, **k: poolcli.pool(a, "avg", 2, ceil_mode=True, **k),
               lambda a, **k: poolcli.convolve(a, "sobel", **k),
               lambda a, **k: poolcli.run(a, "gray | blur | max 2", **k)):  # fmt: skip
        want = np.stack([np.moveaxis(fn(np.moveaxis(img, 0, -1)), -1, 0) for img in x])
        np.testing.assert_array_equal(fn(x, layout="nchw"), want)
        nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(fn(nhwc, layout="nhwc"), want.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("mode", ["max", "avg", "lp"])
def test_an_nchw_batch_pools_as_torch_pools_it(mode):
    torch = pytest.importorskip("torch")
    import poolcli

    x = _batch(seed=4, n=3, c=2, h=11, w=14)
    t = torch.from_numpy(x)
    if mode == "max":
        want = torch.nn.functional.max_pool2d(t, 3, stride=2, padding=1, ceil_mode=True)
        got = poolcli.pool(t, "max", 3, stride=2, padding=1, ceil_mode=True, layout="nchw")
    elif mode == "avg":
        want = torch.nn.functional.avg_pool2d(t, 2, stride=1, padding=1, count_include_pad=False)
        got = poolcli.pool(t, "avg", 2, stride=1, padding=1, count_include_pad=False, layout="nchw")
    else:
        want = torch.nn.functional.lp_pool2d(t, 3.0, 2)
        got = poolcli.pool(t, "lp", 2, p=3.0, layout="nchw")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


def test_tensors_are_detached_and_cuda_is_refused():
    torch = pytest.importorskip("torch")
    import poolcli

    t = torch.rand(3, 8, 9, requires_grad=True)
    got = poolcli.pool(t, "max", 2, layout="chw")
    np.testing.assert_array_equal(got, poolcli.pool(t.detach().numpy(), "max", 2, layout="chw"))

    class FakeCuda:
        device = type("D", (), {"type": "cuda"})()

        def detach(self):
            return self

    with pytest.raises(ValueError, match=r"\.cpu\(\)"):
        poolcli.pool(FakeCuda(), "max", 2, layout="chw")


def test_dir_lists_the_public_names():
    import poolcli

    assert {"convolve", "pool", "run", "Pipeline", "get_kernel"} <= set(dir(poolcli))


def test_the_api_checks_what_run_is_given_and_keeps_big_endian_types():
    import poolcli

    with pytest.raises(ValueError, match="complex"):
        poolcli.run(np.ones((3, 3), complex), "relu")
    with pytest.raises(ValueError, match="empty"):
        poolcli.run(np.ones((0, 3), np.float32), "relu")
    assert poolcli.pool(np.arange(16, dtype=">u2").reshape(4, 4), "max", 2).dtype == np.uint16


def test_a_channels_first_npy_on_the_command_line(cli, tmp_path):
    a = np.random.default_rng(2).random((3, 40, 50)).astype(np.float32)
    np.save(tmp_path / "chw.npy", a)
    r = cli("pool", "chw.npy", "-m", "max", "-s", "2", "-o", "o.npy")
    assert r.code == 1 and "looks channels-first" in r.stderr and "--layout chw" in r.stderr, r
    for flag in ("--stream", "--no-stream"):
        r = cli("pool", "chw.npy", "-m", "max", "-s", "2", "-o", "o.npy", "--layout", "chw", flag, "-q")
        assert r.code == 0, r
        import poolcli

        np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), poolcli.pool(a, "max", 2, layout="chw"))
    r = cli("pool", "chw.npy", "-m", "max", "-s", "2", "-o", "h.npy", "--layout", "hwc", "-q")
    assert r.code == 0 and np.load(tmp_path / "h.npy").shape == (1, 20, 50), r


# ------------------------------------------------------------------ bounded views (point 5)


def _big_photo(tmp_path, w=1200, h=900):
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)).save(tmp_path / "big.png")


def test_a_global_window_is_a_heat_map_in_under_100_lines_and_a_bounded_picture(measured, tmp_path):
    _big_photo(tmp_path)
    r = measured("explain", "big.png", "-m", "avg", "--global", "--at", "0,0", "--png", "g.png")
    assert r.code == 0, r
    assert len(r.stdout.decode().splitlines()) < 100
    assert "heat map" in r.stdout.decode() or "block means" in r.stdout.decode()
    im = Image.open(tmp_path / "g.png")
    assert max(im.size) <= 4096
    assert r.peak_mb < 400


def test_a_large_kernel_is_drawn_bounded(measured, tmp_path):
    _big_photo(tmp_path, 400, 300)
    for args in (["-k", "gaussian", "--sigma", "8"], ["-k", "box", "--size", "301"]):
        r = measured("explain", "big.png", *args, "--at", "5,5", "--png", "k.png")
        assert r.code == 0, r
        assert max(Image.open(tmp_path / "k.png").size) <= 4096
        assert len(r.stdout.decode().splitlines()) < 100
        assert r.peak_mb < 500


def test_json_is_complete_up_to_10000_cells_and_summarised_beyond(cli, tmp_path):
    import json

    from poolcli import api, teach

    _big_photo(tmp_path, 300, 200)
    r = cli("explain", "big.png", "-m", "max", "-s", "100", "--at", "1,1", "--json")
    assert r.code == 0, r
    info = json.loads(r.stdout)
    assert len(info["window"]["cells"]) == 10_000 and len(info["input_patch"]) == 100
    r = cli("explain", "big.png", "-m", "max", "--global", "--json")
    assert r.code == 0, r
    info = json.loads(r.stdout)
    w = info["window"]
    assert w["truncated"] is True and w["count"] == 300 * 200 and "cells" not in w
    img = np.asarray(Image.open(tmp_path / "big.png"))[:, :, 0].astype(np.float64)
    assert w["max"] == img.max() == info["output"] and w["min"] == img.min()
    assert abs(w["mean"] - img.mean()) < 1e-9
    assert img[w["argmax"][0], w["argmax"][1]] == img.max()
    # the summary's numbers are the API's
    got = teach.explain_pooling(img, api.pool_spec("avg", output_size=(1, 1)), (0, 0))
    assert got["output"] == float(api.pool(img.astype(np.float32), "avg", output_size=(1, 1))[0, 0])


def test_output_size_formula_has_the_numbers(cli, tmp_path):
    import json

    Image.fromarray(np.zeros((96, 128), np.uint8)).save(tmp_path / "z.png")
    r = cli("explain", "z.png", "-m", "max", "-s", "3", "--stride", "2", "--padding", "1", "--at", "0,0", "--json")
    size = json.loads(r.stdout)["output_size"]
    assert size["height"] == 48 and size["width"] == 64
    assert size["formula_h"] == "⌊(96 + 2·1 − 1·(3 − 1) − 1) / 2⌋ + 1 = 48"
    r = cli("explain", "z.png", "-k", "sobel", "--at", "0,0", "-b", "valid", "--json")
    size = json.loads(r.stdout)["output_size"]
    assert (size["height"], size["width"]) == (94, 126) and size["formula_w"].endswith("= 126")
    r = cli("explain", "z.png", "-m", "max", "-s", "3", "--stride", "2", "--padding", "1", "--at", "0,0")
    assert "= 48" in r.stdout.decode()


def test_demo_png_is_written_and_demo_k_draws_that_kernel(cli, tmp_path):
    import json

    r = cli("explain", "--demo", "--png", "demo.png")
    assert r.code == 0, r
    assert Image.open(tmp_path / "demo.png").size[0] > 100
    r = cli("explain", "--demo", "-k", "sobel-x", "--json")
    assert r.code == 0, r
    figures = json.loads(r.stdout)
    assert len(figures) == 1 and "sobel-x" in figures[0]["title"]
    import poolcli

    patch = np.array(figures[0]["input"], np.float32)
    np.testing.assert_array_equal(np.array(figures[0]["result"]), poolcli.convolve(patch, "sobel-x", boundary="valid"))
    r = cli("explain", "--demo", "-k", "gaussian", "--sigma", "3")
    assert r.code == 2 and "at most 5×5" in r.stderr


def test_the_pick_is_marked_with_brackets_without_colour(cli, tmp_path):
    Image.fromarray(np.array([[1, 9], [3, 4]], np.uint8)).save(tmp_path / "p.png")
    r = cli("explain", "p.png", "-m", "max", "-s", "2", "--at", "0,0")
    assert r.code == 0 and "[9]" in r.stdout.decode(), r.stdout.decode()
