"""What every codec reads into and writes from: :class:`Picture` and :class:`Meta`, and the
checks and messages all of them share."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import ImageError

if TYPE_CHECKING:  # annotations only: importing poolcli.io imports no NumPy
    import numpy as np

MODE_OF = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # Pillow's mode name of 1–4 channels


class NotStreamable(Exception):
    """This input or output cannot be streamed: read or write it whole."""


@dataclass
class Meta:
    """What an image carries besides its pixels: the ICC colour profile, the resolution in dots
    per inch (x, y), and EXIF (as Pillow writes it, orientation already applied and reset)."""

    icc: bytes | None = None
    dpi: tuple[float, float] | None = None
    exif: bytes | None = None


@dataclass
class Picture:
    """A decoded image: ``pixels`` is (H, W, C), alpha (if any) is the last channel."""

    pixels: np.ndarray
    alpha: bool
    mode: str
    meta: Meta | None = None
    frames: int = 1  # frames or pages of the file (animated GIF, APNG, WebP, multi-page TIFF)
    page: int = 0  # the one read (0-based)

    @property
    def colour(self) -> np.ndarray:
        return self.pixels[:, :, :-1] if self.alpha else self.pixels

    @property
    def alpha_plane(self) -> np.ndarray | None:
        return self.pixels[:, :, -1:] if self.alpha else None


def check_page(name: str, page: int, frames: int) -> None:
    """ImageError unless the file has a frame ``page`` (0-based)."""
    if page >= frames:
        has = "1 frame" if frames == 1 else f"{frames} frames"
        raise ImageError(f"{name}: has {has}; --page {page} is past the last (--page 0 to {frames - 1})")


def frame_note(frames: int, page: int = 0) -> str | None:
    """"frame 1 of 4 (…)" for a multi-frame input (contract §2: nothing is silently lost)."""
    if frames <= 1:
        return None
    return f"frame {page + 1} of {frames} (--page N picks another, 0-based)"


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException) -> str:
    """A decoder's exception in a few words: its message, with its kind when the message alone
    says nothing (a KeyError's message is just the missing key)."""
    text = str(exc).strip().rstrip(".")
    if isinstance(exc, (OSError, ValueError, SyntaxError, EOFError)) and text:
        return one_line(text)
    return one_line(f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__)


def check_pixels(w: int, h: int, name: str, max_pixels: int | None) -> None:
    if w <= 0 or h <= 0:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")
    if max_pixels and w * h > max_pixels:
        raise ImageError(
            f"{name}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} "
            "(a decompression bomb?); raise it with --max-pixels, 0 lifts it"
        )




def to_gray(pic: Picture) -> Picture:
    """``pic`` as one luma channel (alpha kept after it), as ``--gray`` reads it."""
    from .. import topixels

    return replace(pic, pixels=topixels.gray(pic.pixels, pic.alpha))
