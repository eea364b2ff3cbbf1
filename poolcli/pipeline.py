"""Pipelines: ``"gaussian sigma=2 | sobel-x | relu | max 2"`` parsed once into checked stages and
run on float32 arrays with no rounding between them (contract §7).

Grammar, stage by stage (stages are separated by ``|``; a stage is an operation name, then
positional values, then ``key=value`` options spelled as the command line spells them):

- ``conv KERNEL [key=value…]``: KERNEL as ``-k`` takes it (a name, an inline matrix, @FILE), or a
  bank ``K1,K2,…`` of names and @FILEs (one feature map per kernel and input channel,
  kernel-major); ``NAME [key=value…]`` is short for ``conv NAME`` for every named kernel.
- ``pool MODE SIZE [key=value…]``, or ``MODE SIZE`` alone (``max 2``, ``avg 3 stride=2``);
  ``global MODE``; ``adaptive MODE WxH``.
- the element-wise operations of :data:`poolcli.ops.OPERATIONS` (``relu``, ``leaky-relu
  alpha=0.1``, ``abs``, ``sigmoid``, ``tanh``, ``gray``, ``normalize``, ``scale F``, ``bias
  B``, ``clip LO HI``, ``threshold T``).

A pooling mode's name is read as pooling even where it is also a kernel alias (``mean 2`` pools;
``box`` or ``conv mean`` is the box kernel).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from . import api, ops, tags
from .engine.runtime import compile_ms_so_far
from .errors import ImageError, UsageError, did_you_mean
from .kernels import ALIASES, KERNELS, choose_kernel, kernel_sums_to_zero
from .layout import as_image, in_layout

_SCALE_RESETS = ("normalize", "sigmoid", "tanh")  # after these, 'auto' clips (results in 0–1 or −1–1)


@dataclass(frozen=True, eq=False)
class Stage:
    """One checked stage: ``op`` its registry entry, ``spec`` what its runner needs (a
    ConvolveSpec, a tuple of them for a bank, a PoolSpec, or the element-wise options)."""

    text: str
    op: ops.Operation
    spec: object
    tag: str  # in file names: every option that changes the result (poolcli.tags)
    zero_sum: bool = False
    label: str = ""  # what describe() names it: the kernels' names

    @property
    def bank(self) -> bool:
        return isinstance(self.spec, tuple)

    @property
    def layer(self) -> bool:
        """A conv2d layer: its output channels sum over the input channels."""
        return self.op.kind == "conv2d"

    @property
    def maps(self) -> bool:
        """Whether the stage's result is feature maps (a bank's, a layer's): one file each."""
        return self.bank or self.layer

    def describe(self) -> str:
        """The stage with every option resolved, e.g. ``pool max 2x2 stride=2x2 padding=0x0 …``."""
        if self.op.kind == "conv":
            specs = self.spec if self.bank else (self.spec,)
            k = specs[0]
            shapes = ",".join(f"{s.kernel.shape[-1]}x{s.kernel.shape[-2]}" for s in specs)
            what = f"bank of {len(specs)}" if self.bank else "kernel"
            return (f"conv {self.label} ({what} {shapes}) boundary={k.boundary} cval={k.cval:g} stride={k.stride} "
                    f"dilation={k.dilation}")  # fmt: skip
        if self.layer:
            s = self.spec
            return (f"conv2d {self.label} ({s.out_channels}x{s.in_channels // s.groups}x{s.weight.shape[2]}x"
                    f"{s.weight.shape[3]}) stride={tags.hw(s.stride)} padding={'-'.join(map(str, s.pads))} "
                    f"dilation={tags.hw(s.dilation)} groups={s.groups} padding_mode={s.padding_mode}")  # fmt: skip
        if self.op.kind == "pool":
            s = self.spec
            if s.output_size is not None:
                head = f"pool {s.mode} output={s.output_size[1]}x{s.output_size[0]}"
            else:
                hw = lambda pair: f"{pair[1]}x{pair[0]}"  # noqa: E731 - W×H as the command line writes it
                head = (f"pool {s.mode} {hw(s.size)} stride={hw(s.stride)} padding={hw(s.padding)} "
                        f"dilation={hw(s.dilation)} ceil_mode={s.ceil_mode}")  # fmt: skip
            extra = {"avg": f" count_include_pad={s.count_include_pad} divisor={s.divisor}", "lp": f" p={s.p:g}",
                     "stochastic": f" seed={s.seed}"}.get(s.mode, "")  # fmt: skip
            return head + extra
        opts = " ".join(f"{k}={v:g}" for k, v in self.spec.items())
        return f"{self.op.name} {opts}".strip()


