"""Many inputs: folders, globs, per-file failures, resuming, reports, interruption."""

import json
import os
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import poolcli_command
from test_cli import decode


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width, height) -> bytes:
    """A tiny file whose header claims a huge image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture
def mixed(tmp_path, samples):
    """A folder of good images, bad files and a nested folder."""
    d = tmp_path / "mixed"
    (d / "sub" / "deeper").mkdir(parents=True)
    for name in ("camera.png", "chelsea.png", "coffee_rgba.png"):
        (d / name).write_bytes((samples / name).read_bytes())
    (d / "sub" / "rocket.jpg").write_bytes((samples / "rocket.jpg").read_bytes())
    (d / "sub" / "deeper" / "astro.png").write_bytes((samples / "astronaut_gray16.png").read_bytes())
    png = (samples / "chelsea.png").read_bytes()
    (d / "truncated.png").write_bytes(png[: len(png) // 2])
    bad = bytearray(png)
    bad[200:400] = bytes(200)
    (d / "corrupt.png").write_bytes(bytes(bad))
    (d / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(d / "dot.png")
    (d / "bomb.png").write_bytes(bomb_png(40000, 40000))
    return d


def test_folder_with_bad_files(cli, mixed, tmp_path):
    r = cli("pool", mixed, "-m", "max", "-s", "2", "-o", f"{tmp_path / 'out'}/", "--json", "--jobs", "2")
    assert r.code == 1, r
    doc = r.json
    rows = {os.path.basename(f["input"]): f for f in doc["files"]}
    assert set(rows) == {
        "camera.png",
        "chelsea.png",
        "coffee_rgba.png",
        "truncated.png",
        "corrupt.png",
        "dot.png",
        "bomb.png",
    }
    for good in ("camera.png", "chelsea.png", "coffee_rgba.png"):
        assert rows[good]["error"] is None
        decode(tmp_path / "out" / good.replace(".png", "_max2.png"))
    for bad, why in [("truncated.png", "corrupt"), ("corrupt.png", "corrupt"), ("dot.png", "smaller than the pooling window"),
                     ("bomb.png", "over the limit")]:  # fmt: skip
        assert why in rows[bad]["error"], rows[bad]
        assert not (tmp_path / "out" / bad.replace(".png", "_max2.png")).exists()
    assert doc["totals"]["files"] == 7 and doc["totals"]["failed"] == 4
    assert "notes.txt: skipped, not an image file" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list((tmp_path / "out").glob(".poolcli-*"))


def test_recursive_keeps_sub_folders(cli, mixed, tmp_path):
    for bad in ("truncated.png", "corrupt.png", "dot.png", "bomb.png"):
        (mixed / bad).unlink()
    r = cli("convolve", mixed, "-r", "-k", "blur", "-o", "out/", "--jobs", "2")
    assert r.code == 0, r
    out = tmp_path / "out"
    assert (out / "sub" / "rocket_blur.png").exists()
    assert (out / "sub" / "deeper" / "astro_blur.png").exists()
    assert decode(out / "sub" / "deeper" / "astro_blur.png").mode == "I;16"
    # without -r only the top folder
    r = cli("convolve", mixed, "-k", "blur", "-o", "flat/")
    assert r.code == 0
    assert sorted(p.name for p in (tmp_path / "flat").rglob("*.png")) == [
        "camera_blur.png",
        "chelsea_blur.png",
        "coffee_rgba_blur.png",
    ]


def test_output_folder_inside_input_is_not_read_back(cli, tmp_path, samples):
    d = tmp_path / "pics"
    d.mkdir()
    (d / "a.png").write_bytes((samples / "camera.png").read_bytes())
    for _ in range(2):
        r = cli("pool", d, "-r", "-m", "max", "-s", "2", "-o", f"{d / 'small'}/", "--json")
        assert r.code == 0, r
        assert [os.path.basename(f["input"]) for f in r.json["files"]] == ["a.png"]


def test_glob_and_several_files(cli, samples, tmp_path):
    r = cli("pool", str(samples / "c*.png"), samples / "rocket.jpg", "-m", "avg", "-s", "4", "-o", "out/", "--json")
    assert r.code == 0, r
    assert sorted(os.path.basename(f["input"]) for f in r.json["files"]) == [
        "camera.png",
        "chelsea.png",
        "coffee_rgba.png",
        "rocket.jpg",
    ]
    r = cli("pool", str(samples / "nothing*.png"), "-m", "avg", "-s", "4", "-o", "out/")
    assert r.code == 1 and "no file matches" in r.stderr


def test_several_inputs_need_an_output_folder(cli, samples):
    r = cli("pool", samples / "camera.png", samples / "chelsea.png", "-m", "max", "-s", "2")
    assert r.code == 2 and "-o DIR" in r.stderr
    r = cli("pool", samples / "camera.png", samples / "chelsea.png", "-m", "max", "-s", "2", "-o", "-")
    assert r.code == 2 and "one input" in r.stderr


def test_same_stem_different_extensions_do_not_collide(cli, samples, tmp_path):
    d = tmp_path / "same"
    d.mkdir()
    Image.open(samples / "chelsea.png").save(d / "x.png")
    Image.open(samples / "chelsea.png").save(d / "x.jpg")
    r = cli("pool", d, "-m", "max", "-s", "2", "-o", "out/")
    assert r.code == 0, r
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x_jpg_max2.png", "x_png_max2.png"]


def test_skip_existing_resumes(cli, samples, tmp_path):
    r = cli("pool", samples, "-m", "max", "-s", "2", "-o", "out/", "--json")
    assert r.code == 0
    first = {f["input"]: f for f in r.json["files"]}
    target = tmp_path / "out" / "camera_max2.png"
    target.unlink()
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    r = cli("pool", samples, "-m", "max", "-s", "2", "-o", "out/", "--skip-existing", "--json")
    assert r.code == 0, r
    rows = {os.path.basename(f["input"]): f for f in r.json["files"]}
    assert rows["camera.png"]["skipped"] is False and target.exists()
    assert all(rows[n]["skipped"] for n in rows if n != "camera.png")
    assert r.json["totals"]["skipped"] == len(first) - 1
    for p in (tmp_path / "out").iterdir():
        if p.name in mtimes:
            assert p.stat().st_mtime_ns == mtimes[p.name]


def test_stdin_among_several_inputs(cli, samples, tmp_path):
    """Standard input belongs to the parent process: it is read there, not by a worker."""
    data = (samples / "chelsea.png").read_bytes()
    r = cli("pool", "-", samples / "camera.png", samples / "rocket.jpg", "-m", "max", "-s", "2", "-o", "out/",
            "--jobs", "2", "--json", stdin=data)  # fmt: skip
    assert r.code == 0, r
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "camera_max2.png",
        "rocket_max2.png",
        "stdin_max2.png",
    ]
    want = np.asarray(Image.open(samples / "chelsea.png"))
    got = np.asarray(decode(tmp_path / "out" / "stdin_max2.png"))
    np.testing.assert_array_equal(got, want[: want.shape[0] // 2 * 2, : want.shape[1] // 2 * 2].reshape(
        want.shape[0] // 2, 2, want.shape[1] // 2, 2, 3).max(axis=(1, 3)))  # fmt: skip


def test_report_file_has_a_row_per_file(cli, samples, tmp_path):
    r = cli("convolve", samples, "-k", "sobel", "-o", "out/", "--report", "report.json", "-q")
    assert r.code == 0 and r.stderr == ""
    doc = json.loads((tmp_path / "report.json").read_text())
    assert len(doc["files"]) == 5 and doc["totals"]["files"] == 5
    for row in doc["files"]:
        assert {"input", "output", "width", "height", "channels", "load_ms", "compute_ms", "save_ms", "error"} <= set(
            row
        )
        assert (tmp_path / row["output"]).exists()


def test_max_pixels(cli, samples):
    r = cli("pool", samples / "camera.png", "-m", "max", "-s", "2", "--max-pixels", "1000")
    assert r.code == 1 and "over the limit of 1,000" in r.stderr
    r = cli("pool", samples / "camera.png", "-m", "max", "-s", "2", "--max-pixels", "0")
    assert r.code == 0


def test_bomb_refused_by_default(cli, tmp_path):
    (tmp_path / "bomb.png").write_bytes(bomb_png(50000, 50000))
    r = cli("pool", "bomb.png", "-m", "max", "-s", "2")
    assert r.code == 1 and "decompression bomb" in r.stderr and "Traceback" not in r.stderr


def test_unwritable_output(cli, samples):
    r = cli("pool", samples / "camera.png", "-m", "max", "-s", "2", "-o", "/proc/poolcli-test.png")
    assert r.code in (1, 2), r
    assert "poolcli: error:" in r.stderr and "/proc/poolcli-test.png" in r.stderr and "Traceback" not in r.stderr
    r = cli("pool", samples, "-m", "max", "-s", "2", "-o", "/proc/poolcli-out/")
    assert r.code == 2 and "/proc/poolcli-out" in r.stderr and "Traceback" not in r.stderr


def start_batch(args, out, written: int) -> subprocess.Popen:
    """Start ``poolcli ARGS`` and return once ``written`` outputs are in the folder ``out``."""
    proc = subprocess.Popen(poolcli_command() + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and len(list(out.glob("*.png"))) >= written):
        time.sleep(0.05)
    return proc


def chelsea_copies(tmp_path, samples, n: int):
    src = tmp_path / "many"
    src.mkdir()
    for i in range(n):
        (src / f"c{i:02d}.png").write_bytes((samples / "chelsea.png").read_bytes())
    return src


def test_sigint_stops_cleanly(tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (480, 640, 3)).astype(np.uint8)
    for i in range(80):
        Image.fromarray(np.roll(base, i, axis=1)).save(src / f"img{i:03d}.png", compress_level=1)
    out = tmp_path / "out"
    proc = start_batch(["convolve", src, "-k", "gaussian", "--sigma", "3", "-o", f"{out}/", "--jobs", "2"], out, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    written = list(out.glob("*.png"))
    assert 2 <= len(written) < 80
    for p in written:
        decode(p)
    assert not [p for p in out.iterdir() if p.name.startswith(".poolcli-")]
    assert b"interrupted" in err and b"Traceback" not in err


def test_second_sigint_stops_waiting(tmp_path):
    """A second Ctrl-C does not wait for the files in hand: their workers are killed, and the
    temporary files they were writing are removed."""
    src = tmp_path / "big"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (1500, 2000, 3)).astype(np.uint8)).save(
            src / f"b{i}.png", compress_level=0
        )
    out = tmp_path / "out"
    proc = subprocess.Popen(poolcli_command() + ["convolve", str(src), "-k", "gaussian", "--sigma", "12", "-o", f"{out}/",
                            "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and any(out.iterdir())) and proc.poll() is None:
        time.sleep(0.01)  # a worker has started writing (its first temp file) or a result is in
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err and b"Traceback" not in err, err.decode()
    time.sleep(0.2)
    assert not [p for p in out.iterdir() if p.name.startswith(".poolcli-")]
    for p in out.iterdir():
        decode(p)


def test_sigterm_stops_cleanly(tmp_path, samples):
    src = chelsea_copies(tmp_path, samples, 40)
    out = tmp_path / "out"
    proc = start_batch(["convolve", src, "-k", "gaussian", "--sigma", "4", "-o", f"{out}/", "--jobs", "1"], out, 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    for p in out.iterdir():
        assert not p.name.startswith(".poolcli-")
        decode(p)


def test_prefetcher_inflates_plain_pngs_and_leaves_the_rest(tmp_path, samples, mixed):
    """The helper's scanlines decode to exactly what the worker's own reading gives; files it
    cannot or should not read (JPEG, corrupt, truncated, over the pixel limit) are left alone."""
    from poolcli import runner
    from poolcli.io import decode as decode_bytes
    from poolcli.io.png import png_picture
    from poolcli.runner import prefetch

    names = sorted(p for p in mixed.rglob("*") if p.is_file())
    tasks = [runner.Task(str(p), str(tmp_path / f"o{i}.png"), "png") for i, p in enumerate(names)]
    pre = prefetch.Prefetcher(tasks, max_pixels=10_000_000, skip_existing=False)
    os.waitpid(pre.pid, 0)  # let it finish everything instead of stopping it
    pre.pid = 0
    taken = {}
    for task in tasks:
        got = pre.take(task)
        if got is not None:
            taken[os.path.basename(task.source)] = got
            want = decode_bytes(Path(task.source).read_bytes(), "x")
            header, raw, extras = got
            if extras is None:
                from poolcli.io.png import png_extras

                extras = png_extras(Path(task.source).read_bytes(), "x")
            pic = png_picture(header, raw, extras, "x")
            np.testing.assert_array_equal(pic.pixels, want.pixels)
            assert pic.alpha == want.alpha and pic.mode == want.mode
            pre.release(task)
            assert pre.take(task) is None
    assert {"camera.png", "chelsea.png", "coffee_rgba.png", "astro.png"} <= set(taken)
    assert not {"truncated.png", "corrupt.png", "bomb.png", "rocket.jpg", "notes.txt"} & set(taken)
    pre.close()


def test_a_killed_worker_loses_no_file(tmp_path, samples):
    """SIGKILL (the OOM killer's signal) to a worker: its files are run again, nothing is lost."""
    src = chelsea_copies(tmp_path, samples, 60)
    out = tmp_path / "out"
    proc = start_batch(["convolve", src, "-k", "gaussian", "--sigma", "3", "-o", f"{out}/", "--jobs", "2"], out, 2)
    children = (Path("/proc") / str(proc.pid) / "task" / str(proc.pid) / "children").read_text().split()
    assert children, "no worker processes"
    os.kill(int(children[0]), signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert sorted(p.name for p in out.iterdir()) == sorted(f"c{i:02d}_gaussian_sigma3.png" for i in range(60))
    for p in out.iterdir():
        decode(p)
    assert b"Traceback" not in err


def test_orphans_of_a_dead_worker_only_are_removed(tmp_path):
    from poolcli import io as pio
    from poolcli import runner
    from poolcli.runner import local

    theirs = tmp_path / f"{pio.temp_prefix(4242)}abc.tmp"
    live = tmp_path / f"{pio.temp_prefix(4243)}abc.tmp"
    theirs.write_bytes(b"x")
    live.write_bytes(b"x")
    local._remove_orphans([runner.Task("a.png", str(tmp_path / "a_max2.png"), "png")], 4242)
    assert not theirs.exists() and live.exists()


class DiesOnSevenRows:
    """A job whose worker dies (as if killed) on images 7 rows high."""

    gray = False
    tag = "dies"

    def __init__(self):
        from poolcli.api import pool_spec
        from poolcli.jobs import PoolJob

        self.inner = PoolJob(pool_spec("max", 1))

    def apply(self, pic):
        if pic.pixels.shape[0] == 7:
            os._exit(9)
        return self.inner.apply(pic)


def test_a_file_that_kills_its_worker_fails_alone(tmp_path):
    from poolcli import runner

    names = []
    for i, h in enumerate([5, 6, 7, 8, 9, 10, 11]):
        Image.fromarray(np.full((h, 4, 3), i, np.uint8)).save(tmp_path / f"i{i}.png")
        names.append(str(tmp_path / f"i{i}.png"))
    (tmp_path / "out").mkdir()
    tasks = [runner.Task(n, str(tmp_path / "out" / os.path.basename(n)), "png") for n in names]
    seen = []
    results = runner.run(tasks, DiesOnSevenRows(), jobs=2, max_pixels=None, png_level=1, on_result=seen.append)
    assert seen == results and len(results) == 7
    failed = [r for r in results if r.error]
    assert [r.input for r in failed] == [names[2]] and "worker process died" in failed[0].error
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.path.basename(n) for n in names if n != names[2])


def _on_a_terminal(args, cwd) -> tuple[int, str]:
    """Run poolcli with stderr on a pseudo-terminal; returns (exit code, what the terminal got)."""
    import pty
    import select

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(poolcli_command() + [str(a) for a in args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=follower, cwd=cwd, env=env)  # fmt: skip
    os.close(follower)
    got = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        try:
            chunk = os.read(leader, 65536) if ready else b""
        except OSError:  # the terminal closed: poolcli has exited
            chunk = b""
        if not chunk:
            break
        got += chunk
    os.close(leader)
    return proc.wait(timeout=60), got.decode(errors="replace")


def test_progress_bar_on_a_terminal(tmp_path, samples):
    src = chelsea_copies(tmp_path, samples, 12)
    code, shown = _on_a_terminal(["pool", src, "-m", "max", "-s", "2", "-o", f"{tmp_path / 'out'}/", "--jobs", "2"], tmp_path)
    assert code == 0, shown
    assert "12/12" in shown and "img/s" in shown  # files done, rate
    assert "→" not in shown  # no per-file log lines under the bar
    assert "files 12 · written 12" in shown
    code, shown = _on_a_terminal(["pool", src, "-m", "max", "-s", "2", "-o", f"{tmp_path / 'q'}/", "-q"], tmp_path)
    assert code == 0 and shown == ""


def test_log_lines_when_not_a_terminal(cli, tmp_path, samples):
    src = chelsea_copies(tmp_path, samples, 3)
    r = cli("pool", src, "-m", "max", "-s", "2", "-o", "out/", "--jobs", "2")
    assert r.code == 0, r
    for i in range(3):
        assert f"c{i:02d}.png → " in r.stderr
    assert "img/s" not in r.stderr


def _wait_until_reading_a_pipe(pid: int, timeout: float = 120) -> None:
    """Return once a thread of process ``pid`` is blocked reading a pipe (its kernel wait
    channel says so), or after a few seconds where the wait channel cannot be read."""
    start = time.time()
    while time.time() < start + timeout:
        try:
            waits = [p.read_text() for p in Path(f"/proc/{pid}/task").glob("*/wchan")]
        except OSError:
            waits = []
        if any("pipe_read" in w for w in waits):
            return
        if not any(w not in ("", "0") for w in waits) and time.time() > start + 5:
            return  # no wait channels to see here: five seconds is ample to start
        time.sleep(0.02)


def test_sigint_while_waiting_for_stdin(tmp_path):
    """Ctrl-C while poolcli waits for an image on a pipe: exit 130, one line, no traceback."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(poolcli_command() + ["pool", "-m", "max", "-s", "2", "-o", str(tmp_path / "x.png")],
                            stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    os.close(read_end)
    try:
        _wait_until_reading_a_pipe(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err and b"Traceback" not in err and b"Aborted" not in err
    assert not (tmp_path / "x.png").exists()


class FailsOnSevenRows(DiesOnSevenRows):
    """A job with a bug that shows on images 7 rows high."""

    def apply(self, pic):
        if pic.pixels.shape[0] == 7:
            return 1 / 0
        return self.inner.apply(pic)


def test_a_bug_in_a_worker_fails_its_file_and_the_rest_go_on(tmp_path):
    """An exception in a worker is a bug: that file's result carries it (the CLI says "internal
    error", exit 70, after writing the report), with the worker's traceback; it is not mistaken
    for a dead worker, and the other files are still written."""
    from poolcli import runner

    names = []
    for i, h in enumerate([5, 6, 7, 8]):
        Image.fromarray(np.full((h, 4, 3), i, np.uint8)).save(tmp_path / f"i{i}.png")
        names.append(str(tmp_path / f"i{i}.png"))
    (tmp_path / "out").mkdir()
    tasks = [runner.Task(n, str(tmp_path / "out" / os.path.basename(n)), "png") for n in names]
    results = runner.run(tasks, FailsOnSevenRows(), jobs=2, max_pixels=None, png_level=1)
    by_name = {os.path.basename(r.input): r for r in results}
    bad = by_name["i2.png"]
    assert "internal error: ZeroDivisionError: division by zero" in bad.error
    assert "return 1 / 0" in bad.bug
    assert all(r.error is None and r.bug is None for n, r in by_name.items() if n != "i2.png")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["i0.png", "i1.png", "i3.png"]


def test_a_bug_is_exit_70_with_the_report_written(tmp_path):
    """The CLI's side: exit 70, the JSON report complete, the traceback only with --debug."""
    import sys

    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / f"i{i}.png")
    script = (
        "import sys, poolcli.jobs as j\n"
        "apply = j.PoolJob.apply\n"
        "def broken(self, pic, **kw):\n"
        "    if pic.pixels[0, 0, 0] == 1: raise RuntimeError('boom')\n"
        "    return apply(self, pic, **kw)\n"
        "j.PoolJob.apply = broken\n"
        "from poolcli.cli import main\n"
        "sys.argv = ['poolcli'] + sys.argv[1:]\n"
        "main()\n"
    )
    base = [sys.executable, "-c", script, "pool", str(tmp_path), "-m", "max", "-s", "2", "-o", f"{tmp_path / 'out'}/"]
    for debug in ([], ["--debug"]):
        proc = subprocess.run(base + ["--report", str(tmp_path / "r.json"), "-q", "--jobs", "1"] + debug,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 70, proc.stderr
        assert "i1.png: internal error: RuntimeError: boom" in proc.stderr
        assert ("Traceback" in proc.stderr) == bool(debug), proc.stderr
        report = json.loads((tmp_path / "r.json").read_text())
        assert [f["error"] is None for f in report["files"]] == [True, False, True]
