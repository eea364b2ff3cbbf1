"""Images in and out: every file and format question lives here.

Reading gives a :class:`Picture`: an ``(H, W, C)`` array (colour channels, then alpha when the
image has one) in uint8, uint16, float32 or float64, with EXIF orientation applied.  Writing
turns a result array into bytes of the chosen format and puts them in place atomically.

Pillow reads every format and writes all but PNG.  Plain PNGs are read and written by the
small codec at the end of this module: it is several times faster than Pillow's, writes
smaller files, and keeps 16 bits per channel for colour, which Pillow reduces to 8.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import struct
import tempfile
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import ImageError, UsageError

try:  # ISA-L: about 2x faster inflate and 3x faster deflate than zlib (benchmarks/RESULTS.md)
    from isal import isal_zlib as _fast_zlib

    _ZLIB_ERRORS: tuple[type[Exception], ...] = (zlib.error, _fast_zlib.error)
    _crc32, _adler32 = _fast_zlib.crc32, _fast_zlib.adler32  # 5-7x zlib's: PNG checks every chunk
except ImportError:  # the plain zlib module does the same work, slower
    _fast_zlib = None
    _ZLIB_ERRORS = (zlib.error,)
    _crc32, _adler32 = zlib.crc32, zlib.adler32

FORMATS = {
    "png": "png",
    "jpg": "jpg",
    "jpeg": "jpg",
    "webp": "webp",
    "tif": "tiff",
    "tiff": "tiff",
    "bmp": "bmp",
    "npy": "npy",
}
EXTENSIONS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tiff", "bmp": ".bmp", "npy": ".npy"}
IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pbm",
    ".pnm", ".tga", ".ico", ".jp2", ".pcx", ".sgi", ".im", ".dds", ".psd", ".npy", ".avif", ".qoi",
)  # fmt: skip
PILLOW_DEFAULT_MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS, without importing Pillow
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_PNG_LEVEL = 1  # with adaptive filters and Z_RLE: see encode_png
TEMP_PREFIX = ".poolcli-"  # then the writer's host and pid: {TEMP_PREFIX}{host}-{pid}-XXXXXXXX.tmp


def _host() -> str:
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname()) or "host"


HOST = _host()  # in temp names: on shared storage, only this machine's dead writers are judged


def temp_prefix(pid: int | None = None) -> str:
    """The start of the names of the temp files process ``pid`` (default: this one) writes."""
    return f"{TEMP_PREFIX}{HOST}-{os.getpid() if pid is None else pid}-"


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


def pillow_formats() -> dict[str, str]:
    """Every extension Pillow writes (``.avif``, ``.jp2``, ``.gif``, ``.tga`` …) → its format name."""
    from PIL import Image

    Image.init()
    return {ext.lstrip(".").lower(): f.lower() for ext, f in Image.registered_extensions().items() if f in Image.SAVE}


def format_for(path: str | None, fmt: str | None) -> str:
    """Output format: from the file extension, else ``--format``, else PNG.  poolcli's own names
    (png, jpg, webp, tiff, bmp, npy) or any extension Pillow writes."""

    def resolve(key: str, what: str) -> str:
        key = key.lower().lstrip(".")
        if key in FORMATS:
            return FORMATS[key]
        if key in pillow_formats():
            return key  # Pillow's format name is looked up when the file is written
        raise UsageError(f"{what} '{key}' is not a format poolcli writes (png, jpg, webp, tiff, bmp, npy, "
                         f"or one of Pillow's: {', '.join(sorted(pillow_formats()))})")  # fmt: skip

    chosen = resolve(fmt, "--format") if fmt is not None else None
    if path and path != "-":
        ext = os.path.splitext(path)[1]
        if ext:
            return resolve(ext, f"{path}: the extension")
    return chosen or "png"


def extension(fmt: str) -> str:
    """The file extension of an output format (``.png``, ``.avif``)."""
    return EXTENSIONS.get(fmt, f".{fmt}")


# --------------------------------------------------------------------------- reading


def byte_limit(max_pixels: int | None) -> int | None:
    """The most bytes an input file may have: what the largest image within ``max_pixels``
    could take (4 channels of float64, plus metadata), or None without a pixel limit."""
    return None if not max_pixels else max_pixels * 32 + (64 << 20)


def read_bytes(source: str, max_pixels: int | None = PILLOW_DEFAULT_MAX_PIXELS) -> bytes:
    """The bytes of a regular file, or of standard input for '-'; ImageError naming the file if
    it fails.  FIFOs, devices and sockets are refused without reading (opening a FIFO would
    block, a device may never end), and so is anything larger than :func:`byte_limit`."""
    limit = byte_limit(max_pixels)
    if source == "-":
        return _read_stdin(limit)
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{source}: is a directory, not an image") from None
    except PermissionError:
        raise ImageError(f"{source}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"{source}: cannot read ({exc.strerror or exc})") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):  # os.fdopen refuses a folder with its own error: say it here
        os.close(fd)
        raise ImageError(f"{source}: is a directory, not an image")
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{source}: is {_kind_of(st.st_mode)}, not a regular file; refusing to read it")
        if limit is not None and st.st_size > limit:
            raise ImageError(
                f"{source}: {st.st_size:,} bytes is more than any image within the pixel limit can take; "
                "raise it with --max-pixels, 0 lifts it"
            )
        try:
            data = fh.read()
        except OSError as exc:
            raise ImageError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{source}: empty file (0 bytes)")
    return data


def _kind_of(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return kind
    return "not a regular file"


def _read_stdin(limit: int | None) -> bytes:
    import sys

    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        mode = 0
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # /dev/zero would never end
        raise ImageError(f"<stdin>: standard input is {_kind_of(mode)}, not an image file or a pipe")
    stream = sys.stdin.buffer
    if limit is None:
        data = stream.read()
    else:
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise ImageError(
                f"<stdin>: more than {limit:,} bytes, more than any image within the pixel limit can take; "
                "raise it with --max-pixels, 0 lifts it"
            )
    if not data:
        raise ImageError("<stdin>: no data on standard input")
    return data


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
    if data[:6] == b"\x93NUMPY":
        check_page(name, page, 1)
        return _decode_npy(data, name, gray, max_pixels, layout)
    inflated = inflate_png(data, name, max_pixels)
    if inflated is not None:
        frames = png_frames(inflated[2])
        check_page(name, page, frames)
        if page == 0:  # the default image: poolcli's own decoder
            return png_picture(*inflated, name, gray=gray)
        del inflated  # a later APNG frame, composed as Pillow composes it
        return _decode_pillow(data, name, gray, max_pixels, page)
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        frames = tiff_pages(lambda at, n: data[at : at + n])
        check_page(name, page, frames)
        if page:
            pic = _decode_tiff(data, name, max_pixels, force=True, page=page)
            pic.frames, pic.page = frames, page
            return _gray(pic) if gray else pic
        pic = _decode_tiff(data, name, max_pixels)
        if pic is None:  # 8-bit: Pillow knows every photometric; tifffile reads what it cannot
            try:
                pic = _decode_pillow(data, name, gray, max_pixels)
                pic.frames = frames
                return pic
            except ImageError as exc:
                try:
                    pic = _decode_tiff(data, name, max_pixels, force=True)
                except ImageError:
                    raise exc from None
        pic.frames = frames
        return _gray(pic) if gray else pic
    return _decode_pillow(data, name, gray, max_pixels, page)


def probe_colour(path: str) -> int | None:
    """How many colour channels (alpha left out) :func:`decode` would give ``path``, from its
    header alone; None where that cannot be told cheaply (then the caller assumes nothing).
    Only a regular file is opened: a FIFO would block."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    if head.startswith(PNG_SIGNATURE) and len(head) >= 26:
        return 1 if head[25] in (0, 4) else 3
    if head.startswith(b"\x93NUMPY"):
        try:
            f = io.BytesIO(head)
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape = read(f)[0]
        except Exception:  # noqa: BLE001 - unreadable: the run itself says why
            return None
        return None if len(shape) not in (2, 3) else (1 if len(shape) == 2 else int(shape[2]))
    try:
        import warnings

        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                mode = im.mode
    except Exception:  # noqa: BLE001 - Pillow cannot tell: assume nothing
        return None
    if mode in ("1", "L", "LA", "La", "I", "F") or mode.startswith("I;16"):
        return 1
    return 3


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


