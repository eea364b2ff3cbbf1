"""Every other format, through Pillow: JPEG, WebP, BMP, GIF, AVIF and whatever else the
installed Pillow reads or writes.  Whatever Pillow raises on a file's bytes is that file's
fault (its decoders raise many kinds of exception on hostile input), so every exception becomes
this file's ImageError, and Pillow's warnings are kept off stderr.  What each format holds
(quality, ICC, DPI, EXIF) comes from the codec registry (:mod:`poolcli.io`)."""

from __future__ import annotations

import io

import numpy as np

from ..errors import ImageError
from .exif import ORIENTATION, TIFF_LAYOUT
from .picture import MODE_OF, Meta, Picture, check_page, check_pixels, describe


def pillow_formats() -> dict[str, str]:
    """Every extension Pillow writes (``.avif``, ``.jp2``, ``.gif``, ``.tga`` …) → its format name."""
    from PIL import Image

    Image.init()
    return {ext.lstrip(".").lower(): f.lower() for ext, f in Image.registered_extensions().items() if f in Image.SAVE}


def decode(data: bytes, name: str, *, gray: bool = False, max_pixels: int | None = None, page: int = 0,
           layout: str | None = None) -> Picture:  # fmt: skip
    """Any format Pillow reads, as a :class:`Picture`: frame ``page`` of a multi-frame file,
    turned upright by its EXIF orientation."""
    return _decode_pillow(data, name, gray, max_pixels, page)


def _header(path: str):
    """(mode, (width, height)) from Pillow's reading of ``path``'s header (it opens files
    lazily), or None where Pillow cannot tell."""
    try:
        import warnings

        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return im.mode, im.size
    except Exception:  # noqa: BLE001 - Pillow cannot tell: assume nothing
        return None


def size(head: bytes, path: str) -> tuple[int, int] | None:
    """(width, height) as Pillow reads them from ``path``'s header; None where it cannot tell."""
    found = _header(path)
    return None if found is None else found[1]


def colour(head: bytes, path: str) -> int | None:
    """How many colour channels Pillow would decode ``path`` to, from its header; None where
    Pillow cannot tell."""
    found = _header(path)
    if found is None:
        return None
    mode = found[0]
    if mode in ("1", "L", "LA", "La", "I", "F") or mode.startswith("I;16"):
        return 1
    return 3


def complete(path: str, size: int, head: bytes, fmt: str) -> bool:
    """Beyond the signature and end marker the registry checks: a WebP file holds the bytes its
    RIFF header announces."""
    if fmt == "webp":
        import struct

        return len(head) >= 12 and head[8:12] == b"WEBP" and struct.unpack("<I", head[4:8])[0] + 8 == size
    return True


def _decode_pillow(data: bytes, name: str, gray: bool, max_pixels: int | None, page: int = 0) -> Picture:
    """Any other format, through Pillow.  Whatever Pillow raises on these bytes is the file's
    fault (Pillow's decoders raise many kinds of exception on hostile input), so every
    exception becomes this file's ImageError, and Pillow's warnings are kept off stderr."""
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # the limit is ours (--max-pixels), checked before decoding
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            check_pixels(w, h, name, max_pixels)
            frames = max(1, int(getattr(im, "n_frames", 1) or 1))
            check_page(name, page, frames)
            if page:
                im.seek(page)
            im.load()
            original = im
            if im.getexif().get(ORIENTATION, 1) != 1:  # exif_transpose copies even when nothing turns
                im = ImageOps.exif_transpose(im)
            pic = _from_pillow(im, gray)
            pic.meta = _pillow_meta(original)  # after turning it: this resets the orientation tag
            pic.frames, pic.page = frames, page
            return pic
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or a format Pillow cannot read") from None
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{name}: out of memory while decoding it") from None
    except Exception as exc:  # noqa: BLE001 - a hostile file may trip any of Pillow's checks
        raise ImageError(f"{name}: truncated or corrupt image ({describe(exc)})") from None


def _pillow_meta(im) -> Meta:
    """The ICC profile, DPI and EXIF (orientation reset to 1: poolcli applies it) Pillow found."""
    dpi = im.info.get("dpi")
    dpi = tuple(float(v) for v in dpi) if dpi and len(dpi) == 2 and min(dpi) > 0 else None
    exif = None
    try:
        info = im.getexif()
        if im.format == "TIFF":  # a TIFF's "EXIF" is its own directory: drop what describes its pixels
            for tag in [t for t in info if t in TIFF_LAYOUT]:
                del info[tag]
        if len(info):
            if info.get(ORIENTATION, 1) != 1:
                info[ORIENTATION] = 1
            exif = info.tobytes()
    except Exception:  # noqa: BLE001 - unreadable EXIF is dropped, as Pillow itself drops it
        exif = None
    return Meta(im.info.get("icc_profile") or None, dpi, exif)


_TO_RGB = {"CMYK", "YCbCr", "LAB", "HSV", "RGBX"}


def _from_pillow(im, gray: bool) -> Picture:
    mode = im.mode
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in _TO_RGB:
        im = im.convert("RGB")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "L" and "transparency" in im.info:
        im = im.convert("LA")
    if gray and im.mode in ("RGB", "RGBA"):
        im = im.convert("LA" if im.mode == "RGBA" else "L")
    if im.mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.uint16)
    elif im.mode == "I":
        arr = np.asarray(im)
        arr = arr.astype(np.uint16) if arr.min() >= 0 and arr.max() <= 65535 else arr.astype(np.float64)
    elif im.mode == "F":
        arr = np.asarray(im, dtype=np.float32)
    elif im.mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.array(im)
    else:
        im = im.convert("RGBA" if im.mode.endswith("A") else "RGB")
        arr = np.array(im)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return Picture(np.ascontiguousarray(arr), im.mode in ("LA", "RGBA"), mode)


def encode(pixels: np.ndarray, meta: Meta, *, codec, quality: int | None = None, **_) -> bytes:
    """(H, W, C) uint8 pixels as bytes of ``codec``'s format by Pillow, with what of ``meta`` the
    format holds (the registry says: quality, ICC, DPI, EXIF); ImageError for a shape it cannot
    write."""
    import warnings

    from PIL import Image  # PNG does without it: batch workers skip the import

    from .picture import one_line

    C, fmt = pixels.shape[2], codec.name
    mode = MODE_OF[C]
    if mode == "LA" and not codec.gray_alpha:  # these have no gray + alpha
        mode, pixels = "RGBA", pixels[:, :, [0, 0, 0, 1]]
    params: dict = {}
    if codec.quality is not None:
        params["quality"] = quality if quality is not None else codec.quality
    # what each format holds, as the README's table says and tests/test_formats.py checks
    if meta.icc and "icc" in codec.metadata:
        params["icc_profile"] = meta.icc
    if meta.dpi and "dpi" in codec.metadata:
        params["dpi"] = tuple(round(v) if fmt == "jpg" else v for v in meta.dpi)
    if meta.exif and "exif" in codec.metadata:
        params["exif"] = meta.exif
    buf = io.BytesIO()
    try:
        im = Image.fromarray(np.ascontiguousarray(pixels if mode != "L" else pixels[:, :, 0]), mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.save(buf, codec.pillow or pillow_formats()[fmt].upper(), **params)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # what Pillow raises for modes it cannot write
        raise ImageError(f"cannot write this {C}-channel result as {fmt.upper()} ({one_line(str(exc))})") from None
    return buf.getvalue()
