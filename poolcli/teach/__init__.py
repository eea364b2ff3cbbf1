"""Teaching views (contract §9): the arithmetic of one output value, and montages of feature maps.

- :mod:`~poolcli.teach.numbers`: :func:`explain_convolution`, :func:`explain_pooling` and the
  :func:`demo` figures, the numbers a textbook draws for one output position;
- :mod:`~poolcli.teach.terminal`: :func:`render` prints them with Rich;
- :mod:`~poolcli.teach.pictures`: :func:`draw` draws them with Pillow, :func:`montage` lays out a
  pipeline's feature maps in one labelled picture.

Nothing here changes a result: it only shows them.
"""

from __future__ import annotations

from .numbers import GRID_SIDE, HEAT_SIDE, JSON_CELLS, MAX_SIDE, demo, explain_convolution, explain_pooling
from .pictures import Panels, draw, draw_demo, montage
from .terminal import render, render_demo

__all__ = ["GRID_SIDE", "HEAT_SIDE", "JSON_CELLS", "MAX_SIDE", "Panels", "check_outputs", "decode", "demo", "draw",
           "draw_demo", "explain_convolution", "explain_file", "explain_pooling", "montage", "render",
           "render_demo"]  # fmt: skip


def explain_file(image: str, spec, at: tuple[int, int], channel: int | None = None, *, gray: bool = False,
                 max_pixels: int | None = None, picture: str | None = None) -> tuple[dict, object]:  # fmt: skip
    """(:func:`explain_convolution` or :func:`explain_pooling` of the file ``image`` at ``at``
    under ``spec``, the image's colour channels); ``picture``: also :func:`draw` it there (never
    over the input: UsageError)."""
    from .. import api

    check_outputs(image, png=picture)
    pic = decode(image, gray=gray, max_pixels=max_pixels)
    if isinstance(spec, api.ConvolveSpec):
        info = explain_convolution(pic.colour, spec, at, channel)
    else:
        info = explain_pooling(pic.pixels, spec, at, channel)
    if picture:
        draw(info, pic.colour, picture)
    return info, pic.colour


def decode(image: str, *, gray: bool = False, max_pixels: int | None = None):
    """The file ``image`` (``-``: standard input) decoded, as the views read it."""
    from .. import io

    return io.decode(io.read_bytes(image, max_pixels), "<stdin>" if image == "-" else image, gray=gray,
                     max_pixels=max_pixels)  # fmt: skip


def check_outputs(image: str, **views) -> None:
    """No view is ever written over the input image, and no two over each other (UsageError
    naming the option): ``views`` maps an option's name (``png``) to its file or None."""
    from ..errors import UsageError
    from ..runner.plan import same_file

    named = [(f"--{opt}", path) for opt, path in views.items() if path is not None]
    for opt, path in named:
        if image != "-" and same_file(image, path):
            raise UsageError(f"{opt} {path} is the input image; an input is never overwritten")
    paths = [str(p) for _, p in named]
    if len(set(paths)) < len(paths):
        raise UsageError(f"{' and '.join(f'{o} {p}' for o, p in named)}: two views would write the same file")
