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

JSON_CELLS = 10_000  # window cells --json lists; beyond, the window is summarised (contract §9)
GRID_SIDE = 11  # rows or columns of numbers a view draws; a larger window is drawn as a heat map
HEAT_SIDE = 32  # a heat map's cells a side at most
MAX_SIDE = 4096  # pixels a side of any picture explain draws


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
    rin = np.array([0 <= r < H for r in rows])
    cin = np.array([0 <= q < W for q in cols])
    pad = ~(rin[:, None] & cin[None, :])
    if spec.boundary == "constant":
        patch = np.full((kh, kw), spec.cval, np.float64)
        patch[np.ix_(rin, cin)] = _take(plane, np.array(rows)[rin], np.array(cols)[cin])
    else:
        ri = [r if 0 <= r < H else _image_index(r, H, spec.boundary) for r in rows]
        ci = [q if 0 <= q < W else _image_index(q, W, spec.boundary) for q in cols]
        patch = plane[np.ix_(ri, ci)].astype(np.float64)
    products = [k * patch for k in kernels]
    sums = [float(p.sum()) for p in products]
    info = {
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
        "sum": sums[0] if len(sums) == 1 else sums,
        "magnitude": None if len(sums) == 1 else math.hypot(*sums),
        "output": float(np.asarray(result)[y, x] if result.ndim == 2 else result[y, x, 0]),
        "output_size": output_size_conv(H, W, kh, kw, spec),
    }
    one = len(kernels) == 1
    grids = {"input_patch": patch, "kernel": kernels[0] if one else np.stack(kernels),
             "products": products[0] if one else np.stack(products)}  # fmt: skip
    return _bounded(info, grids, pad, rows, cols)


def _summary(values: np.ndarray, rows, cols) -> dict:
    """What a window too large to list holds: its count, min, max, mean and where its max is
    (NaN cells, pooling's implicit padding, left out)."""
    missing = np.isnan(values)
    inside = values[~missing] if missing.any() else values
    at = int(np.argmax(np.where(missing, -np.inf, values) if missing.any() else values))
    i, j = np.unravel_index(at, values.shape)
    return {"count": int(inside.size), "min": float(inside.min()), "max": float(inside.max()),
            "mean": float(inside.mean()), "argmax": [int(rows[i]), int(cols[j])], "truncated": True}  # fmt: skip


