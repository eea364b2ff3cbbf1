"""A whole image command's run, from its options to its report, with no printing: the command
line (:mod:`poolcli.cli`) builds an :class:`Execution`, shows its notes, runs it with a
callback per file, and prints what :meth:`Execution.report` returns.  Every check that needs
no pixels happens in :meth:`Execution.plan`, before anything is written (UsageError)."""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import io
from ..errors import UsageError
from .plan import Planned, output_folders, plan_run, task_files
from .records import Settings

if TYPE_CHECKING:
    from ..jobs import Job


@dataclass(frozen=True)
class RunOptions:
    """The options every image command shares (the command line declares each once)."""

    output: str | None = None
    fmt: str | None = None
    json_out: bool = False
    report: str | None = None
    quiet: bool = False
    threads: int | None = None
    jobs: int | None = None
    recursive: bool = False
    skip_existing: bool = False
    max_pixels: int = io.PILLOW_DEFAULT_MAX_PIXELS
    compress_level: int | None = None
    strip: bool = False
    quality: int | None = None
    montage: str | None = None
    executor: str | None = None
    scheduler: str | None = None
    shard: str | None = None
    stream: bool | None = None
    page: int = 0
    layout: str | None = None
    name: str | None = None
    files_from: str | None = None
    null: bool = False
    dry_run: bool = False
    debug: bool = False

    def settings(self) -> Settings:
        """How each file is read and written under these options."""
        from ..io.png import DEFAULT_LEVEL

        level = DEFAULT_LEVEL if self.compress_level is None else self.compress_level
        return Settings(max_pixels=self.max_pixels or None, png_level=level, skip_existing=self.skip_existing,
                        strip=self.strip, quality=self.quality, montage=self.montage, stream=self.stream,
                        page=self.page, layout=self.layout.lower() if self.layout else None)  # fmt: skip


def listed_inputs(inputs: list[str], opts: RunOptions, stdin=None) -> list[str] | None:
    """The paths ``--files-from`` names (None without it): one a line, relative to the current
    folder as ``tar -T`` takes them, blank lines skipped and ``\\r`` stripped; NUL-separated with
    ``-0``.  They are taken as they are, never as globs."""
    if opts.null and opts.files_from is None:
        raise UsageError("-0/--null goes with --files-from (the list's paths are NUL-separated)")
    if opts.files_from is None:
        return None
    if opts.files_from == "-" and "-" in inputs:
        raise UsageError("--files-from - reads the list from standard input, so an INPUT - cannot read an image there")
    try:
        if opts.files_from == "-":
            data = (stdin or sys.stdin.buffer).read()
        else:
            with open(opts.files_from, "rb") as fh:
                data = fh.read(64 << 20)
    except OSError as exc:
        raise UsageError(f"--files-from {opts.files_from}: cannot read it ({exc.strerror or exc})") from None
    text = data.decode("utf-8", "surrogateescape")
    entries = text.split("\0") if opts.null else text.splitlines()
    return [e.rstrip("\r") if not opts.null else e for e in entries if e.strip("\r\n")]


def choose_executor(executor: str | None, scheduler: str | None) -> str:
    """``--executor``, where naming a scheduler asks for Dask (contract §8)."""
    if executor is None:
        return "dask" if scheduler else "local"
    executor = executor.strip().lower()
    if executor not in ("local", "dask"):
        raise UsageError(f"unknown --executor '{executor}' (choose from local, dask)")
    if executor == "local" and scheduler:
        raise UsageError(f"--scheduler {scheduler} runs on Dask: drop --executor local (or --scheduler)")
    return executor


class NoInputs(Exception):
    """The inputs named no image file; ``notes`` say what was passed over."""

    def __init__(self, notes: list[str]):
        super().__init__("no image files found in the inputs given")
        self.notes = notes


