"""Faults of the environment (issue #16): a parent killed hard leaves no worker running and no
temporary file; resource limits are named, never reported as bugs; stale temporary files of dead
processes are removed; --skip-existing redoes incomplete outputs; default names never collide;
logs are never wrapped."""

from __future__ import annotations

import itertools
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import poolcli_command
from hostile import encoded, photo
from test_cli import one_line_error


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_killing_the_parent_leaves_no_worker_and_no_temp_file(tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    base = np.random.default_rng(0).integers(0, 256, (600, 800, 3)).astype(np.uint8)
    for i in range(40):
        Image.fromarray(np.roll(base, i, axis=1)).save(src / f"img{i:02d}.png", compress_level=0)
    out = tmp_path / "out"
    proc = subprocess.Popen(poolcli_command() + ["convolve", str(src), "-k", "gaussian", "--sigma", "4", "-o", f"{out}/",
                            "--jobs", "2", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and list(out.glob("*.png"))):
        time.sleep(0.02)
    workers = _children(proc.pid)
    assert workers, "no worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 5
    while time.time() < deadline and any(_running(w) for w in workers):
        time.sleep(0.05)
    assert not [w for w in workers if _running(w)], "workers outlived their parent"
    time.sleep(0.2)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".poolcli-")]


def _limited(megabytes: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (megabytes << 20, megabytes << 20))

    return limit


@pytest.mark.parametrize("megabytes", [200, 400])
def test_a_tight_address_space_limit_is_one_line_not_a_bug(tmp_path, megabytes):
    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    for args in (["pool", "a.png", "-m", "max", "-s", "2"], ["convolve", "a.png", "-k", "sobel"]):
        proc = subprocess.run(poolcli_command() + args + ["-o", "o.png"], cwd=tmp_path, capture_output=True,
                              text=True, preexec_fn=_limited(megabytes), timeout=120)  # fmt: skip
        assert proc.returncode not in (0, 70) and proc.returncode < 128, proc
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("poolcli: error:") and "ulimit -v" in lines[0], proc.stderr


def test_running_out_of_memory_mid_run_is_named(tmp_path):
    """A MemoryError while computing is the machine's limit, not a bug: exit 1, one line."""
    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    script = (
        "import sys, poolcli.jobs as j\n"
        "def broken(self, pic, **kw): raise MemoryError\n"
        "j.PoolJob.apply = broken\n"
        "from poolcli.cli import main\n"
        "sys.argv = ['poolcli'] + sys.argv[1:]\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, "pool", "a.png", "-m", "max", "-s", "2", "-o", "o.png", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == "poolcli: error: a.png: out of memory (" + proc.stderr.split("(", 1)[1].strip()
    assert "Traceback" not in proc.stderr


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_of_dead_processes_are_removed(cli, tmp_path):
    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    (tmp_path / "out").mkdir()
    from poolcli import io as pio

    stale = tmp_path / "out" / f"{pio.temp_prefix(_dead_pid())}abcd1234.tmp"
    stale.write_bytes(b"\x89PNG half an image")
    alive = tmp_path / "out" / f"{pio.temp_prefix()}efgh5678.tmp"  # this test's own pid: alive
    alive.write_bytes(b"x")
    elsewhere = tmp_path / "out" / f".poolcli-another-host-{_dead_pid()}-ijkl9012.tmp"  # shared storage
    elsewhere.write_bytes(b"x")
    r = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "out/", "--skip-existing")
    assert r.code == 0, r
    assert not stale.exists() and alive.exists() and elsewhere.exists()
    assert f"removed {stale}" in r.stderr or f"removed {os.path.realpath(stale)}" in r.stderr, r.stderr


@pytest.mark.parametrize("planted", [b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, b"not a png at all"])
def test_skip_existing_redoes_incomplete_outputs(cli, tmp_path, planted):
    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_max2.png").write_bytes(planted)
    r = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "out/", "--skip-existing", "--json")
    assert r.code == 0, r
    assert r.json["files"][0]["skipped"] is False
    assert Image.open(tmp_path / "out" / "a_max2.png").size == (32, 24)
    r = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "out/", "--skip-existing", "--json")
    assert r.json["files"][0]["skipped"] is True  # now complete: skipped


