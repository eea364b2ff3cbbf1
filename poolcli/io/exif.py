"""EXIF: the orientation tag (read, applied as ImageOps.exif_transpose turns, reset to 1) and
EXIF's directories as a TIFF writer copies them (its main tags, its Exif and GPS directories
appended and pointed to, as cameras write them)."""

from __future__ import annotations

import struct

import numpy as np

from .registry import TIFF_SIGNATURES

# bytes of one value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ... LONG8)
TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
ORIENTATION = 0x0112


def exif_orientation(exif: bytes) -> int:
    """The EXIF orientation tag (1–8; 1 when absent or unreadable) of ``Exif\\0\\0…`` bytes."""
    try:
        from PIL import Image

        info = Image.Exif()
        info.load(exif)
        return orientation_of(info.get(ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF is dropped, as Pillow drops it
        return 1


def apply_orientation(pixels: np.ndarray, exif: bytes) -> tuple[np.ndarray, bytes | None]:
    """(pixels turned upright by the EXIF orientation tag, the EXIF with orientation 1)."""
    try:
        from PIL import Image

        info = Image.Exif()
        info.load(exif)
        orientation = info.get(ORIENTATION, 1)
        if orientation != 1:
            info[ORIENTATION] = 1
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


_EXIF_POINTERS = (34665, 34853)  # the Exif and the GPS directories


# a TIFF directory's tags that describe its own pixels (and would contradict the result's)
TIFF_LAYOUT = {
    254, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325,
    330, 338, 339, 347, 530, 531, 532, 34675,
}  # fmt: skip


# tags the TIFF writer sets itself (size, layout, resolution, colour profile) or that point elsewhere
_EXIF_SKIP = {256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 284, 296, 317, 338, 339, 34675, 40965, 513, 514}


def exif_directories(exif: bytes):
    """(byte order, the main directory's tags, {pointer tag: its directory's tags}) of EXIF
    bytes, each tag as (tag, type, count, value bytes in that byte order); None if unreadable."""
    blob = exif[6:] if exif.startswith(b"Exif\0\0") else exif
    if blob[:4] not in TIFF_SIGNATURES[:2]:  # classic TIFF, either byte order
        return None
    end = "<" if blob[:2] == b"II" else ">"

    def directory(at: int) -> list:
        (n,) = struct.unpack(end + "H", blob[at : at + 2])
        entries = []
        for k in range(n):
            tag, kind, count, raw = struct.unpack(end + "HHI4s", blob[at + 2 + 12 * k : at + 14 + 12 * k])
            size = TIFF_SIZES.get(kind, 0) * count
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


def append_ifd(data: bytearray, end: str, entries: list) -> int:
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


def add_pointers(data: bytearray, end: str, pointers: dict[int, int]) -> None:
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


