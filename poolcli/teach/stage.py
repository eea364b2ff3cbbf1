"""Explain any stage of a pipeline (contract §9): stage N's arithmetic at one output cell, on the
previous stage's float32 map as the pipeline computes it, with the cell's receptive field on the
input.  Convolutions, banks, conv2d layers and pooling are explained as on their own; an
element-wise stage shows the one value it reads and the one it gives."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .numbers import explain_convolution, explain_pooling


def stage_number(pipeline, text: str | None) -> int:
    """Stage N (1-based, as stage names are) of ``--stage N``; the last stage without one."""
    count = len(pipeline.stages)
    if text is None:
        return count
    try:
        number = int(text)
    except ValueError:
        raise UsageError(f"--stage with --pipeline is a stage number from 1 to {count}, got '{text}'") from None
    if not 1 <= number <= count:
        raise UsageError(f"--stage must be from 1 to {count} for this pipeline, got {number}")
    return number


def stage_input(pipeline, colour_image: np.ndarray, number: int) -> tuple[np.ndarray, int]:
    """(the float32 map stage ``number`` reads, its channels): the image run through the stages
    before it, exactly as the pipeline runs them."""
    from ..pipeline import Pipeline

    img = np.asarray(colour_image)
    img = img[:, :, None] if img.ndim == 2 else img
    before = Pipeline(pipeline.stages[: number - 1], pipeline.text)
    if number == 1:
        return np.asarray(img, np.float32), img.shape[2]
    return before.apply(np.asarray(img, np.float32), img.shape[2])


def explain_at(pipeline, number: int, x_map: np.ndarray, colour: int, at, channel: int | None,
               out: np.ndarray | None = None) -> dict:  # fmt: skip
    """Stage ``number``'s arithmetic at ``at`` = (X, Y) of its output channel ``channel`` on its
    input map ``x_map`` (H, W, ≥ colour): the dict ``explain --json`` prints for that stage.
    ``out``: the stage's (H, W, C) result, when the caller explains many cells of it."""
    from ..pipeline import apply_stage

    stage = pipeline.stages[number - 1]
    src = x_map[:, :, :colour]
    c = 0 if channel is None else channel
    plane = None if out is None or not 0 <= c < out.shape[2] else out[:, :, c]
    if stage.layer:
        from .layer import explain_layer

        return explain_layer(src, stage.spec, at, channel, result=out)
    if stage.op.kind == "pool":
        return explain_pooling(src, stage.spec, at, channel, result=plane)
    if stage.op.kind == "conv":
        specs = stage.spec if stage.bank else (stage.spec,)
        if not 0 <= c < colour * len(specs):
            raise UsageError(f"--channel must be from 0 to {colour * len(specs) - 1} for this stage, got {channel}")
        k, ci = divmod(c, colour)  # a bank's maps are kernel-major: map k·C + c
        info = explain_convolution(src, specs[k], at, ci, result=plane)
        if stage.bank:  # map k·C + c: kernel k on input channel c
            info["position"]["channel"] = c
            info["bank_kernel"] = {"index": k, "name": stage.label.split("+")[k], "input_channel": ci}
        return info
    if out is None:
        out, out_colour = apply_stage(stage, src, colour)
    else:
        out_colour = out.shape[2]
    return _elementwise(stage, src, out, out_colour, at, channel)


def _elementwise(stage, src: np.ndarray, out: np.ndarray, out_colour: int, at, channel) -> dict:
    H, W = src.shape[:2]
    x, y = at
    if not (0 <= x < W and 0 <= y < H):
        raise UsageError(f"--at {x},{y} is outside the output, which is {W}x{H}")
    c = 0 if channel is None else channel
    if not 0 <= c < out_colour:
        raise UsageError(f"--channel must be from 0 to {out_colour - 1} for this stage, got {channel}")
    reads = src[y, x, :].tolist() if stage.op.name == "gray" else [float(src[y, x, c])]
    size = {"height": H, "width": W, "formula_h": f"{H} (element-wise: the input's size)",
            "formula_w": f"{W} (element-wise: the input's size)"}  # fmt: skip
    return {"kind": "elementwise", "operation": stage.op.name, "options": dict(stage.spec),
            "position": {"x": x, "y": y, "channel": c}, "input": reads, "output": float(out[y, x, c]),
            "output_size": size}  # fmt: skip


def annotate(info: dict, pipeline, number: int, size: tuple[int, int]) -> dict:
    """``info`` with ``stage`` {number, text} and the cell's ``receptive_field`` {rows, cols} on
    an input of ``size`` (H, W)."""
    from .shapes import field_on_input

    info["stage"] = {"number": number, "text": pipeline.stages[number - 1].text.strip()}
    p = info["position"]
    info["receptive_field"] = field_on_input(pipeline, number, p["x"], p["y"], size)
    return info


def draw_stage(info: dict, previous: np.ndarray, image: np.ndarray, path: str) -> None:
    """Stage N of a pipeline explained: on top the input with the cell's receptive field (blue),
    below the stage's own diagram, its window drawn on the previous stage's map."""
    from PIL import Image, ImageDraw

    from .layer import layer_diagram
    from .pictures import ascii_text, diagram, load_font, save, to_display

    if info["kind"] == "conv2d":
        body = layer_diagram(info)
    elif info["kind"] == "elementwise":
        body = _elementwise_diagram(info)
    else:
        body = diagram(info, previous)
    font = load_font(14)
    img = np.asarray(image)
    img = img[:, :, None] if img.ndim == 2 else img
    H, W = img.shape[:2]
    step = max(1, max(H, W) // 440)
    rgb, *_ = to_display(img[::step, ::step].astype(np.float64), 3 if img.shape[2] >= 3 else 1)
    scale = min(1.0, 220 / max(W, H))
    thumb = Image.fromarray(rgb).resize((max(1, round(W * scale)), max(1, round(H * scale))))
    top = thumb.height + 60
    canvas = Image.new("RGB", (max(body.width, thumb.width + 500), body.height + top), "white")
    canvas.paste(thumb, (20, 40))
    d = ImageDraw.Draw(canvas)
    f = info["receptive_field"]
    d.rectangle([20 + f["cols"][0] * scale - 2, 40 + f["rows"][0] * scale - 2, 20 + (f["cols"][1] + 1) * scale + 2,
                 40 + (f["rows"][1] + 1) * scale + 2], outline=(30, 60, 220), width=2)  # fmt: skip
    st = info["stage"]
    d.text((20, 12), ascii_text(f"stage {st['number']}: {st['text']}  (its input is stage {st['number'] - 1}'s map"
                                f"{'' if st['number'] > 1 else ', the image'})"), fill="black", font=font)  # fmt: skip
    d.text((thumb.width + 40, 40), f"receptive field on the input (blue): rows {f['rows'][0]}-{f['rows'][1]}, "
                                   f"columns {f['cols'][0]}-{f['cols'][1]}", fill="black", font=font)  # fmt: skip
    canvas.paste(body, (0, top))
    save(canvas, path)


def _elementwise_diagram(info: dict):
    from PIL import Image, ImageDraw

    from .numbers import num
    from .pictures import ascii_text, load_font

    font = load_font(18)
    p = info["position"]
    reads = ", ".join(num(v) for v in info["input"])
    text = f"{info['operation']}({reads}) = {num(info['output'])}   at ({p['x']}, {p['y']}), channel {p['channel']}"
    canvas = Image.new("RGB", (int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font)) + 40, 60),
                       "white")  # fmt: skip
    ImageDraw.Draw(canvas).text((20, 20), ascii_text(text), fill="black", font=font)
    return canvas
