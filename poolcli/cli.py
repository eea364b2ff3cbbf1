"""The ``poolcli`` command: a thin Typer layer over :mod:`poolcli.api` and :mod:`poolcli.batch`.

Options are parsed here, turned into a job, and errors become one line on stderr with the
contract's exit code (0 written, 1 some inputs failed, 2 usage, 130 interrupted).  NumPy and
Numba are imported only by commands that compute, so ``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import time
import warnings
from dataclasses import dataclass

import click
import typer

from . import __version__, ops
from .errors import StdoutError

EXIT_FAILED, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 70, 130
_LOG_WIDTH = 1000  # columns of the summary when stderr is not a terminal: no wrapped lines

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion; values complete too (see _complete)
    # bare `poolcli` prints its help in main_options: Click 8.5's NoArgsIsHelpError renders the
    # help when it is raised and Typer renders it again, so the flag would print it twice
    no_args_is_help=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 1000},
    help="Convolution kernels and CNN pooling for images, compiled with Numba.\n\n"
    "Examples:\n\n"
    "  poolcli convolve photo.png -k sobel\n\n"
    "  poolcli pool -m max -s 2 < photo.png > small.png\n\n"
    "  poolcli pool shots/ -r -m avg -s 4 -o thumbs/ --jobs 4",
)


PANELS = ("Operation", "Output", "Batch", "Performance", "Cluster")  # the order --help shows them in
ARGUMENT_HELP = {  # Click 8.5's Argument sets its own help to None after Typer's: described here once
    "inputs": "Image files, folders, quoted globs, or - for standard input (the default when stdin is a pipe).",
    "pipeline": "Stages separated by '|', in one quoted string (operations below).",
    "image": "The image to explain (or - for standard input); none with --demo.",
    "name": "A kernel to show (default: list them all).",
}


class PanelCommand(typer.core.TyperCommand):
    """A command whose ``--help`` is plain text in panels (as Click lays out sections): what the
    operation is, then output, batch, performance and cluster options; it wraps at any width,
    never cutting a cell with "…" as a table would at 80 columns."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        click.Command.format_help(self, ctx, formatter)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        groups: dict[str, list] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Argument):  # Click lists no arguments: poolcli describes each
                record = (_metavar(param, ctx), getattr(param, "help", None) or ARGUMENT_HELP.get(param.name, ""))
            else:
                record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, click.Argument):
                panel = "Arguments"
            else:
                panel = getattr(param, "rich_help_panel", None) or "Operation"
            groups.setdefault(panel, []).append(record)
        for panel in ("Arguments", *PANELS, *sorted(set(groups) - set(PANELS) - {"Arguments"})):
            if panel in groups:
                with formatter.section(panel):
                    formatter.write_dl(groups[panel])


def _metavar(param: click.Parameter, ctx: click.Context) -> str:
    try:
        return param.make_metavar(ctx)  # Click 8.2 and later
    except TypeError:
        return param.make_metavar()  # type: ignore[call-arg]


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    sys.stderr.write(f"poolcli: error: {message}\n")
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


def version_text() -> str:
    """poolcli's version, its engine's (NumPy, Numba, llvmlite) and the compiled-code cache
    folder, as ``vips --version`` and ``ffmpeg -version`` name theirs; read from the installed
    packages' metadata, so Numba itself is not imported."""
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    lines = [f"poolcli {__version__}"]
    lines += [f"{name} {version(name)}" for name in ("numpy", "numba", "llvmlite")]
    lines.append(f"cache {cache_folder()}")
    return "\n".join(lines)


def cache_folder() -> str:
    """Where Numba keeps poolcli's compiled loops: NUMBA_CACHE_DIR, else beside the installed
    package (``__pycache__`` of poolcli/engine), else Numba's per-user fallback when that folder
    is read-only."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine", "__pycache__")
    parent = os.path.dirname(here)
    if os.access(here if os.path.isdir(here) else parent, os.W_OK):
        return here
    return os.path.join(os.path.expanduser("~"), ".cache", "numba") + " (per-user: the package folder is read-only)"


@app.callback()
def main_options(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Convolution kernels and CNN pooling for images, compiled with Numba."""
    if ctx.invoked_subcommand is None:  # bare `poolcli`: the help once, on stdout, and exit 2 (usage)
        typer.echo(ctx.get_help())
        raise typer.Exit(EXIT_USAGE)


# --------------------------------------------------------------------------- shared options


def _starting(names, incomplete: str) -> list[str]:
    return [n for n in names if n.startswith(incomplete.lower())]


def _complete_kernel(incomplete: str) -> list[str]:
    from .kernels import KERNELS  # only when the shell asks

    return _starting(sorted(KERNELS), incomplete)


def _complete_mode(incomplete: str) -> list[str]:
    return _starting(list(ops.POOL_MODES) + ["l2"], incomplete)


def _complete_boundary(incomplete: str) -> list[str]:
    return _starting(list(ops.BOUNDARIES) + sorted(ops.BOUNDARY_ALIASES), incomplete)


def _complete_format(incomplete: str) -> list[str]:
    return _starting(["png", "jpg", "webp", "tiff", "bmp", "npy", "same"], incomplete)


