"""``--html FILE``: one self-contained page of a pipeline (or one operation) on the user's image
(contract §9).  The page holds the input and every stage's feature map, their exact float32
values and the stages' parameters, inline, with a small hand-written script (``page.js``, in
this package) that recomputes any cell's explanation from them, the same object
``explain --json`` prints; no network, no framework.

Up to :data:`FULL_PIXELS` input pixels (and :data:`FULL_BYTES` of values) every map is inline
whole; beyond, each map keeps the exact values of a crop around ``--at`` (at least
:data:`CROP` × :data:`CROP` outputs of the explained stage, and what their windows read), plus
a downsampled overview, and ``select()`` outside the crop returns null.
"""

from __future__ import annotations

import base64
import html as htmllib
import io as stdio
import json
from importlib import resources

import numpy as np

from .numbers import GRID_SIDE, HEAT_SIDE, JSON_CELLS

FULL_PIXELS = 4_000_000  # input pixels up to which every map's values are inline
FULL_BYTES = 96 << 20  # ... and at most this many bytes of values (16-channel layers of a 4-MP photo: cropped)
CROP = 512  # outputs a side of the explained stage's crop, beyond FULL_PIXELS, where CROP_BYTES allows
CROP_BYTES = 6 << 20  # bytes of values a cropped page holds at most (a 12-MP photo's page stays under 10 MB)


def _axis(a) -> dict:
    return {"kind": a.kind, "k": a.k, "s": a.s, "d": a.d, "start": a.start, "out": a.out}


def _conv_specs(stage) -> list[dict]:
    specs = stage.spec if stage.bank else (stage.spec,)
    return [{"kernel": s.kernel.tolist(), "boundary": s.boundary, "cval": float(s.cval), "stride": s.stride,
             "dilation": s.dilation, "crop": list(s.crop)} for s in specs]  # fmt: skip


def stage_data(stage, in_size) -> dict:
    """What the page's script needs to explain any cell of ``stage``: its parameters, its
    windows on both axes, and the output size (with the formula: the same for every cell)."""
    from .. import ops
    from .shapes import geometry

    g = geometry(stage)
    kind = "pooling" if stage.op.kind == "pool" else "conv2d" if stage.layer else (
        "convolution" if stage.op.kind == "conv" else "elementwise")  # fmt: skip
    out = {"kind": kind, "text": stage.text.strip(), "rows": _axis(g.rows), "cols": _axis(g.cols)}
    if kind == "convolution":
        out.update(specs=_conv_specs(stage), bank=stage.bank, names=stage.label.split("+"))
    elif kind == "pooling":
        s = stage.spec
        pair = lambda v: None if v is None else list(v)  # noqa: E731 - adaptive windows have no geometry
        out.update(mode=s.mode, size=pair(s.size), stride=pair(s.stride), padding=pair(s.padding),
                   dilation=pair(s.dilation), ceil_mode=s.ceil_mode, count_include_pad=s.count_include_pad,
                   divisor=s.divisor, p=float(s.p), adaptive=None if s.output_size is None else list(s.output_size),
                   picks=s.mode in ops.PICKS)  # fmt: skip
    elif kind == "conv2d":
        s = stage.spec
        out.update(weight=_b64(s.weight), shape=list(s.weight.shape), bias=[float(b) for b in s.bias],
                   stride=list(s.stride), dilation=list(s.dilation), pads=list(s.pads), groups=s.groups,
                   padding_mode=s.padding_mode, boundary=s.boundary)  # fmt: skip
    else:
        out.update(operation=stage.op.name, options=dict(stage.spec))
    out["output_size"] = _output_size(stage, in_size)
    return out


