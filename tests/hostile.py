"""Builders of hostile and malformed image files, for the hostile-input suite and the fuzzer.

Every builder returns bytes; nothing here touches the disk.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(width: int, height: int, depth: int, colour_type: int, idat: bytes, *, extra: list[bytes] = (),
        interlace: int = 0, method: int = 0) -> bytes:  # fmt: skip
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, method, 0, interlace)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + b"".join(extra) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(kind, body) of every chunk of a well-formed PNG."""
    pos, out = 8, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def png_from_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return PNG_SIGNATURE + b"".join(chunk(k, b) for k, b in chunks)


def inflation_bomb_png(inflated: int) -> bytes:
    """A 2×2 gray PNG whose image data inflates to ``inflated`` bytes (6 are the image)."""
    co = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    parts = [co.compress(zeros) for _ in range(inflated >> 20)]
    return png(2, 2, 8, 0, b"".join(parts) + co.flush())


def tiff(width: int, height: int, tags: list[tuple[int, int, int, bytes | int]], blobs: bytes = b"",
         little: bool = True) -> bytes:  # fmt: skip
    """A classic TIFF: header, then ``blobs`` at offset 8, then one IFD of ``tags``
    (tag, type, count, value: an int that fits the entry, or a 4-byte offset packed by the caller)."""
    end = "<" if little else ">"
    ifd_at = 8 + len(blobs) + (len(blobs) & 1)
    head = (b"II*\0" if little else b"MM\0*") + struct.pack(end + "I", ifd_at)
    entries = b""
    for tag, kind, count, value in sorted(tags):
        if isinstance(value, bytes):
            packed = value.ljust(4, b"\0")
        elif kind == 3 and count == 1:
            packed = struct.pack(end + "HH", value, 0)
        else:
            packed = struct.pack(end + "I", value)
        entries += struct.pack(end + "HHI", tag, kind, count) + packed
    ifd = struct.pack(end + "H", len(tags)) + entries + struct.pack(end + "I", 0)
    return head + blobs + b"\0" * (len(blobs) & 1) + ifd


def tiff16(pixels: np.ndarray, *, sample_format: int = 1, compress: bool = True, rows_per_strip: int | None = None,
           predictor: int = 1) -> bytes:  # fmt: skip
    """A little-endian chunky 16-bit TIFF of (H, W, C) uint16/int16/float16 ``pixels``."""
    h, w, C = pixels.shape
    rps = rows_per_strip or h
    strips, offsets, sizes, blob = [], [], [], b""
    raw = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<"))
    if predictor == 2:
        diff = raw.astype(np.int64)
        diff[:, 1:] = np.diff(diff, axis=1)
        raw = (diff & 0xFFFF).astype("<u2")
    for y in range(0, h, rps):
        body = raw[y : y + rps].tobytes()
        strips.append(zlib.compress(body) if compress else body)
    bits_at = 8
    blob += struct.pack(f"<{C}H", *([16] * C))
    fmt_at = 8 + len(blob)
    blob += struct.pack(f"<{C}H", *([sample_format] * C))
    for s in strips:
        offsets.append(8 + len(blob))
        sizes.append(len(s))
        blob += s + b"\0" * (len(s) & 1)
    offs_at = 8 + len(blob)
    blob += struct.pack(f"<{len(offsets)}I", *offsets)
    sizes_at = 8 + len(blob)
    blob += struct.pack(f"<{len(sizes)}I", *sizes)
    tags = [
        (256, 4, 1, w), (257, 4, 1, h), (258, 3, C, bits_at if C > 2 else struct.pack("<HH", 16, 16)),
        (259, 3, 1, 8 if compress else 1), (262, 3, 1, 2 if C >= 3 else 1),
        (273, 4, len(offsets), offsets[0] if len(offsets) == 1 else offs_at), (277, 3, 1, C), (278, 4, 1, rps),
        (279, 4, len(sizes), sizes[0] if len(sizes) == 1 else sizes_at), (284, 3, 1, 1), (317, 3, 1, predictor),
        (339, 3, C, fmt_at if C > 2 else struct.pack("<HH", sample_format, sample_format)),
    ]  # fmt: skip
    if C in (2, 4):
        tags.append((338, 3, 1, 2))
    return tiff(w, h, tags, blob)


def tiff_strip_bomb(strips: int, inflated: int) -> bytes:
    """A 1-pixel-wide 16-bit RGB TIFF of ``strips`` rows, one row a strip, every strip pointing
    at the same deflate stream of ``inflated`` zero bytes."""
    co = zlib.compressobj(9)
    stream = b"".join(co.compress(bytes(1 << 20)) for _ in range(max(1, inflated >> 20))) + co.flush()
    blob = struct.pack("<3H", 16, 16, 16)
    stream_at = 8 + len(blob)
    blob += stream + b"\0" * (len(stream) & 1)
    offs_at = 8 + len(blob)
    blob += struct.pack(f"<{strips}I", *([stream_at] * strips))
    sizes_at = 8 + len(blob)
    blob += struct.pack(f"<{strips}I", *([len(stream)] * strips))
    tags = [
        (256, 4, 1, 1), (257, 4, 1, strips), (258, 3, 3, 8), (259, 3, 1, 8), (262, 3, 1, 2),
        (273, 4, strips, offs_at if strips > 1 else stream_at), (277, 3, 1, 3), (278, 4, 1, 1),
        (279, 4, strips, sizes_at if strips > 1 else len(stream)), (284, 3, 1, 1),
    ]  # fmt: skip
    return tiff(1, strips, tags, blob)


def tiff_tag_bomb(tags: int, values: int) -> bytes:
    """An 8-bit gray TIFF with ``tags`` private tags of ``values`` SHORTs each, all pointing at
    one shared blob: a small file whose tag tables expand to tags × values numbers."""
    blob = bytes(2 * values)
    pixel_at = 8 + len(blob)
    table = [(256, 4, 1, 1), (257, 4, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
             (273, 4, 1, pixel_at), (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, 1, 1)]  # fmt: skip
    table += [(40000 + k, 3, values, 8) for k in range(tags)]
    return tiff(1, 1, table, blob + b"\x80")


def encoded(pixels: np.ndarray, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **params)
    return buf.getvalue()


def npy(array: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, **kwargs)
    return buf.getvalue()


def photo(h: int = 48, w: int = 64, channels: int = 3, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """A smooth test picture with some noise: compresses like a photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    base = [(np.sin(x / 7 + c) + np.cos(y / 5 - c) + 2) / 4 for c in range(channels)]
    img = np.stack(base, axis=2) * 0.9 + rng.random((h, w, channels)) * 0.1
    img = (img * top).astype(dtype)
    return img[:, :, 0] if channels == 1 else img
