"""``explain … --sweep FILE``: the window animated over a region of output cells (contract §9).

Each frame draws, as Dumoulin & Visin's convolution-arithmetic figures do, the input around the
region with its padding (hatched), every cell the window reads outlined (so stride and dilation
show), the products (or the pooled cells and the pick, or a layer's partial sums), and the output
map filling in, one cell per frame, with the cell's value as the API computes it in the caption.
Frames are at most :data:`FRAME_SIDE` pixels a side and share one palette, so the animation
stays in bounded memory (256 frames of at most 1 MB each); the file is written atomically.
"""

from __future__ import annotations

import numpy as np

from ..errors import ImageError, UsageError
from .numbers import GRID_SIDE, num, spans

FRAME_SIDE = 1024  # pixels a side of a frame at most
_INPUT_SIDE, _GRID_PANEL, _OUT_SIDE = 520, 260, 220  # the three panels' widths at most


def _palette():
    """One palette for every frame: a 6×6×6 colour cube and 40 grays."""
    from PIL import Image

    cube = [(r * 51, g * 51, b * 51) for r in range(6) for g in range(6) for b in range(6)]
    grays = [(round(i * 255 / 39),) * 3 for i in range(40)]
    pal = Image.new("P", (1, 1))
    pal.putpalette([v for rgb in cube + grays for v in rgb])
    return pal


def _cells(info: dict) -> tuple[list[int], list[int]]:
    """The input rows and columns the window reads (a summarised window: its span)."""
    w = info.get("window")
    if info["kind"] == "elementwise":
        p = info["position"]
        return [p["y"]], [p["x"]]
    if "rows" in w:
        return w["rows"], w["cols"]
    (r0, r1), (c0, c1) = spans(w)
    return list(range(r0, r1 + 1)), list(range(c0, c1 + 1))


def _plane(info: dict, x_map: np.ndarray) -> tuple[np.ndarray, str]:
    """The input plane the window is drawn on, and its name."""
    if info["kind"] == "conv2d":
        first = info["channels"][0]["channel"]
        return x_map[:, :, first], f"input channel {first} (of {len(info['channels'])} the layer sums)"
    c = info.get("bank_kernel", {}).get("input_channel", info["position"]["channel"])
    return x_map[:, :, c], f"input channel {c}"


def caption(info: dict) -> str:
    """The frame's one line: the cell and its value, and how it was made."""
    p = info["position"]
    head = f"output ({p['x']}, {p['y']}) ch {p['channel']} = {num(info['output'])}"
    if info["kind"] == "convolution":
        sums = info["sum"] if isinstance(info["sum"], list) else [info["sum"]]
        if len(sums) == 2:
            return f"{head}: sqrt(gx^2 + gy^2), gx = {num(sums[0])}, gy = {num(sums[1])}"
        return f"{head}: sum of products {num(sums[0])}"
    if info["kind"] == "conv2d":
        return f"{head}: partial sums {' + '.join(num(s) for s in info['partial_sums'][:8])} + bias {num(info['bias'])}"
    if info["kind"] == "pooling":
        w = info["window"]
        if info["mode"] == "avg":
            return f"{head}: sum {num(info['sum'])} / {w['divisor']}"
        if w.get("chosen"):
            return f"{head}: {info['mode']} picks input ({w['chosen'][1]}, {w['chosen'][0]})"
        return f"{head}: {info['mode']} of the window"
    return f"{head}: {info['operation']}({', '.join(num(v) for v in info['input'])})"


def sweep_frames(pipeline, number: int, x_map: np.ndarray, colour: int, at, region, channel) -> tuple[list, str]:
    """(the explanations of the region's cells, row by row, and a note if the region was clipped
    at the output's edge)."""
    from ..pipeline import apply_stage
    from .stage import explain_at

    out, out_colour = apply_stage(pipeline.stages[number - 1], x_map[:, :, :colour], colour)
    out = out[:, :, None] if out.ndim == 2 else out[:, :, :out_colour]  # its maps, computed once for every frame
    oh, ow = out.shape[:2]
    x0, y0 = at
    if not (0 <= x0 < ow and 0 <= y0 < oh):
        raise UsageError(f"--at {x0},{y0} is outside the output, which is {ow}x{oh}")
    w, h = region
    x1, y1 = min(ow, x0 + w), min(oh, y0 + h)
    note = ""
    if (x1 - x0, y1 - y0) != (w, h):
        note = (f"--region {w}x{h} from {x0},{y0} passes the output's edge ({ow}x{oh}): sweeping "
                f"{x1 - x0}x{y1 - y0} cells")  # fmt: skip
    infos = [explain_at(pipeline, number, x_map, colour, (x, y), channel, out)
             for y in range(y0, y1) for x in range(x0, x1)]  # fmt: skip
    return infos, note


