"""The teaching views as pictures, with Pillow: the explanation diagram (:func:`draw`), the
demo's figures, and montages of a pipeline's feature maps (:func:`montage`, bounded in memory by
:class:`Panels`).  Every picture is at most :data:`~poolcli.teach.numbers.MAX_SIDE` pixels a side
and written atomically."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ImageError
from .numbers import MAX_SIDE, num, spans


def draw_demo(figures: list[dict], path: str) -> None:
    """The demo's figures as one picture: each title, its input and its result as grids."""
    from PIL import Image, ImageDraw

    font, big = load_font(14), load_font(16)
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
        d.text((20, y), ascii_text(fig["title"]), fill="black", font=big)
        x = 20
        for values in (fig["input"], fig["result"]):
            for i, row in enumerate(values):
                for j, v in enumerate(row):
                    box = [x + j * cell, y + 30 + i * cell, x + (j + 1) * cell - 1, y + 30 + (i + 1) * cell - 1]
                    d.rectangle(box, outline=(120, 120, 120))
                    text = num(v)
                    d.text((box[0] + (cell - d.textlength(text, font=font)) / 2, box[1] + 15), text, fill="black",
                           font=font)  # fmt: skip
            x += len(values[0]) * cell + 60
            d.text((x - 45, y + 30 + cell), "->", fill="black", font=big)
        y += h
    save(canvas, path)


def ascii_text(text: str) -> str:
    """Text the bundled font can draw: the formulas' symbols in ASCII."""
    for a, b in (("⌊", "floor("), ("⌋", ")"), ("⌈", "ceil("), ("⌉", ")"), ("−", "-"), ("·", "*"), ("×", "x"),
                 ("→", "->"), ("√", "sqrt")):  # fmt: skip
        text = text.replace(a, b)
    return text


def load_font(size: int = 14):
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
        super().append(_tile(title, arr, colour, bank[0] if bank else False, self.scale))


class _Tile(tuple):
    """A panel ready to paste: (title, pictures, cols, w, h, gap, tile_w, tile_h)."""


def _tile(title: str, arr: np.ndarray, colour: int, bank, scale: float = 1.0) -> _Tile:
    """``bank``: False, True (a grid of maps), or the maps' labels (a bank's: kernel and channel)."""
    from PIL import Image

    h, w = arr.shape[:2]
    labels = list(bank) if isinstance(bank, (list, tuple)) else None
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
        label = labels[n] if labels is not None and n < len(labels) else (f"map {n}" if count > 1 else "")
        pictures.append((rgb, kind, lo, hi, label))
    if single and colour == 3 and pictures[0][1] != "rgb":
        title += " (mean of 3 channels)"
    gap = 4 if count > 1 else 0
    lab = LABEL_H if count > 1 else 0
    tile_w, tile_h = cols * dw + (cols - 1) * gap, rows_n * (dh + lab) + (rows_n - 1) * gap
    return _Tile((f"{title}  {w}x{h}x{colour} (WxHxC)", pictures, cols, dw, dh, gap, tile_w, tile_h))


LABEL_H = 14  # pixels above each map of a grid: its label
MONTAGE_ROW = 2400  # pixels a montage's row holds at most; more panels wrap into the next row


def map_labels(previous: list[str], stage) -> list[str]:
    """The labels of a stage's maps from its input's: a bank's map k·C + c is kernel k on
    channel c; a conv2d layer's are its output channels; gray makes one."""
    if stage.bank:
        names = stage.label.split("+")
        return [f"{name} ({lab})" for name in names for lab in previous]
    if stage.layer:
        return [f"out {k}" for k in range(stage.spec.out_channels)]
    if stage.op.name == "gray" and len(previous) == 3:
        return ["gray"]
    return previous


def montage(panels: list[tuple], path: str | None = None):
    """Draw ``panels`` (title, (H, W, C) array, colour channels[, a bank's maps?]) left to right
    at their true scale, each titled with its size (WxHxC) and, for feature maps, a colour bar;
    a bank's maps, or more than 3 channels, are drawn as a grid of maps.  Returns (the picture,
    the layout: one dict per panel with its title, box, number of maps and colour scale)."""
    from PIL import Image, ImageDraw

    font, pad, head, bar = load_font(13), 12, 34, 14
    tiles = []
    for panel in panels:
        if isinstance(panel, _Tile):
            tiles.append(panel)
            continue
        title, array, colour, *bank = panel
        arr = np.asarray(array)
        tiles.append(_tile(title, arr[:, :, None] if arr.ndim == 2 else arr, colour, bank[0] if bank else False))
    rows, row, used = [], [], pad
    for t in tiles:  # left to right, wrapping into rows of at most MONTAGE_ROW pixels
        need = max(t[6], 150) + pad
        if row and used + need > MONTAGE_ROW:
            rows.append(row)
            row, used = [], pad
        row.append(t)
        used += need
    rows.append(row)
    heights = [head + max(t[7] for t in r) + bar + 34 + pad for r in rows]
    width = max(pad + sum(max(t[6], 150) + pad for t in r) for r in rows)
    canvas = Image.new("RGB", (width, sum(heights)), "white")
    draw = ImageDraw.Draw(canvas)
    layout, top = [], 0
    for r, row_h in zip(rows, heights):
        x = pad
        for tile in r:
            layout.append(_paste(canvas, draw, font, tile, x, top, head, bar))
            x += max(tile[6], 150) + pad
        top += row_h
    if max(canvas.size) > MAX_SIDE:  # many stages side by side: the whole at most MAX_SIDE a side
        canvas.thumbnail((MAX_SIDE, MAX_SIDE))
    if path is not None:
        import io as stdio

        from .. import io

        buf = stdio.BytesIO()
        fmt = "png" if path == "-" else io.format_for(path, None)
        canvas.save(buf, io.codec(fmt).pillow or io.registry.pillow_formats().get(fmt, "png").upper())
        io.write_output(buf.getvalue(), path)
    return canvas, layout