INPUTS = typer.Argument(None, metavar="[INPUT]...", help="Image files, folders, quoted globs, or - for stdin.")
_OUT, _BATCH, _PERF, _CLUSTER = "Output", "Batch", "Performance", "Cluster"  # the --help panels (PANELS)
MODE_CHOICES = "[" + "|".join([*ops.POOL_MODES, "l2"]) + "]"  # choices listed in --help, from the registry
BOUNDARY_CHOICES = "[" + "|".join(ops.BOUNDARIES) + "]"
SCALE_CHOICES = "[auto|clip|normalize|abs]"
OUTPUT = typer.Option(
    None, "--output", "-o", rich_help_panel=_OUT, metavar="FILE|DIR/|-",
    help="Output file (an image extension), folder (DIR/ or an existing one), or - for stdout.",
)  # fmt: skip
FORMAT = typer.Option(
    None, "--format", "-f", autocompletion=_complete_format, rich_help_panel=_OUT,
    metavar="[png|jpg|webp|tiff|bmp|npy|same|EXT]",
    help="Output format: npy is the raw float32 result; same keeps each input's (PNG where that would lose).",
)  # fmt: skip
JSON = typer.Option(False, "--json", rich_help_panel=_OUT, help="Print the timing summary as JSON on stdout.")
REPORT = typer.Option(
    None, "--report", rich_help_panel=_OUT, metavar="FILE", help="Write the timing summary as JSON to this file."
)
QUIET = typer.Option(
    False, "--quiet", "-q", rich_help_panel=_OUT, help="No summary or progress on stderr (errors still show)."
)
THREADS = typer.Option(
    None, "--threads", min=1, envvar="POOLCLI_THREADS", rich_help_panel=_PERF,
    help="Compute threads (default: all cores; $POOLCLI_THREADS).",
)  # fmt: skip
JOBS = typer.Option(
    None, "--jobs", "-j", min=1, envvar="POOLCLI_JOBS", rich_help_panel=_PERF,
    help="Worker processes for many inputs (default: all cores; $POOLCLI_JOBS).",
)  # fmt: skip
RECURSIVE = typer.Option(
    False, "--recursive", "-r", rich_help_panel=_BATCH, help="Descend into sub-folders of folder inputs."
)
SKIP = typer.Option(
    False, "--skip-existing", rich_help_panel=_BATCH,
    help="Skip inputs whose every output is already complete (resume a batch).",
)  # fmt: skip
MAX_PIXELS = typer.Option(
    89_478_485, "--max-pixels", min=0, envvar="POOLCLI_MAX_PIXELS", rich_help_panel=_BATCH,
    help="Refuse larger images (decompression bombs); 0 lifts the limit ($POOLCLI_MAX_PIXELS).",
)  # fmt: skip
GRAY = typer.Option(False, "--gray", help="Convert to one luma channel first (alpha is kept).")
LEVEL = typer.Option(
    None, "--compress-level", min=0, max=9, rich_help_panel=_OUT,
    help="PNG zlib level 0-9 (default 1: fast, and smaller than Pillow's 6).",
)  # fmt: skip
DEBUG = typer.Option(False, "--debug", rich_help_panel=_BATCH, help="Show the traceback of an internal error.")
STRIP = typer.Option(
    False, "--strip", rich_help_panel=_OUT, help="Drop the ICC profile, DPI and EXIF (kept by default)."
)
QUALITY = typer.Option(
    None, "--quality", min=1, max=100, rich_help_panel=_OUT, help="JPEG, WebP and AVIF quality 1-100 (92, 90, 90)."
)
MONTAGE = typer.Option(
    None, "--montage", rich_help_panel=_OUT, metavar="FILE",
    help="Also draw input -> feature maps -> result as one picture (one input).",
)  # fmt: skip
EXECUTOR = typer.Option(
    None, "--executor", rich_help_panel=_CLUSTER, metavar="[local|dask]",
    help="local (worker processes here, the default) or dask (a Dask cluster; implied by --scheduler).",
)  # fmt: skip
SCHEDULER = typer.Option(
    None, "--scheduler", rich_help_panel=_CLUSTER, metavar="tcp://HOST:PORT",
    help="A Dask scheduler to run on (means --executor dask; with it, default $POOLCLI_SCHEDULER).",
)  # fmt: skip
STREAM = typer.Option(
    None, "--stream/--no-stream", rich_help_panel=_PERF,
    help="Stream PNG, TIFF and .npy images in bands of rows (flat memory): default for images over 16 MP.",
)  # fmt: skip
SHARD = typer.Option(
    None, "--shard", rich_help_panel=_CLUSTER, metavar="K/N",
    help="Process only the K-th of N slices of the inputs (job arrays).",
)  # fmt: skip
LAYOUT = typer.Option(
    None, "--layout", rich_help_panel=_BATCH, click_type=click.Choice(["hwc", "chw"], case_sensitive=False),
    help=".npy inputs' axes: hwc (HxWxC) or chw (CxHxW, as PyTorch); without it a CxHxW-looking array is refused.",
)  # fmt: skip
NAME = typer.Option(
    None, "--name", rich_help_panel=_OUT, metavar="TEMPLATE",
    help="Output names: {stem} {tag} {ext} {n} (a bank's map) or %s (default {stem}_{tag}.{ext}).",
)  # fmt: skip
FILES_FROM = typer.Option(
    None, "--files-from", rich_help_panel=_BATCH, metavar="FILE|-",
    help="Read input paths from FILE, one a line (- for standard input), as tar -T.",
)  # fmt: skip
NULL = typer.Option(
    False, "--null", "-0", rich_help_panel=_BATCH, help="With --files-from: paths separated by NUL (find -print0)."
)
DRY_RUN = typer.Option(
    False, "--dry-run", rich_help_panel=_BATCH, help="Print what each input would write; check all, write nothing."
)
PAGE = typer.Option(
    0, "--page", min=0, max=2**31 - 1, rich_help_panel=_BATCH,
    help="Frame or page of a multi-frame input to read, 0-based (animated GIF, APNG, WebP, multi-page TIFF).",
)  # fmt: skip


@dataclass(frozen=True)
class RunOptions:
    """The options every image command shares (declared once, in :data:`_COMMON`)."""

    output: str | None = None
    fmt: str | None = None
    json_out: bool = False
    report: str | None = None
    quiet: bool = False
    threads: int | None = None
    jobs: int | None = None
    recursive: bool = False
    skip_existing: bool = False
    max_pixels: int = 89_478_485
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


