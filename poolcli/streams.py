"""Reading and writing images band by band (contract §10): the file side of :mod:`poolcli.bands`.

Readers are :class:`~poolcli.bands.Rows` that decode rows as they are asked for:

- :class:`PngRows`: poolcli's own PNG decoder, one band at a time: IDAT chunks read and
  CRC-checked as they come, inflated up to the bytes the band needs (never past what the
  header announces), row filters undone with the previous band's last row in front.
- :class:`TiffRows`: tifffile's strips or tiles, decoded one row of segments at a time.
- :class:`NpyRows`: a ``.npy`` array's rows read from the file at their offset.

Writers take bands in order and put the file in place only when it is whole
(:func:`poolcli.images.atomic_output`): :class:`PngSink` filters and deflates each band as one
or more IDAT chunks (one zlib stream, pieces on threads as :func:`poolcli.images.encode_png`);
:class:`TiffSink` writes tiles through tifffile; :class:`NpySink` writes rows after the header.

:func:`open_rows` says which inputs can stream: plain PNGs (8 or 16 bits, no palette, not
interlaced, upright), TIFFs that tifffile reads as one contiguous page and that are upright,
and ``.npy`` arrays in C order.  Everything else is read whole, as before.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from . import images
from .bands import Rows
from .errors import ImageError

_READ = 1 << 20  # bytes of compressed data read from the file at a time


class NotStreamable(Exception):
    """This input or output cannot be streamed: read or write it whole."""


# --------------------------------------------------------------------------- PNG


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
        if head[:8] != images.PNG_SIGNATURE or len(head) < 33 or head[12:16] != b"IHDR":
            raise NotStreamable
        header = images.png_header(head[16:29], name)
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
                images.png_saw_idat(extras)
            else:
                body = fh.read(length)
                images.check_chunk(kind, body, fh.read(4), name)
                if kind == b"IEND":
                    break
                images.png_extra(kind, body, colour_type, extras, name)
            pos += 12 + length
        if not self.idat:
            raise ImageError(f"{name}: truncated or corrupt image (no image data)")
        images.check_palette(colour_type, extras, name)
        exif = None
        if "exif" in extras:
            exif = b"Exif\0\0" + extras["exif"]
            if images.exif_orientation(exif) != 1:
                raise NotStreamable  # turned upright: whole
            exif = images.apply_orientation(np.zeros((1, 1, 1), np.uint8), exif)[1]
        self.meta = images.Meta(extras.get("icc"), extras.get("dpi"), exif)
        self.extras, self.frames = extras, images.png_frames(extras)
        self.layout = layout = images.PngLayout(self.depth, colour_type, extras)
        self.rowbytes, self.dtype, self.alpha = layout.rowbytes(self.w), layout.dtype, layout.alpha
        channels = layout.channels
        if gray_luma(self.gray, channels):
            channels = 1 + self.alpha
        self.height, self.width, self.channels = self.h, self.w, channels

    def rewind(self) -> None:
        self._stop()
        self.at = 0
        self.prev = None  # the last unfiltered row of the band before
        self.inflater = _Inflater(self, self.h * (self.rowbytes + 1))
        self.chunk = memoryview(b"")

    def _stop(self) -> None:
        inflater = getattr(self, "inflater", None)
        if inflater is not None:
            inflater.stop()

    def _compressed(self):
        """The image data, piece by piece, each IDAT chunk's CRC checked at its end."""
        for offset, length, crc in self.idat:
            self.fh.seek(offset)
            check = images._crc32(b"IDAT")
            left = length
            while left:
                piece = self.fh.read(min(_READ, left))
                if not piece:
                    raise ImageError(f"{self.name}: truncated or corrupt image (chunk IDAT cut short)")
                left -= len(piece)
                check = images._crc32(piece, check)
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
        plain = images.png_unfilter(rows, self.layout, self.name)
        if self.prev is not None:
            plain = plain[1:]
        self.prev = plain[-1].copy()
        self.at += k
        if self.at == self.h and self.inflater.take():  # the rest of the file checked, as whole
            raise ImageError(f"{self.name}: truncated or corrupt image (image data past the last row)")
        pixels = images.png_pixels(images.png_samples(plain, self.w, self.layout), self.layout, self.extras)
        pic = images.Picture(np.ascontiguousarray(pixels), self.alpha, "")
        if gray_luma(self.gray, self.layout.channels):
            pic = images._gray(pic)
        return pic.pixels

    def close(self) -> None:
        self._stop()
        self.fh.close()


