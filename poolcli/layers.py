"""A CNN convolution layer across channels: :func:`conv2d`, with ``torch.nn.Conv2d``'s arguments
and meaning (contract §11).

A kernel bank (``convolve`` with several kernels, ``conv K1,K2`` in a pipeline) is depthwise: each
2-D kernel on each colour channel alone.  :func:`conv2d` is the layer: every output channel sums
its group's input channels, each through its own 2-D kernel, then adds its bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .api import index_map
from .engine.runtime import run_loop
from .errors import UsageError
from .layout import as_array

PADDING_MODES = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest", "circular": "wrap"}  # torch → ours
LAYOUTS = ("chw", "nchw", "hwc", "nhwc")
MAX_SIDE = 1 << 16  # (kernel side − 1) × dilation + 1 and every padding: as the other operations bound them


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """(a, b) from an int or a pair of ints, each at least ``minimum``; ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise UsageError(f"{name} must be an integer or a pair of integers, got {value!r}")
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
            bad = len(pair) != 2 or any(isinstance(v, (bool, float, np.floating)) for v in value)
        except (TypeError, ValueError, OverflowError):
            bad = True
        if bad:
            raise UsageError(f"{name} must be an integer or a pair of integers, got {value!r}")
    if min(pair) < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value!r}")
    if max(pair) > MAX_SIDE:
        raise UsageError(f"{name} must be at most {MAX_SIDE:,}, got {value!r}")
    return pair


@dataclass(frozen=True)
class Conv2dSpec:
    """A checked layer: float32 ``weight`` (C_out, C_in/groups, kH, kW) and ``bias`` (C_out,);
    ``pads`` (top, bottom, left, right); stride, dilation; groups; ``boundary`` (poolcli's name
    of the padding mode)."""

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]
    groups: int
    boundary: str
    padding_mode: str
    has_bias: bool = True  # False when the file held no bias (the layer's zeros are then not parameters)

    def run(self, xp: np.ndarray, out: np.ndarray) -> None:
        """The layer's loop (compiled, or its NumPy form in a small job) on a padded (C_in, Hp, Wp)
        float32 image into (C_out, OH, OW)."""
        run_loop("conv2d", "conv2d", xp, self.weight, self.bias, *self.stride, *self.dilation, self.groups, out)

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1] * self.groups

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def parameters(self) -> int:
        """Learnable parameters as torchinfo counts them: the weights, and the bias if it has one."""
        return int(self.weight.size + (self.bias.size if self.has_bias else 0))

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """(OH, OW) = ⌊(H + P_top + P_bottom − D(K − 1) − 1) / S⌋ + 1, as PyTorch sizes it."""
        (sh, sw), (dh, dw), (t, b, left, right) = self.stride, self.dilation, self.pads
        kh, kw = self.weight.shape[2:]
        return (h + t + b - dh * (kh - 1) - 1) // sh + 1, (w + left + right - dw * (kw - 1) - 1) // sw + 1


