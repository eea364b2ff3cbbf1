"""Images in and out: every file and format question lives here.

Reading gives a :class:`Picture`: an ``(H, W, C)`` array (colour channels, then alpha when the
image has one) in uint8, uint16, float32 or float64, with EXIF orientation applied.  Writing
turns a result array into bytes of the chosen format and puts them in place atomically.

Pillow reads every format and writes all but PNG.  Plain PNGs are read and written by the
small codec at the end of this module: it is several times faster than Pillow's, writes
smaller files, and keeps 16 bits per channel for colour, which Pillow reduces to 8.
"""

from __future__ import annotations

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
    ".pnm", ".tga", ".ico", ".jp2", ".pcx", ".sgi", ".im", ".dds", ".psd", ".npy",
)  # fmt: skip
PILLOW_DEFAULT_MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS, without importing Pillow
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_PNG_LEVEL = 1  # with adaptive filters and Z_RLE: see encode_png
TEMP_PREFIX = ".poolcli-"  # then the writing process's pid: {TEMP_PREFIX}{pid}-XXXXXXXX.tmp


@dataclass
class Picture:
    """A decoded image: ``pixels`` is (H, W, C), alpha (if any) is the last channel."""

    pixels: np.ndarray
    alpha: bool
    mode: str

    @property
    def colour(self) -> np.ndarray:
        return self.pixels[:, :, :-1] if self.alpha else self.pixels

    @property
    def alpha_plane(self) -> np.ndarray | None:
        return self.pixels[:, :, -1:] if self.alpha else None


def format_for(path: str | None, fmt: str | None) -> str:
    """Output format: from the file extension, else ``--format``, else PNG."""
    if fmt is not None:
        key = fmt.lower().lstrip(".")
        if key not in FORMATS:
            raise UsageError(f"unknown --format '{fmt}' (choose from png, jpg, webp, tiff, bmp, npy)")
    if path and path != "-":
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        if ext:
            if ext not in FORMATS:
                raise UsageError(f"{path}: unknown output extension '.{ext}' (use png, jpg, webp, tiff, bmp or npy)")
            return FORMATS[ext]
    return FORMATS[fmt.lower().lstrip(".")] if fmt else "png"


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
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{source}: is a directory, not an image")
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
    data: bytes, name: str, *, gray: bool = False, max_pixels: int | None = PILLOW_DEFAULT_MAX_PIXELS
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
    """
    if data[:6] == b"\x93NUMPY":
        return _decode_npy(data, name, gray, max_pixels)
    inflated = inflate_png(data, name, max_pixels)
    if inflated is not None:
        return png_picture(*inflated, name, gray=gray)
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        pic = _decode_tiff(data, name, max_pixels)
        if pic is not None:
            return _gray(pic) if gray else pic
    return _decode_pillow(data, name, gray, max_pixels)


def _decode_pillow(data: bytes, name: str, gray: bool, max_pixels: int | None) -> Picture:
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
            im.load()
            if im.getexif().get(0x0112, 1) != 1:  # exif_transpose copies even when nothing turns
                im = ImageOps.exif_transpose(im)
            return _from_pillow(im, gray)
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


def _decode_npy(data: bytes, name: str, gray: bool, max_pixels: int | None) -> Picture:
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
    if arr.ndim == 3 and arr.shape[2] == 0:
        raise ImageError(f"{name}: image has no channels (shape {arr.shape})")
    _check_pixels(arr.shape[1], arr.shape[0], name, max_pixels)
    if arr.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if gray and arr.shape[2] >= 3:
        arr = _luma(arr[:, :, :3])
    return Picture(np.ascontiguousarray(arr), False, "npy")


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, Pillow's weights and rounding (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16."""
    if rgb.dtype.kind == "f":
        return (rgb[:, :, 0:1] * 0.299 + rgb[:, :, 1:2] * 0.587 + rgb[:, :, 2:3] * 0.114).astype(rgb.dtype)
    c = rgb.astype(np.int64)
    y = (c[:, :, 0:1] * 19595 + c[:, :, 1:2] * 38470 + c[:, :, 2:3] * 7471 + 0x8000) >> 16
    return y.astype(rgb.dtype)


def _gray(pic: Picture) -> Picture:
    if pic.pixels.shape[2] < 3:
        return pic
    luma = _luma(pic.pixels[:, :, :3])
    if pic.alpha:
        luma = np.concatenate([luma, pic.pixels[:, :, -1:]], axis=2)
    return Picture(np.ascontiguousarray(luma), pic.alpha, pic.mode)