def _offer(q, item, give_up) -> None:
    """Put ``item`` on the queue ``q``, waiting for room, unless ``give_up()`` becomes true."""
    import queue

    while not give_up():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _quiet_thread() -> None:
    """Ctrl-C and SIGTERM are for the main thread to take: block them in this one."""
    import signal

    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


_END = object()  # the inflater checked the whole image data


class _Inflater:
    """Inflates a PNG's image data on a thread, ahead of the rows asked for (zlib and ISA-L
    release the GIL), in pieces of :data:`AHEAD` bytes, at most :data:`DEPTH` pieces ahead;
    never more than the ``total`` bytes the header announces."""

    AHEAD = 4 << 20
    DEPTH = 6

    def __init__(self, rows: PngRows, total: int):
        import queue
        import threading

        self.rows, self.total = rows, total
        self.queue: queue.Queue = queue.Queue(self.DEPTH)
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, name="poolcli-inflate", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        _quiet_thread()
        name = self.rows.name
        try:
            d = (images._fast_zlib or zlib).decompressobj()
            pieces = self.rows._compressed()
            tail, done = b"", 0
            while done < self.total and not self.halt.is_set():
                want = min(self.AHEAD, self.total - done)
                parts, have = [], 0
                while have < want:
                    # ISA-L keeps what max_length held back inside (no unconsumed_tail): ask it first
                    out = d.decompress(tail, want - have) if tail else d.decompress(b"", want - have)
                    if not out and not tail:
                        data = next(pieces, None)
                        if data is None or d.eof:
                            raise ImageError(f"{name}: truncated or corrupt image (image data cut short)")
                        out = d.decompress(data, want - have)
                    elif not out and d.unconsumed_tail == tail:
                        raise ImageError(f"{name}: truncated or corrupt image (image data cut short)")
                    tail = d.unconsumed_tail
                    parts.append(out)
                    have += len(out)
                done += want
                self._put(b"".join(parts))
            for _ in pieces:  # the rest of the image data: every chunk's CRC checked, as whole
                if self.halt.is_set():
                    return
            self._put(_END)
        except images._ZLIB_ERRORS as exc:
            self._put(ImageError(f"{name}: truncated or corrupt image ({exc})"))
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def _put(self, item) -> None:
        _offer(self.queue, item, self.halt.is_set)

    def take(self) -> bytes:
        item = self.queue.get()
        if item is _END:
            self.queue.put(item)
            return b""
        if isinstance(item, BaseException):
            self.queue.put(item)  # asked again, it says the same
            raise item
        return item

    def stop(self) -> None:
        import queue

        self.halt.set()
        while self.thread.is_alive():
            try:
                self.queue.get_nowait()
            except queue.Empty:
                self.thread.join(0.05)


def gray_luma(gray: bool, channels: int) -> bool:
    """Whether ``--gray`` turns pixels of this many channels into luma (3 or more: colour)."""
    return gray and channels >= 3


class _Behind:
    """A writer whose file work runs on a thread behind the bands: :meth:`_hand` passes it
    each item in order (at most ``depth`` waiting), :meth:`_consume` does the work there, and
    an error there is raised here at the next hand-over."""

    def _start(self, name: str, depth: int) -> None:
        import queue
        import threading

        self.queue: queue.Queue = queue.Queue(depth)
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._guarded, name=name, daemon=True)
        self.thread.start()

    def _consume(self, items) -> None:
        raise NotImplementedError

    def _items(self):
        while (item := self.queue.get()) is not None:
            yield item

    def _guarded(self) -> None:
        _quiet_thread()
        try:
            self._consume(self._items())
        except BaseException as exc:  # noqa: BLE001 - handed to the writing thread
            self.error.append(exc)

    def _hand(self, item) -> None:
        _offer(self.queue, item, lambda: bool(self.error))
        if self.error:
            raise self.error[0]

    def _finish(self) -> None:
        """Everything handed over is written (or its error raised)."""
        self._hand(None)
        self.thread.join()
        if self.error:
            raise self.error[0]

    def abort(self) -> None:
        """Stop the thread (after an error elsewhere): the file is being thrown away."""
        import queue

        if self.thread.is_alive():
            self.error.append(ImageError("aborted"))
            try:
                while True:
                    self.queue.get_nowait()
            except queue.Empty:
                pass
            self.queue.put_nowait(None)
            self.thread.join(5)


