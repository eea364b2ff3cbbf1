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

__all__ = ["GRID_SIDE", "HEAT_SIDE", "JSON_CELLS", "MAX_SIDE", "Panels", "demo", "draw", "draw_demo",
           "explain_convolution", "explain_file", "explain_pooling", "montage", "render", "render_demo"]  # fmt: skip


def explain_file(image: str, spec, at: tuple[int, int], channel: int | None = None, *, gray: bool = False,
                 max_pixels: int | None = None, picture: str | None = None) -> tuple[dict, object]:  # fmt: skip
    """(:func:`explain_convolution` or :func:`explain_pooling` of the file ``image`` at ``at``
    under ``spec``, the image's colour channels); ``picture``: also :func:`draw` it there (never
    over the input: UsageError)."""
    from .. import api, io
    from ..errors import UsageError
    from ..runner.plan import same_file

    if picture is not None and same_file(image, picture):
        raise UsageError(f"--png {picture} is the input image; an input is never overwritten")
    pic = io.decode(io.read_bytes(image, max_pixels), "<stdin>" if image == "-" else image, gray=gray,
                    max_pixels=max_pixels)  # fmt: skip
    if isinstance(spec, api.ConvolveSpec):
        info = explain_convolution(pic.colour, spec, at, channel)
    else:
        info = explain_pooling(pic.pixels, spec, at, channel)
    if picture:
        draw(info, pic.colour, picture)
    return info, pic.colour
