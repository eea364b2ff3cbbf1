"""Explain one output of a conv2d layer across channels (contract §11): for output channel K at
(X, Y), each input channel's patch under the window, its 2-D kernel, their products and the
channel's partial sum; then the bias and the total, which is the layer's own result there."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .numbers import GRID_SIDE, MAX_SIDE, num

MAX_LISTED = 64  # input channels listed one by one in the terminal and the picture; beyond, their sums only


def output_size_layer(H: int, W: int, spec) -> dict:
    """The output size with its formula, the numbers put in (PyTorch's, for a conv2d layer)."""
    (t, b, left, right), kh, kw = spec.pads, spec.weight.shape[2], spec.weight.shape[3]

    def one(n, p0, p1, k, s, d):
        size = (n + p0 + p1 - d * (k - 1) - 1) // s + 1
        pad = f"2·{p0}" if p0 == p1 else f"{p0} + {p1}"
        return size, f"⌊({n} + {pad} − {d}·({k} − 1) − 1) / {s}⌋ + 1 = {size}"

    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    (h, fh), (w, fw) = one(H, t, b, kh, sh, dh), one(W, left, right, kw, sw, dw)
    return {"height": h, "width": w, "formula_h": fh, "formula_w": fw}


def explain_layer(image: np.ndarray, spec, at: tuple[int, int], out_channel: int | None = None, *,
                  result: np.ndarray | None = None) -> dict:  # fmt: skip
    """The arithmetic of conv2d(image)[K, Y, X] for an (H, W, C_in) image: ``at`` is (X, Y).

    Returns ``kind`` ("conv2d"), ``position`` {x, y, channel: K}, ``window`` {rows, cols} (input
    rows and columns the taps read, outside the image where padded), ``padding`` (cells outside
    the image), ``input_patch``, ``kernel`` and ``products`` (one grid per input channel of K's
    group), ``partial_sums`` (one per input channel), ``bias``, ``sum`` (the partial sums and the
    bias added), ``output`` (the layer's float32 result there) and ``output_size``."""
    from ..layers import apply_hwc, padded

    img = np.asarray(image)
    img = img[:, :, None] if img.ndim == 2 else img
    H, W, C = img.shape
    if C != spec.in_channels:
        raise UsageError(f"the conv2d layer takes {spec.in_channels} input channels, the image has {C}")
    k = 0 if out_channel is None else out_channel
    if not 0 <= k < spec.out_channels:
        raise UsageError(f"--out-channel must be from 0 to {spec.out_channels - 1} for this layer, got {out_channel}")
    size = output_size_layer(H, W, spec)
    x, y = at
    if not (0 <= x < size["width"] and 0 <= y < size["height"]):
        raise UsageError(f"--at {x},{y} is outside the output, which is {size['width']}x{size['height']}")
    out = apply_hwc(img, C, spec) if result is None else result  # the caller's (H, W, C_out), for many cells
    (sh, sw), (dh, dw), (t, _, left, _) = spec.stride, spec.dilation, spec.pads
    kh, kw = spec.weight.shape[2:]
    rows = [y * sh - t + i * dh for i in range(kh)]
    cols = [x * sw - left + j * dw for j in range(kw)]
    xp = padded(np.ascontiguousarray(np.moveaxis(img, -1, 0)), spec)  # the values the layer reads
    group = k // (spec.out_channels // spec.groups)
    first = group * spec.weight.shape[1]
    channels, sums = [], []
    for i in range(spec.weight.shape[1]):
        patch = xp[first + i][np.ix_([r + t for r in rows], [c + left for c in cols])].astype(np.float64)
        kernel = spec.weight[k, i].astype(np.float64)
        products = patch * kernel
        sums.append(float(products.sum()))
        channels.append({"channel": first + i, "input_patch": patch.tolist(), "kernel": kernel.tolist(),
                         "products": products.tolist(), "partial_sum": sums[-1]})  # fmt: skip
    padding = [[not (0 <= r < H and 0 <= c < W) for c in cols] for r in rows]
    bias = float(spec.bias[k])
    return {
        "kind": "conv2d", "position": {"x": x, "y": y, "channel": k}, "window": {"rows": rows, "cols": cols},
        "padding": padding, "channels": channels, "input_patch": [c["input_patch"] for c in channels],
        "kernel": [c["kernel"] for c in channels], "products": [c["products"] for c in channels],
        "partial_sums": sums, "bias": bias, "sum": float(sum(sums) + bias), "output": float(out[y, x, k]),
        "output_size": size, "padding_mode": spec.padding_mode,
    }  # fmt: skip


def render_layer(console, info: dict) -> None:
    """The explanation in a terminal: per input channel the patch, kernel and products (grids up
    to :data:`GRID_SIDE` a side, :data:`MAX_LISTED` channels), its partial sum; then the total."""
    from rich.columns import Columns

    from .terminal import grid

    p, w = info["position"], info["window"]
    console.print(f"output (x={p['x']}, y={p['y']}), output channel {p['channel']}: conv2d over input rows "
                  f"{w['rows'][0]}…{w['rows'][-1]}, columns {w['cols'][0]}…{w['cols'][-1]}, "
                  f"padding_mode {info['padding_mode']}", highlight=False)  # fmt: skip
    small = len(w["rows"]) <= GRID_SIDE and len(w["cols"]) <= GRID_SIDE
    for n, ch in enumerate(info["channels"]):
        if small and n < MAX_LISTED:
            console.print(Columns([grid(f"input channel {ch['channel']}", ch["input_patch"], pad=info["padding"]),
                                   grid("× kernel", ch["kernel"]), grid("= products", ch["products"])]))  # fmt: skip
        console.print(f"partial sum, input channel {ch['channel']}: {num(ch['partial_sum'])}", highlight=False)
    terms = " + ".join(num(s) for s in info["partial_sums"][:MAX_LISTED])
    more = " + …" if len(info["partial_sums"]) > MAX_LISTED else ""
    console.print(f"sum of partial sums + bias = {terms}{more} + {num(info['bias'])} = {num(info['sum'])}",
                  highlight=False)  # fmt: skip
    size = info["output_size"]
    console.print(f"output height {size['formula_h']}\noutput width  {size['formula_w']}", highlight=False)
    console.print(f"output = {num(info['output'])} (poolcli's own result at that position)", highlight=False)


def draw_layer(info: dict, path: str) -> None:
    """The explanation as a diagram (:func:`layer_diagram`), written atomically to ``path``."""
    from .pictures import save

    save(layer_diagram(info), path)


def layer_diagram(info: dict):
    """The explanation as a picture: one row per input channel (patch × kernel = products,
    partial sum), then the bias and the total; at most :data:`MAX_SIDE` pixels a side."""
    from PIL import Image, ImageDraw

    from .pictures import ascii_text, load_font

    small, big = load_font(14), load_font(18)
    channels = info["channels"][:MAX_LISTED]
    kh, kw = len(info["window"]["rows"]), len(info["window"]["cols"])
    cell = 44 if max(kh, kw) <= GRID_SIDE else max(4, 440 // max(kh, kw))
    block = kh * cell + 40
    width = 3 * (kw * cell + 40) + 260
    canvas = Image.new("RGB", (min(MAX_SIDE, width), min(MAX_SIDE, block * len(channels) + 130)), "white")
    d = ImageDraw.Draw(canvas)
    p = info["position"]
    d.text((20, 8), f"conv2d output channel {p['channel']} at ({p['x']}, {p['y']})", fill="black", font=big)
    for n, ch in enumerate(channels):
        y0 = 40 + n * block
        for g, (title, values) in enumerate(((f"input channel {ch['channel']}", ch["input_patch"]),
                                             ("x kernel", ch["kernel"]), ("= products", ch["products"]))):  # fmt: skip
            x0 = 20 + g * (kw * cell + 40)
            d.text((x0, y0), title, fill="black", font=small)
            for i, row in enumerate(values):
                for j, v in enumerate(row):
                    pad = g == 0 and info["padding"][i][j]
                    box = [x0 + j * cell, y0 + 18 + i * cell, x0 + (j + 1) * cell - 1, y0 + 18 + (i + 1) * cell - 1]
                    d.rectangle(box, fill=(235, 235, 235) if pad else "white", outline=(120, 120, 120))
                    if cell >= 30:
                        d.text((box[0] + 4, box[1] + 14), num(v), fill=(130, 130, 130) if pad else "black", font=small)
        d.text((20 + 3 * (kw * cell + 40), y0 + 18 + kh * cell / 2 - 8), f"partial sum = {num(ch['partial_sum'])}",
               fill="black", font=small)  # fmt: skip
    y = 40 + len(channels) * block + 10
    d.text((20, y), ascii_text(f"sum of partial sums + bias {num(info['bias'])} = {num(info['sum'])}   ->   output "
                              f"= {num(info['output'])}"), fill="black", font=big)  # fmt: skip
    size = info["output_size"]
    d.text((20, y + 30), ascii_text(f"output size: height {size['formula_h']}, width {size['formula_w']}"),
           fill=(110, 110, 110), font=small)  # fmt: skip
    return canvas


def explain_stage(image: str, stage_text: str, at, out_channel, *, max_pixels, picture: str | None) -> dict:
    """``explain IMAGE --stage "conv2d @FILE …" --at X,Y --out-channel K``: the file read, the
    layer explained (and drawn to ``picture``)."""
    from ..pipeline import parse_stage
    from . import check_outputs, decode

    stage = parse_stage(stage_text, 1)
    if not stage.layer:
        raise UsageError(f"--stage explains a conv2d layer ('conv2d @FILE …'); for '{stage_text}' use -k or -m")
    check_outputs(image, png=picture)
    pic = decode(image, max_pixels=max_pixels)
    info = explain_layer(pic.colour, stage.spec, at, out_channel)
    if picture:
        draw_layer(info, picture)
    return info

