"""``explain``'s views chosen and written: one cell's arithmetic in the terminal, as ``--json`` or
``--png``, a ``--sweep`` animation over a region of cells, a ``--html`` page of every cell, for a
convolution, a pooling, a conv2d layer or any stage of a pipeline.  The single operations of
``-k``/``-m`` are one-stage pipelines here, so every view reads the same numbers."""

from __future__ import annotations

import json
import sys

from ..errors import UsageError
from . import check_outputs, decode


def one_stage(job):
    """A ``convolve``/``pool`` job as a one-stage :class:`~poolcli.pipeline.Pipeline`."""
    from .. import ops, tags
    from ..pipeline import Pipeline, Stage

    spec = job.spec
    if hasattr(spec, "kernel"):
        name = job.name
        stage = Stage(f"conv {name}", ops.OPERATIONS["conv"], spec, tags.convolve_tag(name, spec, (), False),
                      label=name)  # fmt: skip
    else:
        stage = Stage(f"pool {spec.mode}", ops.lookup(spec.mode), spec, tags.pool_tag(spec, job.is_global))
    return Pipeline((stage,), stage.text)


def explain_views(console, image: str, what, number: int, position, channel, *, gray: bool, max_pixels,
                  png, json_out: bool, sweep, region: str, html) -> None:  # fmt: skip
    """Every view ``explain`` was asked for.  ``what`` is a parsed pipeline (stage ``number``
    explained on the previous stage's map) or a ``convolve``/``pool`` job."""
    from ..pipeline import Pipeline

    check_outputs(image, png=png, sweep=sweep, html=html)
    if not isinstance(what, Pipeline) and sweep is None and html is None:
        from . import explain_file, render

        info, _ = explain_file(image, what.spec, position, channel, gray=gray, max_pixels=max_pixels, picture=png)
        return _show(console, info, json_out, render)
    pipeline = what if isinstance(what, Pipeline) else one_stage(what)
    size = _region(region) if sweep is not None else None
    pic = decode(image, gray=gray, max_pixels=max_pixels)
    from .stage import annotate, explain_at, stage_input

    x_map, colour = stage_input(pipeline, pic.colour, number)
    if position is not None:
        info = explain_at(pipeline, number, x_map, colour, position, channel)
        if isinstance(what, Pipeline):
            annotate(info, pipeline, number, pic.colour.shape[:2])
            if png:
                from .stage import draw_stage

                draw_stage(info, x_map[:, :, :colour], pic.colour, png)
        elif png:
            from .pictures import draw

            draw(info, x_map[:, :, :colour], png)
        _show(console, info, json_out, render_stage if isinstance(what, Pipeline) else None)
    if sweep is not None:
        from .sweep import write_sweep

        note = write_sweep(pipeline, number, x_map, colour, position or (0, 0), size, channel, sweep)
        if note:
            sys.stderr.write(f"poolcli: note: {note}\n")
    if html is not None:
        from .page import write_page

        write_page(pipeline, pic.colour, html, at=position, channel=channel, explained=number,
                   single=not isinstance(what, Pipeline))  # fmt: skip


def _show(console, info: dict, json_out: bool, renderer) -> None:
    if json_out:
        sys.stdout.write(json.dumps(info) + "\n")
        return
    if renderer is None:
        from .layer import render_layer
        from .terminal import render

        renderer = render_layer if info["kind"] == "conv2d" else render
    renderer(console, info)


def render_stage(console, info: dict) -> None:
    """A pipeline stage's explanation in the terminal: which stage, its arithmetic, and the
    cell's receptive field on the input."""
    from .layer import render_layer
    from .numbers import num
    from .terminal import render

    st, f = info["stage"], info["receptive_field"]
    source = "the image" if st["number"] == 1 else f"stage {st['number'] - 1}'s map"
    console.print(f"stage {st['number']}: {st['text']} (on {source})", highlight=False, markup=False)
    if info["kind"] == "conv2d":
        render_layer(console, info)
    elif info["kind"] == "elementwise":
        p = info["position"]
        reads = ", ".join(num(v) for v in info["input"])
        console.print(f"output (x={p['x']}, y={p['y']}), channel {p['channel']}: {info['operation']}({reads}) = "
                      f"{num(info['output'])}", highlight=False, markup=False)  # fmt: skip
    else:
        render(console, info)
    console.print(f"receptive field on the input: rows {f['rows'][0]}…{f['rows'][1]}, columns "
                  f"{f['cols'][0]}…{f['cols'][1]}", highlight=False, markup=False)  # fmt: skip


MAX_FRAMES = 256  # --sweep's frames at most (contract §9)


def _region(text: str) -> tuple[int, int]:
    """(W, H) of ``--region WxH``: at least 1×1, at most :data:`MAX_FRAMES` cells."""
    from ..api import parse_pair

    w, h = parse_pair(text, "--region")
    if w * h > MAX_FRAMES:
        raise UsageError(f"--region {w}x{h} is {w * h} frames; a sweep has at most {MAX_FRAMES} (e.g. --region 16x16)")
    return w, h
