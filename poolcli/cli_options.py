"""The command line's options, each declared once: the ones every image command shares (given to
a command by :func:`common_options`, as sqlite-utils' ``@output_options``) and the operation
options ``convolve``, ``pool`` and ``explain`` share.  Help texts and choices come from the
operation registry (:mod:`poolcli.ops`) and the codec registry (:mod:`poolcli.io.registry`)."""

from __future__ import annotations

from dataclasses import dataclass

import click
import typer

from . import ops
from .io.registry import OWN, PILLOW_DEFAULT_MAX_PIXELS
from .runner.execute import RunOptions


def _starting(names, incomplete: str) -> list[str]:
    return [n for n in names if n.startswith(incomplete.lower())]


def complete_kernel(incomplete: str) -> list[str]:
    from .kernels import KERNELS  # only when the shell asks

    return _starting(sorted(KERNELS), incomplete)


def complete_mode(incomplete: str) -> list[str]:
    return _starting(list(ops.POOL_MODES) + ["l2"], incomplete)


def complete_boundary(incomplete: str) -> list[str]:
    return _starting(list(ops.BOUNDARIES) + sorted(ops.BOUNDARY_ALIASES), incomplete)


def complete_format(incomplete: str) -> list[str]:
    return _starting([*OWN, "same"], incomplete)
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
    None, "--format", "-f", autocompletion=complete_format, rich_help_panel=_OUT,
    metavar="[" + "|".join([*OWN, "same", "EXT"]) + "]",
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
    PILLOW_DEFAULT_MAX_PIXELS, "--max-pixels", min=0, envvar="POOLCLI_MAX_PIXELS", rich_help_panel=_BATCH,
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


# --------------------------------------------------------------------------- operation options


KERNEL = typer.Option(..., "--kernel", "-k", autocompletion=complete_kernel, metavar="NAME|MATRIX|@FILE",
                      help='A name (see `poolcli kernels`), a matrix "0,-1,0;-1,5,-1;0,-1,0", or @FILE.')  # fmt: skip
SIGMA = typer.Option(None, "--sigma", help=ops.param_help("conv", "sigma"))
BOUNDARY = typer.Option("reflect", "--boundary", "-b", autocompletion=complete_boundary, metavar=BOUNDARY_CHOICES,
                        help=ops.boundary_help())  # fmt: skip
CVAL = typer.Option(0.0, "--cval", help=ops.param_help("conv", "cval"))
FLIP = typer.Option(False, "--flip", help=ops.param_help("conv", "flip"))
SCALE = typer.Option("auto", "--scale", metavar=SCALE_CHOICES, help="How results become pixels.")
MODE = typer.Option("max", "--mode", "-m", autocompletion=complete_mode, metavar=MODE_CHOICES,
                    help=f"{ops.help_list('pool')} (l2 = lp with --p 2).")  # fmt: skip
POOL_SIZE = typer.Option(None, "--size", "-s", metavar="K|KHxKW",
                         help="Window K, or KHxKW (height x width, as PyTorch).")  # fmt: skip
POOL_STRIDE = typer.Option(None, "--stride", metavar="N|SHxSW", help=ops.param_help("max", "stride"))
PADDING = typer.Option("0", "--padding", metavar="P|PHxPW", help=ops.param_help("max", "padding"))
POOL_DILATION = typer.Option("1", "--dilation", metavar="D|DHxDW", help=ops.param_help("max", "dilation"))
CEIL_MODE = typer.Option(False, "--ceil-mode", help=ops.param_help("max", "ceil_mode"))
COUNT_INCLUDE_PAD = typer.Option(True, "--count-include-pad/--no-count-include-pad",
                                 help=ops.param_help("avg", "count_include_pad"))  # fmt: skip
DIVISOR = typer.Option(None, "--divisor", help=ops.param_help("avg", "divisor"))
P = typer.Option(2.0, "--p", help=ops.param_help("lp", "p"))
SEED = typer.Option(None, "--seed", help=ops.param_help("stochastic", "seed"))
GLOBAL = typer.Option(False, "--global", help="One value per channel over the whole image (printed too).")
TO = typer.Option(None, "--to", metavar="WxH", help="Adaptive pooling to a fixed WxH (width x height, as ImageMagick).")
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


@dataclass(frozen=True)
class PoolOptions:
    """The pooling options ``pool`` and ``explain`` share, as :meth:`poolcli.jobs.PoolJob.build`
    takes them (the window, stride and dilation are each command's own)."""

    padding: str = "0"
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor: int | None = None
    p: float = 2.0
    seed: int | None = None
    is_global: bool = False
    to: str | None = None


_POOLING = {  # name: (type, Typer option), in the order --help lists them
    "padding": (str, PADDING), "ceil_mode": (bool, CEIL_MODE), "count_include_pad": (bool, COUNT_INCLUDE_PAD),
    "divisor": (int | None, DIVISOR), "p": (float, P), "seed": (int | None, SEED), "is_global": (bool, GLOBAL),
    "to": (str | None, TO),
}  # fmt: skip


def option_group(group: dict, cls, arg: str):
    """A decorator giving a command the options of ``group`` (as sqlite-utils' ``@output_options``
    does): Typer sees them as parameters of the command; the command gets them as one ``cls``
    value in its parameter ``arg``."""
    import functools
    import inspect
    import typing

    def decorate(command):
        own = [p for p in inspect.signature(command).parameters.values() if p.name != arg]
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
                  for name, (kind, option) in group.items()]  # fmt: skip

        @functools.wraps(command)
        def wrapper(**kwargs):
            values = cls(**{name: kwargs.pop(name) for name in group})
            return command(**kwargs, **{arg: values})

        hints = typing.get_type_hints(command)
        hints.pop(arg, None)
        wrapper.__annotations__ = {**hints, **{name: kind for name, (kind, _) in group.items()}}
        wrapper.__signature__ = inspect.Signature(own + shared, return_annotation=None)
        del wrapper.__wrapped__  # Typer must read the new signature, not the command's
        return wrapper

    return decorate


common_options = option_group(_COMMON, RunOptions, "opts")  # every image command's
pool_options = option_group(_POOLING, PoolOptions, "pooling")  # pool's and explain's