def test_skip_existing_checks_each_format(tmp_path):
    from poolcli import io as pio

    pic = photo()
    for fmt, data in (("png", encoded(pic, "PNG")), ("jpg", encoded(pic, "JPEG")), ("webp", encoded(pic, "WEBP")),
                      ("tiff", encoded(pic, "TIFF")), ("bmp", encoded(pic, "BMP"))):  # fmt: skip
        path = tmp_path / f"x.{fmt}"
        path.write_bytes(data)
        assert pio.complete_output(str(path), fmt)
        path.write_bytes(data[: len(data) // 2])
        assert pio.complete_output(str(path), fmt) == (fmt in ("tiff", "bmp")), fmt  # no end marker to check
        path.write_bytes(b"")
        assert not pio.complete_output(str(path), fmt)
    np.save(tmp_path / "x.npy", pic.astype(np.float32))
    assert pio.complete_output(str(tmp_path / "x.npy"), "npy")
    (tmp_path / "x.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:-10])
    assert not pio.complete_output(str(tmp_path / "x.npy"), "npy")


# ------------------------------------------------------------------ default names


def _pool_key(job):
    """What decides a pooled result: only the options that matter for its mode."""
    s = job.spec
    key = [s.mode, s.output_size, job.gray]
    if s.output_size is None:
        key += [s.size, s.stride, s.padding, s.dilation, s.ceil_mode]
    key += [s.p if s.mode == "lp" else None, s.divisor if s.mode == "avg" else None]
    key += [s.count_include_pad if s.mode == "avg" and s.divisor is None and s.output_size is None else None]
    key += [s.seed if s.mode == "stochastic" else None]
    return tuple(key)


def test_pool_default_names_never_collide():
    from poolcli.api import UsageError
    from poolcli.jobs import PoolJob

    tags: dict[str, tuple] = {}
    grid = itertools.product(
        ["max", "avg", "min", "lp", "l2", "median", "stochastic"], ["2", "3", "2x3"], [None, "1", "2", "1x2"],
        ["0", "1"], ["1", "2"], [False, True], [True, False], [None, 3], [2.0, 3.0, 0.5], [None, 7],
        [(False, None), (True, None), (False, "4x3")], [False, True],
    )  # fmt: skip
    for mode, size, stride, pad, dil, ceil, cip, div, p, seed, (glob, to), gray in grid:
        try:
            job = PoolJob.build(mode, size, stride=stride, padding=pad, dilation=dil, ceil_mode=ceil,
                                count_include_pad=cip, divisor=div, p=p, seed=seed, is_global=glob, to=to,
                                gray=gray)  # fmt: skip
        except UsageError:
            continue
        key = (_pool_key(job), job.is_global)
        assert tags.setdefault(job.tag, key) == key, f"{job.tag}: {tags[job.tag]} and {key}"
    assert len(tags) > 1500  # distinct settings seen (the grid holds 1,976)


def test_convolve_default_names_never_collide():
    from poolcli.jobs import ConvolveJob

    tags: dict[str, tuple] = {}
    kernels = [("sobel", {}), ("sobel-x", {}), ("gaussian", {}), ("gaussian", {"sigma": 2.0}),
               ("gaussian", {"sigma": 2.5}), ("gaussian", {"size": 5}), ("box", {"size": 5}), ("box", {}),
               ("0,1;1,0", {}), ("0,1;1,1", {}), ("1 2 3", {})]  # fmt: skip
    grid = itertools.product(
        kernels, ["reflect", "mirror", "constant", "valid"], [0.0, 0.5], [1, 2], [1, 3], [False, True],
        [False, True], ["auto", "clip", "normalize", "abs"],
    )  # fmt: skip
    for (kernel, params), boundary, cval, stride, dilation, flip, gray, scale in grid:
        job = ConvolveJob.build(kernel, boundary=boundary, cval=cval, stride=stride, dilation=dilation, flip=flip,
                                gray=gray, scale=scale, **params)  # fmt: skip
        s = job.spec
        key = (s.kernel.shape, s.kernel.tobytes(), s.boundary, s.cval + 0.0 if s.boundary == "constant" else None,
               s.stride, s.dilation, gray, job.scale_rule())  # fmt: skip
        assert tags.setdefault(job.tag, key) == key, job.tag
    assert len(tags) > 1000


def test_lp_powers_get_their_own_names(cli, samples):
    for args in (["-m", "l2"], ["-m", "lp", "--p", "3"]):
        assert cli("pool", samples / "camera.png", *args, "-s", "2", "-q").code == 0
    assert (samples / "camera_lp2_pow2.png").exists() and (samples / "camera_lp2_pow3.png").exists()


# ------------------------------------------------------------------ messages


def test_summary_is_not_wrapped_in_logs(cli, samples):
    r = cli("convolve", samples / "camera.png", "-k", "gaussian", "--sigma", "1.5", "-b", "constant", "--cval", "3",
            "--stride", "2", "--dilation", "2", "--gray", "-o", samples / "x.png", env={"COLUMNS": "40"})  # fmt: skip
    assert r.code == 0, r
    header = [ln for ln in r.stderr.splitlines() if ln.startswith("poolcli convolve:")]
    assert len(header) == 1 and header[0].endswith("scale clip"), r.stderr
    assert "· gray ·" in header[0] and "gray True" not in header[0]


def test_pillow_lineless_errors_still_name_the_file(cli, tmp_path):
    (tmp_path / "x.webp").write_bytes(b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 8)
    one_line_error(cli("pool", "x.webp", "-m", "max", "-s", "2", "-o", "o.png"), "x.webp")


@pytest.mark.parametrize("where", ["creating", "after creating", "writing", "renaming"])
def test_an_interrupt_anywhere_in_an_atomic_write_leaves_no_temp_file(tmp_path, monkeypatch, where):
    """A signal's handler runs at the main thread's next bytecode, even inside the call that
    creates the temp file (when another thread took the signal): wherever KeyboardInterrupt is
    raised, the temp file is removed and the destination is untouched (the CI flake of stop 29)."""
    from poolcli.io import files

    dest = tmp_path / "out.png"
    dest.write_bytes(b"old")
    real_open, real_close, real_replace = os.open, os.close, os.replace

    def interrupt_after(real):
        def call(*args, **kw):
            real(*args, **kw)
            raise KeyboardInterrupt

        return call

    if where == "creating":  # the file exists, the descriptor is never returned
        monkeypatch.setattr(files.os, "open", interrupt_after(real_open))
    elif where == "after creating":
        monkeypatch.setattr(files.os, "close", interrupt_after(real_close))
    elif where == "renaming":  # raised just after the rename: the new file is whole
        monkeypatch.setattr(files.os, "replace", interrupt_after(real_replace))
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_output(str(dest)) as fh:
            fh.write(b"new")
            if where == "writing":
                raise KeyboardInterrupt
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert dest.read_bytes() == (b"new" if where == "renaming" else b"old")