def _output_size(stage, in_size) -> dict:
    """The stage's ``output_size`` dict as ``explain --json`` gives it (a constant of the stage)."""
    from .layer import output_size_layer
    from .numbers import output_size_conv, output_size_pool
    from .shapes import geometry

    H, W = in_size
    if stage.layer:
        return output_size_layer(H, W, stage.spec)
    if stage.op.kind == "pool":
        oh, ow = geometry(stage).sizes(H, W)
        return output_size_pool(H, W, stage.spec, oh, ow)
    if stage.op.kind == "conv":
        spec = stage.spec[0] if stage.bank else stage.spec
        kh, kw = spec.kernel.shape[-2:]
        return output_size_conv(H, W, kh, kw, spec)
    return {"height": H, "width": W, "formula_h": f"{H} (element-wise: the input's size)",
            "formula_w": f"{W} (element-wise: the input's size)"}  # fmt: skip


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _crops(pipeline, sizes, explained: int, at, full: bool, widths) -> list[tuple[int, int, int, int]]:
    """(r0, c0, h, w) of each map (0: the input; k: stage k's output) whose values the page
    holds: every map whole, or crops around ``at`` of the explained stage, :data:`CROP` a side
    where :data:`CROP_BYTES` allows (``widths``: each map's bytes per cell), less where not."""
    if full:
        return [(0, 0, h, w) for h, w in sizes]
    side = CROP
    while True:
        crops = _crops_of(pipeline, sizes, explained, at, side)
        if sum(h * w * b for (_, _, h, w), b in zip(crops, widths)) <= CROP_BYTES or side <= 16:
            return crops
        side = int(side * 0.85)


