"""TIFF, whole and band by band, through tifffile (and Pillow for the 8-bit TIFFs it reads).

Every TIFF's tag table is checked first (:func:`tiff_ifd`): values that add up past the file
are refused before any decoder allocates.  8-bit TIFFs go to Pillow, which knows every
photometric; 16-bit colour, signed, 32-bit and floating-point samples are read by tifffile at
their full depth.  :class:`TiffRows` decodes a one-page upright TIFF a row of strips or tiles at
a time; :class:`TiffSink` writes 256×256 tiles as the bands arrive.  Writing, 8 and 16 bits
alike, is tifffile's: deflate with the horizontal predictor, and EXIF's sub-directories, which
Pillow cannot write.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

import numpy as np

from .. import topixels
from ..errors import ImageError
from ..rows import Rows
from .exif import TIFF_SIZES, add_pointers, append_ifd, exif_directories, orient, orientation_of
from .picture import MODE_OF, Meta, NotStreamable, Picture, check_page, check_pixels, describe, to_gray
from .threads import Behind


def decode(data: bytes, name: str, *, gray: bool = False, max_pixels: int | None = None, page: int = 0,
           layout: str | None = None) -> Picture:  # fmt: skip
    """A TIFF file's bytes as a :class:`Picture`: page ``page`` (0-based) of its IFD chain."""
    frames = tiff_pages(lambda at, n: data[at : at + n])
    check_page(name, page, frames)
    if page:
        pic = _decode_tiff(data, name, max_pixels, force=True, page=page)
        pic.frames, pic.page = frames, page
        return to_gray(pic) if gray else pic
    pic = _decode_tiff(data, name, max_pixels)
    if pic is None:  # 8-bit: Pillow knows every photometric; tifffile reads what it cannot
        from . import pillow

        try:
            pic = pillow.decode(data, name, gray=gray, max_pixels=max_pixels)
            pic.frames = frames
            return pic
        except ImageError as exc:
            try:
                pic = _decode_tiff(data, name, max_pixels, force=True)
            except ImageError:
                raise exc from None
    pic.frames = frames
    return to_gray(pic) if gray else pic


def encode(pixels: np.ndarray, meta: Meta, **_) -> bytes:
    """:func:`encode_tiff`, as the codec registry calls every format's encoder."""
    return encode_tiff(pixels, meta)


def size(head: bytes, path: str) -> tuple[int, int] | None:
    """(ImageWidth, ImageLength) of a TIFF file's first directory, from its header alone."""
    try:
        with open(path, "rb") as fh:
            return _tiff_size(fh)
    except (OSError, struct.error, ValueError, OverflowError):  # an offset past any file (BigTIFF ≥ 2⁶³)
        return None


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
    exif = exif_directories(meta.exif) if meta is not None and meta.exif else None
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
    pointers = {tag: append_ifd(data, exif[0], entries) for tag, entries in exif[2].items()}
    add_pointers(data, exif[0], pointers)
    return bytes(data)


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
        size = TIFF_SIZES.get(kind, 1) * n
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
            size = TIFF_SIZES.get(kind, 1) * n
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
            check_pixels(page.imagewidth, page.imagelength, name, max_pixels)
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
        detail = describe(exc)
        if "INSUFFICIENT_SPACE" in detail or "buffer too small" in detail.lower():
            detail = "image data inflates past the size the header announces"
        raise ImageError(f"{name}: truncated or corrupt image ({detail})") from None
    pixels = np.ascontiguousarray(orient(pixels, orientation))
    C = pixels.shape[2]
    alpha = C in (2, 4)
    suffix = {"u2": ";16", "u1": ""}.get(f"{pixels.dtype.kind}{pixels.dtype.itemsize}", ";F")
    return Picture(pixels, alpha, MODE_OF[C] + suffix, meta)


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


# --------------------------------------------------------------------------- band by band


def _check_tags(path: str, name: str) -> None:
    """:func:`poolcli.tiff_ifd` on a file, through a read-only map: only the header and
    the tag values it looks at are read (and count in memory)."""
    import mmap

    with open(path, "rb") as fh:
        try:
            view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            raise NotStreamable from None  # empty, or not mappable: the whole path says why
        try:
            tiff_ifd(view, name)
        finally:
            view.close()


