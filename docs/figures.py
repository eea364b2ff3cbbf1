"""Make the README's pictures from sample_images/ with poolcli itself: python docs/figures.py"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import poolcli
from poolcli.api import index_map

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "sample_images"


def label(tile: np.ndarray, text: str) -> Image.Image:
    im = Image.fromarray(tile).convert("RGB")
    canvas = Image.new("RGB", (im.width, im.height + 16), "white")
    canvas.paste(im, (0, 16))
    ImageDraw.Draw(canvas).text((3, 2), text, fill="black")
    return canvas


def row(tiles, gap=6) -> Image.Image:
    w = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    h = max(t.height for t in tiles)
    out = Image.new("RGB", (w, h), "white")
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width + gap
    return out


def to8(a: np.ndarray) -> np.ndarray:
    a = np.abs(a) if a.min() < 0 else a
    return np.clip(np.rint(a * (255.0 / max(float(a.max()), 1e-9))), 0, 255).astype(np.uint8)


def boundary_modes() -> None:
    cat = np.asarray(Image.open(SAMPLES / "chelsea.png"))[70:118, 170:218]
    pad = 24
    tiles = []
    for mode in ("reflect", "mirror", "nearest", "wrap", "constant"):
        rows = index_map(cat.shape[0], pad, pad, mode)
        cols = index_map(cat.shape[1], pad, pad, mode)
        padded = np.where((rows[:, None, None] >= 0) & (cols[None, :, None] >= 0), cat[rows][:, cols], 0).astype(
            np.uint8
        )
        big = np.kron(padded, np.ones((2, 2, 1), np.uint8))
        im = Image.fromarray(big)
        ImageDraw.Draw(im).rectangle([2 * pad - 1, 2 * pad - 1, 2 * (pad + 48), 2 * (pad + 48)], outline=(255, 40, 40))
        tiles.append(label(np.asarray(im), mode))
    row(tiles).save(HERE / "boundary_modes.png", optimize=True)


def kernels() -> None:
    cat = np.asarray(Image.open(SAMPLES / "chelsea.png"))[40:200, 120:320]
    tiles = [label(cat, "original")]
    for name, kw in (("gaussian", dict(sigma=2)), ("sharpen", {}), ("sobel", {}), ("laplacian", {}), ("emboss", {})):
        out = poolcli.convolve(cat, name, **kw)
        if name in ("sobel", "laplacian"):
            px = to8(out)
        else:
            px = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        tiles.append(label(px, f"-k {name}" + (" --sigma 2" if kw else "")))
    row(tiles).save(HERE / "kernels.jpg", quality=85)


def pooling() -> None:
    cam = np.asarray(Image.open(SAMPLES / "camera.png"))[60:188, 180:308]
    tiles = [label(cam, "original 128x128")]
    for mode in ("max", "avg", "min", "median"):
        small = poolcli.pool(cam, mode, 8)
        px = np.clip(np.rint(small), 0, 255).astype(np.uint8)
        tiles.append(label(np.kron(px, np.ones((8, 8), np.uint8)), f"-m {mode} -s 8 (16x16)"))
    row(tiles).save(HERE / "pooling.png", optimize=True)


def pipeline() -> None:
    """Every stage of `poolcli run "gaussian sigma=2 | sobel-x | relu | max 2"`, at its true size."""
    from poolcli.pipeline import Pipeline

    cat = np.asarray(Image.open(SAMPLES / "chelsea.png"))[40:200, 120:320]
    tiles = [label(cat, f"input {cat.shape[1]}x{cat.shape[0]}")]

    from poolcli.teach.pictures import to_display

    def shown(i, stage, array, colour, seconds):  # signed maps blue–white–red around zero, as montages draw them
        px, *_ = to_display(array[:, :, :colour], colour)
        tiles.append(label(px, f"{i}. {stage.text.strip()} {array.shape[1]}x{array.shape[0]}"))

    Pipeline.parse("gaussian sigma=2 | sobel-x | relu | max 2").apply(cat.astype(np.float32), 3, shown)
    row(tiles).save(HERE / "pipeline.png", optimize=True)


def learn() -> None:
    """The pictures of the README's "Learn with poolcli": `poolcli explain --png` and `--montage`."""
    import subprocess
    import sys

    cli = [sys.executable, "-m", "poolcli"]
    cam, cat = str(SAMPLES / "camera.png"), str(SAMPLES / "chelsea.png")
    runs = [
        ["explain", cam, "-k", "sobel-x", "--at", "0,0", "--png", str(HERE / "explain_sobel.png")],
        ["explain", cat, "-m", "max", "-s", "3", "--stride", "2", "--padding", "1", "--at", "110,70",
         "--png", str(HERE / "explain_max.png")],
        ["run", "gaussian sigma=2 | conv sobel-x,sobel-y | relu | max 2", cam, "-o", "/tmp/poolcli-docs.npy",
         "--montage", str(HERE / "montage.jpg"), "-q"],
        ["kernels", "--layer", "gabor", "-o", "/tmp/poolcli-gabor.npz"],
        ["run", "conv2d @/tmp/poolcli-gabor.npz padding=same padding_mode=reflect | relu | max 2", cat, "-o",
         "/tmp/poolcli-docs-layer.npy", "--montage", str(HERE / "conv2d.jpg"), "-q"],
    ]  # fmt: skip
    for args in runs:
        subprocess.run(cli + args, check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    boundary_modes()
    kernels()
    pooling()
    pipeline()
    learn()
