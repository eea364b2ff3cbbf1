"""PNG, read and written by poolcli's own codec, whole and band by band.

Every legal PNG is read here (contract §2): every colour type and bit depth, Adam7, a tRNS key
made alpha at every depth, and every chunk's CRC checked (Pillow checks neither for 1–4-bit
images).  It is several times faster than Pillow's, writes smaller files, and keeps 16 bits per
channel for colour, which Pillow reduces to 8.  :class:`PngRows` decodes a plain PNG (not
interlaced, upright) band by band: IDAT chunks read and CRC-checked as they come, inflated up to
the bytes the band needs (never past what the header announces), row filters undone with the
previous band's last row in front.  :class:`PngSink` filters and deflates each band as one or
more IDAT chunks of one zlib stream.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from .. import topixels
from ..engine.runtime import run_loop
from ..errors import ImageError
from ..rows import Rows
from .deflate import ZLIB_ERRORS, Inflater, adler32, crc32, deflate_pieces, inflate_bounded, inflating, zlib_stream
from .exif import apply_orientation, exif_orientation
from .picture import MODE_OF, Meta, NotStreamable, Picture, check_page, check_pixels, to_gray
from .registry import PNG_SIGNATURE as SIGNATURE
from .threads import Behind

DEFAULT_LEVEL = 1  # with adaptive filters and Z_RLE: see encode_png
_READ = 1 << 20  # bytes of compressed data read from the file at a time


_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}  # the legal pairs


_PNG_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


MAX_METADATA = 32 << 20  # bytes of one inflated metadata chunk (an ICC profile) at most


def passes(w: int, h: int, interlace: int):
    """(x0, y0, dx, dy, pass width, pass height) of each reduced image with pixels in it."""
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        pw, ph = -(-(w - x0) // dx), -(-(h - y0) // dy)
        if pw > 0 and ph > 0:
            yield x0, y0, dx, dy, pw, ph


def decode(data: bytes, name: str, *, gray: bool = False, max_pixels: int | None = None, page: int = 0,
           layout: str | None = None) -> Picture:  # fmt: skip
    """A PNG file's bytes as a :class:`Picture` (a later APNG frame composed by Pillow, as
    Pillow composes it)."""
    from . import pillow

    inflated = inflate_png(data, name, max_pixels)
    if inflated is None:  # the signature, but no PNG header after it: Pillow says what it is
        return pillow.decode(data, name, gray=gray, max_pixels=max_pixels, page=page)
    check_page(name, page, png_frames(inflated[2]))
    if page == 0:  # the default image: poolcli's own decoder
        return png_picture(*inflated, name, gray=gray)
    del inflated  # a later APNG frame, composed as Pillow composes it
    return pillow.decode(data, name, gray=gray, max_pixels=max_pixels, page=page)


def size(head: bytes, path: str = "") -> tuple[int, int] | None:
    """(width, height) from the first bytes of a PNG file."""
    return struct.unpack(">II", head[16:24]) if len(head) >= 24 else None


def colour(head: bytes, path: str = "") -> int | None:
    """How many colour channels (alpha left out) the PNG decodes to, from its IHDR."""
    return (1 if head[25] in (0, 4) else 3) if len(head) >= 26 else None


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
    if data[:8] != SIGNATURE or len(data) <= 33 or data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", data[16:24])
    check_pixels(w, h, name, max_pixels)
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
        expected = sum((layout.rowbytes(pw) + 1) * ph for *_, pw, ph in passes(w, h, interlace))
        raw = inflate_bounded(b"".join(idat), expected, name)
    except (struct.error, OverflowError, *ZLIB_ERRORS) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({exc})") from None
    return (w, h, depth, colour_type), raw, extras


def png_extras(data: bytes, name: str) -> dict:
    """What :func:`inflate_png` would say besides the scanlines, without inflating them."""
    try:
        walked = _png_walk(data, name)
    except (struct.error, OverflowError, *ZLIB_ERRORS) as exc:
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
    if crc32(body, crc32(kind)) != struct.unpack(">I", crc)[0]:
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
        d = inflating.decompressobj()
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


def png_picture(header: tuple[int, int, int, int], raw, extras: dict, name: str, *, gray: bool = False) -> Picture:
    """The second half of decoding a PNG (:func:`inflate_png`): the row filters of the inflated
    scanlines ``raw`` (bytes or a buffer) undone by the engine's loop, pass by pass for Adam7; the
    samples unpacked and expanded (:func:`png_pixels`); the eXIf orientation applied; as a
    :class:`Picture` (one luma channel with ``gray``, as :func:`decode`)."""
    w, h, depth, colour_type = header
    layout = PngLayout(depth, colour_type, extras)
    buf = np.frombuffer(raw, np.uint8)
    samples, at = None, 0
    for x0, y0, dx, dy, pw, ph in passes(w, h, extras.get("interlace", 0)):
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
    mode = MODE_OF[C]
    pic = Picture(np.ascontiguousarray(pixels), layout.alpha, mode + (";16" if depth == 16 else ""), meta,
                  png_frames(extras))  # fmt: skip
    return to_gray(pic) if gray else pic


def png_unfilter(rows: np.ndarray, layout: PngLayout, name: str) -> np.ndarray:
    """Scanlines (rows, 1 + row bytes), filter byte first, with their filters undone."""
    if len(rows) and rows[:, 0].max() > 4:
        raise ImageError(f"{name}: truncated or corrupt image (bad PNG filter type)")
    rows.flags.writeable = False  # one compiled signature, whatever buffer the bytes are in
    plain = np.empty((rows.shape[0], rows.shape[1] - 1), np.uint8)
    run_loop("png", "unfilter", rows, layout.step, plain)
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


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def meta_chunks(meta: Meta | None) -> bytes:
    """iCCP, pHYs and eXIf chunks for ``meta`` (they go before the image data)."""
    if meta is None:
        return b""
    out = b""
    if meta.icc:
        out += chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(meta.icc, 9))
    if meta.dpi:
        out += chunk(b"pHYs", struct.pack(">IIB", *(round(v / 0.0254) for v in meta.dpi), 1))
    if meta.exif:
        body = meta.exif[6:] if meta.exif.startswith(b"Exif\0\0") else meta.exif
        out += chunk(b"eXIf", body)
    return out


def encode_png(
    pixels: np.ndarray, level: int = DEFAULT_LEVEL, meta: Meta | None = None, threads: int | None = None
) -> bytes:
    """PNG bytes of (H, W, C) uint8 or uint16 pixels (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).

    Rows get libpng's adaptive filter choice (compiled, in parallel); the deflate stream is
    compressed in independent pieces on several threads, joined with sync flushes as pigz
    does.  Levels 1–3 use ISA-L's fast deflate (zlib's run-length strategy without it), which
    on photographs is several times faster than Pillow's default level 6 at a smaller size
    (benchmarks/RESULTS.md); levels 4–9 use zlib's default strategy.
    """
    h, w, C = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    bpp = C * depth // 8
    raw = np.ascontiguousarray(pixels, dtype=">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(h, w * bpp)
    scanlines = np.empty((h, w * bpp + 1), np.uint8)
    run_loop("png", "filter_rows", raw, bpp, scanlines)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, _PNG_COLOUR_TYPE[C], 0, 0, 0)
    idat = zlib_stream(memoryview(scanlines.reshape(-1)), level, threads or os.cpu_count() or 1)  # joined below
    del scanlines
    size = sum(len(b) for b in idat)
    crc = crc32(b"IDAT")
    for b in idat:
        crc = crc32(b, crc)
    head = SIGNATURE + chunk(b"IHDR", ihdr) + meta_chunks(meta) + struct.pack(">I", size) + b"IDAT"
    tail = struct.pack(">I", crc & 0xFFFFFFFF) + chunk(b"IEND", b"")
    return b"".join([head, *idat, tail])


def encode(pixels: np.ndarray, meta: Meta, *, level: int = DEFAULT_LEVEL, threads: int | None = None, **_) -> bytes:
    """:func:`encode_png`, as the codec registry calls every format's encoder."""
    return encode_png(pixels, level, meta, threads)


