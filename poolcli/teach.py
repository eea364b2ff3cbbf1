"""Teaching views (contract §9): the arithmetic of one output value, and montages of feature maps.

:func:`explain_convolution` and :func:`explain_pooling` return the numbers a textbook draws for
one output position: the input patch under the window (padded cells as the boundary mode gives
them), the kernel, the element-wise products and their sum, or the pooled cells and the one that
was picked; the ``output`` is always the API's own result at that position.  :func:`render`
prints it with Rich, :func:`draw` draws it with Pillow, :func:`montage` lays out a pipeline's
feature maps in one labelled picture.  Nothing here changes a result: it only shows them.
"""

from __future__ import annotations

import math

import numpy as np

from . import api
from .errors import ImageError, UsageError

# ------------------------------------------------------------------ the numbers


def _image_index(i: int, n: int, boundary: str) -> int:
    """Where position ``i`` (possibly outside 0…n−1) reads from, by the boundary rule: the same
    index tables the engine reads through."""
    before, after = max(0, -i), max(0, i - n + 1)
    return int(api.index_map(n, before, after, boundary)[i + before])


def _channel(image: np.ndarray, channel: int | None) -> tuple[np.ndarray, int]:
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    C = img.shape[2]
    c = 0 if channel is None else channel
    if not 0 <= c < C:
        raise UsageError(f"--channel must be from 0 to {C - 1} for this image, got {channel}")
    return img[:, :, c], c


def _position(at, oh: int, ow: int) -> tuple[int, int]:
    x, y = at
    if not (0 <= x < ow and 0 <= y < oh):
        raise UsageError(f"--at {x},{y} is outside the output, which is {ow}x{oh} (X from 0 to {ow - 1}, "
                         f"Y from 0 to {oh - 1})")  # fmt: skip
    return x, y