def tiff_pages(read, most: int = 1 << 16) -> int:
    """How many pages (images in the IFD chain) a TIFF has; ``read(offset, n)`` gives its bytes.
    Only each directory's entry count and next pointer are read; a loop or a pointer past the
    end ends the chain, as libtiff ends it."""
    head = read(0, 16)
    try:
        end = "<" if head[:2] == b"II" else ">"
        big = struct.unpack(end + "H", head[2:4])[0] == 43
        count_fmt, entry, ptr = (end + "Q", 20, end + "Q") if big else (end + "H", 12, end + "I")
        at = struct.unpack(ptr, head[8:16] if big else head[4:8])[0]
        seen: set[int] = set()
        while at and at not in seen and len(seen) < most:
            raw = read(at, struct.calcsize(count_fmt))
            if len(raw) < struct.calcsize(count_fmt):
                break
            seen.add(at)
            nxt = read(at + len(raw) + struct.unpack(count_fmt, raw)[0] * entry, struct.calcsize(ptr))
            at = struct.unpack(ptr, nxt)[0] if len(nxt) == struct.calcsize(ptr) else 0
    except (struct.error, OverflowError, ValueError, OSError):
        return 1
    return max(1, len(seen))


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
            _check_pixels(w, h, name, max_pixels)
            frames = max(1, int(getattr(im, "n_frames", 1) or 1))
            check_page(name, page, frames)
            if page:
                im.seek(page)
            im.load()
            original = im
            if im.getexif().get(0x0112, 1) != 1:  # exif_transpose copies even when nothing turns
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
        raise ImageError(f"{name}: truncated or corrupt image ({_describe(exc)})") from None


def _describe(exc: BaseException) -> str:
    """A decoder's exception in a few words: its message, with its kind when the message alone
    says nothing (a KeyError's message is just the missing key)."""
    text = str(exc).strip().rstrip(".")
    if isinstance(exc, (OSError, ValueError, SyntaxError, EOFError)) and text:
        return _one_line(text)
    return _one_line(f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__)


def _pillow_meta(im) -> Meta:
    """The ICC profile, DPI and EXIF (orientation reset to 1: poolcli applies it) Pillow found."""
    dpi = im.info.get("dpi")
    dpi = tuple(float(v) for v in dpi) if dpi and len(dpi) == 2 and min(dpi) > 0 else None
    exif = None
    try:
        info = im.getexif()
        if im.format == "TIFF":  # a TIFF's "EXIF" is its own directory: drop what describes its pixels
            for tag in [t for t in info if t in _TIFF_LAYOUT]:
                del info[tag]
        if len(info):
            if info.get(0x0112, 1) != 1:
                info[0x0112] = 1
            exif = info.tobytes()
    except Exception:  # noqa: BLE001 - unreadable EXIF is dropped, as Pillow itself drops it
        exif = None
    return Meta(im.info.get("icc_profile") or None, dpi, exif)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_pixels(w: int, h: int, name: str, max_pixels: int | None) -> None:
    if w <= 0 or h <= 0:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")
    if max_pixels and w * h > max_pixels:
        raise ImageError(
            f"{name}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} "
            "(a decompression bomb?); raise it with --max-pixels, 0 lifts it"
        )


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