# --------------------------------------------------------------------------- writing


def to_pixels(result: np.ndarray, dtype, scale: str, colour_channels: int) -> np.ndarray:
    """Round a float (H, W, C) result into ``dtype`` pixels by the ``--scale`` rule.

    ``clip``: round to nearest, clip to the type's range.  ``abs``: absolute value, then clip.
    ``normalize``: one min–max stretch over the colour channels (alpha is only clipped) to the
    full range; a flat image becomes 0.  One compiled pass over the interleaved channels.
    """
    from .api import row_blocks, run_compiled
    from .engine.pixels import colour_range, quantize

    top = float(np.iinfo(dtype).max)
    H, W, C = result.shape
    flat = np.ascontiguousarray(result).reshape(H, W * C)  # interleaved channels, row by row
    out = np.empty(result.shape, dtype)
    rule, lo, gain = {"abs": 1, "normalize": 2}.get(scale, 0), 0.0, 1.0
    if rule == 2:
        nch = row_blocks(H)
        lohi = np.empty((nch, 2), np.float64)
        run_compiled(colour_range, flat, C, colour_channels, nch, lohi)
        lo, hi = float(lohi[:, 0].min()), float(lohi[:, 1].max())
        if hi > lo and np.isfinite(lo) and np.isfinite(hi):
            gain = top / (hi - lo)
        else:
            lo, gain = 0.0, 0.0  # flat: every colour pixel becomes 0
    run_compiled(quantize, flat, C, colour_channels, rule, lo, gain, top, out.reshape(H, W * C))
    return out


def encode(pixels: np.ndarray, alpha: bool, fmt: str, *, png_level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """Encode (H, W, C) uint8/uint16 pixels (alpha last when ``alpha``) as ``fmt`` bytes.

    Image formats hold 1 to 4 channels (gray, gray + alpha, RGB, RGBA), JPEG only 1 or 3; a
    result of other shapes (a 5-channel ``.npy``, two channels without alpha to JPEG) raises
    :class:`ImageError`: that file fails alone, and ``--format npy`` writes it.
    """
    if fmt == "npy":
        raise ValueError("npy output is written with encode_npy")
    C = pixels.shape[2]
    if fmt == "jpg" and alpha:  # JPEG has no alpha channel: drop it
        pixels, alpha, C = pixels[:, :, :-1], False, C - 1
    if not 1 <= C <= 4 or (fmt == "jpg" and C not in (1, 3)):
        raise ImageError(
            f"a {C}-channel result cannot be written as {fmt.upper()} (it holds gray, gray + alpha, RGB or "
            "RGBA; JPEG gray or RGB); use --format npy for the raw result"
        )
    if pixels.dtype == np.uint16 and fmt not in ("png", "tiff"):
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)  # format holds 8 bits
    if fmt == "png":
        return encode_png(pixels, png_level)
    try:
        return _encode_pillow(pixels, fmt)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # what Pillow raises for modes it cannot write
        raise ImageError(f"cannot write this {C}-channel result as {fmt.upper()} ({_one_line(str(exc))})") from None


