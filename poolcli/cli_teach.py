"""``poolcli explain``: the teaching views' command (contract §9), declared here and registered
on the app by :mod:`poolcli.cli`; the views themselves are :mod:`poolcli.teach`'s."""

from __future__ import annotations

import dataclasses
import sys

import typer

from . import ops
from .cli_options import (
    BOUNDARY,
    CVAL,
    FLIP,
    GRAY,
    JSON,
    KERNEL,
    MAX_PIXELS,
    MODE,
    POOL_DILATION,
    SIGMA,
    PoolOptions,
)  # fmt: skip
from .cli_shell import check_address_space
from .errors import UsageError


def explain(
    image: str | None = typer.Argument(None, metavar="[IMAGE]", help="The image (or - for stdin); not with --demo."),
    kernel: str | None = typer.Option(None, *KERNEL.param_decls, autocompletion=KERNEL.autocompletion,
                                      metavar=KERNEL.metavar, help="Explain a convolution with this kernel."),
    mode: str | None = typer.Option(None, *MODE.param_decls, autocompletion=MODE.autocompletion, metavar=MODE.metavar,
                                    help=f"Explain pooling: {ops.help_list('pool')}."),
    size: str | None = typer.Option(
        None, "--size", "-s", metavar="K|KHxKW", help="Pooling window K or KHxKW (height x width); box/gaussian size."
    ),
    at: str | None = typer.Option(None, "--at", metavar="X,Y",
                                  help="The output position X,Y (column, row) to explain."),
    channel: int | None = typer.Option(None, "--channel", "-c", help="Which channel (default 0)."),
    stage: str | None = typer.Option(None, "--stage", metavar="STAGE|N",
                                     help='A conv2d layer to explain ("conv2d @FILE [key=value...]"), or with '
                                          '--pipeline the stage number N (1-based; default the last).'),
    pipeline: str | None = typer.Option(None, "--pipeline", metavar="PIPELINE",
                                        help="Explain stage --stage N of this pipeline, on the previous stage's map."),
    out_channel: int | None = typer.Option(None, "--out-channel", min=0,
                                           help="--stage: the layer's output channel (default 0)."),
    sigma: float | None = SIGMA,
    boundary: str = BOUNDARY,
    cval: float = CVAL,
    stride: str | None = typer.Option(None, "--stride", metavar="N|SHxSW",
                                      help="Stride (convolution: N; pooling: N or SHxSW)."),
    dilation: str = POOL_DILATION,
    flip: bool = FLIP,
    gray: bool = GRAY,
    png: str | None = typer.Option(None, "--png", metavar="FILE",
                                   help="Also draw the explanation as a PNG diagram."),
    json_out: bool = JSON,
    demo: bool = typer.Option(False, "--demo", help="The classic 4×4 → 2×2 pooling and a 3×3 blur, no image needed."),
    sweep: str | None = typer.Option(None, "--sweep", metavar="FILE.gif|FILE.png",
                                     help="Animate the window over --region output cells from --at (GIF, or APNG)."),
    region: str = typer.Option("4x4", "--region", metavar="WxH", help="--sweep: output cells to sweep (at most 256)."),
    html: str | None = typer.Option(None, "--html", metavar="FILE.html",
                                    help="Write one self-contained page: click any output cell to see its arithmetic."),
    max_pixels: int = MAX_PIXELS,
    pooling: PoolOptions = None,
) -> None:
    """Show the arithmetic of one output value: the patch, the kernel, the products and their sum,
    or the pooling window and what it picks.

    Examples:

      poolcli explain photo.png -k sobel-x --at 10,20

      poolcli explain photo.png -m max -s 2 --at 3,4 --png window.png

      poolcli explain --demo
    """
    from rich.console import Console

    console = Console()
    if demo:
        return _demo(console, image, mode, kernel, png, json_out)
    check_address_space()
    max_pixels = max_pixels or None
    if pipeline is None and stage is not None:  # the conv2d issue's form: the layer alone
        if kernel is not None or mode is not None:
            raise UsageError("--stage explains a conv2d layer: give IMAGE, --at X,Y and no -k or -m")
        pipeline, stage, channel = stage, "1", out_channel if out_channel is not None else channel
        if sweep is None and html is None:
            return _explain_layer(console, image, pipeline, at, channel, json_out, png, max_pixels)
    elif pipeline is not None:
        if kernel is not None or mode is not None:
            raise UsageError("--pipeline explains one of its stages: give no -k or -m")
        channel = out_channel if out_channel is not None else channel
    if pipeline is not None:
        from .pipeline import Pipeline

        if image is None:
            raise UsageError("explain --pipeline needs an IMAGE")
        from .teach.stage import stage_number

        steps, view = Pipeline.parse(pipeline), "pipeline"
        number = stage_number(steps, stage)
    else:
        job = _explained_job(image, kernel, mode, pooling, dict(
            size=size, sigma=sigma, boundary=boundary, cval=cval, stride=stride, dilation=dilation, flip=flip))
        steps, number, view = None, 1, job
    from .api import parse_pair

    if at is not None:
        position = parse_pair(at, "--at", 0)
    elif view != "pipeline" and pooling.is_global:
        position = (0, 0)  # the one output
    elif html is not None:
        position = None  # the page opens on the middle cell
    else:
        raise UsageError("--at X,Y is required: the output position to explain (column, row)")
    from .teach.views import explain_views

    explain_views(console, image, steps if steps is not None else view, number, position, channel,
                  gray=gray, max_pixels=max_pixels, png=png, json_out=json_out, sweep=sweep, region=region,
                  html=html)  # fmt: skip


