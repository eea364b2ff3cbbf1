"""The ``poolcli`` command: a thin Typer layer over :mod:`poolcli.api` and :mod:`poolcli.runner`.

Options are parsed here (declared once, in :mod:`poolcli.cli_options`), turned into a job, and
run by :class:`poolcli.runner.execute.Execution`; this module prints and maps errors to the
contract's exit codes (0 written, 1 some inputs failed, 2 usage, 70 a bug, 130 interrupted) at
one boundary, :func:`main`.  NumPy and Numba are imported only by commands that compute, so
``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
import warnings

import click
import typer

from . import ops
from .cli_help import PanelCommand, operations_epilog, version_text
from .cli_options import (
    BOUNDARY,
    CVAL,
    FLIP,
    GRAY,
    INPUTS,
    KERNEL,
    MODE,
    POOL_DILATION,
    POOL_SIZE,
    POOL_STRIDE,
    QUIET,
    SCALE,
    SIGMA,
    PoolOptions,
    RunOptions,
    common_options,
    pool_options,
)  # fmt: skip
from .cli_shell import (
    INTERRUPTS,
    ClosedStdout,
    Stop,
    ascii_fallback,
    check_address_space,
    exit_now,
    one_suggestion,
    progress_reporter,
)  # fmt: skip
from .cli_teach import explain
from .errors import ImageError, StdoutError, UsageError

EXIT_FAILED, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 70, 130
_LOG_WIDTH = 1000  # columns of the summary when stderr is not a terminal: no wrapped lines

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion; values complete too (see cli_options)
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


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    sys.stderr.write(f"poolcli: error: {message}\n")
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()



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



def _compile_notice() -> None:
    sys.stderr.write("poolcli: compiling the image loops for this CPU, once: later runs load them from the cache "
                     "(`poolcli warmup` compiles them all ahead)\n")  # fmt: skip
    sys.stderr.flush()



def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is None or sys.stdin.isatty()
    except (AttributeError, ValueError):
        return True



def _console(quiet: bool):
    """Rich's console on stderr (≈ 0.1 s to import: only for the summary and the progress bar)."""
    if quiet:
        return None
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:  # a log file or a pipe: one summary line is one line
        console = Console(stderr=True, width=_LOG_WIDTH)
    return console


def _execute(command: str, job, settings: dict, inputs, opts: RunOptions) -> None:
    """Plan, run and report one image command (:class:`~poolcli.runner.execute.Execution`):
    print its notes, progress and summary, and exit with the contract's code."""
    from .engine import runtime
    from .runner import Interrupted
    from .runner.execute import Execution, NoInputs

    console = _console(opts.quiet)
    if not opts.quiet:
        runtime.compile_notice = _compile_notice
    runtime.sample()  # the first window of the busy-core estimate starts now
    run = Execution(command, job, opts)
    try:
        planned = run.plan(inputs, stdin_is_terminal=_stdin_is_terminal(), stdout_is_terminal=sys.stdout.isatty())
    except NoInputs as exc:
        for note in exc.notes:
            sys.stderr.write(f"poolcli: {note}\n")
        raise _fail(str(exc), EXIT_FAILED) from None
    if not opts.quiet:
        for note in planned.found.notes:
            sys.stderr.write(f"poolcli: {note}\n")
    if opts.dry_run:
        raise typer.Exit(_dry_run(run, opts.json_out))
    for stale in run.sweep():
        if not opts.quiet:
            sys.stderr.write(f"poolcli: removed {stale}, left by a poolcli process that was killed\n")
    tasks = planned.tasks
    on_result, progress = progress_reporter(console, len(tasks), not opts.quiet and len(tasks) > 1 and
                                            console.is_terminal, opts.quiet)  # fmt: skip
    t0 = time.perf_counter()
    interrupted = False
    INTERRUPTS.mode = "batch"
    try:
        results = run.run(on_result)
    except Interrupted as exc:
        results, interrupted = exc.results, True
    finally:
        INTERRUPTS.mode = "note"  # from here on a signal is only noted: the summary prints whole
        if progress is not None:
            progress.stop()
    _finish(run, command, settings, results, (time.perf_counter() - t0) * 1e3, console, interrupted)