def explain_convolution(image, spec: api.ConvolveSpec, at: tuple[int, int], channel: int | None = None) -> dict:
    """The arithmetic of ``convolve(image)[Y, X]`` on one channel: ``at`` is (X, Y).

    Returns a dict with ``position``, ``window`` (input rows and columns the taps read),
    ``input_patch`` (kh×kw values; padded cells hold what the boundary mode gives them),
    ``padding`` (kh×kw booleans), ``kernel``, ``products``, ``sum`` (their exact sum; for a
    gradient pair, the two sums) and ``output`` (the API's float32 result there).
    """
    plane, c = _channel(image, channel)
    H, W = plane.shape
    result = api.apply_convolve(plane, spec)
    oh, ow = result.shape[:2]
    x, y = _position(at, oh, ow)
    kernels = [spec.kernel] if spec.kernel.ndim == 2 else [spec.kernel[0], spec.kernel[1]]
    kh, kw = kernels[0].shape
    D, s = spec.dilation, spec.stride
    top, left = spec.crop
    cy, cx = top + y * s, left + x * s  # the input pixel the window is centred on
    rows = [cy + (i - kh // 2) * D for i in range(kh)]
    cols = [cx + (j - kw // 2) * D for j in range(kw)]
    patch = np.zeros((kh, kw), np.float64)
    pad = np.zeros((kh, kw), bool)
    for i, r in enumerate(rows):
        for j, q in enumerate(cols):
            inside = 0 <= r < H and 0 <= q < W
            pad[i, j] = not inside
            if inside:
                patch[i, j] = plane[r, q]
            elif spec.boundary == "constant":
                patch[i, j] = spec.cval
            else:
                patch[i, j] = plane[_image_index(r, H, spec.boundary), _image_index(q, W, spec.boundary)]
    products = [k * patch for k in kernels]
    sums = [float(p.sum()) for p in products]
    return {
        "kind": "convolution",
        "position": {"x": x, "y": y, "channel": c},
        "window": {
            "rows": rows,
            "cols": cols,
            "centre": [cy, cx],
            "dilation": D,
            "stride": s,
            "boundary": spec.boundary,
        },  # fmt: skip
        "input_patch": patch.tolist(),
        "padding": pad.tolist(),
        "kernel": kernels[0].tolist() if len(kernels) == 1 else [k.tolist() for k in kernels],
        "products": products[0].tolist() if len(products) == 1 else [p.tolist() for p in products],
        "sum": sums[0] if len(sums) == 1 else sums,
        "magnitude": None if len(sums) == 1 else math.hypot(*sums),
        "output": float(np.asarray(result)[y, x] if result.ndim == 2 else result[y, x, 0]),
    }


def explain_pooling(image, spec: api.PoolSpec, at: tuple[int, int], channel: int | None = None) -> dict:
    """The arithmetic of ``pool(image)[Y, X]`` on one channel: ``at`` is (X, Y).

    ``input_patch`` holds the window's cells (None in the implicit padding), ``window`` the
    cells that were pooled (``[row, col, value]``), the one picked (``chosen``, for max, min,
    median and stochastic) or the ``divisor`` (avg, lp); ``kernel`` and ``products`` are None.
    """
    plane, c = _channel(image, channel)
    H, W = plane.shape
    result = api.apply_pool(plane, spec)
    oh, ow = result.shape[:2]
    x, y = _position(at, oh, ow)
    if spec.output_size is not None:
        rstart, rcount = api._adaptive_windows(H, oh)
        cstart, ccount = api._adaptive_windows(W, ow)
        rows = list(range(int(rstart[y]), int(rstart[y] + rcount[y])))
        cols = list(range(int(cstart[x]), int(cstart[x] + ccount[x])))
        padded_area = len(rows) * len(cols)
    else:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = spec.size, spec.stride, spec.padding, spec.dilation
        rows = [y * sh - ph + i * dh for i in range(kh)]
        cols = [x * sw - pw + j * dw for j in range(kw)]
        padded_area = sum(r < H + ph for r in rows) * sum(q < W + pw for q in cols)
    patch = [[float(plane[r, q]) if 0 <= r < H and 0 <= q < W else None for q in cols] for r in rows]
    cells = [[r, q, float(plane[r, q])] for r in rows for q in cols if 0 <= r < H and 0 <= q < W]
    output = float(result[y, x])
    chosen, total, divisor = None, None, None
    if spec.mode in ("max", "min", "median", "stochastic"):
        chosen = next(([r, q] for r, q, v in cells if np.float32(v) == np.float32(output) or v == output), None)
    elif spec.mode == "avg":
        total = float(sum(v for *_, v in cells))
        if spec.divisor is not None:
            divisor = spec.divisor
        elif spec.count_include_pad or spec.output_size is not None:
            divisor = padded_area
        else:
            divisor = len(cells)
    else:  # lp: (Σ xᵖ)^(1/p), PyTorch's avg of xᵖ times the window area
        total = float(sum(v**spec.p for *_, v in cells))
    return {
        "kind": "pooling",
        "mode": spec.mode,
        "position": {"x": x, "y": y, "channel": c},
        "window": {"rows": rows, "cols": cols, "cells": cells, "chosen": chosen, "divisor": divisor},
        "input_patch": patch,
        "padding": [[v is None for v in row] for row in patch],
        "kernel": None,
        "products": None,
        "sum": total,
        "output": output,
    }


# ------------------------------------------------------------------ the classic figures


DEMO_X = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]], np.float32)
DEMO_PATCH = np.array([[10, 20, 30, 40, 50], [20, 40, 60, 80, 100], [30, 60, 90, 120, 150],
                       [40, 80, 120, 160, 200], [50, 100, 150, 200, 250]], np.float32)  # fmt: skip


def demo() -> list[dict]:
    """The classic pictures: a 4×4 map max- and average-pooled to 2×2 (every window), and a
    3×3 blur at the centre of a 5×5 patch."""
    out = []
    for mode in ("max", "avg"):
        spec = api.pool_spec(mode, 2)
        out.append({"title": f"{mode} pooling, 2×2 windows, stride 2: 4×4 → 2×2", "input": DEMO_X.tolist(),
                    "result": api.apply_pool(DEMO_X, spec).tolist(),
                    "steps": [explain_pooling(DEMO_X, spec, (x, y)) for y in range(2) for x in range(2)]})  # fmt: skip
    spec = api.convolve_spec("blur", boundary="valid")
    out.append({"title": "3×3 blur (binomial, /16) over a 5×5 patch, boundary valid: 5×5 → 3×3",
                "input": DEMO_PATCH.tolist(), "result": api.apply_convolve(DEMO_PATCH, spec).tolist(),
                "steps": [explain_convolution(DEMO_PATCH, spec, (1, 1))]})  # fmt: skip
    return out


# ------------------------------------------------------------------ the terminal


def _num(v) -> str:
    if v is None:
        return "·"
    v = float(v) + 0.0  # no "-0"
    return f"{v:.0f}" if v.is_integer() and abs(v) < 1e9 else f"{v:.4g}"


def _grid(title: str, values, *, pad=None, marks=()):
    """A Rich table of numbers: ``marks`` (row, column) cells highlighted, padded cells dim."""
    from rich.table import Table

    table = Table(title=title, show_header=False, pad_edge=True)
    for _ in values[0]:
        table.add_column(justify="right")
    for i, row in enumerate(values):
        cells = []
        for j, v in enumerate(row):
            text = _num(v)
            if (i, j) in marks:
                text = f"[reverse bold]{text}[/]"
            elif pad is not None and pad[i][j]:
                text = f"[dim italic]{text}[/]"
            cells.append(text)
        table.add_row(*cells)
    return table


def render(console, info: dict) -> None:
    """Print one explanation as a textbook draws it."""
    from rich.columns import Columns

    pos = info["position"]
    where = f"output (x={pos['x']}, y={pos['y']}), channel {pos['channel']}"
    if info["kind"] == "convolution":
        w = info["window"]
        console.print(f"[bold]{where}[/]: window centred on input row {w['centre'][0]}, column {w['centre'][1]} "
                      f"(stride {w['stride']}, dilation {w['dilation']}, boundary {w['boundary']})")  # fmt: skip
        pairs = [(info["kernel"], info["products"], info["sum"])]
        if isinstance(info["sum"], list):
            pairs = list(zip(info["kernel"], info["products"], info["sum"]))
        for n, (k, p, s) in enumerate(pairs):
            label = "" if len(pairs) == 1 else (" (x)" if n == 0 else " (y)")
            console.print(Columns([_grid("input patch", info["input_patch"], pad=info["padding"]),
                                   _grid(f"kernel{label}", k), _grid("products", p)]))  # fmt: skip
            console.print(f"sum of products{label} = {s:.6g}")
        if info["magnitude"] is not None:
            console.print(f"magnitude √(x² + y²) = {info['magnitude']:.6g}")
        if any(any(r) for r in info["padding"]):
            console.print("[dim italic]dim italic[/]: cells outside the image, as the boundary mode gives them")
    else:
        w = info["window"]
        marks = set()
        if w["chosen"] is not None:
            marks.add((w["rows"].index(w["chosen"][0]), w["cols"].index(w["chosen"][1])))
        console.print(f"[bold]{where}[/]: {info['mode']} pooling over input rows {w['rows'][0]}…{w['rows'][-1]}, "
                      f"columns {w['cols'][0]}…{w['cols'][-1]}")  # fmt: skip
        console.print(_grid("window", info["input_patch"], pad=info["padding"], marks=marks))
        if info["mode"] == "avg":
            console.print(f"sum {info['sum']:.6g} / divisor {w['divisor']} = {info['sum'] / w['divisor']:.6g}")
        elif info["mode"] == "lp":
            console.print(f"Σ xᵖ = {info['sum']:.6g}")
        elif w["chosen"] is not None:
            console.print(f"[reverse bold]highlighted[/]: the cell {info['mode']} picks")
        if any(any(r) for r in info["padding"]):
            console.print("·: implicit padding (never picked by max or min; counted by avg as zeros when "
                          "count_include_pad)")  # fmt: skip
    console.print(f"[bold]output = {info['output']:.6g}[/] (poolcli's own result at that position)")


def render_demo(console) -> None:
    for figure in demo():
        console.rule(figure["title"])
        from rich.columns import Columns

        marks = {tuple(step["window"]["chosen"]) for step in figure["steps"] if step["window"].get("chosen")}
        console.print(Columns([_grid("input", figure["input"], marks=marks), _grid("result", figure["result"])]))
        for step in figure["steps"]:
            render(console, step)


# ------------------------------------------------------------------ pictures


def _font(size: int = 14):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1: the bitmap font
        return ImageFont.load_default()


def _diverging(values: np.ndarray, bound: float) -> np.ndarray:
    """RGB of a blue (negative) – white (zero) – red (positive) map scaled to ±bound."""
    t = np.clip(values / bound, -1, 1) if bound > 0 else np.zeros_like(values)
    neg, posv = np.clip(-t, 0, 1), np.clip(t, 0, 1)
    r = 255 * (1 - neg * 0.85)
    g = 255 * (1 - np.maximum(neg, posv) * 0.85)
    b = 255 * (1 - posv * 0.85)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def to_display(array: np.ndarray, colour: int) -> tuple[np.ndarray, str, float, float]:
    """(RGB uint8 picture, scale kind, low, high) of a feature map: signed maps on a diverging
    map centred on zero (never stretched to look unsigned), non-negative ones on gray 0…max,
    three-channel images as they are (clipped to 0–255 when they fit it)."""
    a = np.asarray(array, np.float64)[:, :, :colour]
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if colour == 3 and lo >= 0 and hi <= 255:
        return np.clip(np.rint(a), 0, 255).astype(np.uint8), "rgb", 0.0, 255.0
    plane = a.mean(axis=2) if colour > 1 else a[:, :, 0]
    plane = np.nan_to_num(plane)
    if lo < 0:
        bound = max(abs(lo), abs(hi))
        return _diverging(plane, bound), "diverging", -bound, bound
    top = hi if hi > 0 else 1.0
    g = np.clip(plane / top * 255, 0, 255).astype(np.uint8)
    return np.stack([g, g, g], axis=-1), "gray", 0.0, top


def montage(panels: list[tuple], path: str | None = None):
    """Draw ``panels`` (title, (H, W, C) array, colour channels[, a bank's maps?]) left to right
    at their true scale, each titled with its size (WxHxC) and, for feature maps, a colour bar;
    a bank's maps, or more than 3 channels, are drawn as a grid of maps.  Returns (the picture,
    the layout: one dict per panel with its title, box, number of maps and colour scale)."""
    from PIL import Image, ImageDraw

    font, pad, head, bar = _font(13), 12, 34, 14
    tiles = []
    for title, array, colour, *bank in panels:
        arr = np.asarray(array)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        h, w = arr.shape[:2]
        single = colour in (1, 3) and not (bank and bank[0])
        maps = [(arr, colour)] if single else [(arr[:, :, n : n + 1], 1) for n in range(colour)]
        pictures = [to_display(m, c) for m, c in maps]
        if single and colour == 3 and pictures[0][1] != "rgb":
            title += " (mean of 3 channels)"
        cols = math.ceil(math.sqrt(len(pictures)))
        rows_n = math.ceil(len(pictures) / cols)
        gap = 4 if len(pictures) > 1 else 0
        tile_w, tile_h = cols * w + (cols - 1) * gap, rows_n * h + (rows_n - 1) * gap
        tiles.append((f"{title}  {w}x{h}x{colour}", pictures, cols, w, h, gap, tile_w, tile_h))
    width = pad + sum(max(t[6], 150) + pad for t in tiles)
    height = head + max(t[7] for t in tiles) + bar + 34 + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    layout, x = [], pad
    for title, pictures, cols, w, h, gap, tile_w, tile_h in tiles:
        draw.text((x, 8), title, fill="black", font=font)
        for n, (rgb, *_) in enumerate(pictures):
            px, py = x + (n % cols) * (w + gap), head + (n // cols) * (h + gap)
            canvas.paste(Image.fromarray(rgb), (px, py))
        kind, lo, hi = pictures[0][1], min(p[2] for p in pictures), max(p[3] for p in pictures)
        if kind != "rgb":
            by = head + tile_h + 6
            ramp = np.linspace(lo, hi, max(tile_w, 120))[None, :].repeat(bar, axis=0)
            strip = _diverging(ramp, hi) if kind == "diverging" else np.stack([np.clip(ramp / hi * 255, 0, 255)] * 3,
                                                                             axis=-1).astype(np.uint8)  # fmt: skip
            canvas.paste(Image.fromarray(strip), (x, by))
            draw.text((x, by + bar + 2), f"{lo:.3g}", fill="black", font=font)
            right = f"{hi:.3g}"
            draw.text((x + max(tile_w, 120) - draw.textlength(right, font=font), by + bar + 2), right, fill="black",
                      font=font)  # fmt: skip
            if kind == "diverging":
                draw.text((x + max(tile_w, 120) / 2 - 3, by + bar + 2), "0", fill="black", font=font)
        layout.append({"title": title, "x": x, "y": head, "width": tile_w, "height": tile_h, "maps": len(pictures),
                       "scale": kind, "low": lo, "high": hi})  # fmt: skip
        x += max(tile_w, 150) + pad
    if path is not None:
        from .images import write_output

        buf = __import__("io").BytesIO()
        ext = path.rsplit(".", 1)[-1].lower() if "." in path else "png"
        canvas.save(buf, {"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF", "tiff": "TIFF"}.get(ext, "PNG"))
        write_output(buf.getvalue(), path)
    return canvas, layout


def draw(info: dict, image: np.ndarray, path: str) -> None:
    """The explanation as a diagram: a thumbnail with the window marked, then the patch, the
    kernel and the products as grids of numbers (or the pooling window with its pick), and the
    result."""
    from PIL import Image, ImageDraw

    font, big = _font(14), _font(18)
    img = np.asarray(image)
    img = img[:, :, None] if img.ndim == 2 else img
    thumb_rgb, *_ = to_display(img.astype(np.float64), 3 if img.shape[2] >= 3 else 1)
    thumb = Image.fromarray(thumb_rgb)
    scale = min(1.0, 220 / max(thumb.width, thumb.height))
    thumb = thumb.resize((max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))))
    grids = [("input patch", info["input_patch"], info["padding"])]
    if info["kind"] == "convolution":
        kernels = info["kernel"] if isinstance(info["sum"], list) else [info["kernel"]]
        products = info["products"] if isinstance(info["sum"], list) else [info["products"]]
        for n, (k, p) in enumerate(zip(kernels, products)):
            label = "" if len(kernels) == 1 else (" x" if n == 0 else " y")
            grids += [(f"x kernel{label}", k, None), (f"= products{label}", p, None)]

    def short(v) -> str:  # three significant digits fit a cell at 100 % zoom
        if v is None:
            return "pad"
        v = float(v) + 0.0  # no "-0"
        return f"{v:.0f}" if v.is_integer() and abs(v) < 1e6 else f"{v:.3g}"

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    longest = max(probe.textlength(short(v), font=font) for _, g, _ in grids for row in g for v in row)
    cell = int(max(44, longest + 12))
    rows_n = len(info["input_patch"])
    widths = [len(g[1][0]) * cell for g in grids]
    if info["kind"] == "convolution":
        sums = info["sum"] if isinstance(info["sum"], list) else [info["sum"]]
        result = ",  ".join(f"sum of products = {s:.6g}" for s in sums)
        if info["magnitude"] is not None:
            result += f"  ->  sqrt(x^2 + y^2) = {info['magnitude']:.6g}"
    elif info["mode"] == "avg":
        result = f"sum {info['sum']:.6g} / divisor {info['window']['divisor']}"
    elif info["mode"] == "lp":
        result = f"sum of x^p = {info['sum']:.6g}"
    else:
        result = f"{info['mode']} picks the highlighted cell"
    result += f"   ->   output ({info['position']['x']}, {info['position']['y']}) = {info['output']:.6g}"
    note = "grey cells: outside the image (what the boundary mode gives them; 'pad': pooling's implicit padding)"
    width = int(max(thumb.width + 40 + sum(widths) + 30 * len(grids) + 40, probe.textlength(result, font=big) + 40,
                    probe.textlength(note, font=font) + 40))  # fmt: skip
    height = max(thumb.height, rows_n * cell) + 130
    canvas = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(canvas)
    canvas.paste(thumb, (20, 40))
    w = info["window"]
    r0, r1, c0, c1 = min(w["rows"]), max(w["rows"]), min(w["cols"]), max(w["cols"])
    d.rectangle([20 + c0 * scale - 2, 40 + r0 * scale - 2, 20 + (c1 + 1) * scale + 2, 40 + (r1 + 1) * scale + 2],
                outline=(220, 30, 30), width=2)  # fmt: skip
    d.text((20, 12), "input (window in red)", fill="black", font=font)
    x = thumb.width + 60
    chosen = w.get("chosen")
    for (title, values, pad), gw in zip(grids, widths):
        d.text((x, 12), title, fill="black", font=font)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                box = [x + j * cell, 40 + i * cell, x + (j + 1) * cell - 1, 40 + (i + 1) * cell - 1]
                is_pad = pad is not None and pad[i][j]
                picked = chosen is not None and title == "input patch" and [w["rows"][i], w["cols"][j]] == chosen
                fill = (255, 225, 120) if picked else ((235, 235, 235) if is_pad else "white")
                d.rectangle(box, fill=fill, outline=(120, 120, 120))
                text = short(v)
                d.text((box[0] + (cell - d.textlength(text, font=font)) / 2, box[1] + 14), text,
                       fill=(130, 130, 130) if is_pad else "black", font=font)  # fmt: skip
        x += gw + 30
    y = 40 + max(thumb.height, rows_n * cell) + 20
    d.text((20, y), result, fill="black", font=big)
    d.text((20, y + 30), note, fill=(110, 110, 110), font=font)
    try:
        canvas.save(path)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot write the diagram ({exc})") from None
