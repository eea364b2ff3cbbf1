"""How an array's axes are laid out (contract §5): ``hwc``, ``chw``, ``nhwc``, ``nchw``; tensors
taken from PyTorch (CPU, detached), the guard against channels-first arrays passed without a
layout, and the engine's (H, W, C) form of any image array."""

from __future__ import annotations

import numpy as np

from .errors import ImageError, UsageError

LAYOUTS = ("hwc", "chw", "nhwc", "nchw")


def as_array(image):
    """``image`` as a NumPy array: a CPU tensor (PyTorch's, or anything with ``detach``) is
    detached and viewed; a tensor on another device is refused, naming ``.cpu()``."""
    if hasattr(image, "detach") and hasattr(image, "device"):
        device = getattr(image.device, "type", str(image.device))
        if device != "cpu":
            raise UsageError(f"image is a tensor on {device}: move it to the CPU first (tensor.cpu())")
        image = image.detach()
        if hasattr(image, "resolve_conj"):
            image = image.resolve_conj()
        image = image.numpy()
    return np.asarray(image)


def looks_channels_first(shape: tuple) -> bool:
    """A 3-D shape whose first axis could be channels (≤ 4) and whose last could not (> 4)."""
    return len(shape) == 3 and shape[0] <= 4 and shape[2] > 4


def check_layout(layout: str | None, ndim: int, shape: tuple, what: str = "image") -> str:
    """The layout ``layout`` names for an array of this shape (contract §5); UsageError for
    an unknown one, a mismatch of axes, 4-D input without one, or — only when no layout is
    given — a 3-D array that looks channels-first."""
    if layout is None:
        if ndim == 4:
            raise UsageError(f"{what} of shape {shape} is a batch: pass layout=\"nchw\" or layout=\"nhwc\"")
        if looks_channels_first(shape):
            raise UsageError(
                f"{what} of shape {shape} looks channels-first (C, H, W): pass layout=\"chw\" "
                "(or layout=\"hwc\" if it really is H×W×C)"
            )
        return "hwc"
    key = str(layout).strip().lower()
    if key not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    want = {"hwc": (2, 3), "chw": (3,), "nhwc": (4,), "nchw": (4,)}[key]
    if ndim not in want:
        axes = " or ".join(f"{n}-D" for n in want)
        raise UsageError(f"layout=\"{key}\" takes a {axes} {what}, got shape {shape}")
    return key


def in_layout(image, layout: str | None, fn, *, per_image: bool = False):
    """``fn`` (an (H, W[, C]) array → (OH, OW[, C']) array) applied to ``image`` laid out as
    ``layout`` says, the result laid out alike.  Channels are independent for convolution and
    pooling, so a batch runs as one (H, W, N·C) call; ``per_image`` runs one call an image
    (stages that mix channels)."""
    arr = as_array(image)
    key = check_layout(layout, arr.ndim, arr.shape)
    if key == "hwc":
        return fn(arr)
    if key == "chw":
        return np.ascontiguousarray(np.moveaxis(fn(np.moveaxis(arr, 0, -1)), -1, 0))
    hwc = arr if key == "nhwc" else np.moveaxis(arr, 1, -1)  # (N, H, W, C)
    if per_image:
        out = np.stack([fn(np.ascontiguousarray(x)) for x in hwc])
    else:
        n, h, w, c = hwc.shape
        flat = fn(np.ascontiguousarray(hwc.transpose(1, 2, 0, 3).reshape(h, w, n * c)))
        out = flat.reshape(flat.shape[0], flat.shape[1], n, c).transpose(2, 0, 1, 3)
    return np.ascontiguousarray(out if key == "nhwc" else np.moveaxis(out, -1, 1))


def as_image(image) -> np.ndarray:
    """A C-contiguous (H, W, C) view or copy in one of the engine's dtypes."""
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise UsageError(f"image must be (H, W) or (H, W, C), got shape {arr.shape}")
    if arr.size == 0:
        raise ImageError(f"image is empty (shape {arr.shape})")
    if not arr.dtype.isnative:  # big-endian samples: the same type in this machine's order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise UsageError(f"image dtype {arr.dtype} is not supported (use uint8, uint16, float32 or float64)")
        arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if not arr.flags.writeable:  # one compiled signature per dtype: Numba types read-only arrays apart
        return arr.copy()
    return np.ascontiguousarray(arr)