def conv2d_spec(weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros") -> Conv2dSpec:
    """Check a layer's arguments once (ValueError naming the argument), as ``torch.nn.Conv2d``."""
    w = np.asarray(as_array(weight))
    if w.ndim != 4 or 0 in w.shape:
        raise UsageError(f"weight must be (C_out, C_in/groups, kH, kW), got shape {w.shape}")
    if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise UsageError(f"weight must be numeric, got {w.dtype}")
    w = np.ascontiguousarray(w, np.float32)
    if not np.isfinite(w).all():
        raise UsageError("weight holds NaN or infinity")
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise UsageError(f"groups must be a positive integer, got {groups!r}")
    groups = int(groups)
    if w.shape[0] % groups:
        raise UsageError(f"groups={groups} must divide the output channels (weight's first axis, {w.shape[0]})")
    b = np.zeros(w.shape[0], np.float32) if bias is None else np.asarray(as_array(bias))
    if b.shape != (w.shape[0],):
        raise UsageError(f"bias must be (C_out,) = ({w.shape[0]},), got shape {b.shape}")
    b = np.ascontiguousarray(b, np.float32)
    stride, dilation = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    mode = str(padding_mode).lower()
    if mode not in PADDING_MODES:
        raise UsageError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    kh, kw = w.shape[2:]
    if isinstance(padding, str):
        key = padding.lower()
        if key == "valid":
            pads = (0, 0, 0, 0)
        elif key == "same":
            if stride != (1, 1):
                raise UsageError("padding='same' is not supported for strided convolutions (stride must be 1)")
            th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)  # the extra row and column at the bottom and right
        else:
            raise UsageError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    else:
        ph, pw = _pair(padding, "padding", 0)
        pads = (ph, ph, pw, pw)
    if max(dilation[0] * (kh - 1), dilation[1] * (kw - 1)) + 1 > MAX_SIDE:
        raise UsageError(f"the kernel reaches more than {MAX_SIDE:,} pixels (kernel {kh}×{kw}, dilation {dilation})")
    return Conv2dSpec(w, b, stride, dilation, pads, groups, PADDING_MODES[mode], mode, bias is not None)


def apply_conv2d(chw: np.ndarray, spec: Conv2dSpec) -> np.ndarray:
    """The layer on one (C_in, H, W) image: (C_out, OH, OW) float32."""
    c, h, w = chw.shape
    if c != spec.in_channels:
        raise UsageError(f"input has {c} channels but the weight takes {spec.in_channels} "
                         f"(C_in/groups = {spec.weight.shape[1]}, groups = {spec.groups})")  # fmt: skip
    oh, ow = spec.output_size(h, w)
    if oh < 1 or ow < 1:
        raise UsageError(f"input {h}×{w} is smaller than the kernel's reach (output would be {oh}×{ow})")
    t, b, left, right = spec.pads
    if spec.padding_mode == "reflect" and (max(t, b) >= h or max(left, right) >= w):
        raise UsageError(f"padding {spec.pads} with padding_mode='reflect' must be less than the input's size {h}×{w}")
    if spec.padding_mode == "circular" and (max(t, b) > h or max(left, right) > w):
        raise UsageError(f"padding {spec.pads} with padding_mode='circular' must be at most the input's size {h}×{w}")
    out = np.empty((spec.out_channels, oh, ow), np.float32)
    spec.run(padded(chw, spec), out)
    return out


def padded(chw: np.ndarray, spec: Conv2dSpec) -> np.ndarray:
    """The (C, H + P_top + P_bottom, W + P_left + P_right) float32 input the loop reads: the
    padding mode's index tables applied once (zeros where they say −1)."""
    _, h, w = chw.shape
    t, b, left, right = spec.pads
    return pad_with(chw, index_map(h, t, b, spec.boundary), index_map(w, left, right, spec.boundary))


def pad_with(chw: np.ndarray, rowmap: np.ndarray, colmap: np.ndarray) -> np.ndarray:
    """(C, len(rowmap), len(colmap)) float32: chw[:, rowmap[i], colmap[j]], 0 where either is −1
    (the index tables of :func:`poolcli.api.index_map`)."""
    runs = _run(rowmap), _run(colmap)
    if None not in runs:  # zeros around one straight block (padding_mode zeros): a copy, no gather
        (r0, r1, s0), (c0, c1, t0) = runs
        xp = np.zeros((chw.shape[0], len(rowmap), len(colmap)), np.float32)
        xp[:, r0:r1, c0:c1] = chw[:, s0 : s0 + r1 - r0, t0 : t0 + c1 - c0]
        return xp
    xp = np.asarray(chw, np.float32)[:, np.maximum(rowmap, 0)][:, :, np.maximum(colmap, 0)]
    zero = (rowmap < 0)[:, None] | (colmap < 0)[None, :]
    if zero.any():
        xp[:, zero] = 0.0
    return np.ascontiguousarray(xp)