def _split_stages(text: str) -> list[str]:
    """The stages of ``text``: split at ``|`` outside quotes."""
    stages, current, quote = [], [], None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "|":
            stages.append("".join(current))
            current = []
            continue
        current.append(ch)
    stages.append("".join(current))
    return stages


def _fail(number: int, text: str, problem: str) -> UsageError:
    return UsageError(f"pipeline stage {number} '{text.strip()}': {problem}")


def _is_kernel_name(token: str) -> bool:
    key = token.strip().lower()
    return ALIASES.get(key, key) in KERNELS


def _arguments(op: ops.Operation, tokens: list[str], number: int, text: str) -> dict:
    """Positional values and key=value options of ``op``, parsed and range-checked."""
    values: dict = {}
    positional = list(op.positional)
    for token in tokens:
        if "=" in token:
            key, _, raw = token.partition("=")
            key = key.strip().lower().replace("-", "_")
            param = op.param(key)
            if param is None:
                known = ", ".join(p.name for p in op.params) or "none"
                hint = did_you_mean(key, [p.name for p in op.params])
                raise _fail(number, text, f"unknown option '{key}' for {op.name}{hint} (options: {known})")
            if key in values:
                raise _fail(number, text, f"'{key}' is given twice")
            if raw == "":
                raise _fail(number, text, f"'{key}=' has no value")
            values[key] = param.parse(raw, f"pipeline stage {number} '{text.strip()}'")
        else:
            while positional and positional[0] in values:
                positional.pop(0)
            if not positional:
                raise _fail(number, text, f"unexpected value '{token}' ({op.name} takes "
                                          f"{' '.join(op.positional).upper() or 'no values'})")  # fmt: skip
            name = positional.pop(0)
            param = op.param(name)
            values[name] = param.parse(token, f"pipeline stage {number} '{text.strip()}'") if param else token
    for name in op.positional:
        param = op.param(name)
        if name not in values and (param is None or param.default is None):
            example = _EXAMPLES.get(op.name, f"{op.name} 2" if op.kind == "pool" else op.name)
            raise _fail(number, text, f"{op.name} needs {name.upper()} (e.g. {example})")
    for param in op.params:
        values.setdefault(param.name, param.default)
    return values


_EXAMPLES = {
    "conv": "conv sobel, conv '0,-1,0;-1,5,-1;0,-1,0', conv sobel-x,sobel-y",
    "scale": "scale 2.5", "bias": "bias -0.5", "clip": "clip 0 1", "threshold": "threshold 0.5",
}  # fmt: skip


def _conv_stage(kernel: str, tokens: list[str], number: int, text: str) -> Stage:
    op = ops.OPERATIONS["conv"]
    o = _arguments(replace(op, positional=()), tokens, number, text)  # KERNEL was taken already
    where = f"pipeline stage {number} '{text.strip()}'"
    parts = [p for p in kernel.split(",")] if ("," in kernel and ";" not in kernel) else [kernel]
    bank = len(parts) > 1 and all(p.strip().startswith("@") or _is_kernel_name(p) for p in parts)
    try:
        specs, names = [], []
        for part in parts if bank else [kernel]:
            choice = choose_kernel(part, size=o["size"], sigma=o["sigma"])
            specs.append(api.convolve_spec(choice.matrix, boundary=o["boundary"], cval=o["cval"], stride=o["stride"],
                                           dilation=o["dilation"], flip=o["flip"]))  # fmt: skip
            names.append(choice.tag)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    zero = any(kernel_sums_to_zero(s.kernel) for s in specs)
    params = tuple((k, o[k]) for k in ("size", "sigma") if o[k] is not None)
    tag = tags.convolve_tag("+".join(names), specs[0], params, o["flip"])
    return Stage(text, op, tuple(specs) if bank else specs[0], tag, zero, "+".join(names))


