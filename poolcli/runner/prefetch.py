"""PNG inputs read and inflated ahead, by a helper process, while the parent loads Numba."""

from __future__ import annotations

import os
import signal

import numpy as np

from .. import io
from ..errors import ImageError
from ..io import png
from .records import Task
from .workers import die_with_parent


class Prefetcher:
    """PNG inputs read, CRC-checked and inflated ahead, by a helper process forked before
    Numba loads, into shared memory that the workers forked afterwards see.

    Loading Numba keeps one core busy for ≈ 0.5 s before the workers can start; the helper
    spends that time on the other core doing the part of decoding that needs no compiled
    code (≈ 3 ms of a 640×480 photo's ≈ 9 ms).  It is killed before the workers start; an
    entry counts only once its ``done`` word is set, after its bytes are in place.  Anything
    it cannot read is left to the worker, which reads it again and reports what is wrong.
    """

    BUDGET = 192 << 20  # bytes of inflated scanlines held at most (touched pages only)

    def __init__(self, tasks: list[Task], max_pixels: int | None, skip_existing: bool):
        import mmap

        self.slot = {t.dest: i for i, t in enumerate(tasks) if t.source != "-"}
        # per task: done, offset, length, width, height, bit depth, colour type, has metadata
        self.index = np.ndarray((len(tasks), 8), np.int64, buffer=mmap.mmap(-1, 64 * len(tasks)))
        self.data = mmap.mmap(-1, self.BUDGET)
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # the helper
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                die_with_parent(parent, signal.SIGKILL)
                self._fill(tasks, max_pixels, skip_existing)
            finally:
                os._exit(0)

    def _fill(self, tasks: list[Task], max_pixels: int | None, skip_existing: bool) -> None:
        import mmap

        offset = 0
        for i, task in enumerate(tasks):
            if task.source == "-" or (skip_existing and io.complete_output(task.dest, task.fmt)):
                continue
            try:
                got = png.inflate_png(io.read_bytes(task.source, max_pixels), task.source, max_pixels)
            except (OSError, ImageError, MemoryError):
                continue
            if got is None or set(got[2]) - set(png.METADATA_KEYS):  # interlaced, or a tRNS key:
                continue  # the worker decodes it whole
            header, raw, extras = got
            if offset + len(raw) > self.BUDGET:
                return
            self.data[offset : offset + len(raw)] = raw
            self.index[i, 1:] = (offset, len(raw), *header, bool(extras))
            self.index[i, 0] = 1
            offset += -(-len(raw) // mmap.PAGESIZE) * mmap.PAGESIZE

    def stop(self) -> None:
        """Kill the helper and wait for it: what it finished stays usable."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = 0

    def close(self) -> None:
        self.stop()
        try:
            self.data.close()
        except BufferError:
            pass  # a view of it is still alive: the memory goes when that does

    def take(self, task: Task):
        """(header, scanlines, extras) of ``task``'s input if the helper finished it, else None;
        extras is None when the file holds metadata (ICC, DPI, EXIF) to be read again from it."""
        i = self.slot.get(task.dest)
        if i is None or not self.index[i, 0]:
            return None
        offset, length = int(self.index[i, 1]), int(self.index[i, 2])
        header = tuple(int(v) for v in self.index[i, 3:7])
        return header, memoryview(self.data)[offset : offset + length], None if self.index[i, 7] else {}

    def release(self, task: Task) -> None:
        """Give ``task``'s pages back to the system once its result is written."""
        import mmap

        i = self.slot[task.dest]
        self.index[i, 0] = 0
        if hasattr(mmap, "MADV_REMOVE"):
            offset, length = int(self.index[i, 1]), int(self.index[i, 2])
            try:
                self.data.madvise(mmap.MADV_REMOVE, offset, -(-length // mmap.PAGESIZE) * mmap.PAGESIZE)
            except OSError:
                pass