_COMMON = {  # name: (type, Typer option), in the order --help lists them
    "output": (str | None, OUTPUT), "fmt": (str | None, FORMAT), "json_out": (bool, JSON),
    "report": (str | None, REPORT), "quiet": (bool, QUIET), "threads": (int | None, THREADS),
    "jobs": (int | None, JOBS), "recursive": (bool, RECURSIVE), "skip_existing": (bool, SKIP),
    "max_pixels": (int, MAX_PIXELS), "compress_level": (int | None, LEVEL), "strip": (bool, STRIP),
    "quality": (int | None, QUALITY), "montage": (str | None, MONTAGE), "executor": (str | None, EXECUTOR),
    "scheduler": (str | None, SCHEDULER), "shard": (str | None, SHARD), "stream": (bool | None, STREAM),
    "page": (int, PAGE), "layout": (str | None, LAYOUT), "name": (str | None, NAME),
    "files_from": (str | None, FILES_FROM),
    "null": (bool, NULL), "dry_run": (bool, DRY_RUN), "debug": (bool, DEBUG),
}  # fmt: skip


def common_options(command):
    """Give an image command the shared options (as sqlite-utils' ``@output_options`` does):
    Typer sees them as parameters of the command; the command gets them as one ``opts``."""
    import functools
    import inspect
    import typing

    own = [p for p in inspect.signature(command).parameters.values() if p.name != "opts"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
              for name, (kind, option) in _COMMON.items()]  # fmt: skip

    @functools.wraps(command)
    def wrapper(**kwargs):
        opts = RunOptions(**{name: kwargs.pop(name) for name in _COMMON})
        return command(**kwargs, opts=opts)

    hints = typing.get_type_hints(command)
    hints.pop("opts", None)
    wrapper.__annotations__ = {**hints, **{name: kind for name, (kind, _) in _COMMON.items()}}
    wrapper.__signature__ = inspect.Signature(own + shared, return_annotation=None)
    del wrapper.__wrapped__  # Typer must read the new signature, not the command's
    return wrapper


MIN_ADDRESS_SPACE = 1 << 30  # NumPy, Numba and LLVM's code and heaps: see _check_address_space