def _conv2d_stage(tokens: list[str], number: int, text: str) -> Stage:
    """``conv2d @FILE [stride= padding= dilation= groups= padding_mode=]``: a layer's weights."""
    import os

    from .layers import layer_spec

    op = ops.OPERATIONS["conv2d"]
    o = _arguments(op, tokens, number, text)
    if not str(o["weights"]).startswith("@"):
        raise _fail(number, text, "conv2d takes its weights from a file: conv2d @FILE (.npy, or .npz of weight "
                                  "and bias; `poolcli kernels --layer gabor -o gabor.npz` makes one)")  # fmt: skip
    path = o["weights"][1:]
    try:
        spec = layer_spec(path, o["stride"], o["padding"], o["dilation"], o["groups"], o["padding_mode"])
    except UsageError as exc:
        raise UsageError(f"pipeline stage {number} '{text.strip()}': {exc}") from None
    stem = os.path.splitext(os.path.basename(path))[0] or "layer"
    return Stage(text, op, spec, tags.conv2d_tag(stem, spec), True, stem)


def _pool_stage(mode: str, rest: list[str], number: int, text: str, shape: str = "window") -> Stage:
    op = ops.lookup(mode)
    if op is None or op.kind != "pool":
        hint = did_you_mean(mode.lower(), ops.POOL_MODES)
        raise _fail(number, text, f"unknown pooling mode '{mode}'{hint} (choose from {', '.join(ops.POOL_MODES)})")
    where = f"pipeline stage {number} '{text.strip()}'"
    if shape == "window":
        sized = ops.Operation(op.name, op.kind, op.help, (ops.Param("size", str, None), *op.params), ("size",))
        o = _arguments(sized, rest, number, text)
        output_size = None
    else:
        target = ("size",) if shape == "adaptive" else ()
        mode_params = tuple(p for p in op.params if p not in ops.GEOMETRY)  # adaptive windows have no geometry
        sized = ops.Operation(op.name, op.kind, op.help, (ops.Param("size", str, None), *mode_params), target)
        o = _arguments(sized, rest, number, text)
        if shape == "adaptive":
            try:
                w, h = api.parse_pair(o["size"], "WxH")
            except UsageError as exc:
                raise UsageError(f"{where}: {exc}") from None
            output_size = (h, w)
        else:
            output_size = (1, 1)
    raw = mode.strip().lower()
    try:
        spec = api.pool_spec(
            "l2" if raw == "l2" else op.name, o.get("size") or 1, stride=o.get("stride"), padding=o.get("padding", 0),
            dilation=o.get("dilation", 1), ceil_mode=o.get("ceil_mode", False),
            count_include_pad=o.get("count_include_pad", True), divisor=o.get("divisor"), p=o.get("p", 2.0),
            seed=o.get("seed"), output_size=output_size,
        )  # fmt: skip
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return Stage(text, op, spec, tags.pool_tag(spec, is_global=shape == "global"))


def parse_stage(text: str, number: int) -> Stage:
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise _fail(number, text, f"{exc} (an unclosed quote?)") from None
    if not tokens:
        raise _fail(number, text, "empty stage (two '|' in a row, or one at an end?)")
    head, rest = tokens[0], tokens[1:]
    key = head.lower()
    if key == "conv2d":
        return _conv2d_stage(rest, number, text)
    if key == "conv":
        if not rest or "=" in rest[0]:
            raise _fail(number, text, f"conv needs a KERNEL (e.g. {_EXAMPLES['conv']})")
        return _conv_stage(rest[0], rest[1:], number, text)
    if key == "pool":
        if not rest:
            raise _fail(number, text, "pool needs a MODE and a SIZE (e.g. pool max 2)")
        if rest[0].lower() in ("global", "adaptive"):
            return parse_stage(" ".join(shlex.quote(t) for t in rest), number)
        return _pool_stage(rest[0], rest[1:], number, text)
    if key in ("global", "adaptive"):
        if not rest:
            raise _fail(number, text, f"{key} needs a MODE (e.g. {key} max{' 64x48' if key == 'adaptive' else ''})")
        return _pool_stage(rest[0], rest[1:], number, text, shape=key)
    op = ops.lookup(head)
    if op is not None and op.kind == "pool":
        return _pool_stage(head, rest, number, text)
    if op is not None and op.kind == "elementwise":
        o = _arguments(op, rest, number, text)
        return Stage(text, op, {k: v for k, v in o.items()}, tags.elementwise_tag(op, o))
    if _is_kernel_name(head):
        return _conv_stage(head, rest, number, text)
    choices = ops.names() + list(KERNELS)
    hint = did_you_mean(key, choices)
    raise _fail(number, text, f"unknown operation '{head}'{hint} (operations: conv, pool, global, adaptive, "
                              f"{', '.join(n for n in ops.OPERATIONS if n != 'conv')}, or a kernel name)")  # fmt: skip