def _heat(values: np.ndarray, side: int = HEAT_SIDE) -> list:
    """A window's values as at most ``side``×``side`` block means (what a heat map draws); NaN
    cells (implicit padding) are left out of their block's mean."""
    v = np.asarray(values, np.float64)
    h, w = v.shape
    ry = np.arange(0, h, -(-h // side))
    cx = np.arange(0, w, -(-w // side))
    missing = np.isnan(v)
    if missing.any():
        counts = np.add.reduceat(np.add.reduceat((~missing).astype(np.float64), ry, axis=0), cx, axis=1)
        v = np.where(missing, 0.0, v)
    else:
        counts = np.outer(np.diff(np.append(ry, h)), np.diff(np.append(cx, w))).astype(np.float64)
    sums = np.add.reduceat(np.add.reduceat(v, ry, axis=0), cx, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(sums / counts).tolist()


def _take(plane: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``plane[rows][:, cols]`` for evenly spaced rows and columns, as a strided view."""
    def span(idx):
        step = int(idx[1] - idx[0]) if len(idx) > 1 else 1
        return slice(int(idx[0]), int(idx[-1]) + 1, step)

    return plane[span(rows), span(cols)]


def _bounded(info: dict, grids: dict, pad: np.ndarray, rows, cols) -> dict:
    """``info`` with its grids as lists when the window has at most :data:`JSON_CELLS` cells;
    beyond, ``window`` summarised and the grids left out (contract §9).  A window wider or
    taller than :data:`GRID_SIDE` also gets ``heatmap``: each grid as block means, which the
    terminal and the picture draw instead of numbers."""
    patch = grids["input_patch"]
    big = max(patch.shape) > GRID_SIDE
    if patch.size > JSON_CELLS:
        keep = {k: v for k, v in info["window"].items() if k not in ("rows", "cols", "cells")}
        info["window"] = {**keep, **_summary(patch, rows, cols), "rows_span": [rows[0], rows[-1]],
                          "cols_span": [cols[0], cols[-1]]}  # fmt: skip
        for key in grids:
            info[key] = None
        info["padding"] = None
    else:
        for key, value in grids.items():
            info[key] = None if value is None else _listed(value)
        info["padding"] = pad.tolist()
    if big:
        info["heatmap"] = {key: (None if value is None else [_heat(v) for v in value] if value.ndim == 3
                                 else _heat(value)) for key, value in grids.items()}  # fmt: skip
    return info


def _listed(value: np.ndarray):
    """A grid as nested lists, None for NaN (pooling's implicit padding)."""
    arr = np.asarray(value, np.float64)
    out = arr.tolist()
    if np.isnan(arr).any():
        nan = np.isnan(arr)
        out = [[None if nan[i][j] else v for j, v in enumerate(row)] for i, row in enumerate(out)]
    return out


def output_size_conv(H: int, W: int, kh: int, kw: int, spec) -> dict:
    """The output size with its formula, the numbers put in (``valid``: no padding; every other
    boundary pads (k − 1)/2 on each side, so the size is the input's before the stride)."""
    def one(n, k, axis):
        reach = spec.dilation * (k - 1)
        if spec.boundary == "valid":
            size = (n - reach - 1) // spec.stride + 1
            return size, f"⌊({n} − {spec.dilation}·({k} − 1) − 1) / {spec.stride}⌋ + 1 = {size}"
        size = (n - 1) // spec.stride + 1
        return size, f"⌊({n} − 1) / {spec.stride}⌋ + 1 = {size} (padded by the boundary mode: 'same' size)"

    (h, fh), (w, fw) = one(H, kh, 0), one(W, kw, 1)
    return {"height": h, "width": w, "formula_h": fh, "formula_w": fw}


def output_size_pool(H: int, W: int, spec, oh: int, ow: int) -> dict:
    """The pooling output size, with PyTorch's formula and the numbers put in."""
    if spec.output_size is not None:
        return {"height": oh, "width": ow, "formula_h": f"adaptive: {oh}", "formula_w": f"adaptive: {ow}"}

    def one(n, k, s, p, d, o):
        rnd = "⌈" if spec.ceil_mode else "⌊"
        end = "⌉" if spec.ceil_mode else "⌋"
        return f"{rnd}({n} + 2·{p} − {d}·({k} − 1) − 1) / {s}{end} + 1 = {o}"

    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = spec.size, spec.stride, spec.padding, spec.dilation
    return {"height": oh, "width": ow, "formula_h": one(H, kh, sh, ph, dh, oh),
            "formula_w": one(W, kw, sw, pw, dw, ow)}  # fmt: skip


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
    r = np.array(rows)
    q = np.array(cols)
    rin, cin = (r >= 0) & (r < H), (q >= 0) & (q < W)
    vals = _take(plane, r[rin], q[cin]).astype(np.float64)  # the cells inside the image, row by row
    if rin.all() and cin.all():
        patch = vals
    else:
        patch = np.full((len(rows), len(cols)), np.nan)
        patch[np.ix_(rin, cin)] = vals
    output = float(result[y, x])
    chosen, total, divisor = None, None, None
    if spec.mode in ("max", "min", "median", "stochastic"):
        hit = np.flatnonzero((vals.astype(np.float32) == np.float32(output)) | (vals == output))
        if hit.size:
            i, j = np.unravel_index(int(hit[0]), vals.shape)
            chosen = [int(r[rin][i]), int(q[cin][j])]
    elif spec.mode == "avg":
        total = float(vals.sum())
        if spec.divisor is not None:
            divisor = spec.divisor
        elif spec.count_include_pad or spec.output_size is not None:
            divisor = padded_area
        else:
            divisor = int(vals.size)
    else:  # lp: (Σ xᵖ)^(1/p), PyTorch's avg of xᵖ times the window area
        total = float((vals**spec.p).sum())
    info = {
        "kind": "pooling",
        "mode": spec.mode,
        "position": {"x": x, "y": y, "channel": c},
        "window": {"rows": rows, "cols": cols, "chosen": chosen, "divisor": divisor},
        "kernel": None,
        "products": None,
        "sum": total,
        "output": output,
        "output_size": output_size_pool(H, W, spec, oh, ow),
    }
    if patch.size <= JSON_CELLS:
        rr, cc = np.nonzero(np.outer(rin, cin))
        info["window"]["cells"] = [[int(r[i]), int(q[j]), float(patch[i, j])] for i, j in zip(rr, cc)]
    info = _bounded(info, {"input_patch": patch}, np.isnan(patch), rows, cols)
    info["kernel"] = info["products"] = None
    return info


# ------------------------------------------------------------------ the classic figures


DEMO_X = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]], np.float32)
DEMO_PATCH = np.array([[10, 20, 30, 40, 50], [20, 40, 60, 80, 100], [30, 60, 90, 120, 150],
                       [40, 80, 120, 160, 200], [50, 100, 150, 200, 250]], np.float32)  # fmt: skip


def demo(kernel: str | None = None) -> list[dict]:
    """The classic pictures: a 4×4 map max- and average-pooled to 2×2 (every window), and a
    3×3 blur at the centre of a 5×5 patch; with ``kernel``, that kernel's convolution over the
    5×5 patch instead (what ``explain --demo -k K`` draws)."""
    if kernel is not None:
        spec = api.convolve_spec(kernel, boundary="valid")
        kh, kw = spec.kernel.shape[-2:]
        if kh > 5 or kw > 5:
            raise UsageError(f"--demo draws a 5×5 patch: kernel {kernel} is {kw}×{kh}; give one of at most 5×5")
        out = api.apply_convolve(DEMO_PATCH, spec)
        steps = [explain_convolution(DEMO_PATCH, spec, (0, 0))]
        return [{"title": f"{kernel} ({kw}×{kh}) over a 5×5 patch, boundary valid: 5×5 → {out.shape[1]}×{out.shape[0]}",
                 "input": DEMO_PATCH.tolist(), "result": out.tolist(), "steps": steps}]  # fmt: skip
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
            if (i, j) in marks:  # brackets as well as colour: they survive pipes and NO_COLOR
                text = f"[reverse bold]\\[{text}][/]"
            elif pad is not None and pad[i][j]:
                text = f"[dim italic]{text}[/]"
            cells.append(text)
        table.add_row(*cells)
    return table


_SHADES = " .:-=+*#%@"  # ASCII, so every terminal prints it


def _heat_lines(title: str, grid: list) -> list[str]:
    """A heat map in characters: darker for larger values, scaled to the grid's own range."""
    v = np.asarray(grid, np.float64)
    lo, hi = float(v.min()), float(v.max())
    t = np.zeros_like(v) if hi == lo else (v - lo) / (hi - lo)
    idx = np.minimum((t * len(_SHADES)).astype(int), len(_SHADES) - 1)
    lines = [f"{title} (min {lo:.4g} ' ' ... max {hi:.4g} '@', block means)"]
    lines += ["  " + "".join(_SHADES[k] * 2 for k in row) for row in idx]
    return lines


def _spans(w: dict) -> tuple[list[int], list[int]]:
    """(first, last) input row and column of a window, listed or summarised."""
    if "rows" in w:
        return [w["rows"][0], w["rows"][-1]], [w["cols"][0], w["cols"][-1]]
    return w["rows_span"], w["cols_span"]


def _window_summary(console, info: dict) -> None:
    w = info["window"]
    if w.get("truncated"):
        console.print(f"window of {w['count']:,} cells: min {w['min']:.6g}, max {w['max']:.6g}, mean {w['mean']:.6g}, "
                      f"max at input row {w['argmax'][0]}, column {w['argmax'][1]}")  # fmt: skip


def render(console, info: dict) -> None:
    """Print one explanation as a textbook draws it; a window larger than a readable grid as heat
    maps with its numbers summarised (the view stays under 100 lines)."""
    from rich.columns import Columns

    pos = info["position"]
    where = f"output (x={pos['x']}, y={pos['y']}), channel {pos['channel']}"
    heat = info.get("heatmap")
    w = info["window"]
    rows, cols = _spans(w)
    if info["kind"] == "convolution":
        console.print(f"[bold]{where}[/]: window centred on input row {w['centre'][0]}, column {w['centre'][1]} "
                      f"(stride {w['stride']}, dilation {w['dilation']}, boundary {w['boundary']})")  # fmt: skip
        sums = info["sum"] if isinstance(info["sum"], list) else [info["sum"]]
        names = [""] if len(sums) == 1 else [" gx", " gy"]
        if heat:
            console.print(f"the window covers input rows {rows[0]}…{rows[1]}, columns {cols[0]}…{cols[1]}: too "
                          "large for a grid of numbers, so heat maps")  # fmt: skip
            _window_summary(console, info)
            for line in _heat_lines("input patch", heat["input_patch"]):
                console.print(line, markup=False, highlight=False)
            kernels = heat["kernel"] if len(sums) > 1 else [heat["kernel"]]
            for n, k in enumerate(kernels):
                for line in _heat_lines(f"kernel{names[n]}", k)[:1]:
                    console.print(line, markup=False, highlight=False)
        else:
            kernels = info["kernel"] if len(sums) > 1 else [info["kernel"]]
            products = info["products"] if len(sums) > 1 else [info["products"]]
            for n, (k, p) in enumerate(zip(kernels, products)):
                console.print(Columns([_grid("input patch", info["input_patch"], pad=info["padding"]),
                                       _grid(f"kernel{names[n]}", k), _grid(f"products{names[n]}", p)]))  # fmt: skip
        for n, total in enumerate(sums):
            label = f"{names[n].strip()} = " if names[n] else ""
            console.print(f"{label}sum of products{names[n]} = {total:.6g}")
        if info["magnitude"] is not None:
            console.print(f"magnitude sqrt(gx² + gy²) = {info['magnitude']:.6g}")
        if info.get("padding") and any(any(r) for r in info["padding"]):
            console.print("[dim italic]dim italic[/]: cells outside the image, as the boundary mode gives them")
    else:
        console.print(f"[bold]{where}[/]: {info['mode']} pooling over input rows {rows[0]}…{rows[1]}, "
                      f"columns {cols[0]}…{cols[1]}")  # fmt: skip
        if heat:
            _window_summary(console, info)
            for line in _heat_lines("window", heat["input_patch"]):
                console.print(line, markup=False, highlight=False)
        else:
            marks = set()
            if w["chosen"] is not None:
                marks.add((w["rows"].index(w["chosen"][0]), w["cols"].index(w["chosen"][1])))
            console.print(_grid("window", info["input_patch"], pad=info["padding"], marks=marks))
        if info["mode"] == "avg":
            console.print(f"sum {info['sum']:.6g} / divisor {w['divisor']} = {info['sum'] / w['divisor']:.6g}")
        elif info["mode"] == "lp":
            console.print(f"Σ xᵖ = {info['sum']:.6g}")
        elif w["chosen"] is not None:
            console.print(f"\\[bracketed]: the cell {info['mode']} picks, input row {w['chosen'][0]}, "
                          f"column {w['chosen'][1]}")  # fmt: skip
        if info.get("padding") and any(any(r) for r in info["padding"]):
            console.print("·: implicit padding (never picked by max or min; counted by avg as zeros when "
                          "count_include_pad)")  # fmt: skip
    size = info.get("output_size")
    if size:
        console.print(f"output height {size['formula_h']}", highlight=False)
        console.print(f"output width  {size['formula_w']}", highlight=False)
    console.print(f"[bold]output = {info['output']:.6g}[/] (poolcli's own result at that position)")


def render_demo(console, figures: list[dict] | None = None) -> None:
    for figure in figures if figures is not None else demo():
        console.rule(figure["title"])
        from rich.columns import Columns

        marks = {tuple(step["window"]["chosen"]) for step in figure["steps"] if step["window"].get("chosen")}
        console.print(Columns([_grid("input", figure["input"], marks=marks), _grid("result", figure["result"])]))
        for step in figure["steps"]:
            render(console, step)


# ------------------------------------------------------------------ pictures


def draw_demo(figures: list[dict], path: str) -> None:
    """The demo's figures as one picture: each title, its input and its result as grids."""
    from PIL import Image, ImageDraw

    font, big = _font(14), _font(16)
    cell = 46
    rows = []
    for fig in figures:
        grid_h = max(len(fig["input"]), len(fig["result"])) * cell
        rows.append(grid_h + 60)
    width = 40 + (len(figures[0]["input"][0]) + len(figures[0]["result"][0])) * cell + 120
    width = max(width, max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(f["title"], font=big))
                           for f in figures) + 40)  # fmt: skip
    canvas = Image.new("RGB", (width, sum(rows) + 20), "white")
    d = ImageDraw.Draw(canvas)
    y = 10
    for fig, h in zip(figures, rows):
        d.text((20, y), _ascii(fig["title"]), fill="black", font=big)
        x = 20
        for values in (fig["input"], fig["result"]):
            for i, row in enumerate(values):
                for j, v in enumerate(row):
                    box = [x + j * cell, y + 30 + i * cell, x + (j + 1) * cell - 1, y + 30 + (i + 1) * cell - 1]
                    d.rectangle(box, outline=(120, 120, 120))
                    text = _num(v)
                    d.text((box[0] + (cell - d.textlength(text, font=font)) / 2, box[1] + 15), text, fill="black",
                           font=font)  # fmt: skip
            x += len(values[0]) * cell + 60
            d.text((x - 45, y + 30 + cell), "->", fill="black", font=big)
        y += h
    _save(canvas, path)


def _ascii(text: str) -> str:
    """Text the bundled font can draw: the formulas' symbols in ASCII."""
    for a, b in (("⌊", "floor("), ("⌋", ")"), ("⌈", "ceil("), ("⌉", ")"), ("−", "-"), ("·", "*"), ("×", "x"),
                 ("→", "->"), ("√", "sqrt")):  # fmt: skip
        text = text.replace(a, b)
    return text


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


def value_range(array: np.ndarray, colour: int) -> tuple[float, float]:
    """(min, max) of the finite values of the first ``colour`` channels."""
    a = np.asarray(array)[:, :, :colour]
    if a.dtype.kind != "f":
        return (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    finite = a[np.isfinite(a)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


def to_display(array: np.ndarray, colour: int, bounds: tuple[float, float] | None = None
               ) -> tuple[np.ndarray, str, float, float]:  # fmt: skip
    """(RGB uint8 picture, scale kind, low, high) of a feature map: signed maps on a diverging
    map centred on zero (never stretched to look unsigned), non-negative ones on gray 0…max,
    three-channel images as they are (clipped to 0–255 when they fit it).  ``bounds``: the
    map's (min, max) when ``array`` is a subsample of it."""
    a = np.asarray(array, np.float64)[:, :, :colour]
    lo, hi = bounds if bounds is not None else value_range(a, colour)
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


MONTAGE_SIDE = 1024  # pixels a side of the input's panel at most; the other panels at its scale


class Panels(list):
    """A montage's panels, each kept as small display pictures as soon as it arrives (not the
    full float map), so a montage of many stages of a large photo stays in bounded memory.  The
    first panel (the input) sets the scale: at most :data:`MONTAGE_SIDE` pixels a side."""

    scale: float | None = None

    def append(self, panel) -> None:
        title, array, colour, *bank = panel
        arr = np.asarray(array)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        if self.scale is None:
            self.scale = min(1.0, MONTAGE_SIDE / max(arr.shape[:2]))
        super().append(_tile(title, arr, colour, bool(bank and bank[0]), self.scale))


class _Tile(tuple):
    """A panel ready to paste: (title, pictures, cols, w, h, gap, tile_w, tile_h)."""


def _tile(title: str, arr: np.ndarray, colour: int, bank: bool, scale: float = 1.0) -> _Tile:
    from PIL import Image

    h, w = arr.shape[:2]
    single = colour in (1, 3) and not bank
    count = 1 if single else colour
    cols = math.ceil(math.sqrt(count))
    rows_n = math.ceil(count / cols)
    s = min(scale, MONTAGE_SIDE / (cols * max(h, w))) if count > 1 else scale
    dw, dh = max(1, round(w * s)), max(1, round(h * s))
    step = max(1, round(1 / s)) if s < 1 else 1  # subsample first: to_display works in float64
    pictures = []
    for n in range(count):
        m, c = (arr, colour) if single else (arr[:, :, n : n + 1], 1)
        rgb, kind, lo, hi = to_display(m[::step, ::step], c, value_range(m, c))
        if rgb.shape[:2] != (dh, dw):
            rgb = np.asarray(Image.fromarray(rgb).resize((dw, dh), Image.BILINEAR))
        pictures.append((rgb, kind, lo, hi))
    if single and colour == 3 and pictures[0][1] != "rgb":
        title += " (mean of 3 channels)"
    gap = 4 if count > 1 else 0
    tile_w, tile_h = cols * dw + (cols - 1) * gap, rows_n * dh + (rows_n - 1) * gap
    return _Tile((f"{title}  {w}x{h}x{colour} (WxHxC)", pictures, cols, dw, dh, gap, tile_w, tile_h))


def montage(panels: list[tuple], path: str | None = None):
    """Draw ``panels`` (title, (H, W, C) array, colour channels[, a bank's maps?]) left to right
    at their true scale, each titled with its size (WxHxC) and, for feature maps, a colour bar;
    a bank's maps, or more than 3 channels, are drawn as a grid of maps.  Returns (the picture,
    the layout: one dict per panel with its title, box, number of maps and colour scale)."""
    from PIL import Image, ImageDraw

    font, pad, head, bar = _font(13), 12, 34, 14
    tiles = []
    for panel in panels:
        if isinstance(panel, _Tile):
            tiles.append(panel)
            continue
        title, array, colour, *bank = panel
        arr = np.asarray(array)
        tiles.append(_tile(title, arr[:, :, None] if arr.ndim == 2 else arr, colour, bool(bank and bank[0])))
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
    if max(canvas.size) > MAX_SIDE:  # many stages side by side: the whole at most MAX_SIDE a side
        canvas.thumbnail((MAX_SIDE, MAX_SIDE))
    if path is not None:
        from .images import format_for, pillow_formats, write_output

        buf = __import__("io").BytesIO()
        fmt = "png" if path == "-" else format_for(path, None)
        name = {"png": "PNG", "jpg": "JPEG", "tiff": "TIFF", "webp": "WEBP", "bmp": "BMP"}.get(fmt)
        canvas.save(buf, name or pillow_formats().get(fmt, "png").upper())
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
    step = max(1, max(img.shape[:2]) // 440)  # the thumbnail is 220 px: no need to convert every pixel
    thumb_rgb, *_ = to_display(img[::step, ::step].astype(np.float64), 3 if img.shape[2] >= 3 else 1)
    thumb = Image.fromarray(thumb_rgb)
    H, W = img.shape[:2]
    scale = min(1.0, 220 / max(W, H))  # thumbnail pixels per input pixel (the window is marked with it)
    thumb = thumb.resize((max(1, round(W * scale)), max(1, round(H * scale))))
    heat = info.get("heatmap")
    if heat:  # a window larger than a readable grid: each grid as a heat map of block means
        return _draw_heat(info, heat, thumb, scale, path)
    grids = [("input patch", info["input_patch"], info["padding"])]
    if info["kind"] == "convolution":
        kernels = info["kernel"] if isinstance(info["sum"], list) else [info["kernel"]]
        products = info["products"] if isinstance(info["sum"], list) else [info["products"]]
        for n, (k, p) in enumerate(zip(kernels, products)):
            label = "" if len(kernels) == 1 else (" gx" if n == 0 else " gy")
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
        names = [""] if len(sums) == 1 else ["gx = ", "gy = "]
        result = ",  ".join(f"{n}sum of products = {s:.6g}" for n, s in zip(names, sums))
        if info["magnitude"] is not None:
            result += f"  ->  sqrt(gx^2 + gy^2) = {info['magnitude']:.6g}"
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
    _mark_window(d, w, scale)
    d.text((20, 12), f"input, channel {info['position']['channel']} (window in red)", fill="black", font=font)
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
    d.text((20, y + 52), _size_line(info), fill=(110, 110, 110), font=font)
    _save(canvas, path)


def _size_line(info: dict) -> str:
    size = info.get("output_size")
    return _ascii(f"output size: height {size['formula_h']}, width {size['formula_w']}") if size else ""


def _mark_window(d, w: dict, scale: float) -> None:
    (r0, r1), (c0, c1) = _spans(w)
    r0, r1, c0, c1 = min(r0, r1), max(r0, r1), min(c0, c1), max(c0, c1)
    d.rectangle([20 + c0 * scale - 2, 40 + r0 * scale - 2, 20 + (c1 + 1) * scale + 2, 40 + (r1 + 1) * scale + 2],
                outline=(220, 30, 30), width=2)  # fmt: skip


def _save(canvas, path: str) -> None:
    """The picture, at most :data:`MAX_SIDE` pixels a side, written atomically."""
    from .images import atomic_output

    if max(canvas.size) > MAX_SIDE:
        canvas.thumbnail((MAX_SIDE, MAX_SIDE))
    try:
        with atomic_output(path) as fh:
            canvas.save(fh, "PNG")
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot write the diagram ({exc})") from None


def _draw_heat(info: dict, heat: dict, thumb, scale: float, path: str) -> None:
    """:func:`draw` for a large window: the thumbnail, then each grid (patch, kernel, products)
    as a heat map of its block means, 256 pixels a side, and the numbers summarised."""
    from PIL import Image, ImageDraw

    font, big = _font(14), _font(18)
    maps = [("input patch", heat["input_patch"])]
    if heat.get("kernel") is not None:
        pairs = isinstance(info["sum"], list)
        kernels = heat["kernel"] if pairs else [heat["kernel"]]
        products = heat["products"] if pairs else [heat["products"]]
        for n, (k, p) in enumerate(zip(kernels, products)):
            label = "" if not pairs else (" gx" if n == 0 else " gy")
            maps += [(f"kernel{label}", k), (f"products{label}", p)]
    side = 256
    width = 20 + thumb.width + 40 + len(maps) * (side + 30) + 20
    height = max(thumb.height, side) + 150
    canvas = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(canvas)
    canvas.paste(thumb, (20, 40))
    _mark_window(d, info["window"], scale)
    d.text((20, 12), f"input, channel {info['position']['channel']} (window in red)", fill="black", font=font)
    x = thumb.width + 60
    for title, grid in maps:
        v = np.asarray(grid, np.float64)
        if v.min() >= 0:  # stretched to the grid's own range, as the terminal's characters are
            v = v - v.min()
        rgb, *_ = to_display(v[:, :, None], 1)
        tile = Image.fromarray(rgb).resize((side, side), Image.NEAREST)
        canvas.paste(tile, (x, 40))
        d.text((x, 12), f"{title} (heat map)", fill="black", font=font)
        x += side + 30
    y = 40 + max(thumb.height, side) + 20
    sums = info["sum"] if isinstance(info["sum"], list) else [info["sum"]]
    result = ",  ".join(f"{s:.6g}" for s in sums if s is not None)
    result = (f"sum = {result}   ->   " if result else "") + (
        f"output ({info['position']['x']}, {info['position']['y']}) = {info['output']:.6g}")  # fmt: skip
    d.text((20, y), result, fill="black", font=big)
    w = info["window"]
    if w.get("truncated"):
        d.text((20, y + 30), f"window of {w['count']:,} cells: min {w['min']:.6g}, max {w['max']:.6g}, "
                             f"mean {w['mean']:.6g}", fill=(110, 110, 110), font=font)  # fmt: skip
    d.text((20, y + 52), _size_line(info), fill=(110, 110, 110), font=font)
    _save(canvas, path)