def _encode_pillow(pixels: np.ndarray, fmt: str) -> bytes:
    from PIL import Image  # PNG does without it: batch workers skip the import

    C = pixels.shape[2]
    buf = io.BytesIO()
    if pixels.dtype == np.uint16:  # fmt is tiff here
        if C == 1:
            Image.fromarray(np.ascontiguousarray(pixels[:, :, 0])).save(buf, "TIFF", compression="tiff_deflate")
            return buf.getvalue()
        return encode_tiff16(pixels)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[C]
    if fmt in ("bmp", "webp") and mode == "LA":  # neither has gray + alpha
        mode, pixels = "RGBA", pixels[:, :, [0, 0, 0, 1]]
    im = Image.fromarray(np.ascontiguousarray(pixels if C > 1 else pixels[:, :, 0]), mode)
    if fmt == "jpg":
        im.save(buf, "JPEG", quality=92)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=90)
    elif fmt == "tiff":
        im.save(buf, "TIFF", compression="tiff_deflate")
    else:
        im.save(buf, "BMP")
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

        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    folder = os.path.dirname(os.path.abspath(dest))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".tmp", dir=folder)
    except FileNotFoundError:
        raise ImageError(f"{dest}: output folder does not exist") from None
    except OSError as exc:
        raise ImageError(f"{dest}: cannot write to the output folder ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
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


def remove_stale_temps(folder: str) -> list[str]:
    """Delete the temporary files in ``folder`` left by poolcli processes that died hard
    (SIGKILL, power loss) while writing; their names carry the writer's pid, and a file whose
    writer still runs is left alone.  Returns the paths removed."""
    import glob

    removed = []
    for tmp in glob.glob(os.path.join(glob.escape(folder), f"{TEMP_PREFIX}*-*.tmp")):
        pid = os.path.basename(tmp)[len(TEMP_PREFIX) :].split("-", 1)[0]
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
_PNG_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


def inflate_png(data: bytes, name: str, max_pixels: int | None) -> tuple[tuple[int, int, int, int], bytes] | None:
    """The first half of decoding a plain PNG (8 or 16 bits; gray, gray+alpha, RGB, RGBA; not
    interlaced), which needs no compiled code: the pixel limit checked, every chunk's CRC
    checked and the image data inflated; :func:`png_picture` is the second half.

    Returns ((width, height, bit depth, colour type), filtered scanlines), or None when
    ``data`` is not such a PNG and Pillow should read it (palettes, tRNS transparency, EXIF,
    interlacing, 1–4-bit depths).  This path is faster than Pillow's and keeps 16-bit colour,
    which Pillow reduces to 8 bits; a 16-bit colour PNG that it cannot read is an error, not a
    silent loss.  It releases the GIL while inflating, so it can run on a thread.
    """
    if data[:8] != PNG_SIGNATURE or len(data) <= 33 or data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", data[16:24])
    _check_pixels(w, h, name, max_pixels)
    return png_scanlines(data, name)


def png_scanlines(data: bytes, name: str) -> tuple[tuple[int, int, int, int], bytes] | None:
    """:func:`inflate_png` without the signature and pixel-limit checks."""
    try:
        w, h, depth, colour_type, method, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
        if method or filtering or interlace > 1 or w > 0x7FFFFFFF or h > 0x7FFFFFFF:
            raise ImageError(f"{name}: truncated or corrupt image (illegal PNG header)")
        deep_colour = depth == 16 and colour_type in (2, 4, 6)
        if interlace and deep_colour:
            raise ImageError(f"{name}: interlaced 16-bit colour PNG is not supported; re-save it non-interlaced")
        if depth not in (8, 16) or colour_type not in _PNG_CHANNELS or interlace:
            return None
        pos, idat = 8, []
        while pos < len(data):
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            body = data[pos + 8 : pos + 8 + length]
            crc = data[pos + 8 + length : pos + 12 + length]
            if len(body) != length or len(crc) != 4:
                raise ImageError(f"{name}: truncated or corrupt image (chunk {kind.decode('latin-1')} cut short)")
            if _crc32(body, _crc32(kind)) != struct.unpack(">I", crc)[0]:
                raise ImageError(f"{name}: truncated or corrupt image (CRC error in {kind.decode('latin-1')} chunk)")
            if kind in (b"tRNS", b"eXIf", b"PLTE") and not deep_colour:
                return None  # transparency key, orientation or palette: Pillow knows them
            if kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
            pos += 12 + length
        if not idat:
            raise ImageError(f"{name}: truncated or corrupt image (no image data)")
        # inflate stops at the bytes the header announces, however much the stream holds
        expected = (w * _PNG_CHANNELS[colour_type] * depth // 8 + 1) * h
        raw = inflate_bounded(b"".join(idat), expected, name)
    except (struct.error, OverflowError, *_ZLIB_ERRORS) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({exc})") from None
    return (w, h, depth, colour_type), raw


def inflate_bounded(stream: bytes, expected: int, name: str) -> bytes:
    """The first ``expected`` bytes that a zlib ``stream`` inflates to (never more, whatever
    the stream holds, as libpng does); ImageError if it holds fewer."""
    if expected > (1 << 62):
        raise ImageError(f"{name}: truncated or corrupt image (the header announces an impossible size)")
    raw = (_fast_zlib or zlib).decompressobj().decompress(stream, expected)
    if len(raw) < expected:
        raise ImageError(f"{name}: truncated or corrupt image (image data cut short)")
    return raw


def png_picture(header: tuple[int, int, int, int], raw, name: str, *, gray: bool = False) -> Picture:
    """The second half of decoding a plain PNG (:func:`inflate_png`): the row filters of the
    inflated scanlines ``raw`` (bytes or a buffer) undone by compiled code, as a
    :class:`Picture` (one luma channel with ``gray``, as :func:`decode`)."""
    from .api import run_compiled
    from .engine.png import unfilter

    w, h, depth, colour_type = header
    C = _PNG_CHANNELS[colour_type]
    bpp = C * depth // 8
    stride = w * bpp
    if len(raw) < (stride + 1) * h:
        raise ImageError(f"{name}: truncated or corrupt image (image data cut short)")
    rows = np.frombuffer(raw, np.uint8, (stride + 1) * h).reshape(h, stride + 1)
    rows.flags.writeable = False  # one compiled signature, whatever buffer the bytes are in
    if rows[:, 0].max() > 4:
        raise ImageError(f"{name}: truncated or corrupt image (bad PNG filter type)")
    plain = np.empty((h, stride), np.uint8)
    run_compiled(unfilter, rows, bpp, plain)
    if depth == 16:
        pixels = plain.view(">u2").reshape(h, w, C).astype(np.uint16)
    else:
        pixels = plain.reshape(h, w, C)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[C]
    pic = Picture(pixels, C in (2, 4), mode + (";16" if depth == 16 else ""))
    return _gray(pic) if gray else pic


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray, level: int = DEFAULT_PNG_LEVEL) -> bytes:
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
    idat = _deflate(scanlines, level)  # a list of byte strings, joined once below
    del scanlines
    size = sum(len(b) for b in idat)
    crc = _crc32(b"IDAT")
    for b in idat:
        crc = _crc32(b, crc)
    head = PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + struct.pack(">I", size) + b"IDAT"
    tail = struct.pack(">I", crc & 0xFFFFFFFF) + _png_chunk(b"IEND", b"")
    return b"".join([head, *idat, tail])


PNG_THREADS = os.cpu_count() or 1  # batch workers set 1: their siblings use the other cores
_PIECE = 1 << 21  # bytes of scanlines per independently compressed piece


def _deflate(scanlines: np.ndarray, level: int) -> list[bytes]:
    """A zlib stream of ``scanlines`` as a list of parts, compressed on up to PNG_THREADS threads."""
    data = memoryview(scanlines.reshape(-1))
    pieces = [data[i : i + _PIECE] for i in range(0, len(data), _PIECE)] or [data]

    def compressor():
        if 1 <= level <= 3 and _fast_zlib is not None:
            return _fast_zlib.compressobj(level, zlib.DEFLATED, -15, 9)
        strategy = zlib.Z_RLE if 1 <= level <= 3 else zlib.Z_DEFAULT_STRATEGY
        return zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)

    def squeeze(k: int) -> bytes:
        co = compressor()
        last = k == len(pieces) - 1
        return co.compress(pieces[k]) + co.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    if PNG_THREADS > 1 and len(pieces) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(PNG_THREADS, len(pieces))) as pool:
            body = list(pool.map(squeeze, range(len(pieces))))
    else:
        body = [squeeze(k) for k in range(len(pieces))]
    return [bytes([0x78, 0x01]), *body, struct.pack(">I", _adler32(data) & 0xFFFFFFFF)]