def _run(m: np.ndarray) -> tuple[int, int, int] | None:
    """(first, end, source start) when ``m`` is −1, then consecutive indices, then −1; else None."""
    inside = np.flatnonzero(m >= 0)
    if not len(inside):
        return None
    first, end = int(inside[0]), int(inside[-1]) + 1
    straight = end - first == len(inside) and (np.diff(m[first:end]) == 1).all()
    return (first, end, int(m[first])) if straight else None


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
           layout=None) -> np.ndarray:  # fmt: skip
    """A CNN convolution layer, as ``torch.nn.functional.conv2d`` (``torch.nn.Conv2d``) computes it.

    out[n, o, y, x] = bias[o] + Σ_{i, ky, kx} weight[o, i, ky, kx] · in[n, g·C_in/groups + i,
    y·S − P + ky·D, x·S − P + kx·D] over the input channels of output channel o's group g: a
    cross-correlation, as PyTorch's, summed across channels.

    Parameters
    ----------
    input : (C, H, W) or (N, C, H, W) array_like (a CPU tensor too)
        Any image dtype (uint8, uint16, float32, float64, other integers); ``layout="hwc"`` or
        ``"nhwc"`` for channels-last input.
    weight : (C_out, C_in/groups, kH, kW) array_like
    bias : (C_out,) array_like, optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), 'same' or 'valid'
        ``'same'`` pads as PyTorch does (for even reaches the extra row and column at the bottom
        and right) and is refused with a stride above 1.
    groups : int
        Input and output channels split into this many groups (``groups = C_in``: depthwise).
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        PyTorch's names (its ``reflect`` is poolcli's ``mirror``: dcb|abcd).
    layout : {'chw', 'nchw', 'hwc', 'nhwc'}, optional
        How ``input``'s axes are laid out (default channels first, by its number of axes); the
        result is laid out alike.

    Returns
    -------
    (C_out, OH, OW) or (N, C_out, OH, OW) float32 ndarray (or the ``layout`` given)

    Examples
    --------
    >>> import numpy as np, poolcli
    >>> x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    >>> poolcli.conv2d(x, np.ones((1, 2, 2, 2), np.float32), bias=[0.5]).shape
    (1, 3, 3)
    """
    spec = conv2d_spec(weight, bias, stride, padding, dilation, groups, padding_mode)
    arr = np.asarray(as_array(input))
    key = _layout(layout, arr.ndim, arr.shape)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise UsageError(f"input dtype {arr.dtype} is not supported (use an integer or float image)")
    if arr.size == 0:
        raise UsageError(f"input is empty (shape {arr.shape})")
    if key in ("hwc", "nhwc"):
        arr = np.moveaxis(arr, -1, -3)
    batch = arr if arr.ndim == 4 else arr[None]
    out = np.stack([apply_conv2d(np.ascontiguousarray(x), spec) for x in batch])
    out = out if arr.ndim == 4 else out[0]
    if key in ("hwc", "nhwc"):
        out = np.ascontiguousarray(np.moveaxis(out, -3, -1))
    return out


def _layout(layout: str | None, ndim: int, shape: tuple) -> str:
    """The layout of the input: ``layout``, else channels first by its number of axes."""
    if layout is None:
        if ndim not in (3, 4):
            raise UsageError(f"input must be (C, H, W) or (N, C, H, W), got shape {shape}")
        return "chw" if ndim == 3 else "nchw"
    key = str(layout).strip().lower()
    if key not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if ndim != (3 if key in ("chw", "hwc") else 4):
        raise UsageError(f"layout=\"{key}\" takes a {3 if key in ('chw', 'hwc') else 4}-D input, got shape {shape}")
    return key


