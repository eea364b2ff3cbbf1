"""The numbers of the teaching views (contract §9): the arithmetic of one output value.

:func:`explain_convolution` and :func:`explain_pooling` return the numbers a textbook draws for
one output position: the input patch under the window (padded cells as the boundary mode gives
them), the kernel, the element-wise products and their sum, or the pooled cells and the one that
was picked; the ``output`` is always the API's own result at that position.  Windows larger
than a readable grid are summarised (:data:`JSON_CELLS`, :data:`GRID_SIDE`).
"""

from __future__ import annotations

import math

import numpy as np

from .. import api, ops
from ..errors import UsageError

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


def explain_convolution(image, spec: api.ConvolveSpec, at: tuple[int, int], channel: int | None = None, *,
                        result: np.ndarray | None = None) -> dict:  # fmt: skip
    """The arithmetic of ``convolve(image)[Y, X]`` on one channel: ``at`` is (X, Y).

    Returns a dict with ``position``, ``window`` (input rows and columns the taps read),
    ``input_patch`` (kh×kw values; padded cells hold what the boundary mode gives them),
    ``padding`` (kh×kw booleans), ``kernel``, ``products``, ``sum`` (their exact sum; for a
    gradient pair, the two sums) and ``output`` (the API's float32 result there).
    """
    plane, c = _channel(image, channel)
    H, W = plane.shape
    result = api.apply_convolve(plane, spec) if result is None else result  # the caller's, for many cells
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


def explain_pooling(image, spec: api.PoolSpec, at: tuple[int, int], channel: int | None = None, *,
                    result: np.ndarray | None = None) -> dict:  # fmt: skip
    """The arithmetic of ``pool(image)[Y, X]`` on one channel: ``at`` is (X, Y).

    ``input_patch`` holds the window's cells (None in the implicit padding), ``window`` the
    cells that were pooled (``[row, col, value]``), the one picked (``chosen``, for max, min,
    median and stochastic) or the ``divisor`` (avg, lp); ``kernel`` and ``products`` are None.
    """
    plane, c = _channel(image, channel)
    H, W = plane.shape
    result = api.apply_pool(plane, spec) if result is None else result  # the caller's, for many cells
    oh, ow = result.shape[:2]
    x, y = _position(at, oh, ow)
    if spec.output_size is not None:
        rstart, rcount = api.adaptive_windows(H, oh)
        cstart, ccount = api.adaptive_windows(W, ow)
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
    chosen, total, divisor, ties = None, None, None, None
    if spec.mode in ops.PICKS:
        hit = np.flatnonzero((vals.astype(np.float32) == np.float32(output)) | (vals == output))
        ties = int(hit.size)  # cells holding the picked value: the first, row by row, is shown
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
        "window": {"rows": rows, "cols": cols, "chosen": chosen, "divisor": divisor, "ties": ties},
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


DEMO_X = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]], np.float32)


DEMO_PATCH = np.array([[200 if i + j >= 4 else 20 for j in range(5)] for i in range(5)], np.float32)
# a diagonal edge, dark above and bright below: a blur visibly softens it, an edge kernel finds it


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


def num(v) -> str:
    if v is None:
        return "·"
    v = float(v) + 0.0  # no "-0"
    return f"{v:.0f}" if v.is_integer() and abs(v) < 1e9 else f"{v:.4g}"


def spans(w: dict) -> tuple[list[int], list[int]]:
    """(first, last) input row and column of a window, listed or summarised."""
    if "rows" in w:
        return [w["rows"][0], w["rows"][-1]], [w["cols"][0], w["cols"][-1]]
    return w["rows_span"], w["cols_span"]