class TiffRows(Rows):
    """The rows of a one-page TIFF, decoded a row of strips or tiles at a time by tifffile."""

    def __init__(self, path: str, name: str, *, gray: bool = False):
        import logging

        import tifffile

        logging.getLogger("tifffile").setLevel(logging.CRITICAL)
        self.name, self.gray = name, gray
        _check_tags(path, name)  # the whole path's tag-table checks, before tifffile reads a tag
        try:
            self.tif = tifffile.TiffFile(path)
        except Exception:  # noqa: BLE001 - the whole path names the problem
            raise NotStreamable from None
        try:
            self._check()
        except (NotStreamable, ImageError, KeyboardInterrupt):
            self.tif.close()
            raise
        except Exception:  # noqa: BLE001 - an odd page: the whole path reads it and names what is wrong
            self.tif.close()
            raise NotStreamable from None

    def _check(self) -> None:
        fh = self.tif.filehandle

        def read(at: int, n: int) -> bytes:
            fh.seek(at)
            return fh.read(n)

        self.frames = tiff_pages(read)
        page = self.tif.pages[0]
        self.page = page
        tags = page.tags
        size = os.fstat(self.tif.filehandle.fileno()).st_size if hasattr(self.tif.filehandle, "fileno") else 0
        if (
            page.is_tiled and page.imagedepth > 1
            or int(page.planarconfig) != 1
            or (274 in tags and orientation_of(tags[274].value) != 1)
            or not page.dataoffsets
            or sum(page.databytecounts) > size
        ):  # fmt: skip
            raise NotStreamable
        bits = set(np.atleast_1d(page.bitspersample).tolist())
        if bits <= {1, 8} and page.sampleformat == 1:
            # 8-bit TIFFs are read by Pillow whole: stream only what tifffile reads alike
            extra = [int(e) for e in page.extrasamples] if page.extrasamples else []
            ok = int(page.photometric) in (1, 2) and bits == {8}
            colour = 3 if int(page.photometric) == 2 else 1
            ok = ok and page.samplesperpixel == colour + len(extra) and extra in ([], [2])
            if not ok:
                raise NotStreamable
        self.seg_rows = page.tilelength if page.is_tiled else page.rowsperstrip
        self.seg_rows = min(self.seg_rows or page.imagelength, page.imagelength)
        # uncompressed samples in one run (often one strip for the whole image): read the rows
        # themselves from the file, a few at a time, instead of that strip whole
        self.contiguous = None
        if (
            page.is_contiguous
            and int(page.compression) == 1
            and not page.is_tiled
            and page.dtype.itemsize * 8 == max(bits)
        ):
            self.contiguous = int(page.dataoffsets[0])  # the samples run on from the first strip
            self.seg_rows = min(page.imagelength, max(1, (4 << 20) // (page.imagewidth * page.samplesperpixel *
                                                                      page.dtype.itemsize)))  # fmt: skip
        probe = _tiff_pixels(np.zeros((1, 1, page.samplesperpixel), page.dtype), page, self.name)
        self.C0 = probe.shape[2]
        self.dtype = probe.dtype
        self.alpha = self.C0 in (2, 4)
        self.height, self.width = page.imagelength, page.imagewidth
        self.channels = 1 + self.alpha if topixels.gray_luma(self.gray, self.C0) else self.C0
        icc = tags[34675].value if 34675 in tags else None
        self.meta = Meta(bytes(icc) if icc is not None else None, _tiff_dpi(tags), None)
        self.rewind()

    def rewind(self) -> None:
        self.at = 0
        self.buf = np.empty((0, self.page.imagewidth, self.page.samplesperpixel), self.page.dtype)
        self.buf_at = 0  # the image row of self.buf[0]

    def _segment_row(self, k: int) -> np.ndarray:
        """Rows of the k-th row of strips or tiles, decoded."""
        page = self.page
        W, S = page.imagewidth, page.samplesperpixel
        y0 = k * self.seg_rows
        rows = min(self.seg_rows, page.imagelength - y0)
        fh = self.tif.filehandle
        if self.contiguous is not None:
            row = W * S * page.dtype.itemsize
            fh.seek(self.contiguous + y0 * row)
            data = fh.read(rows * row)
            if len(data) != rows * row:
                raise ImageError(f"{self.name}: truncated or corrupt image (image data cut short)")
            order = self.tif.byteorder
            return np.frombuffer(data, page.dtype.newbyteorder(order)).reshape(rows, W, S).astype(page.dtype)
        out = np.zeros((rows, W, S), page.dtype)
        decode = page.decode
        across = -(-W // page.tilewidth) if page.is_tiled else 1
        for j in range(across):
            index = k * across + j
            offset, count = page.dataoffsets[index], page.databytecounts[index]
            fh.seek(offset)
            data = fh.read(count)
            segment, (_, _, sy, sx, _), shape = decode(data, index, jpegtables=page.jpegtables)
            if segment is None:
                continue
            seg = np.asarray(segment).reshape(shape[1:]) if segment.ndim > 4 else np.asarray(segment)
            seg = seg.reshape(-1, seg.shape[-2], seg.shape[-1])  # (rows, cols, samples)
            ys = min(rows, seg.shape[0])
            xs = min(W - sx, seg.shape[1])
            out[:ys, sx : sx + xs] = seg[:ys, :xs]
        return out

    def read(self, n: int) -> np.ndarray:
        k = min(max(0, n), self.height - self.at)
        parts, need, at = [], k, self.at
        while need > 0:
            off = at - self.buf_at
            if off >= self.buf.shape[0]:
                seg = at // self.seg_rows
                try:
                    self.buf = self._segment_row(seg)
                except (ImageError, MemoryError):
                    raise
                except Exception as exc:  # noqa: BLE001 - codecs raise many kinds on hostile bytes
                    raise ImageError(f"{self.name}: truncated or corrupt image ({describe(exc)})") from None
                self.buf_at = seg * self.seg_rows
                off = at - self.buf_at
            take = min(need, self.buf.shape[0] - off)
            parts.append(self.buf[off : off + take])
            at += take
            need -= take
        self.at = at
        arr = np.concatenate(parts, axis=0) if len(parts) != 1 else parts[0]
        pixels = np.ascontiguousarray(_tiff_pixels(np.array(arr), self.page, self.name))
        return topixels.gray(pixels, self.alpha) if topixels.gray_luma(self.gray, pixels.shape[2]) else pixels

    def close(self) -> None:
        self.tif.close()


class TiffSink(Behind):
    """Writes a TIFF in 256×256 tiles (deflate, horizontal predictor) through tifffile, as the
    bands arrive: tifffile, on the thread behind, takes the tiles from a generator fed one row
    of tiles at a time (memory: two rows of tiles)."""

    TILE = 256

    def __init__(self, fh, width: int, height: int, channels: int, dtype, meta=None, **_):
        self.fh, self.width, self.height, self.channels, self.dtype = fh, width, height, channels, np.dtype(dtype)
        self.pending = np.empty((0, width, channels), self.dtype)
        self.rows = 0
        params: dict = dict(photometric="rgb" if channels >= 3 else "minisblack", compression="zlib", predictor=True,
                            metadata=None, extrasamples=("unassalpha",) if channels in (2, 4) else None,
                            tile=(self.TILE, self.TILE), dtype=self.dtype,
                            shape=(height, width, channels) if channels > 1 else (height, width))  # fmt: skip
        if meta is not None and meta.dpi:
            params.update(resolution=tuple(meta.dpi), resolutionunit="INCH")
        if meta is not None and meta.icc:
            params["iccprofile"] = meta.icc
        exif = exif_directories(meta.exif) if meta is not None and meta.exif else None
        if exif is not None:  # EXIF's main tags (its Exif and GPS directories are not appended here)
            end, main, _ = exif
            params.update(extratags=[(t, k, n, v, True) for t, k, n, v in main], software=False)
        self.order = exif[0] if exif is not None else None  # tifffile writes in the EXIF's byte order
        self.params = params
        self._start("poolcli-tiff-writer", 1)

    def _consume(self, items) -> None:
        import tifffile

        def tiles():
            for band in items:
                for x in range(0, self.width, self.TILE):
                    tile = np.zeros((self.TILE, self.TILE, self.channels), self.dtype)
                    part = band[:, x : x + self.TILE]
                    tile[: part.shape[0], : part.shape[1]] = part
                    yield tile

        with tifffile.TiffWriter(self.fh, byteorder=self.order) as tw:
            tw.write(tiles(), **self.params)

    def write(self, pixels: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, pixels], axis=0)
        self.rows += pixels.shape[0]
        while self.pending.shape[0] >= self.TILE or (self.rows == self.height and self.pending.shape[0]):
            self._hand(self.pending[: self.TILE])
            self.pending = self.pending[self.TILE :]

    def close(self) -> None:
        self._finish()


def _tiff_size(fh) -> tuple[int, int] | None:
    """(ImageWidth, ImageLength) of a TIFF's first directory, read from its header alone."""
    head = fh.read(16)
    end = "<" if head[:2] == b"II" else ">"
    big = struct.unpack(end + "H", head[2:4])[0] == 43
    first = struct.unpack(end + ("Q" if big else "I"), head[8:16] if big else head[4:8])[0]
    fh.seek(first)
    count = struct.unpack(end + ("Q" if big else "H"), fh.read(8 if big else 2))[0]
    width = 20 if big else 12
    table = fh.read(width * min(count, 4096))
    found = {}
    for k in range(len(table) // width):
        entry = table[k * width : (k + 1) * width]
        tag, kind = struct.unpack(end + "HH", entry[:4])
        if tag in (256, 257) and kind in (3, 4, 16):
            raw = entry[12:] if big else entry[8:]
            code = {3: "H", 4: "I", 16: "Q"}[kind]
            found[tag] = struct.unpack(end + code, raw[: struct.calcsize(code)])[0]
    return (found[256], found[257]) if len(found) == 2 else None


Rows, Sink = TiffRows, TiffSink  # the registry's names for the banded reader and writer