# --------------------------------------------------------------------------- band by band


class PngRows(Rows):
    """The rows of a plain PNG file, decoded band by band."""

    def __init__(self, path: str, name: str, *, gray: bool = False):
        self.name, self.gray = name, gray
        self.fh = open(path, "rb")
        try:
            self._walk()
        except BaseException:
            self.fh.close()
            raise
        self.rewind()

    def _walk(self) -> None:
        """Every chunk but the image data read and checked; where the IDAT chunks are."""
        fh, name = self.fh, self.name
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(33)
        if head[:8] != SIGNATURE or len(head) < 33 or head[12:16] != b"IHDR":
            raise NotStreamable
        header = png_header(head[16:29], name)
        if header[4]:  # Adam7: whole
            raise NotStreamable
        self.w, self.h, self.depth, colour_type, _ = header
        extras: dict = {}
        self.idat: list[tuple[int, int, bytes]] = []  # (offset, length, crc) of every IDAT chunk
        pos = 8
        while pos < size:
            fh.seek(pos)
            top = fh.read(8)
            if len(top) < 8:
                raise ImageError(f"{name}: truncated or corrupt image (unpack requires a buffer of 8 bytes)")
            length, kind = struct.unpack(">I4s", top)
            if pos + 12 + length > size:
                raise ImageError(f"{name}: truncated or corrupt image (chunk {kind.decode('latin-1')} cut short)")
            if kind == b"IDAT":
                fh.seek(pos + 8 + length)
                self.idat.append((pos + 8, length, fh.read(4)))
                png_saw_idat(extras)
            else:
                body = fh.read(length)
                check_chunk(kind, body, fh.read(4), name)
                if kind == b"IEND":
                    break
                png_extra(kind, body, colour_type, extras, name)
            pos += 12 + length
        if not self.idat:
            raise ImageError(f"{name}: truncated or corrupt image (no image data)")
        check_palette(colour_type, extras, name)
        exif = None
        if "exif" in extras:
            exif = b"Exif\0\0" + extras["exif"]
            if exif_orientation(exif) != 1:
                raise NotStreamable  # turned upright: whole
            exif = apply_orientation(np.zeros((1, 1, 1), np.uint8), exif)[1]
        self.meta = Meta(extras.get("icc"), extras.get("dpi"), exif)
        self.extras, self.frames = extras, png_frames(extras)
        self.layout = layout = PngLayout(self.depth, colour_type, extras)
        self.rowbytes, self.dtype, self.alpha = layout.rowbytes(self.w), layout.dtype, layout.alpha
        channels = layout.channels
        if topixels.gray_luma(self.gray, channels):
            channels = 1 + self.alpha
        self.height, self.width, self.channels = self.h, self.w, channels

    def rewind(self) -> None:
        self._stop()
        self.at = 0
        self.prev = None  # the last unfiltered row of the band before
        self.inflater = Inflater(self._compressed(), self.h * (self.rowbytes + 1), self.name)
        self.chunk = memoryview(b"")

    def _stop(self) -> None:
        inflater = getattr(self, "inflater", None)
        if inflater is not None:
            inflater.stop()

    def _compressed(self):
        """The image data, piece by piece, each IDAT chunk's CRC checked at its end."""
        for offset, length, crc in self.idat:
            self.fh.seek(offset)
            check = crc32(b"IDAT")
            left = length
            while left:
                piece = self.fh.read(min(_READ, left))
                if not piece:
                    raise ImageError(f"{self.name}: truncated or corrupt image (chunk IDAT cut short)")
                left -= len(piece)
                check = crc32(piece, check)
                yield piece
            if check != struct.unpack(">I", crc)[0]:
                raise ImageError(f"{self.name}: truncated or corrupt image (CRC error in IDAT chunk)")

    def _inflate(self, n: int) -> bytes:
        """The next ``n`` bytes of scanlines (inflated ahead on a thread)."""
        parts, have = [], 0
        while have < n:
            if not len(self.chunk):
                self.chunk = memoryview(self.inflater.take())
                if not len(self.chunk):
                    raise ImageError(f"{self.name}: truncated or corrupt image (image data cut short)")
            part = self.chunk[: n - have]
            self.chunk = self.chunk[len(part) :]
            parts.append(part)
            have += len(part)
        return parts[0].tobytes() if len(parts) == 1 else b"".join(parts)

    def read(self, n: int) -> np.ndarray:
        k = min(max(0, n), self.h - self.at)
        if k == 0:
            return np.empty((0, self.width, self.channels), self.dtype)
        raw = np.frombuffer(self._inflate(k * (self.rowbytes + 1)), np.uint8).reshape(k, self.rowbytes + 1)
        if self.prev is not None:  # the row before, unfiltered, in front (filter 0: taken as it is)
            rows = np.empty((k + 1, self.rowbytes + 1), np.uint8)
            rows[0, 0] = 0
            rows[0, 1:] = self.prev
            rows[1:] = raw
        else:
            rows = raw.copy()
        plain = png_unfilter(rows, self.layout, self.name)
        if self.prev is not None:
            plain = plain[1:]
        self.prev = plain[-1].copy()
        self.at += k
        if self.at == self.h and self.inflater.take():  # the rest of the file checked, as whole
            raise ImageError(f"{self.name}: truncated or corrupt image (image data past the last row)")
        pixels = png_pixels(png_samples(plain, self.w, self.layout), self.layout, self.extras)
        pixels = np.ascontiguousarray(pixels)
        return topixels.gray(pixels, self.alpha) if topixels.gray_luma(self.gray, self.layout.channels) else pixels

    def close(self) -> None:
        self._stop()
        self.fh.close()