def _npy_header(data: bytes, name: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of a ``.npy`` header, checked against the bytes that follow it."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    except Exception as exc:  # noqa: BLE001 - NumPy's header parser raises many kinds on hostile bytes
        raise ImageError(f"{name}: not a readable .npy array ({_one_line(str(exc))})") from None
    if any(d < 0 for d in shape):
        raise ImageError(f"{name}: not a readable .npy array (negative dimensions {shape})")
    if not dtype.hasobject and int(np.prod(shape, dtype=object)) * dtype.itemsize > len(data) - f.tell():
        raise ImageError(f"{name}: truncated or corrupt image (its header announces {shape} {dtype}, "
                         "more than the file holds)")  # fmt: skip
    return shape, dtype


def _decode_npy(data: bytes, name: str, gray: bool, max_pixels: int | None, layout: str | None = None) -> Picture:
    shape, _ = _npy_header(data, name)  # the size checked before NumPy allocates anything
    if len(shape) in (2, 3):
        h, w = (shape[1], shape[2]) if len(shape) == 3 and layout == "chw" else (shape[0], shape[1])
        _check_pixels(w, h, name, max_pixels)
    try:  # never unpickled: an object array is refused by allow_pickle=False
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except MemoryError:
        raise ImageError(f"{name}: out of memory while reading it") from None
    except Exception as exc:  # noqa: BLE001 - NumPy's header parser raises many kinds on hostile bytes
        raise ImageError(f"{name}: not a readable .npy array ({_one_line(str(exc))})") from None
    if arr.ndim not in (2, 3) or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageError(
            f"{name}: a .npy image must be a numeric (H, W) or (H, W, C) array, got {arr.dtype} {arr.shape}"
        )
    if arr.ndim == 3 and layout == "chw":
        arr = np.moveaxis(arr, 0, -1)
    elif arr.ndim == 3 and layout is None:
        from .api import looks_channels_first

        if looks_channels_first(arr.shape):
            raise ImageError(f"{name}: a .npy of shape {arr.shape} looks channels-first (C, H, W); give --layout chw "
                             "(or --layout hwc if it is H×W×C)")  # fmt: skip
    if arr.ndim == 3 and arr.shape[2] == 0:
        raise ImageError(f"{name}: image has no channels (shape {arr.shape})")
    _check_pixels(arr.shape[1], arr.shape[0], name, max_pixels)
    if arr.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if gray and arr.shape[2] >= 3:
        arr = _luma(np.ascontiguousarray(arr))
    return Picture(np.ascontiguousarray(arr), False, "npy")


def _luma(pixels: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma of the first three channels of (H, W, C ≥ 3) pixels, with Pillow's
    weights and rounding (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16 for integer pixels, in one
    compiled pass (NumPy's int64 temporaries took 0.5 s for 12 MP); (H, W, 1)."""
    if pixels.dtype.kind == "f":
        return (pixels[:, :, 0:1] * 0.299 + pixels[:, :, 1:2] * 0.587 + pixels[:, :, 2:3] * 0.114).astype(pixels.dtype)
    from .api import run_compiled
    from .engine.pixels import luma

    out = np.empty(pixels.shape[:2], pixels.dtype)
    run_compiled(luma, np.ascontiguousarray(pixels), out)
    return out[:, :, None]


def _gray(pic: Picture) -> Picture:
    if pic.pixels.shape[2] < 3:
        return pic
    luma = _luma(pic.pixels)
    if pic.alpha:
        luma = np.concatenate([luma, pic.pixels[:, :, -1:]], axis=2)
    return Picture(np.ascontiguousarray(luma), pic.alpha, pic.mode, pic.meta)


# --------------------------------------------------------------------------- writing


def to_pixels(result: np.ndarray, dtype, scale: str, colour_channels: int, span=None) -> np.ndarray:
    """Round a float (H, W, C) result into ``dtype`` pixels by the ``--scale`` rule.

    ``clip``: round to nearest, clip to the type's range.  ``abs``: absolute value, then clip.
    ``normalize``: one min–max stretch over the colour channels (alpha is only clipped) to the
    full range; a flat image becomes 0.  ``span``: the (min, max) of the whole image when
    ``result`` is one band of it (:func:`value_span`).  One compiled pass over the interleaved
    channels.
    """
    from .api import run_compiled
    from .engine.pixels import quantize

    top = float(np.iinfo(dtype).max)
    H, W, C = result.shape
    flat = np.ascontiguousarray(result).reshape(H, W * C)  # interleaved channels, row by row
    out = np.empty(result.shape, dtype)
    rule, lo, gain = {"abs": 1, "normalize": 2}.get(scale, 0), 0.0, 1.0
    if rule == 2:
        lo, hi = span if span is not None else value_span(result, colour_channels)
        if hi > lo and np.isfinite(lo) and np.isfinite(hi):
            gain = top / (hi - lo)
        else:
            lo, gain = 0.0, 0.0  # flat: every colour pixel becomes 0
    run_compiled(quantize, flat, C, colour_channels, rule, lo, gain, top, out.reshape(H, W * C))
    return out


def value_span(result: np.ndarray, colour_channels: int, span=None) -> tuple[float, float]:
    """(min, max) of the colour values of a float (H, W, C) result, NaN passed over; with
    ``span`` (that of the bands before), of both together."""
    from .api import row_blocks, run_compiled
    from .engine.pixels import colour_range

    H, W, C = result.shape
    flat = np.ascontiguousarray(result).reshape(H, W * C)
    nch = row_blocks(H)
    lohi = np.empty((nch, 2), np.float64)
    run_compiled(colour_range, flat, C, colour_channels, nch, lohi)
    lo, hi = float(lohi[:, 0].min()), float(lohi[:, 1].max())
    return (lo, hi) if span is None else (min(lo, span[0]), max(hi, span[1]))


EIGHT_BIT_NOTE = "16-bit result written with 8 bits per channel ({fmt} holds 8)"
_QUALITY = {"jpg": 92, "webp": 90, "avif": 90}  # defaults of the lossy formats; --quality overrides
_PILLOW_NAME = {"jpg": "JPEG", "tiff": "TIFF", "webp": "WEBP", "bmp": "BMP"}


def holds_16_bits(fmt: str) -> bool:
    return fmt in ("png", "tiff")


def encode(pixels: np.ndarray, alpha: bool, fmt: str, *, png_level: int = DEFAULT_PNG_LEVEL, meta: Meta | None = None,
           quality: int | None = None, threads: int | None = None) -> bytes:  # fmt: skip
    """Encode (H, W, C) uint8/uint16 pixels (alpha last when ``alpha``) as ``fmt`` bytes, with
    the ICC profile, DPI and EXIF of ``meta`` where the format holds them.

    Image formats hold 1 to 4 channels (gray, gray + alpha, RGB, RGBA), JPEG only 1 or 3; a
    result of other shapes (a 5-channel ``.npy``, two channels without alpha to JPEG) raises
    :class:`ImageError`: that file fails alone, and ``--format npy`` writes it.  16-bit pixels
    are rounded to 8 bits for formats that hold 8 (see :data:`EIGHT_BIT_NOTE`).
    """
    if fmt == "npy":
        raise ValueError("npy output is written with encode_npy")
    C = pixels.shape[2]
    if fmt == "jpg" and alpha:  # JPEG has no alpha channel: drop it
        pixels, alpha, C = pixels[:, :, :-1], False, C - 1
    check_channels(C, fmt)
    if pixels.dtype == np.uint16 and not holds_16_bits(fmt):
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)  # format holds 8 bits
    meta = meta or Meta()
    if fmt == "png":
        return encode_png(pixels, png_level, meta, threads)
    if fmt == "tiff":  # 8 and 16 bits alike: tifffile writes EXIF's sub-directories, Pillow cannot
        return encode_tiff(pixels, meta)
    try:
        return _encode_pillow(pixels, fmt, meta, quality)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # what Pillow raises for modes it cannot write
        raise ImageError(f"cannot write this {C}-channel result as {fmt.upper()} ({_one_line(str(exc))})") from None


def check_channels(C: int, fmt: str) -> None:
    """ImageError unless an image format holds C channels (1 to 4; JPEG 1 or 3)."""
    if not 1 <= C <= 4 or (fmt == "jpg" and C not in (1, 3)):
        raise ImageError(
            f"a {C}-channel result cannot be written as {fmt.upper()} (it holds gray, gray + alpha, RGB or "
            "RGBA; JPEG gray or RGB); use --format npy for the raw result"
        )


def _encode_pillow(pixels: np.ndarray, fmt: str, meta: Meta, quality: int | None) -> bytes:
    import warnings

    from PIL import Image  # PNG does without it: batch workers skip the import

    C = pixels.shape[2]
    buf = io.BytesIO()
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[C]
    if fmt in ("bmp", "webp", "avif") and mode == "LA":  # these have no gray + alpha
        mode, pixels = "RGBA", pixels[:, :, [0, 0, 0, 1]]
    im = Image.fromarray(np.ascontiguousarray(pixels if mode != "L" else pixels[:, :, 0]), mode)
    params: dict = {}
    if fmt in _QUALITY:
        params["quality"] = quality if quality is not None else _QUALITY[fmt]
    if fmt == "tiff":
        params["compression"] = "tiff_deflate"
    # what each format holds, as the README's table says and tests/test_formats.py checks
    if meta.icc and fmt in ("jpg", "tiff", "webp", "avif"):
        params["icc_profile"] = meta.icc
    if meta.dpi and fmt in ("jpg", "tiff", "bmp"):
        params["dpi"] = tuple(round(v) if fmt == "jpg" else v for v in meta.dpi)
    if meta.exif and fmt in ("jpg", "tiff", "webp", "avif"):
        params["exif"] = meta.exif
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im.save(buf, _PILLOW_NAME.get(fmt) or pillow_formats()[fmt].upper(), **params)
    return buf.getvalue()


def encode_npy(array: np.ndarray) -> bytes:
    """The raw float32 result as .npy bytes: (H, W) for one channel, else (H, W, C)."""
    buf = io.BytesIO()
    arr = array[:, :, 0] if array.shape[2] == 1 else array
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def write_output(data: bytes, dest: str) -> None:
    """Write bytes to ``dest`` atomically (a temp file beside it, then rename), or to stdout for '-'."""
    if dest == "-":
        import sys

        try:  # every byte, or this file fails: a reader that went away is not success
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise ImageError(f"-: cannot write the image to standard output ({why})") from None
        return
    with atomic_output(dest) as fh:
        fh.write(data)


def special_file(path: str) -> bool:
    """Whether ``path`` is an existing device or FIFO (``-o /dev/null``): written through as a
    stream, never replaced by a file (contract §2)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextlib.contextmanager
def _write_through(dest: str):
    """A device or FIFO opened for writing; a FIFO is opened without blocking, so one with no
    reader fails this file (ENXIO) instead of hanging."""
    import fcntl

    try:
        fd = os.open(dest, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise ImageError(f"{dest}: a FIFO with no reader; start the reader first") from None
        raise ImageError(f"{dest}: cannot write ({exc.strerror or exc})") from None
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # then write as any stream
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
    except OSError as exc:
        raise ImageError(f"{dest}: cannot write ({exc.strerror or exc})") from None


@contextlib.contextmanager
def atomic_output(dest: str):
    """A binary file to write ``dest`` through: a temp file beside it, renamed into place when
    the block ends, removed if it raises (outputs appear whole or not at all).  An existing
    device or FIFO is written through instead (:func:`special_file`)."""
    if special_file(dest):
        with _write_through(dest) as fh:
            yield fh
        return
    folder = os.path.dirname(os.path.abspath(dest))
    # Ctrl-C or SIGTERM between creating the temp file and the try below would leave it behind:
    # they wait (blocked) until the try can remove it
    blocked = _block_interrupts()
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), suffix=".tmp", dir=folder)
    except FileNotFoundError:
        _unblock(blocked)
        raise ImageError(f"{dest}: output folder does not exist") from None
    except OSError as exc:
        _unblock(blocked)
        raise ImageError(f"{dest}: cannot write to the output folder ({exc.strerror or exc})") from None
    try:
        _unblock(blocked)
        os.close(fd)
        with open(tmp, "wb") as fh:  # by name: tifffile asks the file object for it
            yield fh
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, dest)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ImageError(f"{dest}: cannot write ({exc.strerror or exc})") from None
        raise


def _block_interrupts():
    """Block SIGINT and SIGTERM in this thread (the main thread, where Python handles them);
    returns the mask to restore, or None where that cannot be done."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _unblock(mask) -> None:
    """Restore the signal mask; a signal that arrived meanwhile is handled now."""
    if mask is not None:
        import signal

        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def remove_stale_temps(folder: str) -> list[str]:
    """Delete the temporary files in ``folder`` left by poolcli processes of this machine that
    died hard (SIGKILL, power loss) while writing; their names carry the writer's host and pid.
    A file whose writer still runs, or that another machine wrote (shared storage: its pid
    means nothing here), is left alone.  Returns the paths removed."""
    import glob

    removed = []
    for tmp in glob.glob(os.path.join(glob.escape(folder), f"{TEMP_PREFIX}{glob.escape(HOST)}-*-*.tmp")):
        pid = os.path.basename(tmp)[len(TEMP_PREFIX) + len(HOST) + 1 :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            os.unlink(tmp)
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or not ours to judge): leave its file
    return True


_SIGNATURES = {
    "png": (PNG_SIGNATURE,), "jpg": (b"\xff\xd8\xff",), "tiff": (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"),
    "bmp": (b"BM",), "webp": (b"RIFF",), "npy": (b"\x93NUMPY",),
}  # fmt: skip
_ENDINGS = {"png": (b"IEND\xaeB`\x82",), "jpg": (b"\xff\xd9",)}


def complete_output(path: str, fmt: str) -> bool:
    """Whether ``path`` holds a finished output of format ``fmt``, for ``--skip-existing``:
    a regular, non-empty file that begins with the format's signature and, for PNG and JPEG,
    ends with its end marker (IEND, EOI); a .npy or WebP file holds the bytes its header
    announces.  It does not decode the pixels."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return False
        with open(path, "rb") as fh:
            head = fh.read(256)
            fh.seek(max(0, st.st_size - 16))
            tail = fh.read()
    except OSError:
        return False
    if not any(head.startswith(sig) for sig in _SIGNATURES.get(fmt, (b"",))):
        return False
    if fmt in _ENDINGS and not any(tail.rstrip(b"\0").endswith(e) for e in _ENDINGS[fmt]):
        return False
    if fmt == "webp":
        return len(head) >= 12 and head[8:12] == b"WEBP" and struct.unpack("<I", head[4:8])[0] + 8 == st.st_size
    if fmt == "npy":
        try:  # mapping fails when the file is shorter than its header says
            np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return False
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- 16-bit colour PNG

_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}  # the legal pairs
_PNG_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
MAX_METADATA = 32 << 20  # bytes of one inflated metadata chunk (an ICC profile) at most


def _passes(w: int, h: int, interlace: int):
    """(x0, y0, dx, dy, pass width, pass height) of each reduced image with pixels in it."""
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):
        pw, ph = -(-(w - x0) // dx), -(-(h - y0) // dy)
        if pw > 0 and ph > 0:
            yield x0, y0, dx, dy, pw, ph


def inflate_png(data: bytes, name: str, max_pixels: int | None):
    """The first half of decoding a PNG of 8 or 16 bits per sample (gray, gray+alpha, RGB,
    RGBA; Adam7 or not), which needs no compiled code: the pixel limit checked, every chunk's
    CRC checked and the image data inflated; :func:`png_picture` is the second half.

    Returns ((width, height, bit depth, colour type), filtered scanlines, extras), where
    extras holds what else the PNG says (``interlace``, a ``trns`` key, a ``plte`` palette,
    ``frames`` of an APNG, ``icc``, ``dpi``, ``exif``) and is empty for a plain PNG; or None
    when ``data`` is not a PNG.  Every legal PNG is read here, every colour type and bit depth
    (contract §2): faster than Pillow, 16-bit colour kept (Pillow reduces it to 8 bits), a
    tRNS key made alpha at every depth and every chunk's CRC checked (Pillow checks neither
    for 1–4-bit images).  It releases the GIL while inflating, so it can run on a thread.
    """
    if data[:8] != PNG_SIGNATURE or len(data) <= 33 or data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", data[16:24])
    _check_pixels(w, h, name, max_pixels)
    return png_scanlines(data, name)


METADATA_KEYS = ("icc", "dpi", "exif")  # extras that do not change how the scanlines decode


def png_scanlines(data: bytes, name: str):
    """:func:`inflate_png` without the signature and pixel-limit checks."""
    try:
        walked = _png_walk(data, name)
        if walked is None:
            return None
        (w, h, depth, colour_type, interlace), idat, extras = walked
        # inflate stops at the bytes the header announces, however much the stream holds
        layout = PngLayout(depth, colour_type, extras)
        expected = sum((layout.rowbytes(pw) + 1) * ph for *_, pw, ph in _passes(w, h, interlace))
        raw = inflate_bounded(b"".join(idat), expected, name)
    except (struct.error, OverflowError, *_ZLIB_ERRORS) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({exc})") from None
    return (w, h, depth, colour_type), raw, extras


def png_extras(data: bytes, name: str) -> dict:
    """What :func:`inflate_png` would say besides the scanlines, without inflating them."""
    try:
        walked = _png_walk(data, name)
    except (struct.error, OverflowError, *_ZLIB_ERRORS) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({exc})") from None
    return walked[2] if walked else {}


def _png_walk(data: bytes, name: str):
    """((w, h, depth, colour type, interlace), IDAT bodies, extras) of a PNG, every chunk's CRC
    checked (the image data's too, and the chunks after it up to IEND)."""
    header = png_header(data[16:29], name)
    colour_type = header[3]
    pos, idat, extras = 8, [], {}
    if header[4]:
        extras["interlace"] = 1
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ImageError(f"{name}: truncated or corrupt image (chunk {kind.decode('latin-1')} cut short)")
        check_chunk(kind, body, crc, name)
        if kind == b"IDAT":
            idat.append(body)
            png_saw_idat(extras)
        elif kind == b"IEND":
            break
        else:
            png_extra(kind, body, colour_type, extras, name)
        pos += 12 + length
    if not idat:
        raise ImageError(f"{name}: truncated or corrupt image (no image data)")
    check_palette(colour_type, extras, name)
    return header, idat, extras


def png_saw_idat(extras: dict) -> None:
    """Note that the image data began (an APNG's frame control after it is a later frame's)."""
    if "frames" in extras:
        extras["seen_idat"] = True


def check_palette(colour_type: int, extras: dict, name: str) -> None:
    """ImageError for a palette image without its PLTE chunk (libpng refuses it too)."""
    if colour_type == 3 and "plte" not in extras:
        raise ImageError(f"{name}: truncated or corrupt image (a palette image with no PLTE chunk)")


def png_header(ihdr: bytes, name: str):
    """(w, h, depth, colour type, interlace) from the IHDR body; ImageError for an illegal
    header (a bit depth the colour type does not allow, as libpng refuses it)."""
    w, h, depth, colour_type, method, filtering, interlace = struct.unpack(">IIBBBBB", ihdr)
    if method or filtering or interlace > 1 or w > 0x7FFFFFFF or h > 0x7FFFFFFF:
        raise ImageError(f"{name}: truncated or corrupt image (illegal PNG header)")
    if depth not in _PNG_DEPTHS.get(colour_type, ()):
        raise ImageError(f"{name}: truncated or corrupt image (illegal PNG header: bit depth {depth} "
                         f"with colour type {colour_type})")  # fmt: skip
    return w, h, depth, colour_type, interlace


class PngLayout:
    """How one PNG's scanlines hold its pixels: ``samples`` per pixel in the file (a palette
    index is one), bits per pixel, the bytes a row of ``n`` pixels takes, the filters' byte
    step, and what the decoded pixels are (``channels``, alpha last, and ``dtype``)."""

    def __init__(self, depth: int, colour_type: int, extras: dict):
        self.depth, self.colour_type = depth, colour_type
        self.samples = 1 if colour_type == 3 else _PNG_CHANNELS[colour_type]
        self.bits = self.samples * depth
        self.step = max(1, self.bits // 8)  # the filters' "bpp": bytes per complete pixel, at least 1
        keyed = "trns" in extras
        self.channels = (4 if keyed else 3) if colour_type == 3 else self.samples + (1 if keyed else 0)
        self.dtype = np.dtype(np.uint16 if depth == 16 else np.uint8)

    def rowbytes(self, n: int) -> int:
        return (n * self.bits + 7) // 8

    @property
    def alpha(self) -> bool:
        return self.channels in (2, 4)


def check_chunk(kind: bytes, body, crc: bytes, name: str) -> None:
    """ImageError unless ``crc`` is the CRC of the chunk."""
    if _crc32(body, _crc32(kind)) != struct.unpack(">I", crc)[0]:
        raise ImageError(f"{name}: truncated or corrupt image (CRC error in {kind.decode('latin-1')} chunk)")


def png_extra(kind: bytes, body: bytes, colour_type: int, extras: dict, name: str) -> None:
    """Note in ``extras`` what a chunk besides IHDR and IDAT says (PLTE, tRNS, iCCP, pHYs,
    eXIf, and acTL/fcTL: how many frames an APNG has)."""
    if kind == b"PLTE" and colour_type == 3:
        if not body or len(body) % 3 or len(body) > 768:
            raise ImageError(f"{name}: truncated or corrupt image (bad PLTE chunk)")
        extras["plte"] = body
    elif kind == b"tRNS" and colour_type == 3:
        if "plte" not in extras or len(body) > len(extras["plte"]) // 3:
            raise ImageError(f"{name}: truncated or corrupt image (bad tRNS chunk)")
        extras["trns"] = body  # one alpha per palette entry, the rest opaque
    elif kind == b"tRNS" and colour_type in (0, 2):
        if len(body) != (2 if colour_type == 0 else 6):
            raise ImageError(f"{name}: truncated or corrupt image (bad tRNS chunk)")
        extras["trns"] = struct.unpack(f">{len(body) // 2}H", body)
    elif kind == b"acTL" and len(body) == 8:
        extras["frames"] = struct.unpack(">I", body[:4])[0]
    elif kind == b"fcTL" and "frames" in extras and not extras.get("seen_idat"):
        extras["idat_is_frame"] = True  # a frame control before IDAT: the default image is frame 0
    elif kind == b"iCCP" and b"\0" in body[:80]:
        stream = body[body.index(b"\0") + 2 :]
        d = (_fast_zlib or zlib).decompressobj()
        icc = d.decompress(stream, MAX_METADATA)
        if not d.eof:  # cut short, or larger than any real profile: leave it out
            icc = None
        if icc:
            extras["icc"] = icc
    elif kind == b"pHYs" and len(body) == 9:
        x, y, unit = struct.unpack(">IIB", body)
        if unit == 1 and x and y:
            extras["dpi"] = (x * 0.0254, y * 0.0254)
    elif kind == b"eXIf" and body:
        extras["exif"] = body


def inflate_bounded(stream: bytes, expected: int, name: str) -> bytes:
    """The first ``expected`` bytes that a zlib ``stream`` inflates to (never more, whatever
    the stream holds, as libpng does); ImageError if it holds fewer."""
    if expected > (1 << 62):
        raise ImageError(f"{name}: truncated or corrupt image (the header announces an impossible size)")
    raw = (_fast_zlib or zlib).decompressobj().decompress(stream, expected)
    if len(raw) < expected:
        raise ImageError(f"{name}: truncated or corrupt image (image data cut short)")
    return raw


def png_picture(header: tuple[int, int, int, int], raw, extras: dict, name: str, *, gray: bool = False) -> Picture:
    """The second half of decoding a PNG (:func:`inflate_png`): the row filters of the inflated
    scanlines ``raw`` (bytes or a buffer) undone by compiled code, pass by pass for Adam7; the
    samples unpacked and expanded (:func:`png_pixels`); the eXIf orientation applied; as a
    :class:`Picture` (one luma channel with ``gray``, as :func:`decode`)."""
    w, h, depth, colour_type = header
    layout = PngLayout(depth, colour_type, extras)
    buf = np.frombuffer(raw, np.uint8)
    samples, at = None, 0
    for x0, y0, dx, dy, pw, ph in _passes(w, h, extras.get("interlace", 0)):
        size = (layout.rowbytes(pw) + 1) * ph
        if len(buf) < at + size:
            raise ImageError(f"{name}: truncated or corrupt image (image data cut short)")
        got = png_samples(png_unfilter(buf[at : at + size].reshape(ph, -1), layout, name), pw, layout)
        at += size
        if dx == dy == 1:  # not interlaced: the whole image at once
            samples = got
        else:
            if samples is None:
                samples = np.empty((h, w, layout.samples), got.dtype)
            samples[y0::dy, x0::dx] = got
    pixels = png_pixels(samples, layout, extras)
    meta = Meta(extras.get("icc"), extras.get("dpi"), None)
    if "exif" in extras:
        pixels, meta.exif = apply_orientation(pixels, b"Exif\0\0" + extras["exif"])
    C = layout.channels
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[C]
    pic = Picture(np.ascontiguousarray(pixels), layout.alpha, mode + (";16" if depth == 16 else ""), meta,
                  png_frames(extras))  # fmt: skip
    return _gray(pic) if gray else pic


def png_unfilter(rows: np.ndarray, layout: PngLayout, name: str) -> np.ndarray:
    """Scanlines (rows, 1 + row bytes), filter byte first, with their filters undone."""
    from .api import run_compiled
    from .engine.png import unfilter

    if len(rows) and rows[:, 0].max() > 4:
        raise ImageError(f"{name}: truncated or corrupt image (bad PNG filter type)")
    rows.flags.writeable = False  # one compiled signature, whatever buffer the bytes are in
    plain = np.empty((rows.shape[0], rows.shape[1] - 1), np.uint8)
    run_compiled(unfilter, rows, layout.step, plain)
    return plain


def png_samples(plain: np.ndarray, n: int, layout: PngLayout) -> np.ndarray:
    """(rows, n, samples) of unfiltered scanlines (rows, row bytes): 16-bit samples made
    native, 1-, 2- and 4-bit ones unpacked (most significant bits first, as PNG packs them)."""
    k, d, spp = plain.shape[0], layout.depth, layout.samples
    if d == 16:
        return plain[:, : n * spp * 2].view(">u2").reshape(k, n, spp).astype(np.uint16)
    if d == 8:
        return plain[:, : n * spp].reshape(k, n, spp)
    shifts = np.arange(8 - d, -1, -d, dtype=np.uint8)  # 1–4 bits: one sample a pixel (grey or an index)
    unpacked = (plain[:, :, None] >> shifts) & np.uint8((1 << d) - 1)
    return unpacked.reshape(k, -1)[:, :n].reshape(k, n, 1)


def png_pixels(samples: np.ndarray, layout: PngLayout, extras: dict) -> np.ndarray:
    """The pixels (rows, n, channels) of PNG samples, as libpng expands them: a palette looked up
    (tRNS giving each entry's alpha, indices past the palette black), 1–4-bit grey scaled to 8
    bits (each value's bits repeated: 2-bit 1 is 85), a tRNS colour key made alpha (the PNG
    specification's rule, at every bit depth)."""
    d = layout.depth
    if layout.colour_type == 3:
        table = np.zeros((256, 4), np.uint8)
        table[:, 3] = 255
        entries = np.frombuffer(extras["plte"], np.uint8).reshape(-1, 3)
        table[: len(entries), :3] = entries
        if "trns" in extras:
            alphas = np.frombuffer(extras["trns"], np.uint8)
            table[: len(alphas), 3] = alphas
        return table[:, : layout.channels][samples[:, :, 0]]
    pixels = samples * np.uint8(255 // ((1 << d) - 1)) if d < 8 else samples
    if "trns" in extras:  # a colour key, compared with the samples as stored: those pixels are transparent
        key = (np.array(extras["trns"], np.uint32) & ((1 << d) - 1)).astype(samples.dtype)
        opaque = (samples != key).any(axis=2, keepdims=True)
        pixels = np.concatenate([pixels, (opaque * np.iinfo(layout.dtype).max).astype(layout.dtype)], axis=2)
    return pixels


def png_frames(extras: dict) -> int:
    """How many frames an APNG has, counted as Pillow counts them (the default image is frame
    0, and one more when it is not part of the animation); 1 for a plain PNG."""
    if "frames" not in extras:
        return 1
    return max(1, extras["frames"] + (0 if extras.get("idat_is_frame") else 1))


def exif_orientation(exif: bytes) -> int:
    """The EXIF orientation tag (1–8; 1 when absent or unreadable) of ``Exif\\0\\0…`` bytes."""
    try:
        from PIL import Image

        info = Image.Exif()
        info.load(exif)
        return orientation_of(info.get(0x0112, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF is dropped, as Pillow drops it
        return 1


def apply_orientation(pixels: np.ndarray, exif: bytes) -> tuple[np.ndarray, bytes | None]:
    """(pixels turned upright by the EXIF orientation tag, the EXIF with orientation 1)."""
    try:
        from PIL import Image

        info = Image.Exif()
        info.load(exif)
        orientation = info.get(0x0112, 1)
        if orientation != 1:
            info[0x0112] = 1
            exif = info.tobytes()
    except Exception:  # noqa: BLE001 - unreadable EXIF is dropped, as Pillow drops it
        return pixels, None
    return orient(pixels, orientation), exif


def orientation_of(value) -> int:
    """An Orientation tag's value as 1–8; 1 (upright) for anything else: two values, text, a
    fraction, out of range (what libtiff and Pillow do with such a tag)."""
    if isinstance(value, (tuple, list)):
        value = value[0] if len(value) == 1 else None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return 1
    return int(value) if 1 <= int(value) <= 8 else 1


def orient(pixels: np.ndarray, orientation) -> np.ndarray:
    """(H, W, C) pixels turned as EXIF orientation 1–8 asks (what ImageOps.exif_transpose does)."""
    orientation = orientation_of(orientation)
    a = pixels
    return {
        2: lambda: a[:, ::-1], 3: lambda: a[::-1, ::-1], 4: lambda: a[::-1],
        5: lambda: a.transpose(1, 0, 2), 6: lambda: np.rot90(a, -1), 7: lambda: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda: np.rot90(a, 1),
    }.get(orientation, lambda: a)()  # fmt: skip


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_meta_chunks(meta: Meta | None) -> bytes:
    """iCCP, pHYs and eXIf chunks for ``meta`` (they go before the image data)."""
    if meta is None:
        return b""
    out = b""
    if meta.icc:
        out += _png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(meta.icc, 9))
    if meta.dpi:
        out += _png_chunk(b"pHYs", struct.pack(">IIB", *(round(v / 0.0254) for v in meta.dpi), 1))
    if meta.exif:
        body = meta.exif[6:] if meta.exif.startswith(b"Exif\0\0") else meta.exif
        out += _png_chunk(b"eXIf", body)
    return out


def encode_png(
    pixels: np.ndarray, level: int = DEFAULT_PNG_LEVEL, meta: Meta | None = None, threads: int | None = None
) -> bytes:
    """PNG bytes of (H, W, C) uint8 or uint16 pixels (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).

    Rows get libpng's adaptive filter choice (compiled, in parallel); the deflate stream is
    compressed in independent pieces on several threads, joined with sync flushes as pigz
    does.  Levels 1–3 use ISA-L's fast deflate (zlib's run-length strategy without it), which
    on photographs is several times faster than Pillow's default level 6 at a smaller size
    (benchmarks/RESULTS.md); levels 4–9 use zlib's default strategy.
    """
    from .api import run_compiled
    from .engine.png import filter_rows

    h, w, C = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    bpp = C * depth // 8
    raw = np.ascontiguousarray(pixels, dtype=">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(h, w * bpp)
    scanlines = np.empty((h, w * bpp + 1), np.uint8)
    run_compiled(filter_rows, raw, bpp, scanlines)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, _PNG_COLOUR_TYPE[C], 0, 0, 0)
    idat = _deflate(scanlines, level, threads or os.cpu_count() or 1)  # byte strings, joined once below
    del scanlines
    size = sum(len(b) for b in idat)
    crc = _crc32(b"IDAT")
    for b in idat:
        crc = _crc32(b, crc)
    head = PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_meta_chunks(meta) + struct.pack(">I", size) + b"IDAT"
    tail = struct.pack(">I", crc & 0xFFFFFFFF) + _png_chunk(b"IEND", b"")
    return b"".join([head, *idat, tail])


_PIECE = 1 << 21  # bytes of scanlines per independently compressed piece


def _deflate(scanlines: np.ndarray, level: int, threads: int) -> list[bytes]:
    """A zlib stream of ``scanlines`` as a list of parts, compressed on up to ``threads`` threads
    (batch workers pass 1: their siblings use the other cores)."""
    data = memoryview(scanlines.reshape(-1))
    body = deflate_pieces(data, level, threads, last=True)
    return [bytes([0x78, 0x01]), *body, struct.pack(">I", _adler32(data) & 0xFFFFFFFF)]


def deflate_pieces(data: memoryview, level: int, threads: int, *, last: bool) -> list[bytes]:
    """Raw deflate of ``data`` in independent pieces joined by sync flushes (as pigz), on up to
    ``threads`` threads; the final block ends the stream when ``last``.  No zlib header or
    checksum: streams of several calls join into one."""
    pieces = [data[i : i + _PIECE] for i in range(0, len(data), _PIECE)] or [data]

    def compressor():
        if 1 <= level <= 3 and _fast_zlib is not None:
            return _fast_zlib.compressobj(level, zlib.DEFLATED, -15, 9)
        strategy = zlib.Z_RLE if 1 <= level <= 3 else zlib.Z_DEFAULT_STRATEGY
        return zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)

    def squeeze(k: int) -> bytes:
        co = compressor()
        end = last and k == len(pieces) - 1
        return co.compress(pieces[k]) + co.flush(zlib.Z_FINISH if end else zlib.Z_SYNC_FLUSH)

    if threads > 1 and len(pieces) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, len(pieces))) as pool:
            return list(pool.map(squeeze, range(len(pieces))))
    return [squeeze(k) for k in range(len(pieces))]


# --------------------------------------------------------------------------- 16-bit colour TIFF


def encode_tiff(pixels: np.ndarray, meta: Meta | None = None) -> bytes:
    """A TIFF of (H, W, C) uint8 or uint16 pixels (gray, gray+alpha, RGB, RGBA) by tifffile:
    deflate with the horizontal predictor (about 13 % smaller than without), unassociated
    alpha, and the ICC profile, DPI and EXIF of ``meta`` (EXIF's main tags in the image's own
    directory, its Exif and GPS directories appended and pointed to, as cameras write them)."""
    import tifffile

    C = pixels.shape[2]
    params: dict = dict(photometric="rgb" if C >= 3 else "minisblack", compression="zlib", predictor=True,
                        metadata=None, extrasamples=("unassalpha",) if C in (2, 4) else None)  # fmt: skip
    if meta is not None and meta.dpi:
        params.update(resolution=tuple(meta.dpi), resolutionunit="INCH")
    if meta is not None and meta.icc:
        params["iccprofile"] = meta.icc
    exif = _exif_directories(meta.exif) if meta is not None and meta.exif else None
    if exif is not None:  # tifffile writes in the EXIF's byte order, so its values copy as they are
        end, main, subs = exif
        params["byteorder"] = end
        params["extratags"] = [(t, k, n, v, True) for t, k, n, v in main]
        params["software"] = False  # the EXIF's own Software tag, if any, is among them
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(pixels if C > 1 else pixels[:, :, 0]), **params)
    if not exif or not exif[2]:
        return buf.getvalue()
    data = bytearray(buf.getvalue())
    pointers = {tag: _append_ifd(data, exif[0], entries) for tag, entries in exif[2].items()}
    _add_pointers(data, exif[0], pointers)
    return bytes(data)


_EXIF_POINTERS = (34665, 34853)  # the Exif and the GPS directories
# a TIFF directory's tags that describe its own pixels (and would contradict the result's)
_TIFF_LAYOUT = {
    254,
    256,
    257,
    258,
    259,
    262,
    266,
    273,
    277,
    278,
    279,
    284,
    317,
    322,
    323,
    324,
    325,
    330,
    338,
    339,
    347,
    530,
    531,
    532,
    34675,
}
# tags the TIFF writer sets itself (size, layout, resolution, colour profile) or that point elsewhere
_EXIF_SKIP = {256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 284, 296, 317, 338, 339, 34675, 40965, 513, 514}


def _exif_directories(exif: bytes):
    """(byte order, the main directory's tags, {pointer tag: its directory's tags}) of EXIF
    bytes, each tag as (tag, type, count, value bytes in that byte order); None if unreadable."""
    blob = exif[6:] if exif.startswith(b"Exif\0\0") else exif
    if blob[:4] not in (b"II*\0", b"MM\0*"):
        return None
    end = "<" if blob[:2] == b"II" else ">"

    def directory(at: int) -> list:
        (n,) = struct.unpack(end + "H", blob[at : at + 2])
        entries = []
        for k in range(n):
            tag, kind, count, raw = struct.unpack(end + "HHI4s", blob[at + 2 + 12 * k : at + 14 + 12 * k])
            size = _TIFF_SIZES.get(kind, 0) * count
            value = raw[:size] if size <= 4 else blob[struct.unpack(end + "I", raw)[0] :][:size]
            if size and len(value) == size and tag not in _EXIF_SKIP:
                entries.append((tag, kind, count, bytes(value)))
        return entries

    try:
        main = directory(struct.unpack(end + "I", blob[4:8])[0])
        subs = {t: directory(struct.unpack(end + "I", value)[0]) for t, _, _, value in main if t in _EXIF_POINTERS}
    except struct.error:
        return None
    return end, [e for e in main if e[0] not in _EXIF_POINTERS], {t: e for t, e in subs.items() if e}


def _append_ifd(data: bytearray, end: str, entries: list) -> int:
    """Append a TIFF directory of ``entries`` (and its values) to ``data``; returns its offset."""
    if len(data) % 2:
        data += b"\0"
    start = len(data)
    values_at = start + 2 + 12 * len(entries) + 4
    table, values = struct.pack(end + "H", len(entries)), b""
    for tag, kind, count, value in sorted(entries):
        if len(value) <= 4:
            table += struct.pack(end + "HHI", tag, kind, count) + value.ljust(4, b"\0")
        else:
            table += struct.pack(end + "HHII", tag, kind, count, values_at + len(values))
            values += value + b"\0" * (len(value) % 2)
    data += table + struct.pack(end + "I", 0) + values
    return start


def _add_pointers(data: bytearray, end: str, pointers: dict[int, int]) -> None:
    """Rewrite the main directory at the end of ``data`` with LONG ``pointers`` (tag → offset)
    added among its entries (tifffile writes no Exif or GPS pointer itself)."""
    (first,) = struct.unpack(end + "I", data[4:8])
    (n,) = struct.unpack(end + "H", data[first : first + 2])
    entries = [bytes(data[first + 2 + 12 * k : first + 14 + 12 * k]) for k in range(n)]
    (following,) = struct.unpack(end + "I", data[first + 2 + 12 * n : first + 6 + 12 * n])
    entries += [struct.pack(end + "HHII", tag, 4, 1, offset) for tag, offset in pointers.items()]
    entries.sort(key=lambda e: struct.unpack(end + "H", e[:2])[0])
    if len(data) % 2:
        data += b"\0"
    start = len(data)
    data += struct.pack(end + "H", len(entries)) + b"".join(entries) + struct.pack(end + "I", following)
    data[4:8] = struct.pack(end + "I", start)


# bytes of one value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ... LONG8)
_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


@dataclass
class TiffIFD:
    """The first image file directory of a TIFF: entries are read lazily and bounded."""

    data: bytes
    name: str
    end: str  # struct byte order
    entries: dict  # tag -> (type, count, inline bytes or offset)

    def values(self, tag: int, most: int = 16, default=None) -> list[int] | None:
        """The integer values of ``tag`` (SHORT, LONG, LONG8, BYTE); at most ``most`` of them."""
        if tag not in self.entries:
            return default
        kind, n, where = self.entries[tag]
        code = {1: "B", 3: "H", 4: "I", 16: "Q"}.get(kind)
        size = _TIFF_SIZES.get(kind, 1) * n
        blob = where if isinstance(where, bytes) else self.data[where : where + size]
        if code is None or not 1 <= n <= most or len(blob) < size:
            raise ImageError(f"{self.name}: truncated or corrupt image (bad TIFF tag {tag})")
        return list(struct.unpack(f"{self.end}{n}{code}", blob[:size]))


def tiff_ifd(data: bytes, name: str) -> TiffIFD:
    """Parse the first IFD, refusing tag tables whose values add up to more bytes than the file
    holds (values may all point at one place: Pillow would expand each of them)."""
    try:
        end = "<" if data[:2] == b"II" else ">"
        (version,) = struct.unpack(end + "H", data[2:4])
        big = version == 43
        if big:
            (first,) = struct.unpack(end + "Q", data[8:16])
            (count,) = struct.unpack(end + "Q", data[first : first + 8])
            head, width, inline, fmt = first + 8, 20, 8, "HHQ8s"
        else:
            (first,) = struct.unpack(end + "I", data[4:8])
            (count,) = struct.unpack(end + "H", data[first : first + 2])
            head, width, inline, fmt = first + 2, 12, 4, "HHI4s"
        if head + count * width > len(data):
            raise ImageError(f"{name}: truncated or corrupt image (TIFF directory cut short)")
        entries, total = {}, 0
        for k in range(count):
            tag, kind, n, raw = struct.unpack(end + fmt, data[head + width * k : head + width * (k + 1)])
            size = _TIFF_SIZES.get(kind, 1) * n
            total += size
            where = raw if size <= inline else struct.unpack(end + ("Q" if big else "I"), raw)[0]
            entries.setdefault(tag, (kind, n, where))
    except struct.error:
        raise ImageError(f"{name}: truncated or corrupt image (TIFF header cut short)") from None
    if total > len(data) + (1 << 20):
        raise ImageError(
            f"{name}: corrupt TIFF (its tags claim {total:,} bytes of values, more than the file's {len(data):,})"
        )
    ifd = TiffIFD(data, name, end, entries)
    for tag in (279, 325):  # StripByteCounts, TileByteCounts: segments sharing one stream add up past the file
        if tag in entries and sum(ifd.values(tag, most=1 << 24)) > len(data):
            raise ImageError(f"{name}: corrupt TIFF (its strips or tiles claim more bytes than the file holds)")
    return ifd


def _decode_tiff(data: bytes, name: str, max_pixels: int | None, force: bool = False,
                 page: int = 0) -> Picture | None:  # fmt: skip
    """Read a TIFF that Pillow would read with fewer bits than it holds (16-bit colour, signed or
    floating-point samples, 32 and 64 bits) through tifffile, at its full depth; None for 8-bit
    and bilevel TIFFs, which Pillow reads (``force``: read those too, where Pillow failed).
    Every TIFF's tag table is checked first (see
    :func:`tiff_ifd`); tifffile decodes each strip or tile into a buffer of the size the header
    announces, so no stream inflates past it."""
    ifd = tiff_ifd(data, name)
    bits = ifd.values(258, most=1 << 16, default=[1])
    formats = ifd.values(339, most=1 << 16, default=[1])
    if set(bits) <= {1, 8} and set(formats) == {1} and not force:
        return None
    import logging

    import tifffile

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # its warnings would reach stderr
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[page]
            _check_pixels(page.imagewidth, page.imagelength, name, max_pixels)
            if page.samplesperpixel > 64:
                raise ImageError(f"{name}: {page.samplesperpixel} samples per pixel is more than an image has")
            arr = page.asarray(maxworkers=1)
            pixels = _tiff_pixels(np.asarray(arr), page, name)
            tags = page.tags
            icc = tags[34675].value if 34675 in tags else None
            meta = Meta(bytes(icc) if icc is not None else None, _tiff_dpi(tags), None)
            orientation = tags[274].value if 274 in tags else 1
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{name}: out of memory while decoding it") from None
    except Exception as exc:  # noqa: BLE001 - tifffile and its codecs raise many kinds on hostile bytes
        detail = _describe(exc)
        if "INSUFFICIENT_SPACE" in detail or "buffer too small" in detail.lower():
            detail = "image data inflates past the size the header announces"
        raise ImageError(f"{name}: truncated or corrupt image ({detail})") from None
    pixels = np.ascontiguousarray(orient(pixels, orientation))
    C = pixels.shape[2]
    alpha = C in (2, 4)
    suffix = {"u2": ";16", "u1": ""}.get(f"{pixels.dtype.kind}{pixels.dtype.itemsize}", ";F")
    return Picture(pixels, alpha, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[C] + suffix, meta)


def _tiff_pixels(arr: np.ndarray, page, name: str) -> np.ndarray:
    """(H, W, C) pixels of a tifffile page: gray or RGB, then alpha; signed, 32-bit and float
    samples as float32 (float64 where float32 would round them)."""
    axes = page.axes
    keep = [i for i, a in enumerate(axes) if a in "YXS"]
    arr = arr.reshape([arr.shape[i] for i in keep])  # the other axes are 1 for one page
    axes = "".join(axes[i] for i in keep)
    if "S" not in axes:
        arr, axes = arr[..., None], axes + "S"
    arr = arr.transpose([axes.index(a) for a in "YXS"])
    photometric = int(page.photometric)
    extra = list(page.extrasamples) if page.extrasamples else []
    if photometric == 3:  # a palette: colour map of 16-bit RGB entries
        cmap = np.asarray(page.colormap)
        arr = np.moveaxis(cmap[:, np.clip(arr[:, :, 0].astype(np.int64), 0, cmap.shape[1] - 1)], 0, 2)
        colour, extra = 3, []
    elif photometric in (0, 1):
        colour = 1
    elif photometric == 2:
        colour = 3
    else:
        raise ImageError(f"{name}: a {page.bitspersample}-bit TIFF with photometric {page.photometric.name} "
                         "is not supported (gray, RGB and palette are)")  # fmt: skip
    if arr.shape[2] < colour:
        raise ImageError(f"{name}: truncated or corrupt image (TIFF has fewer samples than its colour needs)")
    alpha = arr[:, :, colour : colour + 1] if extra and int(extra[0]) in (1, 2) and arr.shape[2] > colour else None
    arr = arr[:, :, :colour] if alpha is None else np.concatenate([arr[:, :, :colour], alpha], axis=2)
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif kind == "u" and size <= 2:
        pass
    elif kind in "iu":
        arr = arr.astype(np.float32 if size <= 2 else np.float64)
    elif kind == "f":
        arr = arr.astype(np.float64 if size > 4 else np.float32)
    else:
        raise ImageError(f"{name}: TIFF samples of type {arr.dtype} are not supported")
    if photometric == 0:  # white is zero
        top = np.iinfo(arr.dtype).max if arr.dtype.kind == "u" else 1.0
        arr[:, :, :1] = top - arr[:, :, :1]
    return arr


def _tiff_dpi(tags) -> tuple[float, float] | None:
    try:
        unit = int(tags[296].value) if 296 in tags else 2
        per_inch = {2: 1.0, 3: 2.54}.get(unit)
        x, y = (tags[t].value for t in (282, 283))
        dpi = tuple(float(v[0]) / float(v[1]) * per_inch for v in (x, y))
        return dpi if per_inch and min(dpi) > 0 else None
    except (KeyError, TypeError, ZeroDivisionError, IndexError, ValueError):
        return None
