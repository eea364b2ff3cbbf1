import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"


def poolcli_command() -> list[str]:
    """The installed console script (beside this Python), else ``python -m poolcli``."""
    script = Path(sys.executable).with_name("poolcli")
    if script.exists():
        return [str(script)]
    found = shutil.which("poolcli")
    return [found] if found else [sys.executable, "-m", "poolcli"]


class Run:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr.decode(errors="replace")

    @property
    def json(self):
        return json.loads(self.stdout)

    def __repr__(self):
        return f"<exit {self.code}: {self.stderr[-2000:]}>"


@pytest.fixture
def cli(tmp_path):
    """Run the installed ``poolcli`` in ``tmp_path``; returns exit code, stdout bytes, stderr text."""

    def run(*args, stdin: bytes | None = None, cwd=None, env=None, timeout=300) -> Run:
        full_env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", **(env or {})}
        proc = subprocess.run(
            poolcli_command() + [str(a) for a in args],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            cwd=cwd or tmp_path,
            env=full_env,
            timeout=timeout,
        )
        return Run(proc)

    return run


@pytest.fixture
def samples(tmp_path) -> Path:
    """A writable copy of sample_images/ in the test's folder."""
    dest = tmp_path / "samples"
    shutil.copytree(SAMPLES, dest)
    return dest


class Measured(Run):
    """A finished run with the peak resident memory of the process (and the workers it waited for)."""

    def __init__(self, code: int, stdout: bytes, stderr: bytes, peak_mb: float, seconds: float):
        self.code, self.stdout, self.stderr = code, stdout, stderr.decode(errors="replace")
        self.peak_mb, self.seconds = peak_mb, seconds


# Linux keeps a process's peak RSS across fork and exec, so a child started straight from this
# (large) test process would report at least this process's size: a small launcher forks the
# command and reports the command's own peak (ru_maxrss, kB) on the file descriptor it is given.
_LAUNCH = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(int(sys.argv[1]), str(usage.ru_maxrss).encode())
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""


@pytest.fixture
def measured(tmp_path):
    """Run the installed ``poolcli`` like ``cli`` does, and measure its peak RSS."""
    import signal
    import threading
    import time

    def run(*args, stdin=None, cwd=None, timeout=120, env=None) -> Measured:
        full_env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", **(env or {})}
        t0 = time.perf_counter()
        peak_r, peak_w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _LAUNCH, str(peak_w), *poolcli_command(), *[str(a) for a in args]],
            cwd=cwd or tmp_path,
            env=full_env, stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=(peak_w,), start_new_session=True,
        )  # fmt: skip
        os.close(peak_w)
        got = {}
        readers = [threading.Thread(target=lambda k=k, s=s: got.__setitem__(k, s.read()))
                   for k, s in (("out", proc.stdout), ("err", proc.stderr), ("peak", os.fdopen(peak_r, "rb")))]  # fmt: skip
        for r in readers:
            r.start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"poolcli {args} did not finish in {timeout} s (a hang)")
        for r in readers:
            r.join()
        peak_kb = int(got["peak"] or 0)
        return Measured(proc.returncode, got["out"], got["err"], peak_kb / 1024, time.perf_counter() - t0)

    return run