def _crops_of(pipeline, sizes, explained: int, at, side: int) -> list:
    from .shapes import geometry

    n = len(pipeline.stages)
    crops: list = [None] * (n + 1)
    oh, ow = sizes[explained]
    x, y = at if at is not None else (ow // 2, oh // 2)
    crops[explained] = _around(y, x, side, side, oh, ow)
    for k in range(explained, 0, -1):  # what the crop's windows read, and at least CROP a side around it
        g = geometry(pipeline.stages[k - 1])
        r0, c0, h, w = crops[k]
        H, W = sizes[k - 1]
        a0, a1 = g.rows.reads(r0, r0 + h - 1, H)
        b0, b1 = g.cols.reads(c0, c0 + w - 1, W)
        a0, a1, b0, b1 = max(0, a0), min(H - 1, a1), max(0, b0), min(W - 1, b1)
        (r0, h), (c0, w) = _span(a0, a1, side, H), _span(b0, b1, side, W)
        crops[k - 1] = (r0, c0, h, w)
    for k in range(explained + 1, n + 1):  # later stages: the outputs whose windows the crop holds
        g = geometry(pipeline.stages[k - 1])
        r0, c0, h, w = crops[k - 1]
        H, W = sizes[k - 1]
        oh, ow = sizes[k]
        rows = _inside(g.rows, r0, r0 + h - 1, H, oh)
        cols = _inside(g.cols, c0, c0 + w - 1, W, ow)
        crops[k] = (rows[0], cols[0], max(0, rows[1] - rows[0] + 1), max(0, cols[1] - cols[0] + 1))
    return crops


def _around(y: int, x: int, h: int, w: int, H: int, W: int) -> tuple[int, int, int, int]:
    h, w = min(h, H), min(w, W)
    r0 = min(max(0, y - h // 2), H - h)
    c0 = min(max(0, x - w // 2), W - w)
    return r0, c0, h, w


def _span(lo: int, hi: int, side: int, n: int) -> tuple[int, int]:
    """(first, count) of at least ``side`` cells holding lo…hi, centred on them, inside 0…n−1."""
    count = min(n, max(side, hi - lo + 1))
    first = min(max(0, lo - (count - (hi - lo + 1)) // 2), n - count)
    return first, count


def _inside(axis, lo: int, hi: int, n: int, o: int) -> tuple[int, int]:
    """The outputs whose every read falls in input cells lo…hi (or in the padding)."""
    outputs = [i for i in range(o) if _reads_within(axis, i, lo, hi, n)]
    return (outputs[0], outputs[-1]) if outputs else (0, -1)


def _reads_within(axis, i, lo, hi, n) -> bool:
    a, b = axis.reads(i, i, n)
    return max(0, a) >= lo and min(n - 1, b) <= hi


def _overview(arr: np.ndarray, colour: int, side: int, kind: str) -> list[str]:
    """PNG (or, for a large image's page, JPEG) data URLs of a map for display, at most ``side``
    pixels a side: the input as RGB, every feature map channel by channel (diverging when
    signed).  Only what is shown: the numbers come from the values, never from these."""
    from PIL import Image

    from .pictures import to_display, value_range

    H, W = arr.shape[:2]
    step = max(1, int(np.ceil(max(H, W) / side)))
    out = []
    planes = [(arr, colour)] if colour == 3 and arr.dtype == np.uint8 else [(arr[:, :, c : c + 1], 1)
                                                                           for c in range(colour)]  # fmt: skip
    for plane, c in planes:
        rgb, *_ = to_display(plane[::step, ::step], c, value_range(plane, c))
        buf = stdio.BytesIO()
        Image.fromarray(rgb).save(buf, kind, **({"quality": 85} if kind == "JPEG" else {"compress_level": 6}))
        out.append(f"data:image/{kind.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


def page_data(pipeline, image: np.ndarray, *, at=None, explained: int | None = None, single: bool = False) -> dict:
    """Everything the page holds: the maps (their crops' values, overviews), the stages."""
    img = np.asarray(image)
    img = img[:, :, None] if img.ndim == 2 else img
    colour = img.shape[2]
    n = len(pipeline.stages)
    explained = n if explained is None else explained
    x, c = np.asarray(img, np.float32), colour
    maps_arr, colours = [img], [colour]
    for stage in pipeline.stages:
        x, c = _step(stage, x, c)
        maps_arr.append(np.ascontiguousarray(x[:, :, :c]))
        colours.append(c)
    sizes = [m.shape[:2] for m in maps_arr]
    widths = [cc * (1 if m.dtype == np.uint8 else 2 if m.dtype == np.uint16 else 4) for m, cc in zip(maps_arr, colours)]
    total = sum(h * w * b for (h, w), b in zip(sizes, widths))
    full = img.shape[0] * img.shape[1] <= FULL_PIXELS and total <= FULL_BYTES
    crops = _crops(pipeline, sizes, explained, at, full, widths)
    maps = []
    for m, cc, (r0, c0, h, w) in zip(maps_arr, colours, crops):
        part = np.ascontiguousarray(m[r0 : r0 + h, c0 : c0 + w, :cc])
        dtype = {np.dtype(np.uint8): "u8", np.dtype(np.uint16): "u16"}.get(part.dtype, "f32")
        if dtype == "f32":
            part = part.astype(np.float32)
        side = 512 if cc <= 3 else 256 if cc <= 16 else 128
        maps.append({"h": int(m.shape[0]), "w": int(m.shape[1]), "c": int(cc), "dtype": dtype,
                     "crop": [int(r0), int(c0), int(h), int(w)], "values": _b64(part),
                     "overview": _overview(m, cc, side, "PNG" if full else "JPEG")})  # fmt: skip
    stages = [stage_data(s, sizes[k]) for k, s in enumerate(pipeline.stages)]
    first = at if at is not None else (sizes[explained][1] // 2, sizes[explained][0] // 2)
    return {"maps": maps, "stages": stages, "single": single, "full": full, "explained": explained - 1,
            "at": [int(first[0]), int(first[1])], "limits": {"grid": GRID_SIDE, "heat": HEAT_SIDE,
                                                              "cells": JSON_CELLS}}  # fmt: skip


def _step(stage, x: np.ndarray, colour: int):
    from ..pipeline import apply_stage

    return apply_stage(stage, x[:, :, :colour], colour)


def render_page(data: dict, title: str) -> str:
    """The page: the data as JSON and ``page.js`` and ``page.css`` inline."""
    here = resources.files(__package__)
    script = here.joinpath("page.js").read_text(encoding="utf-8")
    style = here.joinpath("page.css").read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{htmllib.escape(title)}</title><style>{style}</style></head><body>"
            f"<h1>{htmllib.escape(title)}</h1>"
            "<div id=\"help\">Click or hover any output cell; arrow keys move it.</div>"
            "<div id=\"maps\"></div><div id=\"explain\"></div>"
            f"<script id=\"poolcli-data\" type=\"application/json\">{payload}</script>"
            f"<script>{script}</script></body></html>\n")  # fmt: skip


def write_page(pipeline, image: np.ndarray, path: str, *, at=None, channel=None, explained=None,
               single: bool = False, title: str | None = None) -> None:  # fmt: skip
    """Build the page and write it atomically to ``path`` (the planner's own write)."""
    from .. import io

    data = page_data(pipeline, image, at=at, explained=explained, single=single)
    data["channel"] = int(channel or 0)
    name = title or f"poolcli: {pipeline.text.strip() or pipeline.stages[0].text}"
    io.write_output(render_page(data, name).encode("utf-8"), path)
