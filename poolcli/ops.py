"""The operation registry: every operation a command or a pipeline stage can apply.

One dict, :data:`OPERATIONS`, in the spirit of :data:`poolcli.kernels.KERNELS`: each entry
holds the operation's name and aliases, its parameters with their types, defaults and ranges,
the rule for its output dtype, and its runner.  The ``run`` stage parser, the ``pool`` and
``convolve`` help texts and the tests' parameter sweeps are generated from it; adding an
activation or a pooling mode is one entry here (plus its engine loop).

Runners take and return ``(H, W, C)`` arrays (channels last) and never see a string: a stage's
options are checked and resolved once, into a spec, before any image is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ImageError, UsageError

# NumPy is imported inside the runners: the command line reads this registry for its help
# texts, and `poolcli --help` must not pay for NumPy.

BOUNDARIES = ("reflect", "mirror", "nearest", "wrap", "constant", "valid")
BOUNDARY_ALIASES = {
    "symmetric": "reflect", "reflect101": "mirror", "reflect-101": "mirror", "reflect_101": "mirror",
    "replicate": "nearest", "edge": "nearest", "circular": "wrap", "tile": "wrap", "periodic": "wrap",
    "zero": "constant", "zeros": "constant", "fill": "constant",
}  # fmt: skip


FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Param:
    """One parameter: ``kind`` is int, float, bool or str; ``low``/``high`` bound numbers
    (inclusive unless ``open_low``)."""

    name: str
    kind: type
    default: object = None
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    help: str = ""

    def parse(self, text, where: str):
        """The value of ``text`` (a string from the command line, or a Python value)."""
        value = text
        if isinstance(text, str):
            raw = text.strip()
            try:
                if self.kind is bool:
                    if raw.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                        raise ValueError
                    value = raw.lower() in ("true", "1", "yes", "on")
                elif self.kind is int:
                    value = int(raw)
                elif self.kind is float:
                    value = float(raw)
                else:
                    value = raw
            except ValueError:
                kind = {bool: "true or false", int: "an integer", float: "a number"}.get(self.kind, "a value")
                raise UsageError(f"{where}: {self.name} must be {kind}, got '{text}'") from None
        if self.kind in (int, float) and not isinstance(value, str):
            if self.kind is float and not math.isfinite(value):
                raise UsageError(f"{where}: {self.name} must be a finite number, got {value}")
            if self.kind is float and abs(value) > FLOAT32_MAX:  # stages compute in float32
                raise UsageError(f"{where}: {self.name} must be within float32 (±3.4e38), got {value}")
            if self.low is not None and (value <= self.low if self.open_low else value < self.low):
                sign = ">" if self.open_low else "≥"
                raise UsageError(f"{where}: {self.name} must be {sign} {self.low:g}, got {value}")
            if self.high is not None and value > self.high:
                raise UsageError(f"{where}: {self.name} must be at most {self.high:g}, got {value}")
        return value


@dataclass(frozen=True)
class Operation:
    """A registry entry.  ``kind`` is ``conv``, ``pool`` or ``elementwise``; ``dtype`` is the
    output dtype rule (``float32``, or ``input`` for pooling modes that pick a cell);
    ``positional`` names the parameters that may be given without ``key=``; ``runner(array,
    options) -> array`` applies it (elementwise and the helpers; conv and pool run through the
    API's specs)."""

    name: str
    kind: str
    help: str
    params: tuple[Param, ...] = ()
    positional: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    dtype: str = "float32"
    runner: Callable | None = field(default=None, compare=False)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _f32(x):
    import numpy as np

    return np.asarray(x, dtype=np.float32)


def _colour_minmax(x, colour: int) -> tuple[float, float]:
    import numpy as np

    part = x[:, :, :colour]
    finite = part[np.isfinite(part)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def _normalize(x, o, colour):
    """(x − min) / (max − min) over the colour channels (NaN and ±inf passed over); flat → 0."""

    x = _f32(x)
    return stretch(x, *_colour_minmax(x, colour), colour)


def stretch(x, lo: float, hi: float, colour: int):
    """:func:`_normalize` with the range (of the whole image) given: float32 ``x`` stretched."""
    import numpy as np

    out = x.copy()
    if hi > lo:
        out[:, :, :colour] = (x[:, :, :colour] - np.float32(lo)) / np.float32(hi - lo)
    else:
        out[:, :, :colour] = 0
    return out


def _gray(x, o, colour):
    """ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B of the three colour channels, in float32."""
    import numpy as np

    x = _f32(x)
    if colour == 1:
        return x
    if colour != 3:
        raise ImageError(f"gray needs 1 or 3 colour channels, the image has {colour} at that stage")
    w = np.array([0.299, 0.587, 0.114], np.float32)
    luma = x[:, :, 0:1] * w[0] + x[:, :, 1:2] * w[1] + x[:, :, 2:3] * w[2]
    return np.concatenate([luma, x[:, :, 3:]], axis=2)


def _each(fn):
    """A runner that applies ``fn(values, options, np)`` to the colour channels only (alpha kept)."""

    def run(x, o, colour):
        import numpy as np

        x = _f32(x)
        with np.errstate(over="ignore"):  # sigmoid of a large negative value: e^−x is inf, the result 0
            if colour == x.shape[2]:
                return _f32(fn(x, o, np))
            out = x.copy()
            out[:, :, :colour] = fn(x[:, :, :colour], o, np)
        return out

    return run


GEOMETRY = (
    Param("stride", str, None, help="step N or SHxSW (default: the window)"),
    Param("padding", str, "0", help="implicit padding P or PHxPW, at most half the window"),
    Param("dilation", str, "1", help="spacing of the window's taps"),
    Param("ceil_mode", bool, False, help="round the output size up"),
)
POOL_PARAMS = {
    "max": (), "min": (), "median": (),
    "avg": (Param("count_include_pad", bool, True, help="count padded cells in the divisor"),
            Param("divisor", int, None, help="divide every window sum by N")),
    "lp": (Param("p", float, 2.0, low=0, open_low=True, help="the power"),),
    "stochastic": (Param("seed", int, None, low=0, high=2**63 - 1, help="make the choice repeatable"),),
}  # fmt: skip
POOL_HELP = {
    "max": "the largest value of each window (torch max_pool2d)",
    "avg": "the mean of each window (torch avg_pool2d)",
    "min": "the smallest value of each window (−max_pool2d(−x))",
    "lp": "power mean (Σ xᵖ)^(1/p) of each window (torch lp_pool2d)",
    "median": "the lower median of each window's cells inside the image",
    "stochastic": "one cell of each window, with probability ∝ its value (Zeiler & Fergus)",
}
POOL_ALIASES = {"avg": ("average", "mean"), "max": ("maximum",), "min": ("minimum",), "lp": ("l2",)}

CONV_PARAMS = (
    Param("size", int, None, low=1, help="size of box / gaussian"),
    Param("sigma", float, None, low=0, open_low=True, help="standard deviation of gaussian"),
    Param("boundary", str, "reflect", help="reflect, mirror, nearest, wrap, constant or valid"),
    Param("cval", float, 0.0, help="the value outside the image for constant"),
    Param("stride", int, 1, low=1, help="keep every N-th output row and column"),
    Param("dilation", int, 1, low=1, help="spread kernel taps D pixels apart"),
    Param("flip", bool, False, help="true convolution (kernel rotated 180°)"),
)

OPERATIONS: dict[str, Operation] = {
    "conv": Operation("conv", "conv", "convolve with a kernel: a name, a matrix, @FILE, or a bank K1,K2,…",
                      CONV_PARAMS, positional=("kernel",)),
    **{mode: Operation(mode, "pool", POOL_HELP[mode], GEOMETRY + POOL_PARAMS[mode], positional=("size",),
                       aliases=POOL_ALIASES.get(mode, ()), dtype="input" if mode in ("max", "min", "median",
                       "stochastic") else "float32") for mode in POOL_PARAMS},
    "conv2d": Operation(
        "conv2d", "conv2d", "a CNN layer across channels, as torch.nn.Conv2d: @FILE, a .npy weight or an .npz of "
        "weight and bias", (Param("weights", str, None), Param("stride", str, "1"), Param("padding", str, "0"),
                            Param("dilation", str, "1"), Param("groups", int, 1),
                            Param("padding_mode", str, "zeros")), positional=("weights",),
    ),  # fmt: skip
    "relu": Operation("relu", "elementwise", "max(x, 0)", runner=_each(lambda x, o, np: np.maximum(x, np.float32(0)))),
    "leaky-relu": Operation(
        "leaky-relu", "elementwise", "x if x ≥ 0 else alpha·x", (Param("alpha", float, 0.01),),
        positional=("alpha",), aliases=("leaky_relu", "lrelu"),
        runner=_each(lambda x, o, np: np.where(x >= 0, x, x * np.float32(o["alpha"]))),
    ),
    "abs": Operation("abs", "elementwise", "|x|", runner=_each(lambda x, o, np: np.abs(x))),
    "sigmoid": Operation("sigmoid", "elementwise", "1 / (1 + e^−x)",
                         runner=_each(lambda x, o, np: np.float32(1) / (np.float32(1) + np.exp(-x)))),
    "tanh": Operation("tanh", "elementwise", "tanh x", runner=_each(lambda x, o, np: np.tanh(x))),
    "gray": Operation("gray", "elementwise", "0.299 R + 0.587 G + 0.114 B (alpha kept)", runner=_gray),
    "normalize": Operation("normalize", "elementwise", "min–max over the colour channels to 0–1", runner=_normalize),
    "scale": Operation("scale", "elementwise", "x · F", (Param("factor", float, None),), positional=("factor",),
                       runner=_each(lambda x, o, np: x * np.float32(o["factor"]))),
    "bias": Operation("bias", "elementwise", "x + B", (Param("value", float, None),), positional=("value",),
                      runner=_each(lambda x, o, np: x + np.float32(o["value"]))),
    "clip": Operation("clip", "elementwise", "min(max(x, LO), HI)", (Param("low", float, None),
                      Param("high", float, None)), positional=("low", "high"),
                      runner=_each(lambda x, o, np: np.clip(x, np.float32(o["low"]), np.float32(o["high"])))),
    "threshold": Operation("threshold", "elementwise", "x if x > T else value (torch nn.Threshold)",
                           (Param("threshold", float, None), Param("value", float, 0.0)), positional=("threshold",),
                           runner=_each(lambda x, o, np: np.where(x > np.float32(o["threshold"]), x,
                                                              np.float32(o["value"])))),
}  # fmt: skip

POOL_MODES = tuple(name for name, op in OPERATIONS.items() if op.kind == "pool")
PICKS = tuple(name for name in POOL_MODES if OPERATIONS[name].dtype == "input")  # each output is one input value


def help_list(kind: str) -> str:
    """The names of one kind of operation (``pool``, ``elementwise``) for help texts."""
    return ", ".join(name for name, op in OPERATIONS.items() if op.kind == kind)


def param_help(op: str, name: str) -> str:
    """The registry's help for one parameter, as a command-line help text (``lp: the power``)."""
    entry = OPERATIONS[op]
    param = entry.param(name)
    prefix = f"{op}: " if entry.kind == "pool" and param not in GEOMETRY else ""
    return f"{prefix}{param.help[0].upper()}{param.help[1:]}." if not prefix else f"{prefix}{param.help}."


def boundary_help() -> str:
    return f"{', '.join(BOUNDARIES)} (aliases: {', '.join(BOUNDARY_ALIASES)})"


def lookup(name: str) -> Operation | None:
    """The operation called ``name`` or one of its aliases (case-insensitive), else None."""
    key = name.strip().lower()
    if key in OPERATIONS:
        return OPERATIONS[key]
    return next((op for op in OPERATIONS.values() if key in op.aliases), None)


def names() -> list[str]:
    """Every operation name and alias, for suggestions."""
    return [n for op in OPERATIONS.values() for n in (op.name, *op.aliases)]