class PngSink(_Behind):
    """Writes a PNG band by band: each band filtered with the row before it here, then
    deflated and written on a thread while the next band is computed."""

    def __init__(self, fh, width: int, height: int, channels: int, dtype, level: int, meta, threads: int):
        self.fh, self.level, self.threads = fh, level, max(1, threads)
        self.depth = 16 if np.dtype(dtype) == np.uint16 else 8
        self.bpp = channels * self.depth // 8
        self.prev = None
        self.adler = 1
        self.first = True
        ihdr = struct.pack(">IIBBBBB", width, height, self.depth, images._PNG_COLOUR_TYPE[channels], 0, 0, 0)
        fh.write(images.PNG_SIGNATURE + images._png_chunk(b"IHDR", ihdr) + images._png_meta_chunks(meta))
        self._start("poolcli-deflate", 2)

    def write(self, pixels: np.ndarray) -> None:
        from .api import run_compiled
        from .engine.png import filter_rows

        h, w, C = pixels.shape
        raw = np.ascontiguousarray(pixels, dtype=">u2" if self.depth == 16 else np.uint8).view(np.uint8)
        raw = raw.reshape(h, w * self.bpp)
        if self.prev is not None:  # filters look one row up: the band before's last row
            raw = np.concatenate([self.prev[None, :], raw], axis=0)
        scanlines = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
        run_compiled(filter_rows, raw, self.bpp, scanlines)
        if self.prev is not None:
            scanlines = scanlines[1:]
        self.prev = raw[-1].copy()
        self._hand(scanlines)

    def _consume(self, items) -> None:
        for scanlines in items:
            data = memoryview(scanlines.reshape(-1))
            self.adler = images._adler32(data, self.adler)
            body = images.deflate_pieces(data, self.level, self.threads, last=False)
            if self.first:
                body.insert(0, bytes([0x78, 0x01]))
                self.first = False
            self._idat(body)

    def _idat(self, parts: list[bytes]) -> None:
        crc = images._crc32(b"IDAT")
        for p in parts:
            crc = images._crc32(p, crc)
        self.fh.write(struct.pack(">I", sum(len(p) for p in parts)) + b"IDAT")
        for p in parts:
            self.fh.write(p)
        self.fh.write(struct.pack(">I", crc & 0xFFFFFFFF))

    def close(self) -> None:
        self._finish()
        end = images.deflate_pieces(memoryview(b""), self.level, 1, last=True)
        head = [bytes([0x78, 0x01])] if self.first else []
        self._idat([*head, *end, struct.pack(">I", self.adler & 0xFFFFFFFF)])
        self.fh.write(images._png_chunk(b"IEND", b""))


# --------------------------------------------------------------------------- .npy


class NpyRows(Rows):
    """The rows of a C-ordered ``.npy`` array, read from the file as they are asked for."""

    def __init__(self, path: str, name: str, *, gray: bool = False):
        self.name, self.gray = name, gray
        self.fh = open(path, "rb")
        try:
            fmt = np.lib.format
            version = fmt.read_magic(self.fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(self.fh)  # checks the header's size
        except BaseException:
            self.fh.close()
            raise NotStreamable from None
        from .api import looks_channels_first

        if fortran or dtype.hasobject or len(shape) not in (2, 3) or looks_channels_first(shape):
            self.fh.close()
            raise NotStreamable  # (C, H, W)-looking arrays: the whole path refuses or turns them
        if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)) or min(shape) <= 0:
            self.fh.close()
            raise NotStreamable  # the whole path names the problem
        self.start = self.fh.tell()
        self.file_dtype = dtype
        self.h, self.w = shape[0], shape[1]
        self.c = shape[2] if len(shape) == 3 else 1
        need = self.start + self.h * self.w * self.c * dtype.itemsize
        if os.fstat(self.fh.fileno()).st_size < need:
            self.fh.close()
            raise NotStreamable  # the whole path says it is cut short
        self.dtype = dtype if dtype in (np.uint8, np.uint16, np.float32, np.float64) else np.dtype(np.float64)
        self.height, self.width = self.h, self.w
        self.channels = 1 if gray_luma(gray, self.c) else self.c
        self.alpha = False
        self.meta = None
        self.rewind()

    def rewind(self) -> None:
        self.at = 0

    def read(self, n: int) -> np.ndarray:
        k = min(max(0, n), self.h - self.at)
        row = self.w * self.c * self.file_dtype.itemsize
        self.fh.seek(self.start + self.at * row)
        arr = np.empty((k, self.w, self.c), self.file_dtype)
        if self.fh.readinto(memoryview(arr.reshape(-1).view(np.uint8))) != k * row:
            raise ImageError(f"{self.name}: truncated or corrupt image (the array is cut short)")
        self.at += k
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if gray_luma(self.gray, self.c):
            arr = images._luma(np.ascontiguousarray(arr))
        return np.ascontiguousarray(arr)

    def close(self) -> None:
        self.fh.close()


