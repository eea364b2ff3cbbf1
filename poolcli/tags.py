"""Default file-name tags: one home for how a setting is written into an output's name.

Every option that changes the result changes the tag (contract §2), the same way whether the
operation runs as ``convolve``/``pool`` or as a ``run`` stage: ``gaussian_sigma2``,
``sharpen_wrap``, ``max2_s1_p1``, ``lp2_pow3``; a pipeline joins its stages' tags with ``-``
(``gaussian_sigma2-sobel-relu-max2``).  A kernel from ``@FILE`` is tagged with its file's stem
and a short hash of its weights (``k-1a2b3c4d``), an inline matrix ``custom-`` and that hash.
"""

from __future__ import annotations

import numpy as np

MAX_TAG = 200  # bytes: a longer default tag keeps a readable head and ends in a hash (names stay < 255)


def number(v: float) -> str:
    """A float as short as it can be written and read back the same (for file names)."""
    short = f"{v:g}"
    return short if float(short) == v else repr(float(v))


def weights_hash(matrix: np.ndarray) -> str:
    """8 hex digits that change with any weight or the shape of ``matrix``."""
    import hashlib  # on use: its import (OpenSSL) is 6 ms of a small command's start

    m = np.asarray(matrix, np.float64)
    return hashlib.sha1(repr((m.shape, m.tolist())).encode()).hexdigest()[:8]


def hw(pair: tuple[int, int]) -> str:
    """A window pair as the command line takes it: ``2``, or ``3x2`` (H×W)."""
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def convolve_tag(name: str, spec, params=(), flip: bool = False) -> str:
    """``sobel``, ``gaussian_sigma2``, ``sharpen_mirror_s2_d2_flip``: ``name`` is the kernel's
    part (a bank's names joined by ``+``), ``params`` the (name, value) the user gave."""
    parts = [name] + [f"{k}{number(v)}" for k, v in params]
    if spec.boundary != "reflect":
        parts.append(spec.boundary + (number(spec.cval) if spec.boundary == "constant" and spec.cval != 0 else ""))
    if spec.stride != 1:
        parts.append(f"s{spec.stride}")
    if spec.dilation != 1:
        parts.append(f"d{spec.dilation}")
    if flip:
        parts.append("flip")
    return "_".join(parts)


def conv2d_tag(stem: str, spec) -> str:
    """``conv2d-gabor-1a2b3c4d``, then ``s2``, ``p1``/``psame``, ``d2``, ``g3``, the padding mode:
    the weights' file stem and hash, and every option that changes the result."""
    parts = [f"conv2d-{stem}-{weights_hash(np.concatenate([spec.weight.ravel(), spec.bias]))}"]
    if spec.stride != (1, 1):
        parts.append(f"s{hw(spec.stride)}")
    if spec.pads != (0, 0, 0, 0):
        t, b, left, right = spec.pads
        parts.append(f"p{hw((t, left))}" if (t, left) == (b, right) else f"p{t}-{b}-{left}-{right}")
    if spec.dilation != (1, 1):
        parts.append(f"d{hw(spec.dilation)}")
    if spec.groups != 1:
        parts.append(f"g{spec.groups}")
    if spec.padding_mode != "zeros":
        parts.append(spec.padding_mode)
    return "_".join(parts)


def pool_tag(spec, is_global: bool = False) -> str:
    """``max2``, ``avg3x2_s1_p1`` (KH×KW), ``lp2_pow3``, ``max_global``, ``avg_64x48`` (W×H as
    ``--to``), then every other option that changes the result."""
    if is_global:
        parts = [f"{spec.mode}_global"]
    elif spec.output_size is not None:
        parts = [f"{spec.mode}_{spec.output_size[1]}x{spec.output_size[0]}"]
    else:
        parts = [f"{spec.mode}{hw(spec.size)}"]
        if spec.stride != spec.size:
            parts.append(f"s{hw(spec.stride)}")
        if spec.padding != (0, 0):
            parts.append(f"p{hw(spec.padding)}")
        if spec.dilation != (1, 1):
            parts.append(f"d{hw(spec.dilation)}")
        if spec.ceil_mode:
            parts.append("ceil")
    if spec.mode == "lp":
        parts.append(f"pow{number(spec.p)}")
    if spec.mode == "avg" and spec.divisor is not None:
        parts.append(f"div{spec.divisor}")
    elif spec.mode == "avg" and not spec.count_include_pad and spec.output_size is None:
        parts.append("nopad")
    if spec.mode == "stochastic" and spec.seed is not None:
        parts.append(f"seed{spec.seed}")
    return "_".join(parts)


def elementwise_tag(op, values: dict) -> str:
    """``relu``, ``scale2.5``, ``clip0_1``, ``leaky-relu0.1``, ``threshold0.5_value1``: the
    positional values always, the other options where they differ from their defaults."""
    head, rest = op.name, []
    for name in op.positional:
        param, value = op.param(name), values[name]
        if param is not None and param.default is not None and value == param.default:
            continue  # leaky-relu's alpha at its default
        rest.append(number(value))
    for param in op.params:
        if param.name not in op.positional and values[param.name] != param.default:
            rest.append(f"{param.name}{number(values[param.name])}")
    if not rest:
        return head
    return head + rest[0] + "".join(f"_{r}" for r in rest[1:])


def with_options(tag: str, *, gray: bool = False, scale: str = "auto", auto: str = "") -> str:
    """A command's tag with the options of the whole run: ``_gray``, and ``--scale`` where it is
    not what ``auto`` would choose (``auto``)."""
    if gray:
        tag += "_gray"
    if scale != "auto" and scale != auto:
        tag += f"_{scale}"
    return tag


def bounded(tag: str) -> str:
    """``tag`` if it fits in :data:`MAX_TAG` bytes, else a readable head and 8 hex digits of a
    hash of the whole (so two long tags still differ, and names stay under 255 bytes)."""
    raw = tag.encode("utf-8", "surrogateescape")
    if len(raw) <= MAX_TAG:
        return tag
    import hashlib

    digest = hashlib.sha1(raw).hexdigest()[:8]
    head = raw[: MAX_TAG - 10].decode("utf-8", "ignore").rstrip("-_+")
    return f"{head}~{digest}"
