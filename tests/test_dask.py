"""Beyond one machine (contract §8, issue #13): the Dask executor (an in-process cluster, and a
real scheduler with two worker processes on 127.0.0.1) gives the local pool's outputs byte for
byte, the same report and exit codes; a killed worker loses no file; shards partition a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import poolcli_command
from test_cli import one_line_error

pytest.importorskip("distributed")  # the test extra installs it; a plain install may not have it

DASK = str(Path(sys.executable).with_name("dask"))


def photos(folder: Path, n: int, bad: bool = False) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (120, 160, 3)).astype(np.uint8)
    for i in range(n):
        Image.fromarray(np.roll(base, i, axis=1)).save(folder / f"p{i:03d}.png")
    if bad:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        (folder / "empty.jpg").write_bytes(b"")
    return folder


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real scheduler and two single-threaded worker processes, on loopback only."""
    tmp = tmp_path_factory.mktemp("dask")
    info = tmp / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(info)], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    try:
        deadline = time.time() + 60
        while not info.exists() and time.time() < deadline:
            time.sleep(0.1)
        import json

        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--host",
                                           "127.0.0.1", "--no-dashboard"], cwd=tmp, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def run(*args, timeout=300):
    proc = subprocess.run(poolcli_command() + [str(a) for a in args], capture_output=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "120"})  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr.decode()


def report_shape(stdout: bytes):
    import json

    doc = json.loads(stdout)
    return sorted(doc), sorted(doc["totals"]), sorted((os.path.basename(f["input"]), f["error"] is None, sorted(f))
                                                      for f in doc["files"])  # fmt: skip


@pytest.mark.parametrize("where", ["in-process", "scheduler"])
def test_dask_gives_the_local_pool_s_results(tmp_path, request, where):
    src = photos(tmp_path / "in", 12, bad=True)
    extra = ["--executor", "dask"]
    if where == "scheduler":
        address, _ = request.getfixturevalue("cluster")
        extra += ["--scheduler", address]
    for command in (["pool", "-m", "max", "-s", "2"], ["run", "blur | relu | max 2"]):
        local = run(*command, src, "-o", f"{tmp_path / 'local'}/", "--json", "-q")
        dask = run(*command, src, "-o", f"{tmp_path / 'dask'}/", "--json", "-q", *extra)
        assert local[0] == dask[0] == 1, (local[2], dask[2])
        assert outputs(tmp_path / "local") == outputs(tmp_path / "dask")
        assert report_shape(local[1]) == report_shape(dask[1])
        assert sorted(local[2].splitlines()) == sorted(dask[2].splitlines())  # the same error lines
        for d in ("local", "dask"):
            for p in (tmp_path / d).iterdir():
                p.unlink()


def test_the_scheduler_from_the_environment(tmp_path, cluster):
    address, _ = cluster
    src = photos(tmp_path / "in", 3)
    proc = subprocess.run(poolcli_command() + ["pool", str(src), "-m", "max", "-s", "2", "-o", f"{tmp_path / 'o'}/",
                                               "--executor", "dask", "-q"],
                          capture_output=True, env={**os.environ, "POOLCLI_SCHEDULER": address}, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "o").iterdir())) == 3


def test_a_killed_worker_loses_no_file(tmp_path, cluster):
    address, procs = cluster
    src = photos(tmp_path / "in", 60)
    out = tmp_path / "out"
    proc = subprocess.Popen(poolcli_command() + ["convolve", str(src), "-k", "gaussian", "--sigma", "4", "-o",
                            f"{out}/", "--executor", "dask", "--scheduler", address, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and len(list(out.glob("*.png"))) >= 3):
        time.sleep(0.02)
    victim = procs[1]
    victim.send_signal(signal.SIGKILL)  # a worker dies in the middle of the run
    victim.wait()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"p{i:03d}_gaussian_sigma4.png" for i in range(60))
    for p in out.iterdir():
        assert Image.open(p).size == (160, 120)  # whole, not half-written


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_shards_partition_the_run(tmp_path, n):
    src = photos(tmp_path / "in", 7)
    run("pool", src, "-m", "max", "-s", "2", "-o", f"{tmp_path / 'whole'}/", "-q")
    seen: dict[str, bytes] = {}
    for k in range(1, n + 1):
        code, _, err = run("pool", src, "-m", "max", "-s", "2", "-o", f"{tmp_path}/s{k}/", "--shard", f"{k}/{n}", "-q")
        assert code == 0, err
        part = outputs(tmp_path / f"s{k}") if (tmp_path / f"s{k}").exists() else {}
        assert not set(part) & set(seen)  # disjoint
        seen.update(part)
    assert seen == outputs(tmp_path / "whole")  # together, exactly the whole run


def test_a_shard_resumes_with_skip_existing(tmp_path):
    src = photos(tmp_path / "in", 5)
    first = run("pool", src, "-m", "max", "-s", "2", "-o", f"{tmp_path / 'o'}/", "--shard", "1/1", "--json", "-q")
    again = run("pool", src, "-m", "max", "-s", "2", "-o", f"{tmp_path / 'o'}/", "--shard", "1/1", "--skip-existing",
                "--json", "-q")  # fmt: skip
    import json

    assert first[0] == again[0] == 0
    assert all(f["skipped"] for f in json.loads(again[1])["files"])


@pytest.mark.parametrize("shard", ["0/3", "4/3", "a/b", "1/0", "2"])
def test_bad_shards_are_usage_errors(cli, samples, shard):
    r = cli("pool", samples, "-m", "max", "-s", "2", "-o", f"{samples / 'o'}/", "--shard", shard)
    one_line_error(r, "--shard")
    assert r.code == 2


def test_without_dask_the_executor_says_how_to_install_it(tmp_path):
    script = "import sys; sys.modules['distributed'] = None\nfrom poolcli.cli import main\nsys.argv = ['poolcli'] + sys.argv[1:]\nmain()\n"
    (tmp_path / "a.png").write_bytes((Path(__file__).parent.parent / "sample_images" / "camera.png").read_bytes())
    proc = subprocess.run([sys.executable, "-c", script, "pool", "a.png", "-m", "max", "-s", "2", "--executor", "dask"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "pip install 'poolcli[dask]'" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_an_unreachable_scheduler_is_one_line(cli, samples):
    r = cli("pool", samples / "camera.png", "-m", "max", "-s", "2", "--executor", "dask", "--scheduler",
            "tcp://127.0.0.1:9", timeout=120)  # fmt: skip
    one_line_error(r, "cannot reach the Dask scheduler")
    assert r.code == 2


def test_ctrl_c_cancels_a_dask_run(tmp_path):
    src = photos(tmp_path / "in", 80)
    out = tmp_path / "out"
    proc = subprocess.Popen(poolcli_command() + ["convolve", str(src), "-k", "gaussian", "--sigma", "6", "-o", f"{out}/",
                            "--executor", "dask", "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and list(out.glob("*.png"))):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err and b"Traceback" not in err
    written = list(out.glob("*.png"))
    assert 0 < len(written) < 80  # stopped early: the rest was cancelled
    assert not [p for p in out.iterdir() if p.name.startswith(".poolcli-")]
    for p in written:
        assert Image.open(p).size == (160, 120)