def _paste(canvas, draw, font, tile, x: int, top: int, head: int, bar: int) -> dict:
    """One panel at (x, top): its title, its maps (each labelled in a grid), its colour bar."""
    from PIL import Image

    title, pictures, cols, w, h, gap, tile_w, tile_h = tile
    draw.text((x, top + 8), title, fill="black", font=font)
    lab = LABEL_H if len(pictures) > 1 else 0
    for n, (rgb, *_rest, label) in enumerate(pictures):
        px, py = x + (n % cols) * (w + gap), top + head + (n // cols) * (h + lab + gap)
        if lab:
            draw.text((px, py), label[: max(4, w // 6)], fill=(60, 60, 60), font=font)
        canvas.paste(Image.fromarray(rgb), (px, py + lab))
    kind, lo, hi = pictures[0][1], min(p[2] for p in pictures), max(p[3] for p in pictures)
    if kind != "rgb":
        by = top + head + tile_h + 6
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
    return {"title": title, "x": x, "y": top + head, "width": tile_w, "height": tile_h, "maps": len(pictures),
            "scale": kind, "low": lo, "high": hi, "labels": [p[-1] for p in pictures]}  # fmt: skip


def draw(info: dict, image: np.ndarray, path: str) -> None:
    """The explanation as a diagram (:func:`diagram`), written atomically to ``path``."""
    save(diagram(info, image), path)


def diagram(info: dict, image: np.ndarray):
    """The explanation as a picture: a thumbnail with the window marked, then the patch, the
    kernel and the products as grids of numbers (or the pooling window with its pick), and the
    result."""
    from PIL import Image, ImageDraw

    font, big = load_font(14), load_font(18)
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
        return _heat_diagram(info, heat, thumb, scale)
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
        if (info["window"].get("ties") or 0) > 1:
            result += f" (a tie: {info['window']['ties']} cells hold it; the first, row by row)"
    result += f"   ->   output ({info['position']['x']}, {info['position']['y']}) = {info['output']:.6g}"
    note = "grey cells: outside the image (what the boundary mode gives them; 'pad': pooling's implicit padding)"
    width = int(max(thumb.width + 40 + sum(widths) + 30 * len(grids) + 40, probe.textlength(result, font=big) + 40,
                    probe.textlength(note, font=font) + 40, probe.textlength(_size_line(info), font=font) + 40))
    height = max(thumb.height, rows_n * cell) + 130
    canvas = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(canvas)
    canvas.paste(thumb, (20, 40))
    w = info["window"]
    _mark_window(d, w, scale)
    d.text((20, 12), f"input, {_channel_label(info)} (window in red)", fill="black", font=font)
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
    return canvas


def _channel_label(info: dict) -> str:
    """Which channel the window reads: a bank's map k·C + c reads input channel c with kernel k."""
    bank = info.get("bank_kernel")
    if bank:
        return f"channel {bank['input_channel']} (map {info['position']['channel']}: kernel {bank['name']})"
    return f"channel {info['position']['channel']}"


def _size_line(info: dict) -> str:
    size = info.get("output_size")
    return ascii_text(f"output size: height {size['formula_h']}, width {size['formula_w']}") if size else ""


def _mark_window(d, w: dict, scale: float) -> None:
    (r0, r1), (c0, c1) = spans(w)
    r0, r1, c0, c1 = min(r0, r1), max(r0, r1), min(c0, c1), max(c0, c1)
    d.rectangle([20 + c0 * scale - 2, 40 + r0 * scale - 2, 20 + (c1 + 1) * scale + 2, 40 + (r1 + 1) * scale + 2],
                outline=(220, 30, 30), width=2)  # fmt: skip


def save(canvas, path: str) -> None:
    """The picture, at most :data:`MAX_SIDE` pixels a side, written atomically."""
    from ..io import atomic_output

    if max(canvas.size) > MAX_SIDE:
        canvas.thumbnail((MAX_SIDE, MAX_SIDE))
    try:
        with atomic_output(path) as fh:
            canvas.save(fh, "PNG")
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot write the diagram ({exc})") from None


def _heat_diagram(info: dict, heat: dict, thumb, scale: float):
    """:func:`diagram` for a large window: the thumbnail, then each grid (patch, kernel, products)
    as a heat map of its block means, 256 pixels a side, and the numbers summarised."""
    from PIL import Image, ImageDraw

    font, big = load_font(14), load_font(18)
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
    d.text((20, 12), f"input, {_channel_label(info)} (window in red)", fill="black", font=font)
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
    return canvas
