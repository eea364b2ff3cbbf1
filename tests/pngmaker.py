"""A small, independent PNG writer for the differential reader tests: every colour type and bit
depth the PNG specification allows, Adam7, tRNS, PLTE, gAMA, random row filters, split IDAT
chunks, and APNG frame chunks.  Written from the specification, not from poolcli's decoder."""

from __future__ import annotations

import struct
import zlib

import numpy as np

LEGAL = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def chunk(kind: bytes, body: bytes, *, bad_crc: bool = False) -> bytes:
    crc = zlib.crc32(kind + body) ^ (1 if bad_crc else 0)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc & 0xFFFFFFFF)


def _pack(samples: np.ndarray, depth: int) -> np.ndarray:
    """(h, w, spp) sample values → (h, row bytes) as PNG stores them."""
    h = samples.shape[0]
    flat = samples.reshape(h, -1).astype(np.uint32)
    if depth == 16:
        return flat.astype(">u2").view(np.uint8).reshape(h, -1)
    if depth == 8:
        return flat.astype(np.uint8)
    per = 8 // depth
    n = flat.shape[1]
    padded = np.zeros((h, -(-n // per) * per), np.uint32)
    padded[:, :n] = flat
    grouped = padded.reshape(h, -1, per)
    out = np.zeros(grouped.shape[:2], np.uint32)
    for i in range(per):
        out |= grouped[:, :, i] << (8 - depth * (i + 1))
    return out.astype(np.uint8)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter(rows: np.ndarray, bpp: int, rng) -> bytes:
    """Each row with a random filter type (0–4) applied, its type byte first."""
    out = bytearray()
    prev = np.zeros(rows.shape[1], np.int64)
    for row in rows.astype(np.int64):
        ft = int(rng.integers(0, 5))
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]]) if len(row) else row
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]]) if len(row) else row
        if ft == 0:
            f = row
        elif ft == 1:
            f = row - left
        elif ft == 2:
            f = row - prev
        elif ft == 3:
            f = row - (left + prev) // 2
        else:
            f = row - np.array([_paeth(a, b, c) for a, b, c in zip(left, prev, upleft)], np.int64)
        out.append(ft)
        out += (f & 255).astype(np.uint8).tobytes()
        prev = row
    return bytes(out)


def make_png(samples: np.ndarray, colour_type: int, depth: int, *, interlace: bool = False, palette=None,
             trns: bytes | None = None, gama: bool = False, seed: int = 0, split: int = 1,
             frames: int | None = None, bad_idat_crc: bool = False) -> bytes:  # fmt: skip
    """A PNG of ``samples`` (h, w, spp) as stored (palette indices for colour type 3)."""
    rng = np.random.default_rng(seed)
    h, w, spp = samples.shape
    bpp = max(1, spp * depth // 8)
    raw = b""
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        part = samples[y0::dy, x0::dx]
        if part.size == 0:
            continue
        raw += _filter(_pack(part, depth), bpp, rng)
    stream = zlib.compress(raw, 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, int(interlace)))
    if gama:
        out += chunk(b"gAMA", struct.pack(">I", 45455))
    if frames is not None:
        out += chunk(b"acTL", struct.pack(">II", frames, 0))
        out += chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, w, h, 0, 0, 1, 10, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).ravel()))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    step = -(-len(stream) // split)
    for i in range(0, len(stream), step):
        out += chunk(b"IDAT", stream[i : i + step], bad_crc=bad_idat_crc and i == 0)
    if frames is not None:
        for k in range(1, frames):
            seq = 2 * k - 1
            out += chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, w, h, 0, 0, 1, 10, 0, 0))
            out += chunk(b"fdAT", struct.pack(">I", seq + 1) + stream)
    return out + chunk(b"IEND", b"")


def random_case(rng, colour_type: int, depth: int, *, interlace: bool, with_trns: bool, gama: bool = False,
                size: tuple[int, int] | None = None) -> tuple[bytes, dict]:  # fmt: skip
    """A random PNG of one kind, and what it was made of."""
    h, w = size or (int(rng.integers(1, 19)), int(rng.integers(1, 23)))
    spp = SAMPLES[colour_type]
    info: dict = {}
    palette = trns = None
    if colour_type == 3:
        entries = int(rng.integers(1, min(256, 1 << depth) + 1))
        palette = rng.integers(0, 256, (entries, 3))
        samples = rng.integers(0, entries, (h, w, 1))
        if with_trns:
            trns = bytes(rng.integers(0, 256, int(rng.integers(1, entries + 1))).astype(np.uint8))
    else:
        top = (1 << depth) - 1
        samples = rng.integers(0, top + 1, (h, w, spp))
        if with_trns and colour_type in (0, 2):
            key = samples[int(rng.integers(0, h)), int(rng.integers(0, w))]  # a colour that occurs
            trns = struct.pack(f">{len(key)}H", *[int(v) for v in key])
    info.update(samples=samples, palette=palette, trns=trns)
    data = make_png(samples, colour_type, depth, interlace=interlace, palette=palette, trns=trns, gama=gama,
                    seed=int(rng.integers(1 << 30)), split=int(rng.integers(1, 4)))  # fmt: skip
    return data, info