def _finish(run, command: str, settings: dict, results: list, wall_ms: float, console, interrupted: bool) -> None:
    """The report, the summary and the exit code of a run."""
    from . import io
    from . import report as summary

    opts = run.opts
    doc = run.report(results, wall_ms)
    if opts.report:
        try:
            io.write_output((doc + "\n").encode(), opts.report)
        except ImageError as exc:
            sys.stderr.write(f"poolcli: error: --report {exc}\n")
    if opts.json_out:
        sys.stdout.write(doc + "\n")
    lone_failure = len(results) == 1 and results[0].error is not None  # its one error line says it all (§3)
    if not opts.quiet and not lone_failure:
        summary.render(console, command, settings, results, wall_ms)
    if interrupted or INTERRUPTS.seen:
        sys.stderr.write("poolcli: interrupted\n")
        raise typer.Exit(EXIT_INTERRUPTED)
    bugs = [r for r in results if r.bug]
    if bugs:  # every other file was still processed, and the report written
        if opts.debug:
            for r in bugs:
                sys.stderr.write(f"poolcli: traceback for {r.input}:\n{r.bug}")
        else:
            sys.stderr.write("poolcli: error: that was a bug in poolcli; --debug shows its traceback\n")
        raise typer.Exit(EXIT_BUG)
    if any(r.error for r in results):
        raise typer.Exit(EXIT_FAILED)


def _dry_run(run, json_out: bool) -> int:
    """Print what each task would write (``input → output``, or the JSON plan) and return the
    exit code: 1 when an input fails a check that needs no decoding (missing, not a file)."""
    import json

    rows, problems = run.dry_run()
    for problem in problems:
        sys.stderr.write(f"poolcli: error: {problem}\n")
    arrow = "→"
    try:
        arrow.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        arrow = "->"
    if json_out:
        sys.stdout.write(json.dumps({"files": rows}) + "\n")
    else:
        for row in rows:
            more = f" (+{len(row['outputs']) - 1} more files)" if len(row["outputs"]) > 1 else ""
            sys.stdout.write(f"{row['input']} {arrow} {row['output']}{more}\n")
    return EXIT_FAILED if problems else 0


# --------------------------------------------------------------------------- convolve