class NpySink:
    """Writes a float32 ``.npy`` array ((H, W) for one channel) row band by row band."""

    def __init__(self, fh, width: int, height: int, channels: int):
        self.fh = fh
        shape = (height, width) if channels == 1 else (height, width, channels)
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": shape})

    def write(self, values: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(values, dtype="<f4").tobytes())

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- TIFF


def _check_tags(path: str, name: str) -> None:
    """:func:`poolcli.images.tiff_ifd` on a file, through a read-only map: only the header and
    the tag values it looks at are read (and count in memory)."""
    import mmap

    with open(path, "rb") as fh:
        try:
            view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            raise NotStreamable from None  # empty, or not mappable: the whole path says why
        try:
            images.tiff_ifd(view, name)
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

        self.frames = images.tiff_pages(read)
        page = self.tif.pages[0]
        self.page = page
        tags = page.tags
        size = os.fstat(self.tif.filehandle.fileno()).st_size if hasattr(self.tif.filehandle, "fileno") else 0
        if (
            page.is_tiled and page.imagedepth > 1
            or int(page.planarconfig) != 1
            or (274 in tags and images.orientation_of(tags[274].value) != 1)
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
        probe = images._tiff_pixels(np.zeros((1, 1, page.samplesperpixel), page.dtype), page, self.name)
        self.C0 = probe.shape[2]
        self.dtype = probe.dtype
        self.alpha = self.C0 in (2, 4)
        self.height, self.width = page.imagelength, page.imagewidth
        self.channels = 1 + self.alpha if gray_luma(self.gray, self.C0) else self.C0
        icc = tags[34675].value if 34675 in tags else None
        self.meta = images.Meta(bytes(icc) if icc is not None else None, images._tiff_dpi(tags), None)
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
                    raise ImageError(f"{self.name}: truncated or corrupt image ({images._describe(exc)})") from None
                self.buf_at = seg * self.seg_rows
                off = at - self.buf_at
            take = min(need, self.buf.shape[0] - off)
            parts.append(self.buf[off : off + take])
            at += take
            need -= take
        self.at = at
        arr = np.concatenate(parts, axis=0) if len(parts) != 1 else parts[0]
        pixels = np.ascontiguousarray(images._tiff_pixels(np.array(arr), self.page, self.name))
        if gray_luma(self.gray, pixels.shape[2]):
            pixels = images._gray(images.Picture(pixels, self.alpha, "")).pixels
        return pixels

    def close(self) -> None:
        self.tif.close()


class TiffSink(_Behind):
    """Writes a TIFF in 256×256 tiles (deflate, horizontal predictor) through tifffile, as the
    bands arrive: tifffile, on the thread behind, takes the tiles from a generator fed one row
    of tiles at a time (memory: two rows of tiles)."""

    TILE = 256

    def __init__(self, fh, width: int, height: int, channels: int, dtype, meta):
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
        exif = images._exif_directories(meta.exif) if meta is not None and meta.exif else None
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


# --------------------------------------------------------------------------- choosing


STREAMS_OUT = ("png", "tiff", "npy")


def open_rows(path: str, name: str, *, gray: bool = False) -> Rows:
    """A streaming reader of ``path`` by its signature; NotStreamable when it cannot stream."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(images.PNG_SIGNATURE):
        return PngRows(path, name, gray=gray)
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return TiffRows(path, name, gray=gray)
    if head.startswith(b"\x93NUMPY"):
        return NpyRows(path, name, gray=gray)
    raise NotStreamable


def image_size(path: str) -> tuple[int, int] | None:
    """(width, height) from a streamable file's header, cheaply; None when it is not one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 12)
    except OSError:
        return None
    if head.startswith(images.PNG_SIGNATURE) and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head.startswith(b"\x93NUMPY"):
        try:
            import io

            f = io.BytesIO(head)
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            shape = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)[0]
            return (shape[1], shape[0]) if len(shape) in (2, 3) else None
        except Exception:  # noqa: BLE001 - not readable: the whole path says why
            return None
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        try:
            with open(path, "rb") as fh:
                return _tiff_size(fh)
        except (OSError, struct.error, ValueError, OverflowError):  # an offset past any file (BigTIFF ≥ 2⁶³)
            return None
    return None
    return None


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
