"""``.npy`` arrays, whole and band by band: never unpickled, their header's size checked against
the bytes that follow it before NumPy allocates anything; an (H, W) or (H, W, C) array of any
numeric dtype (``layout="chw"``: (C, H, W)).  Results are written as float32 (H, W) for one
channel, else (H, W, C)."""

from __future__ import annotations

import io
import os

import numpy as np

from .. import topixels
from ..errors import ImageError
from ..layout import looks_channels_first
from ..rows import Rows
from .picture import NotStreamable, Picture, check_page, check_pixels, one_line


def read_header(fh) -> tuple[tuple, bool, np.dtype]:
    """(shape, Fortran order, dtype) of the ``.npy`` header at the start of ``fh``."""
    version = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(fh)


def shape_of(head: bytes) -> tuple | None:
    """The array shape the first bytes of a ``.npy`` file announce; None if unreadable."""
    try:
        return read_header(io.BytesIO(head))[0]
    except Exception:  # noqa: BLE001 - not readable: reading the file says why
        return None


def size(head: bytes, path: str = "") -> tuple[int, int] | None:
    """(width, height) of an (H, W) or (H, W, C) array, from its header."""
    shape = shape_of(head)
    return (shape[1], shape[0]) if shape is not None and len(shape) in (2, 3) else None


def colour(head: bytes, path: str = "") -> int | None:
    """How many channels the array decodes to, from its header."""
    shape = shape_of(head)
    return None if shape is None or len(shape) not in (2, 3) else (1 if len(shape) == 2 else int(shape[2]))


def complete(path: str, size: int = 0, head: bytes = b"", fmt: str = "npy") -> bool:
    """Whether the file holds the bytes its header announces (mapping fails when it is shorter)."""
    try:
        np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return False
    return True


def decode(data: bytes, name: str, *, gray: bool = False, max_pixels: int | None = None, page: int = 0,
           layout: str | None = None) -> Picture:  # fmt: skip
    """A ``.npy`` file's bytes as a :class:`Picture` (one frame)."""
    check_page(name, page, 1)
    return _decode_npy(data, name, gray, max_pixels, layout)


def _npy_header(data: bytes, name: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of a ``.npy`` header, checked against the bytes that follow it."""
    f = io.BytesIO(data)
    try:
        shape, _, dtype = read_header(f)
    except Exception as exc:  # noqa: BLE001 - NumPy's header parser raises many kinds on hostile bytes
        raise ImageError(f"{name}: not a readable .npy array ({one_line(str(exc))})") from None
    if any(d < 0 for d in shape):
        raise ImageError(f"{name}: not a readable .npy array (negative dimensions {shape})")
    if not dtype.hasobject and int(np.prod(shape, dtype=object)) * dtype.itemsize > len(data) - f.tell():
        raise ImageError(f"{name}: truncated or corrupt image (its header announces {shape} {dtype}, "
                         "more than the file holds)")  # fmt: skip
    return shape, dtype


def _decode_npy(data: bytes, name: str, gray: bool, max_pixels: int | None, layout: str | None = None) -> Picture:
    shape, _ = _npy_header(data, name)  # the size checked before NumPy allocates anything
    if len(shape) in (2, 3):
        h, w = (shape[1], shape[2]) if len(shape) == 3 and layout == "chw" else (shape[0], shape[1])
        check_pixels(w, h, name, max_pixels)
    try:  # never unpickled: an object array is refused by allow_pickle=False
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except MemoryError:
        raise ImageError(f"{name}: out of memory while reading it") from None
    except Exception as exc:  # noqa: BLE001 - NumPy's header parser raises many kinds on hostile bytes
        raise ImageError(f"{name}: not a readable .npy array ({one_line(str(exc))})") from None
    if arr.ndim not in (2, 3) or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageError(
            f"{name}: a .npy image must be a numeric (H, W) or (H, W, C) array, got {arr.dtype} {arr.shape}"
        )
    if arr.ndim == 3 and layout == "chw":
        arr = np.moveaxis(arr, 0, -1)
    elif arr.ndim == 3 and layout is None:
        if looks_channels_first(arr.shape):
            raise ImageError(f"{name}: a .npy of shape {arr.shape} looks channels-first (C, H, W); give --layout chw "
                             "(or --layout hwc if it is H×W×C)")  # fmt: skip
    if arr.ndim == 3 and arr.shape[2] == 0:
        raise ImageError(f"{name}: image has no channels (shape {arr.shape})")
    check_pixels(arr.shape[1], arr.shape[0], name, max_pixels)
    if arr.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if gray and arr.shape[2] >= 3:
        arr = topixels.luma(np.ascontiguousarray(arr))
    return Picture(np.ascontiguousarray(arr), False, "npy")


def encode_npy(array: np.ndarray) -> bytes:
    """The raw float32 result as .npy bytes: (H, W) for one channel, else (H, W, C)."""
    buf = io.BytesIO()
    arr = array[:, :, 0] if array.shape[2] == 1 else array
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


# --------------------------------------------------------------------------- band by band


class NpyRows(Rows):
    """The rows of a C-ordered ``.npy`` array, read from the file as they are asked for."""

    def __init__(self, path: str, name: str, *, gray: bool = False):
        self.name, self.gray = name, gray
        self.fh = open(path, "rb")
        try:
            shape, fortran, dtype = read_header(self.fh)  # checks the header's size
        except BaseException:
            self.fh.close()
            raise NotStreamable from None
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
        self.channels = 1 if topixels.gray_luma(gray, self.c) else self.c
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
        if topixels.gray_luma(self.gray, self.c):
            arr = topixels.luma(np.ascontiguousarray(arr))
        return np.ascontiguousarray(arr)

    def close(self) -> None:
        self.fh.close()


class NpySink:
    """Writes a float32 ``.npy`` array ((H, W) for one channel) row band by row band."""

    def __init__(self, fh, width: int, height: int, channels: int, dtype=None, **_):
        self.fh = fh
        shape = (height, width) if channels == 1 else (height, width, channels)
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": shape})

    def write(self, values: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(values, dtype="<f4").tobytes())

    def close(self) -> None:
        pass


Rows, Sink = NpyRows, NpySink  # the registry's names for the banded reader and writer