@dataclass(frozen=True, eq=False)
class Pipeline:
    """A parsed pipeline: its stages, in order."""

    stages: tuple[Stage, ...]
    text: str = ""

    def __reduce__(self):  # to a Dask worker: the text, parsed again there (stages hold functions)
        return (Pipeline.parse, (self.text,))

    @classmethod
    def parse(cls, text: str) -> Pipeline:
        """Parse and check every stage; UsageError naming the stage and the problem."""
        if not isinstance(text, str) or not text.strip():
            raise UsageError("the pipeline is empty: give stages separated by '|', e.g. 'gaussian sigma=2 | sobel'")
        return cls(tuple(parse_stage(s, i) for i, s in enumerate(_split_stages(text), start=1)), text)

    def describe(self) -> str:
        """One line per stage with every option resolved."""
        return "\n".join(f"{i}. {s.describe()}" for i, s in enumerate(self.stages, start=1))

    @property
    def tag(self) -> str:
        """The default file-name tag: the stages' tags joined (``gaussian_sigma2-sobel-x-relu-max2``)."""
        return "-".join(s.tag for s in self.stages)

    @property
    def has_bank(self) -> bool:
        """Whether the result is feature maps (a bank's or a conv2d layer's): one file each."""
        return any(s.maps for s in self.stages)


    def colours(self, colour: int) -> list[int]:
        """The colour channels after each stage of an image with ``colour`` of them (a bank
        multiplies them by its kernels, ``gray`` makes one), without running anything."""
        out = []
        for stage in self.stages:
            if stage.bank:
                colour *= len(stage.spec)
            elif stage.layer:
                colour = stage.spec.out_channels
            elif stage.op.name == "gray":
                colour = 1
            out.append(colour)
        return out

    def auto_scale(self) -> str:
        """``auto`` for the final result: ``normalize`` when a convolution stage's kernel sums to
        0 and no later stage is normalize, sigmoid or tanh; else ``clip``."""
        for i, stage in enumerate(self.stages):
            if stage.zero_sum and not any(s.op.name in _SCALE_RESETS for s in self.stages[i + 1 :]):
                return "normalize"
        return "clip"

    def apply(self, image: np.ndarray, colour: int, on_stage: Callable | None = None) -> tuple[np.ndarray, int]:
        """Run every stage on an (H, W, C) array whose first ``colour`` channels are colour (the
        rest alpha, carried through geometry); returns (float32 result, colour channels).
        ``on_stage(i, stage, array, colour, seconds)`` is called after each stage (seconds
        of computing, compilation left out)."""
        x = image
        for i, stage in enumerate(self.stages, start=1):
            t0, c0 = time.perf_counter(), compile_ms_so_far()
            x, colour = apply_stage(stage, x, colour)
            if on_stage is not None:  # compile time is the summary's own row, not the stage's
                on_stage(i, stage, x, colour, time.perf_counter() - t0 - (compile_ms_so_far() - c0) / 1e3)
        return np.asarray(x, dtype=np.float32), colour