@app.command(no_args_is_help=False, cls=PanelCommand)
@common_options
def convolve(
    inputs: list[str] | None = INPUTS,
    kernel: str = KERNEL,
    size: int | None = typer.Option(None, "--size", help=ops.param_help("conv", "size")),
    sigma: float | None = SIGMA,
    boundary: str = BOUNDARY,
    cval: float = CVAL,
    stride: int = typer.Option(1, "--stride", help=ops.param_help("conv", "stride")),
    dilation: int = typer.Option(1, "--dilation", help=ops.param_help("conv", "dilation")),
    flip: bool = FLIP,
    gray: bool = GRAY,
    scale: str = SCALE,
    opts: RunOptions = None,
) -> None:
    """Convolve images with a kernel (cross-correlation, as PyTorch conv2d and OpenCV filter2D).

    Examples:

      poolcli convolve photo.png -k sobel                 # writes photo_sobel.png

      poolcli convolve photo.png -k gaussian --sigma 2 -o blurred.png

      poolcli convolve photo.png -k "0,-1,0;-1,5,-1;0,-1,0" --boundary valid --stride 2

      poolcli convolve photo.png -k sobel-x -f npy -o gx.npy   # exact float32 feature map
    """
    check_address_space()
    from .jobs import ConvolveJob

    job = ConvolveJob.build(kernel, size=size, sigma=sigma, boundary=boundary, cval=cval, stride=stride,
                            dilation=dilation, flip=flip, gray=gray, scale=scale)  # fmt: skip
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
@pool_options
def pool(
    inputs: list[str] | None = INPUTS,
    mode: str = MODE,
    size: str | None = POOL_SIZE,
    stride: str | None = POOL_STRIDE,
    dilation: str = POOL_DILATION,
    gray: bool = GRAY,
    pooling: PoolOptions = None,
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
    check_address_space()
    from .jobs import PoolJob

    job = PoolJob.build(mode, size, stride=stride, dilation=dilation, gray=gray, **dataclasses.asdict(pooling))
    canon = job.spec.mode
    o = pooling
    settings = {
        "mode": canon, "size": size, "stride": stride, "padding": o.padding if o.padding != "0" else None,
        "dilation": dilation if dilation != "1" else None, "ceil_mode": o.ceil_mode,
        "count_include_pad": o.count_include_pad if canon == "avg" else None, "divisor": o.divisor,
        "p": job.spec.p if canon == "lp" else None, "seed": o.seed, "global": o.is_global, "to": o.to, "gray": gray,
    }  # fmt: skip
    _execute("pool", job, settings, inputs, opts)



# --------------------------------------------------------------------------- run


@app.command(name="run", no_args_is_help=False, cls=PanelCommand, epilog=operations_epilog())
@common_options
def run_pipeline(
    pipeline: str = typer.Argument(..., metavar="PIPELINE", help="Stages separated by '|', in one quoted string."),
    inputs: list[str] | None = INPUTS,
    save_stages: bool = typer.Option(False, "--save-stages", help="Also write every stage's result."),
    tag: str | None = typer.Option(None, "--tag", metavar="TAG",
                                   help="File-name tag (default: the stages joined)."),
    gray: bool = GRAY,
    scale: str = SCALE,
    describe: bool = typer.Option(False, "--describe", help="Print each stage's output size, parameters, "
                                  "receptive field and jump; write nothing."),
    html: str | None = typer.Option(None, "--html", metavar="FILE.html", help="Write one page of the input and "
                                    "every stage's maps, any cell explained on click (instead of the outputs)."),
    opts: RunOptions = None,
) -> None:
    """Run a CNN-style pipeline of stages on images, float32 from stage to stage.

    Stages: conv KERNEL (or a kernel name alone: sobel, gaussian sigma=2), a depthwise bank
    conv K1,K2,... (each kernel on each channel alone), a CNN layer conv2d @FILE.npz (summed across
    channels, plus bias, as torch.nn.Conv2d), pool MODE SIZE (or MODE SIZE: max 2, avg 3 stride=2),
    global MODE, adaptive MODE WxH, and element-wise operations; options as key=value.

    Examples:

      poolcli run "gaussian sigma=2 | sobel-x | relu | max 2" photo.png

      poolcli run "conv sobel-x,sobel-y | relu | max 2" photo.png -f npy

      poolcli run "blur | max 2 | blur | max 2" shots/ -o small/ --save-stages

      poolcli run "sobel | max 2 | sobel | max 3 stride=2" photo.png --describe
    """
    if describe or html is not None:
        from .cli_teach import pipeline_views

        return pipeline_views(pipeline, inputs or [], describe=describe, html=html, json_out=opts.json_out,
                              gray=gray, max_pixels=opts.max_pixels)  # fmt: skip
    check_address_space()
    from .jobs import RunJob

    job = RunJob.build(pipeline, tag=tag, gray=gray, scale=scale, save_stages=save_stages)
    settings = {"pipeline": " | ".join(s.text.strip() for s in job.pipeline.stages), "gray": gray,
                "scale": job.scale_rule(), "tag": tag}  # fmt: skip
    _execute("run", job, settings, inputs, opts)



# --------------------------------------------------------------------------- explain

app.command(no_args_is_help=False, cls=PanelCommand)(pool_options(explain))


# --------------------------------------------------------------------------- kernels, warmup


@app.command()
def kernels(
    name: str | None = typer.Argument(None, help="Show this kernel's weights."),
    size: int | None = typer.Option(None, "--size", help=ops.param_help("conv", "size") + " (--layer: 7)"),
    sigma: float | None = typer.Option(None, "--sigma", help=ops.param_help("conv", "sigma")),
    layer: str | None = typer.Option(None, "--layer", metavar="[gabor|random]",
                                     help="Write a ready conv2d layer over R, G, B to -o FILE.npz."),
    out_channels: int = typer.Option(16, "--out-channels", min=1, max=4096, help="--layer: its output channels."),
    seed: int = typer.Option(0, "--seed", min=0, help="--layer random: the seed."),
    output: str | None = typer.Option(None, "--output", "-o", metavar="FILE.npz", help="--layer: where to write it."),
) -> None:
    """List the named kernels, or show one's weights as a table; or write a conv2d layer.

    Examples:

      poolcli kernels

      poolcli kernels sobel-x

      poolcli kernels gaussian --sigma 2

      poolcli kernels --layer gabor -o gabor.npz     # then: poolcli run "conv2d @gabor.npz | relu" photo.png
    """
    from rich.console import Console
    from rich.table import Table

    if layer is not None or output is not None:
        return _write_layer(layer, out_channels, size, seed, output, name)

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



def _write_layer(kind: str | None, out_channels: int, size: int | None, seed: int, output: str | None, name) -> None:
    """``kernels --layer KIND -o FILE.npz``: a ready layer, through the planner's checks and an
    atomic write."""
    from . import io
    from .layers import DEFAULT_SIZE, layer_bytes
    from .runner.plan import check_output_target

    if kind is None or output is None or name is not None:
        raise UsageError("--layer KIND -o FILE.npz writes a conv2d layer (give both, and no kernel NAME)")
    if not output.lower().endswith(".npz"):
        raise UsageError(f"-o {output}: a layer is written as .npz (weight and bias); give FILE.npz")
    check_output_target(output, False)
    data = layer_bytes(kind.strip().lower(), out_channels, size or DEFAULT_SIZE, seed)
    io.write_output(data, output)
    k = size or DEFAULT_SIZE
    sys.stderr.write(f"poolcli: wrote {output}: a {kind} layer, weight {out_channels}x3x{k}x{k} and bias "
                     f"{out_channels} (use it as conv2d @{output})\n")  # fmt: skip


def _fmt_weight(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.6g}"



@app.command()
def warmup(quiet: bool = QUIET) -> None:
    """Compile and cache every engine loop for every image dtype, ahead of first use.

    Both forms are compiled, by two processes at once: on all threads, and on one (as batch
    workers and small images run). Later runs load the machine code from the cache in
    milliseconds.
    """
    check_address_space()
    from . import warm

    t0 = time.perf_counter()
    progress = bar = None
    if not quiet:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)  # fmt: skip
        progress.start()
        bar = progress.add_task("compiling", total=None)

    def on_step(label: str, done: int, total: int) -> None:
        if progress is not None:
            progress.update(bar, description=f"compiling {label}", completed=done, total=total)

    try:
        warm.compile_all(on_step)
    except RuntimeError as exc:
        raise _fail(f"warmup: {exc}; run `poolcli warmup` again", EXIT_FAILED) from None
    finally:
        if progress is not None:
            progress.stop()
    if not quiet:
        sys.stderr.write(f"poolcli: compiled or loaded every loop in {time.perf_counter() - t0:.1f} s "
                         "(two processes at once)\n")  # fmt: skip


