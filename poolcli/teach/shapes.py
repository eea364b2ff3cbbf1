"""Shapes through a pipeline (contract §9): each stage's output H×W×C, its learnable parameters,
its receptive field on the input and its jump (effective stride), as torchinfo and the
receptive-field calculators give them, but for poolcli's own stages on the user's picture.

Every stage is seen, per axis, as windows of ``k`` taps ``d`` apart, one every ``s`` input
cells, the first starting at ``start``: output ``i`` reads input ``i·s + start + t·d`` for t in
0…k−1.  The field and the jump follow the usual recurrence, r ← r + d(k − 1)·j and j ← j·s, from
r = j = 1 on the input; global pooling's field is the whole input, adaptive pooling's is its
largest window (its jump the largest step between two windows' starts).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import api


@dataclass(frozen=True)
class Axis:
    """One axis of a stage's windows: ``k`` taps ``d`` apart, one window every ``s``, the first at
    ``start``; ``kind`` "window", "adaptive" (PyTorch's adaptive windows onto ``out`` cells),
    "global" or "same" (element-wise: output i is input i).  ``pad``: the padding on both sides
    together, as the output-size formula counts it (None for a convolution padded to keep the
    size); ``ceil``: pooling's ceil mode."""

    kind: str
    k: int = 1
    s: int = 1
    d: int = 1
    start: int = 0
    out: int = 1
    pad: int | None = 0
    ceil: bool = False

    def reads(self, first: int, last: int, n: int) -> tuple[int, int]:
        """The input cells outputs ``first``…``last`` read (before any clipping to the input)."""
        if self.kind == "same":
            return first, last
        if self.kind == "global":
            return 0, n - 1
        if self.kind == "adaptive":
            starts, counts = api.adaptive_windows(n, self.out)
            return int(starts[first]), int(starts[last] + counts[last] - 1)
        return first * self.s + self.start, last * self.s + self.start + self.d * (self.k - 1)


@dataclass(frozen=True)
class Geometry:
    """A stage's windows on both axes and how its output size follows from its input's."""

    rows: Axis
    cols: Axis
    sizes: object  # (h, w) → (oh, ow)


def geometry(stage) -> Geometry:
    """The windows of a parsed pipeline stage (:class:`poolcli.pipeline.Stage`)."""
    kind = stage.op.kind
    if kind == "elementwise":
        return Geometry(Axis("same"), Axis("same"), lambda h, w: (h, w))
    if stage.layer:
        s = stage.spec
        kh, kw = s.weight.shape[2:]
        (sh, sw), (dh, dw), (t, b, left, right) = s.stride, s.dilation, s.pads
        return Geometry(Axis("window", kh, sh, dh, -t, pad=t + b), Axis("window", kw, sw, dw, -left, pad=left + right),
                        s.output_size)  # fmt: skip
    if kind == "pool":
        s = stage.spec
        if s.output_size is not None:
            oh, ow = s.output_size
            shape = "global" if "_global" in stage.tag else "adaptive"
            return Geometry(Axis(shape, out=oh), Axis(shape, out=ow), lambda h, w: (oh, ow))
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = s.size, s.stride, s.padding, s.dilation

        def pooled(h, w):
            return (api.pool_output_size(h, kh, sh, ph, dh, s.ceil_mode),
                    api.pool_output_size(w, kw, sw, pw, dw, s.ceil_mode))  # fmt: skip

        return Geometry(Axis("window", kh, sh, dh, -ph, pad=2 * ph, ceil=s.ceil_mode),
                        Axis("window", kw, sw, dw, -pw, pad=2 * pw, ceil=s.ceil_mode), pooled)  # fmt: skip
    spec = stage.spec[0] if stage.bank else stage.spec  # a convolution: the window centred on its pixel
    kh, kw = spec.kernel.shape[-2:]
    top, left = spec.crop
    D, S = spec.dilation, spec.stride
    valid = spec.boundary == "valid"

    def convolved(h, w):
        if valid:
            return (h - D * (kh - 1) - 1) // S + 1, (w - D * (kw - 1) - 1) // S + 1
        return (h - 1) // S + 1, (w - 1) // S + 1

    return Geometry(Axis("window", kh, S, D, top - (kh // 2) * D, pad=0 if valid else None),
                    Axis("window", kw, S, D, left - (kw // 2) * D, pad=0 if valid else None), convolved)  # fmt: skip


def parameters(stage) -> int:
    """Learnable parameters as torchinfo counts them: a conv2d layer's weights and bias; fixed
    kernels, pooling and element-wise stages have none."""
    return stage.spec.parameters if stage.layer else 0


def _signed(total: int) -> str:
    return "" if total == 0 else f" + {total}" if total > 0 else f" − {-total}"


def _symbolic(expr: str, axis: Axis) -> str:
    """The output size of an axis written in terms of the input's (``H``, ``W``), when no input
    was given."""
    if axis.kind == "same":
        return expr
    if axis.kind in ("global", "adaptive"):
        return str(axis.out)
    inner = f"({expr})" if " " in expr else expr
    if axis.pad is None:  # padded to keep the size, then strided
        return expr if axis.s == 1 else f"⌊({inner} − 1)/{axis.s}⌋ + 1"
    c = axis.pad - axis.d * (axis.k - 1) - 1
    if axis.s == 1:
        return f"{inner}{_signed(c + 1)}" if c + 1 else expr
    if axis.ceil:
        return f"⌈({inner}{_signed(c)})/{axis.s}⌉ + 1"
    if c == -axis.s:
        return f"⌊{inner}/{axis.s}⌋"  # ⌊(H − s)/s⌋ + 1 = ⌊H/s⌋
    return f"⌊({inner}{_signed(c)})/{axis.s}⌋ + 1"


def _grow(axis: Axis, n, field, jump, whole):
    """(field, jump) on one axis after a stage whose input is ``n`` cells (a name when not known),
    the image being ``whole`` cells (or its name)."""
    if axis.kind == "same":
        return field, jump
    if axis.kind == "global":
        return whole, whole  # one output: the whole input, and no next window
    if axis.kind == "adaptive":
        if not isinstance(n, int) or not isinstance(field, int):
            return whole, whole  # depends on the input's size, not given
        starts, counts = api.adaptive_windows(n, axis.out)
        step = int((starts[1:] - starts[:-1]).max()) if axis.out > 1 else n
        return field + (int(counts.max()) - 1) * jump, jump * step
    if not isinstance(field, int):
        return field, jump
    return field + axis.d * (axis.k - 1) * jump, jump * axis.s


def describe(pipeline, size: tuple[int, int] | None = None, colour: int | None = None) -> list[dict]:
    """Per stage: ``stage`` (its text), ``output`` [h, w, c], ``params``, ``receptive_field`` [rh,
    rw] and ``jump`` [jh, jw] for an input of ``size`` (H, W) with ``colour`` channels; without a
    size the heights and widths are expressions in H and W (and the channels in C), and a global
    or adaptive field is the input's ("H", "W")."""
    from ..errors import UsageError

    whole = size if size is not None else ("H", "W")
    dims = list(whole)
    c = colour if colour is not None else "C"
    field, jump = [1, 1], [1, 1]
    out = []
    for stage in pipeline.stages:
        g = geometry(stage)
        before = list(dims)
        if size is not None:
            dims = list(g.sizes(*dims))
            if min(dims) < 1:
                raise UsageError(f"stage '{stage.text.strip()}' leaves no output ({dims[1]}x{dims[0]}) for a "
                                 f"{size[1]}x{size[0]} input")  # fmt: skip
        else:
            dims = [_symbolic(str(dims[0]), g.rows), _symbolic(str(dims[1]), g.cols)]
            dims = [int(d) if d.isdigit() else d for d in dims]
        for i, axis in enumerate((g.rows, g.cols)):
            field[i], jump[i] = _grow(axis, before[i], field[i], jump[i], whole[i])
        c = _channels(stage, c)
        out.append({"stage": stage.text.strip(), "output": [dims[0], dims[1], c], "params": parameters(stage),
                    "receptive_field": list(field), "jump": list(jump)})  # fmt: skip
    return out


def _channels(stage, c):
    if stage.bank:
        return c * len(stage.spec) if isinstance(c, int) else f"{len(stage.spec)}·{c}"
    if stage.layer:
        return stage.spec.out_channels
    if stage.op.name == "gray":
        return 1 if not isinstance(c, int) or c == 3 else c
    return c


def stage_sizes(pipeline, size: tuple[int, int], upto: int) -> list[tuple[int, int]]:
    """(H, W) of the input and of each of the first ``upto`` stages' outputs."""
    sizes = [tuple(size)]
    for stage in pipeline.stages[:upto]:
        sizes.append(tuple(geometry(stage).sizes(*sizes[-1])))
    return sizes


def field_on_input(pipeline, number: int, x: int, y: int, size: tuple[int, int]) -> dict:
    """The input rows and columns that output (X, Y) of stage ``number`` (1-based) depends on,
    clipped to the input of ``size`` (H, W) at every stage (padding depends on nothing):
    ``{rows: [r0, r1], cols: [c0, c1]}``."""
    sizes = stage_sizes(pipeline, size, number - 1)
    (r0, r1), (c0, c1) = (y, y), (x, x)
    for n in range(number - 1, -1, -1):
        g = geometry(pipeline.stages[n])
        h, w = sizes[n]
        r0, r1 = g.rows.reads(r0, r1, h)
        c0, c1 = g.cols.reads(c0, c1, w)
        r0, r1, c0, c1 = max(0, r0), min(h - 1, r1), max(0, c0), min(w - 1, c1)
    return {"rows": [r0, r1], "cols": [c0, c1]}