def _demo(console, image, mode, kernel, png, json_out) -> None:
    import json

    from . import teach

    if image is not None or mode is not None:
        raise UsageError("--demo draws its own example: give no IMAGE and no -m (use -k K for a kernel's)")
    figures = teach.demo(kernel)
    if png:
        teach.draw_demo(figures, png)
    if json_out:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        teach.render_demo(console, figures)


def _explain_layer(console, image, stage: str, at, out_channel, json_out: bool, png, max_pixels) -> None:
    """``explain IMAGE --stage "conv2d @FILE" --at X,Y --out-channel K``."""
    import json

    from .api import parse_pair
    from .teach.layer import explain_stage, render_layer

    if image is None or at is None:
        raise UsageError("--stage explains a conv2d layer: give IMAGE, --at X,Y and no -k or -m")
    info = explain_stage(image, stage, parse_pair(at, "--at", 0), out_channel, max_pixels=max_pixels, picture=png)
    if json_out:
        sys.stdout.write(json.dumps(info) + "\n")
    else:
        render_layer(console, info)


def _explained_job(image, kernel, mode, pooling: PoolOptions, o: dict):
    """The job whose output ``explain`` shows; UsageError for a bad mix."""
    from .jobs import ConvolveJob, PoolJob

    if image is None:
        raise UsageError("explain needs an IMAGE (or --demo)")
    if (kernel is None) == (mode is None):
        raise UsageError("give -k KERNEL to explain a convolution, or -m MODE -s K to explain pooling")
    if kernel is not None:
        job = ConvolveJob.build(kernel, size=_as_int(o["size"], "--size"), sigma=o["sigma"], boundary=o["boundary"],
                                cval=o["cval"], stride=_as_int(o["stride"] or "1", "--stride"),
                                dilation=_as_int(o["dilation"], "--dilation"), flip=o["flip"])  # fmt: skip
    else:
        job = PoolJob.build(mode, o["size"], stride=o["stride"], dilation=o["dilation"], **dataclasses.asdict(pooling))
    return job


def _as_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} must be an integer, got '{value}'") from None





def pipeline_views(pipeline: str, inputs: list[str], *, describe: bool, html: str | None, json_out: bool, gray: bool,
                   max_pixels: int) -> None:  # fmt: skip
    """``run PIPELINE [INPUT] --describe`` (shapes, parameters, receptive fields; writes nothing;
    standard input only for ``-``) and ``run PIPELINE INPUT --html FILE`` (the page)."""
    import json

    from .pipeline import Pipeline
    from .teach.shapes import describe as shapes

    if describe and html is not None:
        raise UsageError("--describe writes nothing: give it or --html, not both")
    if len(inputs) > 1:
        raise UsageError(f"--{'describe' if describe else 'html'} takes one INPUT (got {len(inputs)})")
    steps = Pipeline.parse(pipeline)
    image = inputs[0] if inputs else None
    if html is not None and image is None:
        raise UsageError("--html needs an INPUT image")
    check_address_space()
    pic = None
    if image is not None:
        from .teach import decode

        pic = decode(image, gray=gray, max_pixels=max_pixels or None)
    if describe:
        colour = pic.colour if pic is not None else None
        size, channels = (colour.shape[:2], 1 if colour.ndim == 2 else colour.shape[2]) if pic else (None, None)
        stages = shapes(steps, size, channels)
        if json_out:
            sys.stdout.write(json.dumps({"stages": stages}) + "\n")
        else:
            _print_shapes(stages, size)
        return
    from .teach import check_outputs
    from .teach.page import write_page

    check_outputs(image, html=html)
    write_page(steps, pic.colour, html)


def _print_shapes(stages: list[dict], size) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"input {size[1]}x{size[0]} (WxH)" if size else "input H x W x C (give INPUT for numbers)")
    for name in ("#", "stage", "output HxWxC", "params", "receptive field", "jump"):
        table.add_column(name, justify="left" if name == "stage" else "right")
    for n, st in enumerate(stages, start=1):
        h, w, c = st["output"]
        (rh, rw), (jh, jw) = st["receptive_field"], st["jump"]
        table.add_row(str(n), st["stage"], f"{h} x {w} x {c}", f"{st['params']:,}", f"{rh} x {rw}", f"{jh} x {jw}")
    Console().print(table)
    total = sum(st["params"] for st in stages)
    Console().print(f"learnable parameters: {total:,}", highlight=False)
