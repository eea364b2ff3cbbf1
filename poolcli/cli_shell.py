"""The command line's manners in a shell: standard streams that may be closed or unable to
print UTF-8, what SIGINT and SIGTERM do at each moment, one-line errors, the progress shown per
file, and a fast exit."""

from __future__ import annotations

import errno
import os
import re
import sys
import time

from .errors import StdoutError, UsageError


class Stop(BaseException):
    """SIGINT or SIGTERM outside the image work: passes through Click (which would turn a
    KeyboardInterrupt into "Aborted!" and exit 1) to :func:`main`, which exits 130."""


class _Interrupts:
    """What SIGINT and SIGTERM do: ``stop`` raises :class:`Stop`; ``batch`` (while images are
    processed) raises KeyboardInterrupt, which :func:`poolcli.runner.run` turns into a clean stop;
    ``note`` (while the summary prints) only remembers it, for the exit code 130."""

    def __init__(self):
        self.mode, self.seen = "stop", False

    def __call__(self, signum, frame) -> None:
        self.seen = True
        if self.mode == "batch":
            raise KeyboardInterrupt
        if self.mode == "stop":
            raise Stop


INTERRUPTS = _Interrupts()


def progress_reporter(console, total: int, bar: bool, quiet: bool):
    """A per-file callback: a Rich progress bar on a terminal, else one log line per file."""
    progress = None
    if bar:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console, transient=True,
        )  # fmt: skip
        bar_id = progress.add_task("images", total=total, rate="")
        progress.start()
        start = time.perf_counter()
        count = [0]

    def say(line: str) -> None:  # above the progress bar while it shows
        if progress is not None:
            progress.console.print(line, highlight=False, markup=False)
        else:
            sys.stderr.write(line + "\n")

    def on_result(r) -> None:
        if r.error:
            say(f"poolcli: error: {r.error}")
        elif r.notes and not quiet:
            for note in r.notes:
                say(f"poolcli: note: {r.input}: {note}")
        if not r.error and total > 1 and not quiet and progress is None:
            what = "skipped (exists)" if r.skipped else f"{r.load_ms + r.compute_ms + r.save_ms:.0f} ms"
            sys.stderr.write(f"poolcli: {r.input} → {r.output} ({what})\n")
        if progress is not None:
            count[0] += 1
            rate = count[0] / max(time.perf_counter() - start, 1e-9)
            progress.update(bar_id, advance=1, rate=f"{rate:.1f} img/s")

    return on_result, progress


class ClosedStdout:
    """``sys.stdout`` when poolcli started with it closed: writing is that error."""

    encoding = "utf-8"
    errors = "strict"

    def write(self, text) -> int:
        raise StdoutError(errno.EBADF, "standard output is closed: nothing can be printed there")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    @property
    def buffer(self):
        return self


_ASCII = {"×": "x", "√": "sqrt", "→": "->", "…": "...", "·": "*", "−": "-", "⌊": "floor(", "⌋": ")", "⌈": "ceil(",
          "⌉": ")", "≥": ">=", "≤": "<=", "∝": "~", "σ": "sigma", "²": "^2", "ᵖ": "^p", "Σ": "sum", "°": " deg",
          "—": "-", "–": "-", "±": "+-", "’": "'", "“": '"', "”": '"'}  # fmt: skip


def _ascii_errors(exc: UnicodeEncodeError):
    """A codec error handler: what a terminal cannot print, in ASCII (``x`` for ``×``, ``sqrt``
    for ``√``), ``?`` where nothing fits; poolcli never fails on a terminal's encoding."""
    text = exc.object[exc.start : exc.end]
    return "".join(_ASCII.get(ch, "?") for ch in text), exc.end


def ascii_fallback() -> None:
    """Standard output and error degrade to ASCII on terminals that cannot print UTF-8."""
    import codecs

    codecs.register_error("poolcli-ascii", _ascii_errors)
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding and encoding not in ("utf8", "utf16", "utf32") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="poolcli-ascii")
            except (ValueError, OSError):
                pass


def one_suggestion(message: str) -> str:
    """A Click message on one line, with one "Did you mean …?": Click 8.4+ suggests a command
    itself and Typer adds its own suggestion on top."""
    text = " ".join(message.split())
    seen: list[str] = []
    for hint in re.findall(r" ?\(?Did you mean [^?]*\?\)?", text):
        if seen:
            text = text.replace(hint, "", 1)
        seen.append(hint)
    return text


def exit_now(code) -> None:
    """Exit with ``code`` at once (``os._exit``), once the standard streams are flushed.

    By now every output file is written, renamed and closed, and worker processes have been
    joined and the helper reaped.  A normal interpreter exit would spend 0.15–0.3 s tearing
    down Numba and LLVM, and after a Ctrl-C it could trip over the read-ahead thread, which
    is left to finish reading its file.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): print it, as Python would
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # the reader closed the pipe: nothing more to deliver
            pass
    os._exit(code)


MIN_ADDRESS_SPACE = 1 << 30  # NumPy, Numba and LLVM's code and heaps: see check_address_space



def check_address_space() -> None:
    """Refuse to start, in one line, under an address-space limit (``ulimit -v``) too small for
    NumPy, Numba and LLVM to load: below about 0.6 GB, loading them fails at random places, and
    LLVM aborts the process outright where it cannot allocate, with no chance of a message."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft < MIN_ADDRESS_SPACE:
        raise UsageError(
            f"the address-space limit (ulimit -v) is {soft / 2**20:,.0f} MB; poolcli needs at least "
            f"{MIN_ADDRESS_SPACE >> 20:,} MB to load its compiled code: raise it (ulimit -v {MIN_ADDRESS_SPACE >> 10})"
        )
