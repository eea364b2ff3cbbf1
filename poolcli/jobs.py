"""What one command does to one image, as a picklable value.

A job turns a decoded :class:`~poolcli.images.Picture` into a float or integer result and says
how that result becomes pixels; :func:`poolcli.batch.process_file` runs it between reading and
writing.  Jobs hold plain data only, so they travel to worker processes unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import api
from .images import Picture


@dataclass(frozen=True)
class Result:
    """A job's output: ``array`` (H, W, C) with ``colour`` colour channels, alpha after them."""

    array: np.ndarray
    colour: int
    scale: str
    values: list[float] | None = None


@dataclass(frozen=True)
class ConvolveJob:
    kernel: np.ndarray
    tag: str
    boundary: str = "reflect"
    cval: float = 0.0
    stride: int = 1
    dilation: int = 1
    flip: bool = False
    gray: bool = False
    scale: str = "auto"
    command = "convolve"

    def scale_rule(self) -> str:
        """``auto``: normalize when the kernel's weights sum to 0 (edge detectors), else clip."""
        if self.scale != "auto":
            return self.scale
        k = self.kernel
        zero_sum = abs(float(k[0].sum() if k.ndim == 3 else k.sum())) <= 1e-9 * float(np.abs(k).max())
        return "normalize" if zero_sum else "clip"

    def apply(self, pic: Picture) -> Result:
        colour = pic.colour
        out = api.convolve(
            colour, self.kernel, boundary=self.boundary, cval=self.cval, stride=self.stride,
            dilation=self.dilation, flip=self.flip,
        )  # fmt: skip
        if pic.alpha:
            # alpha is carried through: the same pixels the outputs are centred on
            kh, kw = self.kernel.shape[-2:]
            top = (kh // 2) * self.dilation if self.boundary == "valid" else 0
            left = (kw // 2) * self.dilation if self.boundary == "valid" else 0
            oh, ow = out.shape[:2]
            s = self.stride
            a = pic.alpha_plane[top : top + (oh - 1) * s + 1 : s, left : left + (ow - 1) * s + 1 : s]
            out = np.concatenate([out, a.astype(np.float32)], axis=2)
        return Result(out, colour.shape[2], self.scale_rule())

    def npy(self, result: Result) -> np.ndarray:
        """The feature map written by ``--format npy``: the colour channels' float32 result."""
        return result.array[:, :, : result.colour]


@dataclass(frozen=True)
class PoolJob:
    mode: str = "max"
    size: tuple[int, int] | None = (2, 2)
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor: int | None = None
    p: float = 2.0
    seed: int | None = None
    output_size: tuple[int, int] | None = None
    is_global: bool = False
    gray: bool = False
    command = "pool"

    @property
    def tag(self) -> str:
        """File-name tag: ``max2``, ``avg3x2_s1_p1`` (KHxKW), ``max_global``, ``avg_64x48`` (--to WxH)."""
        if self.is_global:
            return f"{self.mode}_global"
        if self.output_size is not None:
            return f"{self.mode}_{self.output_size[1]}x{self.output_size[0]}"
        parts = [f"{self.mode}{_hw(self.size)}"]
        if self.stride is not None and self.stride != self.size:
            parts.append(f"s{_hw(self.stride)}")
        if self.padding != (0, 0):
            parts.append(f"p{_hw(self.padding)}")
        if self.dilation != (1, 1):
            parts.append(f"d{_hw(self.dilation)}")
        if self.ceil_mode:
            parts.append("ceil")
        return "_".join(parts)

    def apply(self, pic: Picture) -> Result:
        out = api.pool(
            pic.pixels, self.mode, self.size or 1, stride=self.stride, padding=self.padding,
            dilation=self.dilation, ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
            divisor=self.divisor, p=self.p, seed=self.seed, output_size=self.output_size,
        )  # fmt: skip
        values = [float(v) for v in out.reshape(-1, out.shape[2])[0]] if self.is_global else None
        colour = pic.pixels.shape[2] - (1 if pic.alpha else 0)
        return Result(out, colour, "clip", values)

    def npy(self, result: Result) -> np.ndarray:
        """The pooled array, every channel (alpha was pooled too), as float32."""
        return result.array


def _hw(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"