def main() -> None:
    # Numba probes for SciPy's BLAS when it first loads compiled code (0.3 s where SciPy is
    # installed). The command line never needs BLAS or SciPy, so the probe is answered "no".
    sys.modules.setdefault("scipy.linalg.cython_blas", None)
    # Numba's "workqueue" threads survive fork(), unlike GNU OpenMP's: batch workers can then
    # be forked from this process with the compiled code already loaded (see poolcli.runner.local).
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    # NumPy's OpenBLAS reserves buffers for every core at import; the command line never calls it
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, INTERRUPTS)
    warnings.simplefilter("ignore")  # contract §3: Python warnings never reach stderr (workers inherit it)
    from .engine import runtime

    runtime.use_engine("auto")  # small images on NumPy forms while Numba is not loaded; image runs choose by size
    if sys.stdout is None:  # started with standard output closed (`>&-`): only what prints there fails
        sys.stdout = ClosedStdout()
    ascii_fallback()

    try:
        code = app(prog_name="poolcli", standalone_mode=False)
    except StdoutError as exc:
        sys.stderr.write(f"poolcli: error: {exc.strerror or exc}\n")
        exit_now(EXIT_FAILED)
    except (Stop, KeyboardInterrupt, click.exceptions.Abort):
        sys.stderr.write("poolcli: interrupted\n")
        exit_now(EXIT_INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `poolcli` or `poolcli kernels …`: the help
        sys.stderr.write(exc.ctx.get_help() + "\n" if exc.ctx else str(exc))
        exit_now(EXIT_USAGE)
    except click.ClickException as exc:  # Click's and Typer's own usage errors: one line too
        sys.stderr.write(f"poolcli: error: {one_suggestion(exc.format_message())}\n")
        exit_now(exc.exit_code)
    except UsageError as exc:  # a bad option, kernel or argument, whatever the image
        sys.stderr.write(f"poolcli: error: {exc}\n")
        exit_now(EXIT_USAGE)
    except ImageError as exc:  # explain's one input cannot be read, or its picture written
        sys.stderr.write(f"poolcli: error: {exc}\n")
        exit_now(EXIT_FAILED)
    except SystemExit as exc:
        exit_now(exc.code)
    except Exception as exc:  # start-up itself failed: out of memory, descriptors, a broken install
        from .runner.work import environment_problem

        problem = environment_problem(exc)
        if problem is not None:  # the work could not be done: 1 (2 is for usage)
            sys.stderr.write(f"poolcli: error: {problem}\n")
            exit_now(EXIT_FAILED)
        if "--debug" in sys.argv:
            raise
        sys.stderr.write(f"poolcli: error: internal error: {exc.__class__.__name__}: {' '.join(str(exc).split())} "
                         "(a bug: please report it, with --debug output)\n")  # fmt: skip
        exit_now(EXIT_BUG)
    exit_now(code if isinstance(code, int) else 0)