def load_weights(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(weight, bias or None) of a layer's file: a ``.npy`` (the weight), or an ``.npz`` with keys
    ``weight`` and optional ``bias``, or exactly one ``*.weight`` and its ``*.bias`` (as a saved
    state dict names them: ``conv1.weight``).  Never unpickled; UsageError naming the file and,
    for an ``.npz`` of another layout, the keys found."""
    import io

    from .kernels import read_kernel_file

    label = f"@{path}"
    data = read_kernel_file(path, label)
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return np.asarray(loaded), None
        keys = list(loaded.files)
        if "weight" in keys:
            return loaded["weight"], (loaded["bias"] if "bias" in keys else None)
        named = [k for k in keys if k.endswith(".weight")]
        if len(named) != 1:
            raise UsageError(f"{label}: an .npz layer holds 'weight' (and 'bias'), or one '*.weight' and its "
                             f"'*.bias'; found {', '.join(keys) or 'no arrays'}")  # fmt: skip
        bias = named[0][: -len("weight")] + "bias"
        return loaded[named[0]], (loaded[bias] if bias in keys else None)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - NumPy's readers raise many kinds on hostile bytes
        text = " ".join(str(exc).split())[:200]
        raise UsageError(f"{label}: not a .npy or .npz weight file ({text})") from None


def layer_spec(path: str, stride="1", padding="0", dilation="1", groups: int = 1,
               padding_mode: str = "zeros") -> Conv2dSpec:  # fmt: skip
    """The checked layer of a weight file and the command line's options (``stride=2``,
    ``padding=same``, ``dilation=2x1``), UsageError naming what is wrong."""
    from .api import parse_pair

    weight, bias = load_weights(path)
    stride, dilation = parse_pair(stride, "stride"), parse_pair(dilation, "dilation")
    key = str(padding).strip().lower()
    pad = key if key in ("same", "valid") else parse_pair(padding, "padding", 0)
    return conv2d_spec(weight, bias, stride, pad, dilation, groups, padding_mode)


def apply_hwc(x: np.ndarray, colour: int, spec: Conv2dSpec) -> np.ndarray:
    """The layer on the ``colour`` first channels of an (H, W, C) image (alpha is not an input
    and does not travel through it): (OH, OW, C_out) float32.  An image whose colour channels
    are not the layer's inputs fails with ImageError naming both numbers."""
    from .errors import ImageError

    if colour != spec.in_channels:
        raise ImageError(f"the conv2d layer takes {spec.in_channels} input channels, the image has {colour}")
    chw = np.ascontiguousarray(np.moveaxis(np.asarray(x)[:, :, :colour], -1, 0))
    return np.ascontiguousarray(np.moveaxis(apply_conv2d(chw, spec), 0, -1))


# --------------------------------------------------------------------------- ready layers for learners

LAYER_KINDS = ("gabor", "random")
DEFAULT_OUT_CHANNELS = 16
DEFAULT_SIZE = 7
# what each Gabor filter looks at across R, G, B: luminance, then the two colour-opponent axes
_COLOUR_AXES = (np.array([1.0, 1.0, 1.0]) / np.sqrt(3), np.array([1.0, -1.0, 0.0]) / np.sqrt(2),
                np.array([-0.5, -0.5, 1.0]) / np.sqrt(1.5))  # fmt: skip


