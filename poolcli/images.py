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


def read_bytes(source: str) -> bytes:
    """The bytes of a file, or of standard input for '-'; ImageError naming the file if it fails."""
    if source == "-":
        import sys

        data = sys.stdin.buffer.read()
        if not data:
            raise ImageError("<stdin>: no data on standard input")
        return data
    try:
        with open(source, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ImageError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{source}: is a directory, not an image") from None
    except PermissionError:
        raise ImageError(f"{source}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{source}: empty file (0 bytes)")
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
    if data[:4] in (b"II*\0", b"MM\0*"):
        pic = _decode_tiff16(data, name, max_pixels)
        if pic is not None:
            return _gray(pic) if gray else pic
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # the limit is ours (--max-pixels), checked before decoding
    try:
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
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError) as exc:
        detail = str(exc).strip().rstrip(".") or exc.__class__.__name__
        raise ImageError(f"{name}: truncated or corrupt image ({detail})") from None


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
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageError(f"{name}: not a readable .npy array ({exc})") from None
    if arr.ndim not in (2, 3) or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageError(
            f"{name}: a .npy image must be a numeric (H, W) or (H, W, C) array, got {arr.dtype} {arr.shape}"
        )
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
    """Encode (H, W, C) uint8/uint16 pixels (alpha last when ``alpha``) as ``fmt`` bytes."""
    if fmt == "npy":
        raise ValueError("npy output is written with encode_npy")
    C = pixels.shape[2]
    if pixels.dtype == np.uint16 and fmt not in ("png", "tiff"):
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)  # format holds 8 bits
    if fmt == "png":
        return encode_png(pixels, png_level)
    from PIL import Image  # PNG does without it: batch workers skip the import

    buf = io.BytesIO()
    if pixels.dtype == np.uint16:  # fmt is tiff here
        if C == 1:
            Image.fromarray(np.ascontiguousarray(pixels[:, :, 0])).save(buf, "TIFF", compression="tiff_deflate")
            return buf.getvalue()
        return encode_tiff16(pixels)
    if fmt == "jpg" and alpha:  # JPEG has no alpha channel: drop it
        pixels, alpha, C = pixels[:, :, :-1], False, C - 1
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[C]
    if fmt == "bmp" and mode == "LA":
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
        w, h, depth, colour_type, _c, _f, interlace = struct.unpack(">IIBBBBB", data[16:29])
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
        raw = (_fast_zlib or zlib).decompress(b"".join(idat))
    except (struct.error, *_ZLIB_ERRORS) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({exc})") from None
    return (w, h, depth, colour_type), raw


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

_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4)}  # SHORT, LONG


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


def _decode_tiff16(data: bytes, name: str, max_pixels: int | None) -> Picture | None:
    """Read a 16-bit colour TIFF (chunky, uncompressed or deflate, predictor 1 or 2), else None.

    Pillow reads 16-bit colour TIFFs as 8-bit, so these are read here to keep their precision;
    every other TIFF (and anything this reader does not know) goes to Pillow.
    """
    try:
        end = "<" if data[:2] == b"II" else ">"
        (first,) = struct.unpack(end + "I", data[4:8])
        (count,) = struct.unpack(end + "H", data[first : first + 2])
        tags: dict[int, list[int]] = {}
        for k in range(count):
            tag, kind, n, raw = struct.unpack(end + "HHI4s", data[first + 2 + 12 * k : first + 14 + 12 * k])
            if kind not in _TIFF_TYPES:
                continue
            code, size = _TIFF_TYPES[kind]
            blob = raw if n * size <= 4 else data[struct.unpack(end + "I", raw)[0] :][: n * size]
            tags[tag] = list(struct.unpack(f"{end}{n}{code}", blob[: n * size]))
        C = tags.get(277, [1])[0]
        if C < 2 or tags.get(258, [0]) != [16] * C:
            return None
        if tags.get(259, [1])[0] not in (1, 8, 32946) or tags.get(284, [1])[0] != 1 or 322 in tags:
            return None  # other compressions, planar or tiled layouts: Pillow's business
        w, h = tags[256][0], tags[257][0]
        _check_pixels(w, h, name, max_pixels)
        chunks = []
        for off, size in zip(tags[273], tags[279]):
            strip = data[off : off + size]
            if len(strip) != size:
                raise ImageError(f"{name}: truncated or corrupt image (TIFF strip cut short)")
            chunks.append(zlib.decompress(strip) if tags[259][0] != 1 else strip)
        plain = b"".join(chunks)
        if len(plain) < w * h * C * 2:
            raise ImageError(f"{name}: truncated or corrupt image (TIFF data cut short)")
        pixels = np.frombuffer(plain, end + "u2", w * h * C).reshape(h, w, C).astype(np.uint16)
        if tags.get(317, [1])[0] == 2:  # horizontal differencing
            pixels = np.cumsum(pixels, axis=1, dtype=np.uint16)
    except (struct.error, zlib.error, KeyError, IndexError, ValueError) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({exc.__class__.__name__})") from None
    photometric = tags.get(262, [2])[0]
    if photometric not in (1, 2):
        return None
    alpha = C in (2, 4)
    if photometric == 1 and C > 2 or photometric == 2 and C < 3:
        return None
    keep = 4 if C >= 4 else (3 if C == 3 else 2)
    mode = {2: "LA", 3: "RGB", 4: "RGBA"}[keep] + ";16"
    return Picture(np.ascontiguousarray(pixels[:, :, :keep]), alpha, mode)
