"""zlib streams for PNG, fast: ISA-L where installed (about 2x faster inflate and 3x faster
deflate than zlib, benchmarks/RESULTS.md), else the zlib module doing the same work, slower.

:func:`inflate_bounded` never inflates past the size a header announces; :class:`Inflater`
inflates ahead on a thread (both libraries release the GIL); :func:`deflate_pieces` compresses
independent pieces on several threads, joined with sync flushes as pigz does.
"""

from __future__ import annotations

import struct
import zlib

from ..errors import ImageError
from .threads import offer, quiet_thread

try:
    from isal import isal_zlib as fast_zlib

    ZLIB_ERRORS: tuple[type[Exception], ...] = (zlib.error, fast_zlib.error)
    crc32, adler32 = fast_zlib.crc32, fast_zlib.adler32  # 5-7x zlib's: PNG checks every chunk
except ImportError:  # the plain zlib module does the same work, slower
    fast_zlib = None
    ZLIB_ERRORS = (zlib.error,)
    crc32, adler32 = zlib.crc32, zlib.adler32

inflating = fast_zlib or zlib  # what decompressobj() comes from


def inflate_bounded(stream: bytes, expected: int, name: str) -> bytes:
    """The first ``expected`` bytes that a zlib ``stream`` inflates to (never more, whatever
    the stream holds, as libpng does); ImageError if it holds fewer."""
    if expected > (1 << 62):
        raise ImageError(f"{name}: truncated or corrupt image (the header announces an impossible size)")
    raw = inflating.decompressobj().decompress(stream, expected)
    if len(raw) < expected:
        raise ImageError(f"{name}: truncated or corrupt image (image data cut short)")
    return raw


_PIECE = 1 << 21  # bytes of scanlines per independently compressed piece


def zlib_stream(data: memoryview, level: int, threads: int) -> list[bytes]:
    """A whole zlib stream of ``data`` as a list of parts (header, deflate pieces, Adler-32),
    compressed on up to ``threads`` threads (batch workers pass 1: their siblings use the other
    cores)."""
    body = deflate_pieces(data, level, threads, last=True)
    return [bytes([0x78, 0x01]), *body, struct.pack(">I", adler32(data) & 0xFFFFFFFF)]


def deflate_pieces(data: memoryview, level: int, threads: int, *, last: bool) -> list[bytes]:
    """Raw deflate of ``data`` in independent pieces joined by sync flushes (as pigz), on up to
    ``threads`` threads; the final block ends the stream when ``last``.  No zlib header or
    checksum: streams of several calls join into one."""
    pieces = [data[i : i + _PIECE] for i in range(0, len(data), _PIECE)] or [data]

    def compressor():
        if 1 <= level <= 3 and fast_zlib is not None:
            return fast_zlib.compressobj(level, zlib.DEFLATED, -15, 9)
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


_END = object()  # the inflater checked the whole image data


class Inflater:
    """Inflates a zlib stream on a thread, ahead of the rows asked for (zlib and ISA-L release
    the GIL), in pieces of :data:`AHEAD` bytes, at most :data:`DEPTH` pieces ahead; never more
    than the ``total`` bytes the header announces.  ``compressed`` yields the stream's pieces
    (checking them as it goes); ``name`` is the file's, for messages."""

    AHEAD = 4 << 20
    DEPTH = 6

    def __init__(self, compressed, total: int, name: str):
        import queue
        import threading

        self.compressed, self.total, self.name = compressed, total, name
        self.queue: queue.Queue = queue.Queue(self.DEPTH)
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, name="poolcli-inflate", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        quiet_thread()
        name = self.name
        try:
            d = inflating.decompressobj()
            pieces = self.compressed
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
        except ZLIB_ERRORS as exc:
            self._put(ImageError(f"{name}: truncated or corrupt image ({exc})"))
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def _put(self, item) -> None:
        offer(self.queue, item, self.halt.is_set)

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


