"""Images in and out: one lookup for every format (as pyvips' loaders), whole or band by band.

Reading gives a :class:`Picture`: an ``(H, W, C)`` array (colour channels, then alpha when the
image has one) in uint8, uint16, float32 or float64, with EXIF orientation applied.  Writing
turns pixels into bytes of the chosen format (:func:`encode`), put in place atomically
(:func:`write_output`).  The format of a file is sniffed from its first bytes
(:func:`poolcli.io.registry.sniff`) and its module does the work:

- :mod:`poolcli.io.png`: poolcli's own PNG codec, every legal PNG, whole and banded;
- :mod:`poolcli.io.tiff`: TIFF through tifffile (8-bit through Pillow), whole and banded;
- :mod:`poolcli.io.npy`: ``.npy`` arrays, whole and banded;
- :mod:`poolcli.io.pillow`: everything else Pillow reads and writes;
- :mod:`poolcli.io.files`: bounded reads, atomic writes and temp sweeps; :mod:`poolcli.io.exif`.
"""

from __future__ import annotations

import os
import stat

from ..errors import ImageError
from .files import (
    PILLOW_DEFAULT_MAX_PIXELS,
    atomic_output,
    head,
    read_bytes,
    remove_stale_temps,
    special_file,
    temp_prefix,
    write_output,
)  # fmt: skip
from .picture import Meta, NotStreamable, Picture, frame_note
from .registry import STREAMS_OUT, codec, extension, format_for, holds_16_bits, is_image_name, sniff

__all__ = [
    "PILLOW_DEFAULT_MAX_PIXELS", "STREAMS_OUT", "ImageError", "Meta", "NotStreamable", "Picture", "atomic_output",
    "check_channels", "codec", "complete_output", "decode", "encode", "extension", "format_for", "frame_note",
    "holds_16_bits", "image_size", "is_image_name", "open_rows", "open_sink", "probe_colour", "read_bytes",
    "remove_stale_temps", "special_file", "temp_prefix", "write_output",
]  # fmt: skip
_HEAD = 1 << 16  # bytes read to sniff a file and parse its header


def _module(data: bytes):
    """The module that reads a file beginning with ``data``: its codec's, else Pillow's."""
    found = sniff(data[:16])
    return (found or codec("pillow")).load()


def decode(
    data: bytes, name: str, *, gray: bool = False, max_pixels: int | None = PILLOW_DEFAULT_MAX_PIXELS, page: int = 0,
    layout: str | None = None,
) -> Picture:
    """Decode image bytes into a :class:`Picture`.

    Parameters
    ----------
    data : bytes
        The encoded file (any format Pillow reads, a ``.npy`` array, or a 16-bit colour PNG).
    name : str
        What to call the input in error messages.
    gray : bool
        Convert to one luma channel (Pillow's ``convert("L")``; alpha is kept).
    max_pixels : int or None
        Refuse images with more pixels than this (0 or None: no limit).
    page : int
        The frame or page of a multi-frame file to read (0-based, as vips' ``[page=N]``); the
        :class:`Picture` says how many the file has (``frames``).
    layout : {'hwc', 'chw'} or None
        How a ``.npy`` array's axes are laid out (None: H×W×C, and an array that looks
        channels-first is refused, as :func:`poolcli.pool` refuses it).
    """
    return _module(data).decode(data, name, gray=gray, max_pixels=max_pixels, page=page, layout=layout)


def check_channels(C: int, fmt: str) -> None:
    """ImageError unless an image format holds C channels (1 to 4; JPEG 1 or 3)."""
    if not 1 <= C <= 4 or (not codec(fmt).alpha and C not in (1, 3)):
        raise ImageError(
            f"a {C}-channel result cannot be written as {fmt.upper()} (it holds gray, gray + alpha, RGB or "
            "RGBA; JPEG gray or RGB); use --format npy for the raw result"
        )


