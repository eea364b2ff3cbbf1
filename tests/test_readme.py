"""The README's code blocks run as written and print what they show (issue #16).

Fenced ```python blocks are executed in a folder holding ``photo.png``; fenced blocks whose
first line is a ``$ poolcli …`` prompt are run in a folder holding a copy of sample_images/
(and the ``out/`` folder the README's first command makes), and every line they show must
appear in that order in what the command prints.  Timing rows (``compile``, ``load``,
``compute``, ``save``, ``wall``) are compared by their stage name only, and a ``...`` line
stands for any number of lines.  A block right after an HTML comment that says "not executed"
is skipped, with the reason in that comment.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import ROOT, SAMPLES, poolcli_command

TIMING = re.compile(r"^(compile|load|compute|save|wall)\s|^\s+\d+\. .* ms$")


def _masked(line: str) -> str:
    """A timing line with its numbers masked: the stage table's rows and a pipeline's stages."""
    if line.startswith("stage ") and line.split() == ["stage", "ms", "MP/s"]:
        return "stage ms MP/s"  # the header's spacing follows the widest number below it
    if not TIMING.match(line):
        return line.rstrip()
    return re.sub(r"\s+[\d.,]+ ms$", "", line.rstrip()) if line.rstrip().endswith(" ms") else line.split()[0]


def blocks(kind: str) -> list[tuple[int, str]]:
    """(line number, text) of the README's fenced blocks: ``python`` or ``shell`` ($ prompts)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        body = lines[i + 1 : j]
        skipped = i > 0 and "not executed" in lines[i - 1]
        is_shell = fence.group(1) == "" and body and body[0].startswith("$ poolcli")
        if not skipped and ((kind == "python" and fence.group(1) == "python") or (kind == "shell" and is_shell)):
            found.append((i + 1, "\n".join(body)))
        i = j + 1
    return found


@pytest.mark.parametrize("line,code", blocks("python"), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_python_blocks_run(tmp_path, monkeypatch, line, code):
    shutil.copy(SAMPLES / "chelsea.png", tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md:{line}", "exec"), {})


def expected_runs(text: str) -> list[tuple[str, list[str]]]:
    runs = []
    for raw in text.splitlines():
        if raw.startswith("$ "):
            runs.append((raw[2:].split("#", 1)[0].strip(), []))
        elif raw.strip():
            runs[-1][1].append(raw.rstrip())
    return runs


def test_the_comparison_can_fail():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert not matches(["a", "d"], ["a", "b", "d"])
    assert not matches(["wall     1.0"], ["load 2.0"])


def matches(shown: list[str], printed: list[str]) -> bool:
    """Every shown line in order among the printed ones; '...' skips any number of lines."""
    at, free = 0, False
    for want in shown:
        if want.strip() == "...":
            free = True
            continue
        while at < len(printed):
            got = printed[at]
            at += 1
            if _masked(got) == _masked(want):
                break
            if not free:
                return False
        else:
            return False
        free = False
    return True


@pytest.mark.parametrize("line,text", blocks("shell"), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_shell_blocks_print_what_they_show(tmp_path, line, text):
    shutil.copytree(SAMPLES, tmp_path / "sample_images")
    (tmp_path / "out").mkdir()
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    for command, shown in expected_runs(text):
        argv = shlex.split(command)
        assert argv[0] == "poolcli"
        proc = subprocess.run(poolcli_command() + argv[1:], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert proc.returncode == 0, (command, proc.stderr)
        printed = (proc.stdout + proc.stderr).splitlines()
        assert matches(shown, printed), f"README.md:{line}: `{command}` printed:\n" + "\n".join(printed)