def apply_stage(stage: Stage, x: np.ndarray, colour: int) -> tuple[np.ndarray, int]:
    """One stage on an (H, W, C) float32 array whose first ``colour`` channels are colour: (its
    result, the result's colour channels)."""
    kind = stage.op.kind
    if kind == "pool":  # alpha is pooled with the same mode
        return api.apply_pool(x, stage.spec), colour
    if kind == "elementwise":
        out = stage.op.runner(x, stage.spec, colour)
        return out, (1 if stage.op.name == "gray" and colour == 3 else colour)
    if stage.layer:  # alpha is not an input channel and does not travel through the layer
        from .layers import apply_hwc

        return apply_hwc(x, colour, stage.spec), stage.spec.out_channels
    specs = stage.spec if stage.bank else (stage.spec,)
    src = x[:, :, :colour]
    maps = [api.apply_convolve(src, spec) for spec in specs]  # kernel-major: map k·C + c
    if any(m.shape != maps[0].shape for m in maps):
        raise ImageError("the bank's kernels give feature maps of different sizes (boundary 'valid')")
    out = maps[0] if len(maps) == 1 else np.concatenate(maps, axis=2)
    if x.shape[2] > colour:  # alpha: the pixels the outputs are centred on
        alpha = api.sample_like(x[:, :, colour:], specs[0], out.shape[0], out.shape[1])
        out = np.concatenate([out, alpha.astype(np.float32)], axis=2)
    return out, colour * len(specs)


def run(image, pipeline, *, layout: str | None = None) -> np.ndarray:
    """Run a pipeline on an image: what the same sequence of :func:`poolcli.convolve`,
    :func:`poolcli.pool` and NumPy element-wise calls gives, as float32.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
        Every channel is a colour channel.
    pipeline : str or Pipeline
        Stages separated by ``|`` (see :mod:`poolcli.pipeline`).
    layout : {'hwc', 'chw', 'nhwc', 'nchw'}, optional
        How ``image``'s axes are laid out, as for :func:`poolcli.pool`; the result alike.

    Returns
    -------
    (OH, OW) or (OH, OW, C') float32 ndarray (C' = C × kernels for a bank).

    Examples
    --------
    >>> import numpy as np, poolcli
    >>> x = np.array([[1, -2, 3, -4], [5, -6, 7, -8]], np.float32)
    >>> poolcli.run(x, "relu | max 2")
    array([[5., 7.]], dtype=float32)
    """
    pipe = pipeline if isinstance(pipeline, Pipeline) else Pipeline.parse(pipeline)
    return in_layout(image, layout, lambda x: _run_hwc(x, pipe), per_image=True)


def _run_hwc(arr: np.ndarray, pipe: Pipeline) -> np.ndarray:
    squeeze = arr.ndim == 2
    img = as_image(arr)  # the API's checks: dtypes, empty arrays (as convolve and pool make them)
    out, _ = pipe.apply(img, img.shape[2])
    return out[:, :, 0] if squeeze and out.shape[2] == 1 else out


def stage_rows(stage: Stage, src, colour: int):
    """(:class:`poolcli.bands.Rows` of the stage's result on the rows ``src``, colour channels):
    what :func:`apply_stage` gives, band by band (contract §10)."""
    from . import bands

    kind = stage.op.kind
    if kind == "pool":
        return bands.PoolRows(src, stage.spec), colour
    if kind == "elementwise":
        if stage.op.name == "normalize":
            return bands.NormalizeRows(src, colour), colour
        gray = stage.op.name == "gray" and colour == 3
        if stage.op.name == "gray" and colour not in (1, 3):
            stage.op.runner(np.zeros((1, 1, src.channels), np.float32), stage.spec, colour)  # its own message
        run, spec = stage.op.runner, stage.spec
        return bands.MapRows(src, lambda band: run(band, spec, colour), src.channels - 2 if gray else src.channels), (
            1 if gray else colour
        )
    if stage.layer:
        return bands.LayerRows(src, stage.spec, colour), stage.spec.out_channels
    specs = stage.spec if stage.bank else (stage.spec,)
    return bands.ConvolveRows(src, specs, colour), colour * len(specs)


def pipeline_rows(pipeline: Pipeline, src, colour: int):
    """(Rows of the pipeline's float32 result on the rows ``src``, colour channels), band by band."""
    from . import bands

    rows = src
    for stage in pipeline.stages:
        rows, colour = stage_rows(stage, rows, colour)
    if rows.dtype != np.float32:
        rows = bands.MapRows(rows, lambda band: band.astype(np.float32), rows.channels)
    return rows, colour