# --------------------------------------------------------------------------- 16-bit colour TIFF


def encode_tiff16(pixels: np.ndarray) -> bytes:
    """A baseline TIFF of (H, W, C) uint16 pixels, C = 2 (gray+alpha), 3 (RGB) or 4 (RGBA).

    Pillow writes 16 bits per channel for grayscale only; this writes one deflate-compressed
    strip, little-endian, with the alpha channel marked as unassociated.
    """
    h, w, C = pixels.shape
    body = zlib.compress(np.ascontiguousarray(pixels, dtype="<u2").tobytes(), 6)
    bits_at = 8  # the BitsPerSample array, then the strip, then the IFD
    strip_at = bits_at + 2 * C
    ifd_at = strip_at + len(body) + (len(body) & 1)
    tags = [
        (256, 4, 1, w), (257, 4, 1, h), (258, 3, C, bits_at), (259, 3, 1, 8),
        (262, 3, 1, 2 if C >= 3 else 1), (273, 4, 1, strip_at), (277, 3, 1, C), (278, 4, 1, h),
        (279, 4, 1, len(body)), (284, 3, 1, 1),
    ]  # fmt: skip
    if C in (2, 4):
        tags.append((338, 3, 1, 2))  # ExtraSamples: unassociated alpha
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        if tag == 258 and C == 2:  # two SHORTs fit in the entry itself
            packed = struct.pack("<HH", 16, 16)
        elif kind == 3 and count == 1:
            packed = struct.pack("<H", value) + b"\0\0"
        else:
            packed = struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    head = b"II*\0" + struct.pack("<I", ifd_at) + struct.pack(f"<{C}H", *([16] * C))
    return head + body + b"\0" * (len(body) & 1) + ifd


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
    return TiffIFD(data, name, end, entries)