def write_sweep(pipeline, number: int, x_map: np.ndarray, colour: int, at, region, channel, path: str) -> str:
    """Draw the sweep and write it to ``path`` (GIF, or APNG for ``.png``); returns the note."""
    import io as stdio

    from .. import io

    infos, note = sweep_frames(pipeline, number, x_map, colour, at, region, channel)
    frames = draw_frames(infos, x_map)
    kind = "PNG" if path.lower().endswith((".png", ".apng")) else "GIF"
    if kind == "GIF" and not path.lower().endswith(".gif"):
        raise UsageError(f"--sweep {path}: write a .gif, or a .png (an animated PNG)")
    buf = stdio.BytesIO()
    try:
        frames[0].save(buf, kind, save_all=True, append_images=frames[1:], duration=700, loop=0,
                       **({"optimize": False} if kind == "GIF" else {}))  # fmt: skip
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot write the sweep ({exc})") from None
    io.write_output(buf.getvalue(), path)
    return note


def draw_frames(infos: list[dict], x_map: np.ndarray) -> list:
    """One palette image per explanation: input with window, products, output map filling in."""
    from PIL import Image

    from .pictures import to_display

    rows = [r for i in infos for r in _cells(i)[0]] + [i["position"]["y"] for i in infos]
    cols = [c for i in infos for c in _cells(i)[1]] + [i["position"]["x"] for i in infos]
    r_lo, r_hi, c_lo, c_hi = min(rows) - 1, max(rows) + 1, min(cols) - 1, max(cols) + 1
    plane, plane_name = _plane(infos[0], x_map)
    H, W = plane.shape
    rr, cc = np.arange(r_lo, r_hi + 1), np.arange(c_lo, c_hi + 1)
    inside = ((rr >= 0) & (rr < H))[:, None] & ((cc >= 0) & (cc < W))[None, :]
    values = plane[np.clip(rr, 0, H - 1)][:, np.clip(cc, 0, W - 1)].astype(np.float64)
    bounds = (float(values[inside].min(initial=0)), float(values[inside].max(initial=0)))
    shade, *_ = to_display(np.where(inside, values, 0)[:, :, None], 1, bounds)
    shade = shade.copy()
    hatch = np.where((np.add.outer(rr, cc) % 2) == 0, 236, 250).astype(np.uint8)
    shade[~inside] = hatch[~inside][:, None]
    n_r, n_c = shade.shape[:2]
    cs = max(1, min(40, _INPUT_SIDE // max(n_r, n_c)))
    base = Image.fromarray(shade).resize((max(1, round(n_c * min(cs, _INPUT_SIDE / n_c))),
                                          max(1, round(n_r * min(cs, _INPUT_SIDE / n_r)))), Image.NEAREST)  # fmt: skip
    geo = (r_lo, c_lo, base.width / n_c, base.height / n_r)
    pal = _palette()
    done: dict = {}
    frames = []
    for info in infos:
        p = info["position"]
        done[(p["y"], p["x"])] = info["output"]
        frame = _frame(info, base, values, inside, geo, plane_name, infos, done)
        frames.append(frame.quantize(palette=pal, dither=Image.Dither.NONE))
    return frames


def _frame(info, base, values, inside, geo, plane_name, infos, done):
    from PIL import Image, ImageDraw

    from .pictures import ascii_text, load_font

    font = load_font(12)
    r_lo, c_lo, sy, sx = geo[0], geo[1], geo[3], geo[2]
    grid_img = _grid_panel(info)
    out_img = _output_panel(infos, done, info)
    width = min(1024, 20 + base.width + 20 + grid_img.width + 20 + out_img.width + 20)
    height = min(1024, 40 + max(base.height, grid_img.height, out_img.height) + 60)
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(base, (20, 30))
    d = ImageDraw.Draw(canvas)
    if sx >= 8:  # the cells' numbers, and a grid, where they fit
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                box = [20 + j * sx, 30 + i * sy, 20 + (j + 1) * sx - 1, 30 + (i + 1) * sy - 1]
                d.rectangle(box, outline=(200, 200, 200))
                if sx >= 30 and inside[i, j]:
                    d.text((box[0] + 2, box[1] + sy / 2 - 6), num(values[i, j])[:5], fill=(200, 0, 0), font=font)
    rows, cols = _cells(info)
    taps = [(r, c) for r in rows for c in cols] if len(rows) * len(cols) <= 4096 and sx >= 3 else None
    if taps:  # every cell the window reads: stride and dilation show in where they fall
        for r, c in taps:
            x0, y0 = 20 + (c - c_lo) * sx, 30 + (r - r_lo) * sy
            d.rectangle([x0, y0, x0 + sx - 1, y0 + sy - 1], outline=(0, 51, 204), width=2 if sx >= 8 else 1)
    else:
        d.rectangle([20 + (min(cols) - c_lo) * sx, 30 + (min(rows) - r_lo) * sy, 20 + (max(cols) - c_lo + 1) * sx,
                     30 + (max(rows) - r_lo + 1) * sy], outline=(0, 51, 204), width=2)  # fmt: skip
    d.text((20, 8), ascii_text(f"{plane_name}: window in blue, padding hatched"), fill="black", font=font)
    x = 20 + base.width + 20
    canvas.paste(grid_img, (x, 30))
    canvas.paste(out_img, (x + grid_img.width + 20, 30))
    y = 30 + max(base.height, grid_img.height, out_img.height) + 8
    d.text((20, y), ascii_text(caption(info)), fill="black", font=font)
    size = info.get("output_size")
    if size:
        d.text((20, y + 18), ascii_text(f"output size: {size['formula_h']}  x  {size['formula_w']}"),
               fill=(110, 110, 110), font=font)  # fmt: skip
    return canvas


def _grid_panel(info: dict):
    """The products (convolution), the pooled cells with the pick, a layer's partial sums."""
    from PIL import Image, ImageDraw

    from .pictures import load_font

    font = load_font(12)
    if info["kind"] == "convolution" and info.get("products") is not None and "heatmap" not in info:
        grids = info["products"] if isinstance(info["sum"], list) else [info["products"]]
        title = "products" if len(grids) == 1 else "products gx, gy"
    elif info["kind"] == "pooling" and info.get("input_patch") is not None and "heatmap" not in info:
        grids, title = [info["input_patch"]], f"{info['mode']} window"
    else:
        lines = _text_lines(info)
        canvas = Image.new("RGB", (_GRID_PANEL, 20 + 16 * len(lines)), "white")
        d = ImageDraw.Draw(canvas)
        for n, line in enumerate(lines):
            d.text((0, 4 + 16 * n), line, fill="black", font=font)
        return canvas
    kh, kw = len(grids[0]), len(grids[0][0])
    cell = max(4, min(40, (_GRID_PANEL - 10) // max(kw, 1), 200 // max(kh * len(grids), 1)))
    canvas = Image.new("RGB", (max(_GRID_PANEL // 2, kw * cell + 2), 18 + len(grids) * (kh * cell + 8)), "white")
    d = ImageDraw.Draw(canvas)
    d.text((0, 0), title, fill="black", font=font)
    chosen = info["window"].get("chosen") if info["kind"] == "pooling" else None
    for g, values in enumerate(grids):
        y0 = 18 + g * (kh * cell + 8)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                box = [j * cell, y0 + i * cell, (j + 1) * cell - 1, y0 + (i + 1) * cell - 1]
                picked = chosen is not None and [info["window"]["rows"][i], info["window"]["cols"][j]] == chosen
                d.rectangle(box, fill=(255, 204, 0) if picked else "white", outline=(120, 120, 120))
                if cell >= 30 and kh <= GRID_SIDE:
                    d.text((box[0] + 2, box[1] + cell / 2 - 6), num(v)[:5], fill="black", font=font)
    return canvas


def _text_lines(info: dict) -> list[str]:
    if info["kind"] == "conv2d":
        lines = [f"in {c['channel']}: partial sum {num(c['partial_sum'])}" for c in info["channels"][:12]]
        if len(info["channels"]) > 12:
            lines.append(f"... {len(info['channels']) - 12} more channels")
        return [*lines, f"bias {num(info['bias'])}", f"total {num(info['sum'])}"]
    if info["kind"] == "elementwise":
        return [f"{info['operation']}: {num(info['input'][0])} -> {num(info['output'])}"]
    return [f"sum {num(info['sum'] if not isinstance(info['sum'], list) else info['sum'][0])}",
            "(window too large for a grid)"]  # fmt: skip


def _output_panel(infos: list[dict], done: dict, current: dict):
    """The region of the output map, the cells computed so far filled in, the current one gold."""
    from PIL import Image, ImageDraw

    from .pictures import load_font

    font = load_font(12)
    ys = sorted({i["position"]["y"] for i in infos})
    xs = sorted({i["position"]["x"] for i in infos})
    cell = max(6, min(44, _OUT_SIDE // max(len(xs), len(ys))))
    canvas = Image.new("RGB", (len(xs) * cell + 2, 18 + len(ys) * cell + 2), "white")
    d = ImageDraw.Draw(canvas)
    d.text((0, 0), "output", fill="black", font=font)
    cur = (current["position"]["y"], current["position"]["x"])
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            box = [j * cell, 18 + i * cell, (j + 1) * cell - 1, 18 + (i + 1) * cell - 1]
            fill = (255, 204, 0) if (y, x) == cur else ((204, 204, 255) if (y, x) in done else "white")
            d.rectangle(box, fill=fill, outline=(120, 120, 120))
            if (y, x) in done and cell >= 34:
                d.text((box[0] + 2, box[1] + cell / 2 - 6), num(done[(y, x)])[:5], fill="black", font=font)
    return canvas
