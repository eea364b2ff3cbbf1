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