def encode(pixels, alpha: bool, fmt: str, *, png_level: int | None = None, meta: Meta | None = None,
           quality: int | None = None, threads: int | None = None) -> bytes:  # fmt: skip
    """Encode (H, W, C) uint8/uint16 pixels (alpha last when ``alpha``) as ``fmt`` bytes, with
    the ICC profile, DPI and EXIF of ``meta`` where the format holds them.

    Image formats hold 1 to 4 channels (gray, gray + alpha, RGB, RGBA), JPEG only 1 or 3; a
    result of other shapes (a 5-channel ``.npy``, two channels without alpha to JPEG) raises
    :class:`ImageError`: that file fails alone, and ``--format npy`` writes it.  16-bit pixels
    are rounded to 8 bits for formats that hold 8 (see :data:`poolcli.topixels.EIGHT_BIT_NOTE`).
    """
    if fmt == "npy":
        raise ValueError("npy output is written with poolcli.io.npy.encode_npy")
    entry = codec(fmt)
    C = pixels.shape[2]
    if alpha and not entry.alpha:  # JPEG has no alpha channel: drop it
        pixels, alpha, C = pixels[:, :, :-1], False, C - 1
    check_channels(C, fmt)
    if pixels.dtype.itemsize == 2 and not entry.depth16:  # the format holds 8 bits
        from ..topixels import to_8_bits

        pixels = to_8_bits(pixels)
    options = {"level": png_level} if png_level is not None else {}
    return entry.load().encode(pixels, meta or Meta(), codec=entry, quality=quality, threads=threads, **options)


def open_rows(path: str, name: str, *, gray: bool = False):
    """A streaming reader (:class:`~poolcli.rows.Rows`) of ``path`` by its signature;
    NotStreamable when its format cannot stream."""
    found = sniff(head(path, 16))
    if found is None or not found.streams:
        raise NotStreamable
    return found.load().Rows(path, name, gray=gray)


def open_sink(fh, fmt: str, width: int, height: int, channels: int, dtype, *, level: int | None = None, meta=None,
              threads: int | None = None):  # fmt: skip
    """A banded writer of ``fmt`` into the open file ``fh``: ``write(band)`` in order, then
    ``close()``; ``abort()`` (where it has one) stops its thread after an error elsewhere."""
    options = {"level": level} if level is not None else {}
    return codec(fmt).load().Sink(fh, width, height, channels, dtype, meta=meta, threads=threads, **options)


def image_size(path: str) -> tuple[int, int] | None:
    """(width, height) from a streamable file's header, cheaply; None when it is not one."""
    data = head(path, 1 << 12)
    found = sniff(data[:16])
    if found is None or not found.streams:
        return None
    return found.load().size(data, path)


def pixel_count(path: str) -> int:
    """Width × height from ``path``'s header, any format (0 where it cannot be told, or for
    anything but a regular file: a FIFO would block)."""
    data = head(path, 1 << 12)
    if not data:
        return 0
    size = image_size(path) or codec("pillow").load().size(data, path)
    return size[0] * size[1] if size else 0


def probe_colour(path: str) -> int | None:
    """How many colour channels (alpha left out) :func:`decode` would give ``path``, from its
    header alone; None where that cannot be told cheaply (then the caller assumes nothing).
    Only a regular file is opened: a FIFO would block."""
    data = head(path, _HEAD)
    if not data:
        return None
    module = (sniff(data[:16]) or codec("pillow")).load()
    if not hasattr(module, "colour"):  # TIFF: Pillow reads its header
        module = codec("pillow").load()
    return module.colour(data, path)


def complete_output(path: str, fmt: str) -> bool:
    """Whether ``path`` holds a finished output of format ``fmt``, for ``--skip-existing``:
    a regular, non-empty file that begins with the format's signature and, where the format
    has one, ends with its end marker (PNG's IEND, JPEG's EOI); a .npy or WebP file holds the
    bytes its header announces.  It does not decode the pixels."""
    entry = codec(fmt)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return False
        with open(path, "rb") as fh:
            first = fh.read(256)
            fh.seek(max(0, st.st_size - 16))
            tail = fh.read()
    except OSError:
        return False
    if not any(first.startswith(sig) for sig in entry.signatures or (b"",)):
        return False
    if entry.endings and not any(tail.rstrip(b"\0").endswith(e) for e in entry.endings):
        return False
    module = entry.load()
    return module.complete(path, st.st_size, first, fmt) if hasattr(module, "complete") else True
