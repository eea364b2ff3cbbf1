"""What the command line prints about itself: ``--help`` in panels, ``run --help``'s list of
operations (from the registry), and ``--version`` with the engine's versions and cache folder."""

from __future__ import annotations

import os

import click
import typer

from . import __version__, ops

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
                record = (metavar(param, ctx), getattr(param, "help", None) or ARGUMENT_HELP.get(param.name, ""))
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


def metavar(param: click.Parameter, ctx: click.Context) -> str:
    try:
        return param.make_metavar(ctx)  # Click 8.2 and later
    except TypeError:
        return param.make_metavar()  # type: ignore[call-arg]


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


def operations_epilog() -> str:
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


