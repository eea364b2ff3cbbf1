"""The teaching views in a terminal, with Rich: grids of numbers, heat maps of large windows,
and the pick and the window marked with characters as well as colour."""

from __future__ import annotations

import numpy as np

from .numbers import demo, num, spans


def grid(title: str, values, *, pad=None, marks=()):
    """A Rich table of numbers: ``marks`` (row, column) cells highlighted, padded cells dim."""
    from rich.table import Table

    table = Table(title=title, show_header=False, pad_edge=True)
    for _ in values[0]:
        table.add_column(justify="right")
    for i, row in enumerate(values):
        cells = []
        for j, v in enumerate(row):
            text = num(v)
            if (i, j) in marks:  # brackets as well as colour: they survive pipes and NO_COLOR
                text = f"[reverse bold]\\[{text}][/]"
            elif pad is not None and pad[i][j]:
                text = f"[dim italic]({text})[/]"  # parentheses too: they survive pipes and NO_COLOR
            cells.append(text)
        table.add_row(*cells)
    return table


TIE = "tie: N cells hold this value; the first, row by row, is shown (the one PyTorch's indices name)"

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
    rows, cols = spans(w)
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
                console.print(Columns([grid("input patch", info["input_patch"], pad=info["padding"]),
                                       grid(f"kernel{names[n]}", k), grid(f"products{names[n]}", p)]))  # fmt: skip
        for n, total in enumerate(sums):
            label = f"{names[n].strip()} = " if names[n] else ""
            console.print(f"{label}sum of products{names[n]} = {total:.6g}")
        if info["magnitude"] is not None:
            console.print(f"magnitude sqrt(gx² + gy²) = {info['magnitude']:.6g}")
        if info.get("padding") and any(any(r) for r in info["padding"]):
            console.print("[dim italic](in parentheses)[/]: cells outside the image, as the boundary mode gives them")
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
            console.print(grid("window", info["input_patch"], pad=info["padding"], marks=marks))
        if info["mode"] == "avg":
            console.print(f"sum {info['sum']:.6g} / divisor {w['divisor']} = {info['sum'] / w['divisor']:.6g}")
        elif info["mode"] == "lp":
            console.print(f"Σ xᵖ = {info['sum']:.6g}")
        elif w["chosen"] is not None:
            console.print(f"\\[bracketed]: the cell {info['mode']} picks, input row {w['chosen'][0]}, "
                          f"column {w['chosen'][1]}")  # fmt: skip
        if (w.get("ties") or 0) > 1:
            console.print(TIE.replace("N", str(w["ties"])), highlight=False, markup=False)
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
        console.print(Columns([grid("input", figure["input"], marks=marks), grid("result", figure["result"])]))
        for step in figure["steps"]:
            render(console, step)