def gabor_layer(out_channels: int = DEFAULT_OUT_CHANNELS, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(weight (C_out, 3, size, size), zero bias): oriented Gabor filters over R, G, B, the shape
    trained first layers take.  Filter k has orientation θ = π·(k mod 8)/8 (8 orientations, fewer
    when C_out < 8), phase 0 (a line) or π/2 (an edge) alternating every 8, wavelength size/2,
    σ = 0.56·wavelength, aspect 0.5; its colour axis cycles luminance (R+G+B), red–green and
    blue–yellow every 16.  Each 2-D filter has zero mean and unit L2 norm, so flat regions give 0."""
    if out_channels < 1 or size < 1:
        raise UsageError(f"--out-channels and --size must be at least 1, got {out_channels} and {size}")
    orientations = min(8, out_channels)
    half = (size - 1) / 2
    y, x = np.mgrid[-half : half + 1 : 1.0, -half : half + 1 : 1.0]
    wavelength = max(2.0, size / 2)
    sigma = 0.56 * wavelength
    weight = np.zeros((out_channels, 3, size, size), np.float64)
    for k in range(out_channels):
        theta = np.pi * (k % orientations) / orientations
        phase = 0.0 if (k // orientations) % 2 == 0 else np.pi / 2
        xr, yr = x * np.cos(theta) + y * np.sin(theta), -x * np.sin(theta) + y * np.cos(theta)
        g = np.exp(-(xr**2 + (0.5 * yr) ** 2) / (2 * sigma**2)) * np.cos(2 * np.pi * xr / wavelength + phase)
        g -= g.mean()
        norm = np.sqrt((g**2).sum())
        g = g / norm if norm > 0 else g
        axis = _COLOUR_AXES[(k // (2 * orientations)) % len(_COLOUR_AXES)]
        weight[k] = axis[:, None, None] * g
    return weight.astype(np.float32), np.zeros(out_channels, np.float32)


def random_layer(out_channels: int = DEFAULT_OUT_CHANNELS, size: int = DEFAULT_SIZE, seed: int = 0,
                 in_channels: int = 3) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(weight, bias) drawn as ``torch.nn.Conv2d`` initialises them (Kaiming-uniform with a = √5):
    both uniform on ±1/√fan_in, fan_in = C_in·size², from NumPy's generator seeded ``seed``
    (the distribution PyTorch draws from, not its random stream): what an untrained layer does."""
    if out_channels < 1 or size < 1:
        raise UsageError(f"--out-channels and --size must be at least 1, got {out_channels} and {size}")
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(in_channels * size * size)
    weight = rng.uniform(-bound, bound, (out_channels, in_channels, size, size)).astype(np.float32)
    return weight, rng.uniform(-bound, bound, out_channels).astype(np.float32)


def layer_bytes(kind: str, out_channels: int, size: int, seed: int | None) -> bytes:
    """An ``.npz`` (``weight``, ``bias``) of a ready layer, as bytes to write atomically."""
    import io

    if kind not in LAYER_KINDS:
        raise UsageError(f"unknown --layer '{kind}' (choose from {', '.join(LAYER_KINDS)})")
    weight, bias = gabor_layer(out_channels, size) if kind == "gabor" else random_layer(out_channels, size, seed or 0)
    buf = io.BytesIO()
    np.savez(buf, weight=weight, bias=bias)
    return buf.getvalue()


class LayerPlan:
    """What a band of a layer's output rows reads (as :class:`poolcli.api.ConvPlan` says it for
    ``convolve``): ``rowmap`` the source row of each padded row (−1: zero), output row y reading
    padded rows y·stride … y·stride + span − 1; :meth:`compute` runs the same loop as the whole
    image on the band, so the two are bit-identical."""

    def __init__(self, shape: tuple[int, int, int], spec: Conv2dSpec):
        H, W, _ = shape
        self.spec = spec
        t, b, left, right = spec.pads
        self.oh, self.ow = spec.output_size(H, W)
        if self.oh < 1 or self.ow < 1:
            raise UsageError(f"input {H}×{W} is smaller than the kernel's reach (output would be {self.oh}×{self.ow})")
        self.top, self.stride = t, spec.stride[0]
        self.span = spec.dilation[0] * (spec.weight.shape[2] - 1) + 1
        self.rowmap = index_map(H, t, b, spec.boundary)
        self.colmap = index_map(W, left, right, spec.boundary)

    def padded_rows(self, y0: int, y1: int) -> np.ndarray:
        return self.rowmap[y0 * self.stride : (y1 - 1) * self.stride + self.span]

    def compute(self, band: np.ndarray, rowmap: np.ndarray, out: np.ndarray) -> None:
        """``out`` (rows, OW, C_out) of the (R, W, C_in) source rows ``band``; ``rowmap`` gives each
        padded row's row of ``band`` (−1: zero)."""
        spec = self.spec
        xp = pad_with(np.moveaxis(np.asarray(band), -1, 0), rowmap, self.colmap)
        maps = np.empty((spec.out_channels, out.shape[0], out.shape[1]), np.float32)
        spec.run(xp, maps)
        out[:] = np.moveaxis(maps, 0, -1)