def _decode_tiff(data: bytes, name: str, max_pixels: int | None) -> Picture | None:
    """Read a 16-bit TIFF that Pillow would misread: colour (Pillow keeps 8 bits of it), or
    signed or floating-point samples (read as float32, never as wrapped integers); chunky,
    uncompressed or deflate, predictor 1 or 2.  Every other TIFF goes to Pillow (None), after
    its tag table has been checked.  Inflating stops at the bytes the header announces."""
    ifd = tiff_ifd(data, name)
    C = ifd.values(277, default=[1])[0]
    if not 1 <= C <= 64:
        return None  # Pillow says what is wrong with it
    fmt = ifd.values(339, most=64, default=[1] * C)[0]
    if ifd.values(258, most=64, default=[1]) != [16] * C or fmt not in (1, 2, 3):
        return None
    if C == 1 and fmt == 1:
        return None  # 16-bit gray: Pillow keeps it (I;16)
    compression = ifd.values(259, default=[1])[0]
    if compression not in (1, 8, 32946) or ifd.values(284, default=[1])[0] != 1 or 322 in ifd.entries:
        return None  # other compressions, planar or tiled layouts: Pillow's business
    photometric = ifd.values(262, default=[2 if C >= 3 else 1])[0]
    if photometric not in (1, 2) or (photometric == 1 and C > 2) or (photometric == 2 and C < 3):
        return None
    if 256 not in ifd.entries or 257 not in ifd.entries:
        raise ImageError(f"{name}: truncated or corrupt image (TIFF without a width or height)")
    w, h = ifd.values(256)[0], ifd.values(257)[0]
    _check_pixels(w, h, name, max_pixels)
    rps = min(ifd.values(278, default=[h])[0] or h, h)
    n_strips = -(-h // rps)
    offsets = ifd.values(273, most=n_strips)
    sizes = ifd.values(279, most=n_strips)
    if offsets is None or sizes is None or len(offsets) != n_strips or len(sizes) != n_strips:
        raise ImageError(f"{name}: truncated or corrupt image (TIFF strips do not cover the image)")
    row_bytes = w * C * 2
    plain = bytearray(row_bytes * h)
    data = ifd.data
    for k, (off, size) in enumerate(zip(offsets, sizes)):
        strip = data[off : off + size]
        if len(strip) != size:
            raise ImageError(f"{name}: truncated or corrupt image (TIFF strip cut short)")
        want = row_bytes * (min(h, (k + 1) * rps) - k * rps)
        if compression != 1:
            try:
                strip = inflate_bounded(strip, want, name)
            except _ZLIB_ERRORS as exc:
                raise ImageError(f"{name}: truncated or corrupt image ({exc})") from None
        elif len(strip) < want:
            raise ImageError(f"{name}: truncated or corrupt image (TIFF data cut short)")
        plain[k * rps * row_bytes : k * rps * row_bytes + want] = strip[:want]
    kind = {1: "u2", 2: "i2", 3: "f2"}[fmt]
    pixels = np.frombuffer(plain, ifd.end + kind).reshape(h, w, C)
    if ifd.values(317, default=[1])[0] == 2:  # horizontal differencing (integer samples)
        pixels = np.cumsum(pixels.astype(kind), axis=1, dtype=kind)
    pixels = pixels.astype(np.uint16 if fmt == 1 else np.float32)
    alpha = C in (2, 4)
    keep = 4 if C >= 4 else (3 if C == 3 else C)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[keep] + (";16" if fmt == 1 else ";F")
    return Picture(np.ascontiguousarray(pixels[:, :, :keep]), alpha and keep in (2, 4), mode)