def _check_address_space() -> None:
    """Refuse to start, in one line, under an address-space limit (``ulimit -v``) too small for
    NumPy, Numba and LLVM to load: below about 0.6 GB, loading them fails at random places, and
    LLVM aborts the process outright where it cannot allocate, with no chance of a message."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft < MIN_ADDRESS_SPACE:
        raise _fail(
            f"the address-space limit (ulimit -v) is {soft / 2**20:,.0f} MB; poolcli needs at least "
            f"{MIN_ADDRESS_SPACE >> 20:,} MB to load its compiled code: raise it (ulimit -v {MIN_ADDRESS_SPACE >> 10})"
        )


def _compile_notice() -> None:
    sys.stderr.write("poolcli: compiling the image loops for this CPU, once: later runs load them from the cache "
                     "(`poolcli warmup` compiles them all ahead)\n")  # fmt: skip
    sys.stderr.flush()


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is None or sys.stdin.isatty()
    except (AttributeError, ValueError):
        return True


def _check_options_fit(job) -> None:
    """A usage error when the options alone need more memory than this process may use, for
    any image at all (a bank of millions of kernels): one pixel, one channel (contract §3)."""
    from . import memory

    need, have = memory.estimate(job, 1, 1, 1), memory.budget()
    if have is not None and need > have[0]:
        raise _fail(f"these options need about {memory.human(need)} of memory even for a 1-pixel image, more than "
                    f"the {memory.human(have[0])} that {have[1]} leaves")  # fmt: skip


def _listed_inputs(inputs: list[str], opts: RunOptions) -> list[str] | None:
    """The paths ``--files-from`` names (None without it): one a line, relative to the current
    folder as ``tar -T`` takes them, blank lines skipped and ``\\r`` stripped; NUL-separated with
    ``-0``.  They are taken as they are, never as globs."""
    if opts.null and opts.files_from is None:
        raise _fail("-0/--null goes with --files-from (the list's paths are NUL-separated)")
    if opts.files_from is None:
        return None
    if opts.files_from == "-" and "-" in inputs:
        raise _fail("--files-from - reads the list from standard input, so an INPUT - cannot read an image there")
    try:
        if opts.files_from == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(opts.files_from, "rb") as fh:
                data = fh.read(64 << 20)
    except OSError as exc:
        raise _fail(f"--files-from {opts.files_from}: cannot read it ({exc.strerror or exc})") from None
    text = data.decode("utf-8", "surrogateescape")
    entries = text.split("\0") if opts.null else text.splitlines()
    return [e.rstrip("\r") if not opts.null else e for e in entries if e.strip("\r\n")]


def _dry_run(job, tasks, json_out: bool) -> int:
    """Print what each task would write (``input → output``, or the JSON plan) and return the
    exit code: 1 when an input fails a check that needs no decoding (missing, not a file)."""
    import json
    import stat

    from . import batch, images

    arrow = "→"
    try:
        arrow.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        arrow = "->"
    rows, failed = [], False
    for t in tasks:
        if t.source != "-":
            try:
                mode = os.stat(t.source).st_mode
                problem = None if stat.S_ISREG(mode) else "not a regular file"
            except FileNotFoundError:
                problem = "no such file"
            except OSError as exc:
                problem = exc.strerror or str(exc)
            if problem:
                sys.stderr.write(f"poolcli: error: {t.source}: {problem}\n")
                failed = True
                continue
        colour = images.probe_colour(t.source) if t.source != "-" else None
        outputs = batch.task_files(job, t, colour, partial=True) or [t.dest]
        rows.append({"input": t.source, "output": t.dest, "outputs": outputs})
    if json_out:
        sys.stdout.write(json.dumps({"files": rows}) + "\n")
    else:
        for row in rows:
            more = f" (+{len(row['outputs']) - 1} more files)" if len(row["outputs"]) > 1 else ""
            sys.stdout.write(f"{row['input']} {arrow} {row['output']}{more}\n")
    return EXIT_FAILED if failed else 0


def _choose_executor(executor: str | None, scheduler: str | None) -> str:
    """``--executor``, where naming a scheduler asks for Dask (contract §8)."""
    if executor is None:
        return "dask" if scheduler else "local"
    executor = executor.strip().lower()
    if executor not in ("local", "dask"):
        raise _fail(f"unknown --executor '{executor}' (choose from local, dask)")
    if executor == "local" and scheduler:
        raise _fail(f"--scheduler {scheduler} runs on Dask: drop --executor local (or --scheduler)")
    return executor


def _execute(command: str, job, settings: dict, inputs, opts: RunOptions) -> None:
    from . import api, batch, images
    from . import report as summary

    output, fmt, json_out, report, quiet = opts.output, opts.fmt, opts.json_out, opts.report, opts.quiet
    threads, jobs, recursive, skip_existing, max_pixels = opts.threads, opts.jobs, opts.recursive, \
        opts.skip_existing, opts.max_pixels  # fmt: skip
    compress_level, debug, strip, quality, montage = opts.compress_level, opts.debug, opts.strip, opts.quality, \
        opts.montage  # fmt: skip
    executor, scheduler, shard = opts.executor, opts.scheduler, opts.shard

    console = None
    if not quiet:  # Rich costs ~0.1 s to import: only for the summary and the progress bar
        from rich.console import Console

        console = Console(stderr=True)
        if not console.is_terminal:  # a log file or a pipe: one summary line is one line
            console = Console(stderr=True, width=_LOG_WIDTH)
    if not quiet:
        api.compile_notice = _compile_notice
    from .load import sample

    sample()  # the first window of the busy-core estimate starts now
    try:
        inputs = list(inputs or [])
        listed = _listed_inputs(inputs, opts)
        if not inputs and listed is None:
            if _stdin_is_terminal():
                raise _fail(
                    f"no input: give image files or folders, or pipe an image in: "
                    f"`poolcli {command} photo.png ...` or `poolcli {command} ... < photo.png > out.png`"
                )
            inputs = ["-"]
        api.set_threads(threads)
        executor = _choose_executor(executor, scheduler)
        if executor == "dask":
            from . import dask_executor

            dask_executor.require()
            scheduler = dask_executor.scheduler_from_env(scheduler)
        tag = job.tag if not opts.page or getattr(job, "tag_given", False) else f"{job.tag}_page{opts.page}"
        planned = batch.plan_run(inputs, output=output, fmt=fmt, tag=tag, recursive=recursive, montage=montage,
                                 job=job, report=report, shard=shard, listed=listed or (),
                                 create=not opts.dry_run, name=opts.name)  # fmt: skip
        found, tasks = planned.found, planned.tasks
        _check_options_fit(job)
        if not found.items:
            for note in found.notes:
                sys.stderr.write(f"poolcli: {note}\n")
            raise _fail("no image files found in the inputs given", EXIT_FAILED)
        to_stdout = any(t.dest == "-" for t in tasks)
        pipe = getattr(job, "pipeline", None)
        if to_stdout and pipe is not None and (job.save_stages or (pipe.has_bank and tasks[0].fmt != "npy")):
            raise _fail("a kernel bank's maps and --save-stages write several files: give -o FILE or -o DIR "
                        "(or -f npy for a bank)")  # fmt: skip
        if to_stdout and json_out:
            raise _fail("--json prints on stdout, where the image goes; use --report FILE instead")
        if to_stdout and sys.stdout.isatty():
            raise _fail("refusing to write image data to a terminal; redirect stdout or use -o FILE")
    except api.UsageError as exc:
        raise _fail(str(exc)) from None

    if not quiet:
        for note in found.notes:
            sys.stderr.write(f"poolcli: {note}\n")
    if opts.dry_run:
        raise typer.Exit(_dry_run(job, tasks, json_out))
    for folder in batch.output_folders(tasks):
        for stale in images.remove_stale_temps(folder):
            if not quiet:
                sys.stderr.write(f"poolcli: removed {stale}, left by a poolcli process that was killed\n")
    level = images.DEFAULT_PNG_LEVEL if compress_level is None else compress_level
    n_jobs = jobs or len(os.sched_getaffinity(0))
    show_progress = not quiet and len(tasks) > 1 and console.is_terminal
    on_result, progress = _progress_reporter(console, len(tasks), show_progress, quiet)

    t0 = time.perf_counter()
    interrupted = False
    _INTERRUPTS.mode = "batch"
    try:
        results = batch.run(
            tasks, job, jobs=n_jobs, max_pixels=max_pixels or None, png_level=level,
            skip_existing=skip_existing, strip=strip, quality=quality, montage=montage, executor=executor,
            scheduler=scheduler, stream=opts.stream, page=opts.page,
            layout=opts.layout.lower() if opts.layout else None, on_result=on_result,
        )  # fmt: skip
    except batch.Interrupted as exc:
        results, interrupted = exc.results, True
    except api.UsageError as exc:  # the Dask scheduler cannot be reached
        raise _fail(str(exc)) from None
    except Exception as exc:  # a bug, not a user error (or the machine ran out of something)
        problem = batch.environment_problem(exc)
        if problem is not None:
            raise _fail(problem, EXIT_FAILED) from None
        if debug:
            raise
        raise _fail(
            f"internal error: {exc.__class__.__name__}: {' '.join(str(exc).split())} (a bug: please report it, with "
            "--debug output)", EXIT_BUG,
        ) from None  # fmt: skip
    finally:
        _INTERRUPTS.mode = "note"  # from here on a signal is only noted: the summary prints whole
        if progress is not None:
            progress.stop()
    wall_ms = (time.perf_counter() - t0) * 1e3
    for folder in batch.output_folders(tasks):
        images.remove_stale_temps(folder)  # of workers killed during this run (a Dask worker, say)

    resolved = {**job.settings(), "jobs": n_jobs, "threads": api.threads(),
                "max_pixels": max_pixels, "stream": opts.stream, "page": opts.page}  # fmt: skip
    doc = summary.as_json(command, resolved, results, wall_ms)
    if report:
        try:
            images.write_output((doc + "\n").encode(), report)
        except api.ImageError as exc:
            sys.stderr.write(f"poolcli: error: --report {exc}\n")
    if json_out:
        sys.stdout.write(doc + "\n")
    lone_failure = len(results) == 1 and results[0].error is not None  # its one error line says it all (§3)
    if not quiet and not lone_failure:
        summary.render(console, command, settings, results, wall_ms)
    if interrupted or _INTERRUPTS.seen:
        sys.stderr.write("poolcli: interrupted\n")
        raise typer.Exit(EXIT_INTERRUPTED)
    bugs = [r for r in results if r.bug]
    if bugs:  # every other file was still processed, and the report written
        if debug:
            for r in bugs:
                sys.stderr.write(f"poolcli: traceback for {r.input}:\n{r.bug}")
        else:
            sys.stderr.write("poolcli: error: that was a bug in poolcli; --debug shows its traceback\n")
        raise typer.Exit(EXIT_BUG)
    if any(r.error for r in results):
        raise typer.Exit(EXIT_FAILED)


class _Stop(BaseException):
    """SIGINT or SIGTERM outside the image work: passes through Click (which would turn a
    KeyboardInterrupt into "Aborted!" and exit 1) to :func:`main`, which exits 130."""


class _Interrupts:
    """What SIGINT and SIGTERM do: ``stop`` raises :class:`_Stop`; ``batch`` (while images are
    processed) raises KeyboardInterrupt, which :func:`poolcli.batch.run` turns into a clean stop;
    ``note`` (while the summary prints) only remembers it, for the exit code 130."""

    def __init__(self):
        self.mode, self.seen = "stop", False

    def __call__(self, signum, frame) -> None:
        self.seen = True
        if self.mode == "batch":
            raise KeyboardInterrupt
        if self.mode == "stop":
            raise _Stop


_INTERRUPTS = _Interrupts()


def _progress_reporter(console, total: int, bar: bool, quiet: bool):
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


# --------------------------------------------------------------------------- convolve


@app.command(no_args_is_help=False, cls=PanelCommand)
@common_options
def convolve(
    inputs: list[str] | None = INPUTS,
    kernel: str = typer.Option(
        ..., "--kernel", "-k", autocompletion=_complete_kernel, metavar="NAME|MATRIX|@FILE",
        help='A name (see `poolcli kernels`), a matrix "0,-1,0;-1,5,-1;0,-1,0", or @FILE.'
    ),
    size: int | None = typer.Option(None, "--size", help=ops.param_help("conv", "size")),
    sigma: float | None = typer.Option(None, "--sigma", help=ops.param_help("conv", "sigma")),
    boundary: str = typer.Option("reflect", "--boundary", "-b", autocompletion=_complete_boundary,
                                  metavar=BOUNDARY_CHOICES,
                                  help=ops.boundary_help()),
    cval: float = typer.Option(0.0, "--cval", help=ops.param_help("conv", "cval")),
    stride: int = typer.Option(1, "--stride", help=ops.param_help("conv", "stride")),
    dilation: int = typer.Option(1, "--dilation", help=ops.param_help("conv", "dilation")),
    flip: bool = typer.Option(False, "--flip", help=ops.param_help("conv", "flip")),
    gray: bool = GRAY,
    scale: str = typer.Option("auto", "--scale", metavar=SCALE_CHOICES, help="How results become pixels."),
    opts: RunOptions = None,
) -> None:
    """Convolve images with a kernel (cross-correlation, as PyTorch conv2d and OpenCV filter2D).

    Examples:

      poolcli convolve photo.png -k sobel                 # writes photo_sobel.png

      poolcli convolve photo.png -k gaussian --sigma 2 -o blurred.png

      poolcli convolve photo.png -k "0,-1,0;-1,5,-1;0,-1,0" --boundary valid --stride 2

      poolcli convolve photo.png -k sobel-x -f npy -o gx.npy   # exact float32 feature map
    """
    _check_address_space()
    from . import api
    from .jobs import ConvolveJob

    try:
        job = ConvolveJob.build(
            kernel, size=size, sigma=sigma, boundary=boundary, cval=cval, stride=stride, dilation=dilation,
            flip=flip, gray=gray, scale=scale,
        )  # fmt: skip
    except api.UsageError as exc:
        raise _fail(str(exc)) from None
    spec = job.spec
    settings = {
        "kernel": job.name, "size": size, "sigma": sigma, "boundary": spec.boundary,
        "cval": spec.cval if spec.boundary == "constant" else None,
        "stride": spec.stride, "dilation": spec.dilation, "flip": flip, "gray": gray, "scale": job.scale_rule(),
    }  # fmt: skip
    _execute("convolve", job, settings, inputs, opts)


# --------------------------------------------------------------------------- pool


@app.command(no_args_is_help=False, cls=PanelCommand)
@common_options
def pool(
    inputs: list[str] | None = INPUTS,
    mode: str = typer.Option("max", "--mode", "-m", autocompletion=_complete_mode, metavar=MODE_CHOICES,
                             help=f"{ops.help_list('pool')} (l2 = lp with --p 2)."),
    size: str | None = typer.Option(None, "--size", "-s", metavar="K|KHxKW",
                                    help="Window K, or KHxKW (height x width, as PyTorch)."),
    stride: str | None = typer.Option(None, "--stride", metavar="N|SHxSW", help=ops.param_help("max", "stride")),
    padding: str = typer.Option("0", "--padding", metavar="P|PHxPW", help=ops.param_help("max", "padding")),
    dilation: str = typer.Option("1", "--dilation", metavar="D|DHxDW", help=ops.param_help("max", "dilation")),
    ceil_mode: bool = typer.Option(False, "--ceil-mode", help=ops.param_help("max", "ceil_mode")),
    count_include_pad: bool = typer.Option(
        True, "--count-include-pad/--no-count-include-pad", help=ops.param_help("avg", "count_include_pad")
    ),
    divisor: int | None = typer.Option(None, "--divisor", help=ops.param_help("avg", "divisor")),
    p: float = typer.Option(2.0, "--p", help=ops.param_help("lp", "p")),
    seed: int | None = typer.Option(None, "--seed", help=ops.param_help("stochastic", "seed")),
    is_global: bool = typer.Option(False, "--global", help="One value per channel over the whole image (printed too)."),
    to: str | None = typer.Option(None, "--to", metavar="WxH",
                                  help="Adaptive pooling to a fixed WxH (width x height, as ImageMagick)."),
    gray: bool = GRAY,
    opts: RunOptions = None,
) -> None:
    """Pool images as a CNN pooling layer (equal to PyTorch's max_pool2d, avg_pool2d, lp_pool2d).

    Examples:

      poolcli pool photo.png -m max -s 2        # writes photo_max2.png

      poolcli pool -m avg -s 4 < photo.png > small.png

      poolcli pool photo.png -m max -s 3 --stride 2 --padding 1 --ceil-mode

      poolcli pool photo.png -m avg --global    # per-channel means

      poolcli pool shots/ -r -m avg -s 4 -o thumbs/ --jobs 4
    """
    _check_address_space()
    from . import api
    from .jobs import PoolJob

    try:
        job = PoolJob.build(
            mode, size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
            count_include_pad=count_include_pad, divisor=divisor, p=p, seed=seed, is_global=is_global, to=to,
            gray=gray,
        )  # fmt: skip
    except api.UsageError as exc:
        raise _fail(str(exc)) from None
    canon = job.spec.mode
    settings = {
        "mode": canon, "size": size, "stride": stride, "padding": padding if padding != "0" else None,
        "dilation": dilation if dilation != "1" else None, "ceil_mode": ceil_mode,
        "count_include_pad": count_include_pad if canon == "avg" else None, "divisor": divisor,
        "p": job.spec.p if canon == "lp" else None, "seed": seed, "global": is_global, "to": to, "gray": gray,
    }  # fmt: skip
    _execute("pool", job, settings, inputs, opts)


# --------------------------------------------------------------------------- run


def _operations_epilog() -> str:
    """``run --help``'s list of operations, from the operation registry (poolcli.ops)."""
    import textwrap

    lines = ["Operations (from the registry; options as key=value):"]
    for name, op in ops.OPERATIONS.items():
        if op.kind == "pool" and name != "max":
            continue
        if op.kind == "pool":
            text = f"pooling, MODE one of {', '.join(ops.POOL_MODES)}; also global MODE, adaptive MODE WxH"
            lines += textwrap.wrap(text, 76, initial_indent=f"  {'MODE SIZE':<15} ", subsequent_indent=" " * 18)
            continue
        keys = " ".join(f"{p.name}=" for p in op.params if p.name not in op.positional)
        head = " ".join([name, *(v.upper() for v in op.positional)])
        text = op.help + (f" ({keys})" if keys else "")
        lines += textwrap.wrap(text, 76, initial_indent=f"  {head:<15} ", subsequent_indent=" " * 18)
    lines.append("  NAME            conv NAME for every named kernel (poolcli kernels)")
    return "\b\n" + "\n".join(lines).replace("…", "...")


@app.command(name="run", no_args_is_help=False, cls=PanelCommand, epilog=_operations_epilog())
@common_options
def run_pipeline(
    pipeline: str = typer.Argument(..., metavar="PIPELINE", help="Stages separated by '|', in one quoted string."),
    inputs: list[str] | None = INPUTS,
    save_stages: bool = typer.Option(False, "--save-stages", help="Also write every stage's result."),
    tag: str | None = typer.Option(None, "--tag", metavar="TAG",
                                   help="File-name tag (default: the stages joined)."),
    gray: bool = GRAY,
    scale: str = typer.Option("auto", "--scale", metavar=SCALE_CHOICES, help="How the result becomes pixels."),
    opts: RunOptions = None,
) -> None:
    """Run a CNN-style pipeline of stages on images, float32 from stage to stage.

    Stages: conv KERNEL (or a kernel name alone: sobel, gaussian sigma=2), a bank conv K1,K2,...,
    pool MODE SIZE (or MODE SIZE: max 2, avg 3 stride=2), global MODE, adaptive MODE WxH, and
    element-wise operations; options as key=value.

    Examples:

      poolcli run "gaussian sigma=2 | sobel | relu | max 2" photo.png

      poolcli run "conv sobel-x,sobel-y | relu | max 2" photo.png -f npy

      poolcli run "blur | max 2 | blur | max 2" shots/ -o small/ --save-stages
    """
    _check_address_space()
    from . import api
    from .jobs import RunJob

    try:
        job = RunJob.build(pipeline, tag=tag, gray=gray, scale=scale, save_stages=save_stages)
    except api.UsageError as exc:
        raise _fail(str(exc)) from None
    settings = {"pipeline": " | ".join(s.text.strip() for s in job.pipeline.stages), "gray": gray,
                "scale": job.scale_rule(), "tag": tag}  # fmt: skip
    _execute("run", job, settings, inputs, opts)


# --------------------------------------------------------------------------- explain


@app.command(no_args_is_help=False, cls=PanelCommand)
def explain(
    image: str | None = typer.Argument(None, metavar="[IMAGE]", help="The image (or - for stdin); not with --demo."),
    kernel: str | None = typer.Option(None, "--kernel", "-k", autocompletion=_complete_kernel,
                                      metavar="NAME|MATRIX|@FILE",
                                      help="Explain a convolution with this kernel."),
    mode: str | None = typer.Option(None, "--mode", "-m", autocompletion=_complete_mode, metavar=MODE_CHOICES,
                                    help=f"Explain pooling: {ops.help_list('pool')}."),
    size: str | None = typer.Option(
        None, "--size", "-s", metavar="K|KHxKW", help="Pooling window K or KHxKW (height x width); box/gaussian size."
    ),
    at: str | None = typer.Option(None, "--at", metavar="X,Y",
                                  help="The output position X,Y (column, row) to explain."),
    channel: int | None = typer.Option(None, "--channel", "-c", help="Which channel (default 0)."),
    sigma: float | None = typer.Option(None, "--sigma", help="Standard deviation of gaussian."),
    boundary: str = typer.Option("reflect", "--boundary", "-b", autocompletion=_complete_boundary,
                                  metavar=BOUNDARY_CHOICES,
                                  help=ops.boundary_help()),
    cval: float = typer.Option(0.0, "--cval", help="Value outside the image for --boundary constant."),
    stride: str | None = typer.Option(None, "--stride", metavar="N|SHxSW",
                                      help="Stride (convolution: N; pooling: N or SHxSW)."),
    dilation: str = typer.Option("1", "--dilation", metavar="D|DHxDW", help="Spacing of the taps."),
    flip: bool = typer.Option(False, "--flip", help="True convolution (kernel rotated 180°)."),
    padding: str = typer.Option("0", "--padding", metavar="P|PHxPW",
                                help="Pooling: implicit padding P or PHxPW."),
    ceil_mode: bool = typer.Option(False, "--ceil-mode", help="Pooling: round the output size up."),
    count_include_pad: bool = typer.Option(
        True, "--count-include-pad/--no-count-include-pad", help="avg: count padding."
    ),
    divisor: int | None = typer.Option(None, "--divisor", help="avg: divide every window sum by N."),
    p: float = typer.Option(2.0, "--p", help="lp: the power."),
    seed: int | None = typer.Option(None, "--seed", help="stochastic: make the choice repeatable."),
    is_global: bool = typer.Option(False, "--global", help="Global pooling."),
    to: str | None = typer.Option(None, "--to", metavar="WxH", help="Adaptive pooling to WxH (width x height)."),
    gray: bool = GRAY,
    png: str | None = typer.Option(None, "--png", metavar="FILE",
                                   help="Also draw the explanation as a PNG diagram."),
    json_out: bool = JSON,
    demo: bool = typer.Option(False, "--demo", help="The classic 4×4 → 2×2 pooling and a 3×3 blur, no image needed."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Show the arithmetic of one output value: the patch, the kernel, the products and their sum,
    or the pooling window and what it picks.

    Examples:

      poolcli explain photo.png -k sobel-x --at 10,20

      poolcli explain photo.png -m max -s 2 --at 3,4 --png window.png

      poolcli explain --demo
    """
    import json

    from rich.console import Console

    from . import api, teach

    console = Console()
    if demo:
        try:
            if image is not None or mode is not None:
                raise api.UsageError("--demo draws its own example: give no IMAGE and no -m (use -k K for a kernel's)")
            figures = teach.demo(kernel)
            if png:
                teach.draw_demo(figures, png)
        except api.UsageError as exc:
            raise _fail(str(exc)) from None
        except api.ImageError as exc:
            raise _fail(str(exc), EXIT_FAILED) from None
        if json_out:
            sys.stdout.write(json.dumps(figures) + "\n")
        else:
            teach.render_demo(console, figures)
        return
    _check_address_space()
    from . import images
    from .jobs import ConvolveJob, PoolJob

    try:
        if image is None:
            raise api.UsageError("explain needs an IMAGE (or --demo)")
        if (kernel is None) == (mode is None):
            raise api.UsageError("give -k KERNEL to explain a convolution, or -m MODE -s K to explain pooling")
        if at is None and not is_global:
            raise api.UsageError("--at X,Y is required: the output position to explain (column, row)")
        position = api.parse_pair(at, "--at", 0) if at is not None else (0, 0)
        if kernel is not None:
            job = ConvolveJob.build(kernel, size=_as_int(size, "--size"), sigma=sigma, boundary=boundary, cval=cval,
                                    stride=_as_int(stride or "1", "--stride"),
                                    dilation=_as_int(dilation, "--dilation"), flip=flip)  # fmt: skip
        else:
            job = PoolJob.build(mode, size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
                                count_include_pad=count_include_pad, divisor=divisor, p=p, seed=seed,
                                is_global=is_global, to=to)  # fmt: skip
    except api.UsageError as exc:
        raise _fail(str(exc)) from None
    if png is not None:
        from .batch import same_file

        if same_file(image, png):
            raise _fail(f"--png {png} is the input image; an input is never overwritten")
    try:
        pic = images.decode(images.read_bytes(image, max_pixels or None), "<stdin>" if image == "-" else image,
                            gray=gray, max_pixels=max_pixels or None)  # fmt: skip
        pixels = pic.colour if kernel is not None else pic.pixels
        if kernel is not None:
            info = teach.explain_convolution(pixels, job.spec, position, channel)
        else:
            info = teach.explain_pooling(pixels, job.spec, position, channel)
        if png:
            teach.draw(info, pic.colour, png)
    except api.UsageError as exc:
        raise _fail(str(exc)) from None
    except api.ImageError as exc:
        raise _fail(str(exc), EXIT_FAILED) from None
    if json_out:
        sys.stdout.write(json.dumps(info) + "\n")
    else:
        teach.render(console, info)


def _as_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise _fail(f"{name} must be an integer, got '{value}'") from None


# --------------------------------------------------------------------------- kernels, warmup


@app.command()
def kernels(
    name: str | None = typer.Argument(None, help="Show this kernel's weights."),
    size: int | None = typer.Option(None, "--size", help=ops.param_help("conv", "size")),
    sigma: float | None = typer.Option(None, "--sigma", help=ops.param_help("conv", "sigma")),
) -> None:
    """List the named kernels, or show one's weights as a table.

    Examples:

      poolcli kernels

      poolcli kernels sobel-x

      poolcli kernels gaussian --sigma 2
    """
    from rich.console import Console
    from rich.table import Table

    from .kernels import ALIASES, KERNELS, get_kernel, resolve_name

    console = Console()
    try:
        names = [resolve_name(name)] if name else list(KERNELS)
        mats = {n: get_kernel(n, size=size, sigma=sigma) if name else get_kernel(n) for n in names}
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if not name:
        console.print("Named kernels (use with -k NAME; `poolcli kernels NAME` shows the weights)", highlight=False)
        listing = Table(box=None)
        listing.add_column("name", style="bold")
        listing.add_column("size", justify="right")
        listing.add_column("what it does")
        for n in names:
            m = mats[n]
            shape = f"{m.shape[-2]}×{m.shape[-1]}" + (" ×2" if m.ndim == 3 else "")
            listing.add_row(n, shape, KERNELS[n].description)
        console.print(listing)
        aliases = ", ".join(f"{a} → {t}" for a, t in ALIASES.items())
        console.print(f"aliases: {aliases}", highlight=False)
        return
    n = names[0]
    m = mats[n]
    console.print(f"[bold]{n}[/bold]: {KERNELS[n].description}")
    parts = [("x", m[0]), ("y", m[1])] if m.ndim == 3 else [("", m)]
    for label, mat in parts:
        console.print(
            f"{n} {label}".strip() + f" ({mat.shape[0]}×{mat.shape[1]}, sum {mat.sum():.6g})", highlight=False
        )
        table = Table(show_header=False)
        for _ in range(mat.shape[1]):
            table.add_column(justify="right")
        for row in mat:
            table.add_row(*(_fmt_weight(v) for v in row))
        console.print(table)


def _fmt_weight(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.6g}"


@app.command()
def warmup(quiet: bool = QUIET) -> None:
    """Compile and cache every engine loop for every image dtype, ahead of first use.

    Both forms are compiled, by two processes at once: on all threads, and on one (as batch
    workers and small images run). Later runs load the machine code from the cache in
    milliseconds.
    """
    _check_address_space()
    from . import api, warm

    t0 = time.perf_counter()
    api.take_compile_ms()
    api.engine()
    parallel, serial = warm.halves()  # this process takes the first half, a child the second
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the second half, on the other core; one byte per step done
        code = 0
        try:
            os.close(read)
            for _, step in serial:
                step()
                os.write(write, b".")
        except BaseException:  # noqa: BLE001 - the parent says what failed
            code = 1
        os._exit(code)
    os.close(write)
    progress = None
    if not quiet:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)  # fmt: skip
        progress.start()
        bar = progress.add_task("compiling", total=len(parallel) + len(serial))
    done_serial = 0
    try:
        for label, step in parallel:
            if progress is not None:
                progress.update(bar, description=f"compiling {label}")
            step()
            os.set_blocking(read, False)
            try:
                done_serial += len(os.read(read, 64))
            except BlockingIOError:
                pass
            if progress is not None:
                progress.update(bar, completed=parallel.index((label, step)) + 1 + done_serial)
        os.set_blocking(read, True)
        while chunk := os.read(read, 64):
            done_serial += len(chunk)
            if progress is not None:
                progress.update(bar, completed=len(parallel) + done_serial)
        _, status = os.waitpid(child, 0)
    finally:
        if progress is not None:
            progress.stop()
    if status != 0 or done_serial != len(serial):
        raise _fail("warmup: compiling in the second process failed; run `poolcli warmup` again", EXIT_FAILED)
    if not quiet:
        sys.stderr.write(f"poolcli: compiled or loaded every loop in {time.perf_counter() - t0:.1f} s "
                         "(two processes at once)\n")  # fmt: skip


def main() -> None:
    # Numba probes for SciPy's BLAS when it first loads compiled code (0.3 s where SciPy is
    # installed). The command line never needs BLAS or SciPy, so the probe is answered "no".
    sys.modules.setdefault("scipy.linalg.cython_blas", None)
    # Numba's "workqueue" threads survive fork(), unlike GNU OpenMP's: batch workers can then
    # be forked from this process with the compiled code already loaded (see batch._run_pool).
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    # NumPy's OpenBLAS reserves buffers for every core at import; the command line never calls it
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _INTERRUPTS)
    warnings.simplefilter("ignore")  # contract §3: Python warnings never reach stderr (workers inherit it)
    if sys.stdout is None:  # started with standard output closed (`>&-`): only what prints there fails
        sys.stdout = ClosedStdout()
    _ascii_fallback()

    try:
        code = app(prog_name="poolcli", standalone_mode=False)
    except StdoutError as exc:
        sys.stderr.write(f"poolcli: error: {exc.strerror or exc}\n")
        _exit(EXIT_FAILED)
    except (_Stop, KeyboardInterrupt, click.exceptions.Abort):
        sys.stderr.write("poolcli: interrupted\n")
        _exit(EXIT_INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `poolcli` or `poolcli kernels …`: the help
        sys.stderr.write(exc.ctx.get_help() + "\n" if exc.ctx else str(exc))
        _exit(EXIT_USAGE)
    except click.ClickException as exc:  # Click's and Typer's own usage errors: one line too
        sys.stderr.write(f"poolcli: error: {_one_suggestion(exc.format_message())}\n")
        _exit(exc.exit_code)
    except SystemExit as exc:
        _exit(exc.code)
    except Exception as exc:  # start-up itself failed: out of memory, descriptors, a broken install
        from .batch import environment_problem

        problem = environment_problem(exc)
        if problem is not None:  # the work could not be done: 1 (2 is for usage)
            sys.stderr.write(f"poolcli: error: {problem}\n")
            _exit(EXIT_FAILED)
        if "--debug" in sys.argv:
            raise
        sys.stderr.write(f"poolcli: error: internal error: {exc.__class__.__name__}: {' '.join(str(exc).split())} "
                         "(a bug: please report it, with --debug output)\n")  # fmt: skip
        _exit(EXIT_BUG)
    _exit(code if isinstance(code, int) else 0)


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


def _ascii_fallback() -> None:
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


def _one_suggestion(message: str) -> str:
    """A Click message on one line, with one "Did you mean …?": Click 8.4+ suggests a command
    itself and Typer adds its own suggestion on top."""
    text = " ".join(message.split())
    seen: list[str] = []
    for hint in re.findall(r" ?\(?Did you mean [^?]*\?\)?", text):
        if seen:
            text = text.replace(hint, "", 1)
        seen.append(hint)
    return text


def _exit(code) -> None:
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