class Execution:
    """One image command's run: :meth:`plan` checks and names everything, :meth:`run` processes
    the files, :meth:`report` gives the JSON report."""

    def __init__(self, command: str, job: Job, opts: RunOptions):
        self.command, self.job, self.opts = command, job, opts
        self.executor, self.scheduler = "local", None
        self.planned: Planned | None = None
        self.jobs = opts.jobs or len(os.sched_getaffinity(0))

    def plan(self, inputs: list[str], *, stdin_is_terminal: bool, stdout_is_terminal: bool) -> Planned:
        """Name every file of the run and check it (UsageError; :class:`NoInputs`); with no
        inputs, standard input is read when it is not a terminal."""
        from ..engine import runtime

        job, opts = self.job, self.opts
        inputs = list(inputs or [])
        listed = listed_inputs(inputs, opts)
        if not inputs and listed is None:
            if stdin_is_terminal:
                raise UsageError(f"no input: give image files or folders, or pipe an image in: `poolcli {self.command} "
                                 f"photo.png ...` or `poolcli {self.command} ... < photo.png > out.png`")  # fmt: skip
            inputs = ["-"]
        runtime.set_threads(opts.threads)
        self.executor = choose_executor(opts.executor, opts.scheduler)
        self.scheduler = opts.scheduler
        if self.executor == "dask":
            from . import dask

            dask.require()
            self.scheduler = dask.scheduler_from_env(opts.scheduler)
        tag = job.tag if not opts.page or job.tag_given else f"{job.tag}_page{opts.page}"
        planned = plan_run(inputs, output=opts.output, fmt=opts.fmt, tag=tag, recursive=opts.recursive,
                           montage=opts.montage, job=job, report=opts.report, shard=opts.shard, listed=listed or (),
                           create=not opts.dry_run, name=opts.name)  # fmt: skip
        check_options_fit(job)
        if not planned.found.items:
            raise NoInputs(planned.found.notes)
        self._check_stdout(planned.tasks, stdout_is_terminal)
        self.planned = planned
        return planned

    def _check_stdout(self, tasks, stdout_is_terminal: bool) -> None:
        job = self.job
        if not any(t.dest == "-" for t in tasks):
            return
        if job.save_stages or (job.has_maps and tasks[0].fmt != "npy"):
            raise UsageError("a kernel bank's maps and --save-stages write several files: give -o FILE or -o DIR "
                             "(or -f npy for a bank)")  # fmt: skip
        if self.opts.json_out:
            raise UsageError("--json prints on stdout, where the image goes; use --report FILE instead")
        if stdout_is_terminal:
            raise UsageError("refusing to write image data to a terminal; redirect stdout or use -o FILE")

    def dry_run(self) -> tuple[list[dict], list[str]]:
        """(what each task would write, the inputs' problems) without writing anything: each
        row ``{input, output, outputs}``; a problem is one line naming the input."""
        rows, problems = [], []
        for t in self.planned.tasks:
            if t.source != "-":
                try:
                    mode = os.stat(t.source).st_mode
                    problem = None if stat.S_ISREG(mode) else "not a regular file"
                except FileNotFoundError:
                    problem = "no such file"
                except OSError as exc:
                    problem = exc.strerror or str(exc)
                if problem:
                    problems.append(f"{t.source}: {problem}")
                    continue
            colour = io.probe_colour(t.source) if t.source != "-" else None
            outputs = task_files(self.job, t, colour, partial=True) or [t.dest]
            rows.append({"input": t.source, "output": t.dest, "outputs": outputs})
        return rows, problems

    def sweep(self) -> list[str]:
        """Remove the temp files killed poolcli processes left in the output folders; their paths."""
        return [stale for folder in output_folders(self.planned.tasks) for stale in io.remove_stale_temps(folder)]

    def run(self, on_result) -> list:
        """Process every file (:func:`poolcli.runner.run`); Interrupted on SIGINT/SIGTERM."""
        from . import run
        from .workers import allow_helpers

        allow_helpers()  # on an empty cache the PNG codec compiles beside the job, in a forked helper
        self.choose_engine()
        try:
            return run(self.planned.tasks, self.job, self.opts.settings(), jobs=self.jobs, executor=self.executor,
                       scheduler=self.scheduler, on_result=on_result)  # fmt: skip
        finally:
            self.sweep()  # of workers killed during this run (a Dask worker, say)

    def choose_engine(self) -> None:
        """NumPy forms of the loops for a run of fewer than ``runtime.NUMPY_JOB`` pixels in
        all and at most ``runtime.NUMPY_FILES`` inputs (Numba's import and cache loads would
        cost more than the whole job), compiled loops for more, or for Dask and streamed runs;
        standard input, of unknown size: decided per call (``auto``)."""
        from ..engine import runtime

        tasks = self.planned.tasks
        if self.executor == "dask" or self.opts.stream or len(tasks) > runtime.NUMPY_FILES:
            runtime.use_engine("numba")
        elif any(t.source == "-" for t in tasks):
            runtime.plan_job(None)
        else:
            runtime.plan_job(planned_pixels(tasks, runtime.NUMPY_JOB))

    def report(self, results: list, wall_ms: float) -> str:
        """The JSON report: the version, every setting resolved, each file's row; written to
        ``--report`` when given (a failure to write it is a one-line ImageError)."""
        from .. import report as summary
        from ..engine import runtime

        opts = self.opts
        resolved = {**self.job.settings(), "jobs": self.jobs, "threads": runtime.threads(),
                    "max_pixels": opts.max_pixels, "stream": opts.stream, "page": opts.page}  # fmt: skip
        return summary.as_json(self.command, resolved, results, wall_ms)


def planned_pixels(tasks, enough: int) -> int:
    """The pixels of the tasks' inputs from their headers (:func:`poolcli.io.pixel_count`: a
    file that cannot tell counts nothing, and fails on its own when it runs), counted until
    ``enough``."""
    total = 0
    for t in tasks:
        try:
            total += io.pixel_count(t.source)
        except Exception:  # noqa: BLE001 - a header probe's failure is the file's, reported when it runs
            pass
        if total >= enough:
            break
    return total


def check_options_fit(job: Job) -> None:
    """A usage error when the options alone need more memory than this process may use, for
    any image at all (a bank of millions of kernels): one pixel, one channel (contract §3)."""
    from .. import memory

    need, have = memory.estimate(job, 1, 1, 1), memory.budget()
    if have is not None and need > have[0]:
        raise UsageError(f"these options need about {memory.human(need)} of memory even for a 1-pixel image, more "
                         f"than the {memory.human(have[0])} that {have[1]} leaves")  # fmt: skip