class PngSink(Behind):
    """Writes a PNG band by band: each band filtered with the row before it here, then
    deflated and written on a thread while the next band is computed."""

    def __init__(self, fh, width: int, height: int, channels: int, dtype, level: int = DEFAULT_LEVEL, meta=None,
                 threads: int | None = None):  # fmt: skip
        self.fh, self.level, self.threads = fh, level, max(1, threads or os.cpu_count() or 1)
        self.depth = 16 if np.dtype(dtype) == np.uint16 else 8
        self.bpp = channels * self.depth // 8
        self.prev = None
        self.adler = 1
        self.first = True
        ihdr = struct.pack(">IIBBBBB", width, height, self.depth, _PNG_COLOUR_TYPE[channels], 0, 0, 0)
        fh.write(SIGNATURE + chunk(b"IHDR", ihdr) + meta_chunks(meta))
        self._start("poolcli-deflate", 2)

    def write(self, pixels: np.ndarray) -> None:
        h, w, C = pixels.shape
        raw = np.ascontiguousarray(pixels, dtype=">u2" if self.depth == 16 else np.uint8).view(np.uint8)
        raw = raw.reshape(h, w * self.bpp)
        if self.prev is not None:  # filters look one row up: the band before's last row
            raw = np.concatenate([self.prev[None, :], raw], axis=0)
        scanlines = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
        run_loop("png", "filter_rows", raw, self.bpp, scanlines)
        if self.prev is not None:
            scanlines = scanlines[1:]
        self.prev = raw[-1].copy()
        self._hand(scanlines)

    def _consume(self, items) -> None:
        for scanlines in items:
            data = memoryview(scanlines.reshape(-1))
            self.adler = adler32(data, self.adler)
            body = deflate_pieces(data, self.level, self.threads, last=False)
            if self.first:
                body.insert(0, bytes([0x78, 0x01]))
                self.first = False
            self._idat(body)

    def _idat(self, parts: list[bytes]) -> None:
        crc = crc32(b"IDAT")
        for p in parts:
            crc = crc32(p, crc)
        self.fh.write(struct.pack(">I", sum(len(p) for p in parts)) + b"IDAT")
        for p in parts:
            self.fh.write(p)
        self.fh.write(struct.pack(">I", crc & 0xFFFFFFFF))

    def close(self) -> None:
        self._finish()
        end = deflate_pieces(memoryview(b""), self.level, 1, last=True)
        head = [bytes([0x78, 0x01])] if self.first else []
        self._idat([*head, *end, struct.pack(">I", self.adler & 0xFFFFFFFF)])
        self.fh.write(chunk(b"IEND", b""))


Rows, Sink = PngRows, PngSink  # the registry's names for the banded reader and writer
