"""What one command does to one image, as a picklable value.

A job turns a decoded :class:`~poolcli.io.Picture` into a float or integer result and says
how that result becomes pixels; :func:`poolcli.runner.work.process_file` runs it between reading
and writing.  :class:`Job` is the protocol the runner reads, and nothing else; :func:`as_job`
gives any object with ``apply`` (a test's, a plug-in's) that protocol.  Jobs hold plain data and
the API's validated specs only, so they travel to worker processes unchanged; building one checks
every option (UsageError) before any file is read.

Default file-name tags: every option that changes the result changes the tag, so two runs with
different settings never write the same default name (see the README's "Output names").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import api, tags
from .io.picture import Picture
from .kernels import kernel_sums_to_zero


@dataclass(frozen=True)
class Result:
    """A job's output: ``array`` (H, W, C) with ``colour`` colour channels, alpha after them."""

    array: np.ndarray
    colour: int
    scale: str
    values: list[float] | None = None
    maps: bool = False  # feature maps of a kernel bank: one image per map in image formats
    extras: tuple = ()  # (file-name suffix, Result) of --save-stages
    stage_ms: tuple = ()  # (stage, milliseconds) of a pipeline


@dataclass(frozen=True)
class Banded:
    """A job's result as :class:`~poolcli.bands.Rows` (contract §10): ``rows`` (colour
    channels, alpha after them), and what :class:`Result` says of it."""

    rows: object
    colour: int
    scale: str
    maps: bool = False


SCALES = ("auto", "clip", "normalize", "abs")


class Job:
    """What the runner asks of a job: its ``command``, ``tag`` (``tag_given``: named by
    ``--tag``), ``gray``, a run's ``pipeline`` and ``save_stages``, ``is_global`` (pooling to
    one value per channel, printed), and :meth:`compute`, :meth:`banded`, :meth:`npy`,
    :meth:`settings`."""

    command = ""
    tag = "job"
    tag_given = False
    gray = False
    pipeline = None  # poolcli.pipeline.Pipeline of a run job
    save_stages = False
    is_global = False

    @property
    def has_maps(self) -> bool:
        """Whether the result is a kernel bank's feature maps (one file each in image formats)."""
        return self.pipeline is not None and self.pipeline.has_bank

    def apply(self, pic: Picture, panels: list | None = None) -> Result:
        raise NotImplementedError

    def compute(self, pic: Picture, *, panels: list | None = None, save=None, pixels: bool = False) -> Result:
        """The result of :meth:`apply`: ``panels`` (for a montage) gets each stage's map, ``save``
        writes each stage ``--save-stages`` keeps as it finishes, and ``pixels`` says the result
        will be written as pixels (8-bit average pooling may give them directly)."""
        return self.apply(pic) if panels is None else self.apply(pic, panels=panels)

    def banded(self, src, alpha: bool, *, pixels: bool = False) -> Banded:
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def npy(self, result: Result) -> np.ndarray:
        """What ``--format npy`` writes: every channel of the result, as computed."""
        return result.array

    def settings(self) -> dict:
        """Every setting resolved, for the JSON report."""
        return {}


class _Adopted(Job):
    """A job that is not a :class:`Job` (a test's, a plug-in's), given the protocol: what it
    defines is used, the protocol's defaults fill the rest."""

    def __init__(self, inner):
        self.inner = inner
        for name in ("command", "tag", "tag_given", "gray", "pipeline", "save_stages", "is_global"):
            setattr(self, name, getattr(inner, name, getattr(Job, name)))

    def apply(self, pic: Picture, panels: list | None = None) -> Result:
        return self.inner.apply(pic) if panels is None else self.inner.apply(pic, panels=panels)

    def banded(self, src, alpha: bool, *, pixels: bool = False) -> Banded:
        return self.inner.banded(src, alpha, pixels=pixels)

    def npy(self, result: Result) -> np.ndarray:
        return self.inner.npy(result) if hasattr(self.inner, "npy") else result.array

    def settings(self) -> dict:
        return self.inner.settings() if hasattr(self.inner, "settings") else {}


def as_job(job) -> Job:
    """``job`` as a :class:`Job`: itself when it is one."""
    return job if isinstance(job, Job) else _Adopted(job)


@dataclass(frozen=True)
class ConvolveJob(Job):
    spec: api.ConvolveSpec
    name: str  # the kernel's part of the tag: its name, file stem, or custom-<hash>
    gray: bool = False
    scale: str = "auto"
    params: tuple = ()  # (("sigma", 2.0), ...): named-kernel parameters the user gave
    flip: bool = False  # already applied to spec.kernel; kept for the tag
    command = "convolve"

    @classmethod
    def build(cls, kernel: str, *, size=None, sigma=None, boundary="reflect", cval=0.0, stride=1, dilation=1,
              flip=False, gray=False, scale="auto") -> ConvolveJob:  # fmt: skip
        """Check every option (UsageError, with the command line's option names)."""
        from .kernels import choose_kernel

        if str(scale).lower() not in SCALES:
            raise api.UsageError(f"unknown --scale '{scale}' (choose from {', '.join(SCALES)})")
        choice = choose_kernel(kernel, size=size, sigma=sigma)
        spec = api.convolve_spec(
            choice.matrix, boundary=boundary, cval=cval, stride=stride, dilation=dilation, flip=flip, prefix="--"
        )
        name = choice.tag
        params = tuple((k, v) for k, v in (("size", size), ("sigma", sigma)) if v is not None)
        return cls(spec, name, bool(gray), str(scale).lower(), params, bool(flip))

    @property
    def tag(self) -> str:
        """``sobel``, ``gaussian_sigma2``, ``sharpen_mirror_s2_d2_flip_gray_abs``, ``custom-1a2b3c4d``."""
        tag = tags.convolve_tag(self.name, self.spec, self.params, self.flip)
        return tags.bounded(tags.with_options(tag, gray=self.gray, scale=self.scale, auto=self.auto_scale()))

    def settings(self) -> dict:
        """Every setting resolved, for the JSON report (numbers as numbers)."""
        s = self.spec
        return {"kernel": self.name, **dict(self.params), "kernel_shape": list(s.kernel.shape[-2:]),
                "boundary": s.boundary, "cval": s.cval, "stride": s.stride, "dilation": s.dilation, "flip": self.flip,
                "gray": self.gray, "scale": self.scale_rule()}  # fmt: skip

    def auto_scale(self) -> str:
        """``auto``: normalize when the kernel's weights sum to 0 (edge detectors), else clip."""
        return "normalize" if kernel_sums_to_zero(self.spec.kernel) else "clip"

    def scale_rule(self) -> str:
        return self.auto_scale() if self.scale == "auto" else self.scale

    def apply(self, pic: Picture, panels: list | None = None) -> Result:
        """The result; ``panels`` (for a montage) gets each feature map, titled."""
        colour = pic.colour
        out = api.apply_convolve(colour, self.spec)
        if panels is not None:
            panels.append((f"convolve -k {self.name}", out, out.shape[2]))
        if pic.alpha:  # alpha is carried through: the same pixels the outputs are centred on
            a = api.sample_like(pic.alpha_plane, self.spec, *out.shape[:2])
            out = np.concatenate([out, a.astype(np.float32)], axis=2)
        return Result(out, colour.shape[2], self.scale_rule())

    def banded(self, src, alpha: bool, *, pixels: bool = False) -> Banded:
        """:meth:`apply` band by band on the rows ``src`` (alpha last when ``alpha``)."""
        from .bands import ConvolveRows

        colour = src.channels - (1 if alpha else 0)
        return Banded(ConvolveRows(src, [self.spec], colour), colour, self.scale_rule())

    def npy(self, result: Result) -> np.ndarray:
        """The feature map written by ``--format npy``: the colour channels' float32 result."""
        return result.array[:, :, : result.colour]


@dataclass(frozen=True)
class PoolJob(Job):
    spec: api.PoolSpec
    is_global: bool = False
    gray: bool = False
    command = "pool"

    @classmethod
    def build(cls, mode="max", size=None, *, stride=None, padding="0", dilation="1", ceil_mode=False,
              count_include_pad=True, divisor=None, p=2.0, seed=None, is_global=False, to=None,
              gray=False) -> PoolJob:  # fmt: skip
        """Check every option (UsageError, with the command line's option names)."""
        output_size = None
        if is_global and to:
            raise api.UsageError("--global and --to exclude each other")
        if to:
            w, h = api.parse_pair(to, "--to")
            output_size = (h, w)
        elif is_global:
            output_size = (1, 1)
        if output_size is None and size is None:
            raise api.UsageError("--size is required (or --global, or --to WxH)")
        spec = api.pool_spec(
            mode, size, stride=stride or None, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
            count_include_pad=count_include_pad, divisor=divisor, p=p, seed=seed, output_size=output_size,
            prefix="--",
        )  # fmt: skip
        return cls(spec, is_global, gray)

    @property
    def tag(self) -> str:
        """File-name tag: ``max2``, ``avg3x2_s1_p1`` (KHxKW), ``lp2_pow3``, ``max_global``,
        ``avg_64x48`` (--to WxH), then every other option that changes the result."""
        return tags.bounded(tags.with_options(tags.pool_tag(self.spec, self.is_global), gray=self.gray))

    def settings(self) -> dict:
        """Every setting resolved, for the JSON report: pairs as [h, w], numbers as numbers."""
        s = self.spec
        pair = lambda v: list(v) if v is not None else None  # noqa: E731
        out = {"mode": s.mode, "global": self.is_global, "output_size": pair(s.output_size)}
        if s.output_size is None:
            out.update(size=pair(s.size), stride=pair(s.stride), padding=pair(s.padding), dilation=pair(s.dilation),
                       ceil_mode=s.ceil_mode)  # fmt: skip
        if s.mode == "avg":
            out.update(count_include_pad=s.count_include_pad, divisor=s.divisor)
        if s.mode == "lp":
            out["p"] = s.p
        if s.mode == "stochastic":
            out["seed"] = s.seed
        out["gray"] = self.gray
        return out

    def apply(self, pic: Picture, panels: list | None = None, *, pixels: bool = False) -> Result:
        """The result; ``panels`` (for a montage) gets the pooled map, titled.  ``pixels``: the
        result will be written as pixels, so 8-bit average pooling may give them directly."""
        out = api.apply_pool(pic.pixels, self.spec, as_pixels=pixels and panels is None and not self.is_global)
        if panels is not None:
            panels.append((f"pool {self.tag}", out, pic.colour.shape[2]))
        values = [float(v) for v in out.reshape(-1, out.shape[2])[0]] if self.is_global else None
        colour = pic.pixels.shape[2] - (1 if pic.alpha else 0)
        return Result(out, colour, "clip", values)

    def compute(self, pic: Picture, *, panels: list | None = None, save=None, pixels: bool = False) -> Result:
        if panels is not None:
            return self.apply(pic, panels=panels)
        return self.apply(pic, pixels=True) if pixels else self.apply(pic)

    def banded(self, src, alpha: bool, *, pixels: bool = False) -> Banded:
        """:meth:`apply` band by band on the rows ``src`` (alpha last when ``alpha``)."""
        from .bands import PoolRows

        rows = PoolRows(src, self.spec, as_pixels=pixels and not self.is_global)
        return Banded(rows, src.channels - (1 if alpha else 0), "clip")

    def npy(self, result: Result) -> np.ndarray:
        """The pooled array, every channel (alpha was pooled too), as float32."""
        return result.array


@dataclass(frozen=True)
class RunJob(Job):
    """A ``poolcli run`` pipeline (see :mod:`poolcli.pipeline`) applied to each image."""

    pipeline: object  # poolcli.pipeline.Pipeline
    tag: str
    gray: bool = False
    scale: str = "auto"
    save_stages: bool = False
    tag_given: bool = False  # --tag named it: used as it is
    command = "run"

    @classmethod
    def build(cls, text: str, *, tag=None, gray=False, scale="auto", save_stages=False) -> RunJob:
        """Parse and check the pipeline and the options (UsageError)."""
        from .pipeline import Pipeline

        if str(scale).lower() not in SCALES:
            raise api.UsageError(f"unknown --scale '{scale}' (choose from {', '.join(SCALES)})")
        pipe = Pipeline.parse(text)
        if tag is not None and (not tag.strip() or any(ch in tag for ch in "/\\\0") or not tag.isprintable()):
            raise api.UsageError(f"--tag {tag!r} must be a non-empty file-name part without '/' or control characters")
        size = len(tag.encode("utf-8", "surrogateescape")) if tag is not None else 0
        if size > tags.MAX_TAG:
            raise api.UsageError(f"--tag is {size} bytes; at most {tags.MAX_TAG} (file names hold 255)")
        scale = str(scale).lower()
        given = tag is not None
        if tag is None:
            tag = tags.bounded(tags.with_options(pipe.tag, gray=bool(gray), scale=scale, auto=pipe.auto_scale()))
        return cls(pipe, tag, bool(gray), scale, bool(save_stages), given)

    def settings(self) -> dict:
        """Every setting resolved, for the JSON report: each stage as ``describe()`` gives it."""
        return {"pipeline": " | ".join(st.text.strip() for st in self.pipeline.stages),
                "stages": [st.describe() for st in self.pipeline.stages], "gray": self.gray,
                "scale": self.scale_rule(), "tag": self.tag, "save_stages": self.save_stages}  # fmt: skip

    def scale_rule(self, upto: int | None = None) -> str:
        if self.scale != "auto":
            return self.scale
        from .pipeline import Pipeline

        pipe = self.pipeline if upto is None else Pipeline(self.pipeline.stages[:upto])
        return pipe.auto_scale()

    def apply(self, pic: Picture, panels: list | None = None, save=None) -> Result:
        """The result; ``panels`` (for a montage) gets every stage's map, titled; ``save(suffix,
        Result)`` writes each stage ``--save-stages`` keeps as soon as it is computed (without it
        they are returned in ``extras``)."""
        from .teach.pictures import map_labels

        extras, times = [], []
        banked = [False]
        c = pic.colour.shape[2]
        labels = [["R", "G", "B"] if c == 3 else ["gray"] if c == 1 else [f"c{n}" for n in range(c)]]

        def on_stage(i, stage, array, colour, seconds):
            times.append((stage.text.strip(), seconds * 1e3))
            banked[0] = banked[0] or stage.maps
            labels[0] = map_labels(labels[0], stage)
            if panels is not None:  # a bank's or a layer's maps labelled, as a grid
                panels.append((f"{i}. {stage.text.strip()}", array, colour, labels[0] if banked[0] else False))
            if self.save_stages:
                suffix = f".{i}-{stage.tag}"
                kept = Result(np.asarray(array, np.float32), colour, self.scale_rule(i), None, banked[0])
                if save is not None:
                    save(suffix, kept)
                else:
                    extras.append((suffix, kept))

        out, colour = self.pipeline.apply(pic.pixels, pic.pixels.shape[2] - (1 if pic.alpha else 0), on_stage)
        return Result(out, colour, self.scale_rule(), None, self.pipeline.has_bank, tuple(extras), tuple(times))

    def compute(self, pic: Picture, *, panels: list | None = None, save=None, pixels: bool = False) -> Result:
        return self.apply(pic, save=save) if panels is None else self.apply(pic, panels=panels, save=save)

    def banded(self, src, alpha: bool, *, pixels: bool = False) -> Banded:
        """:meth:`apply` band by band on the rows ``src`` (alpha last when ``alpha``)."""
        from .pipeline import pipeline_rows

        rows, colour = pipeline_rows(self.pipeline, src, src.channels - (1 if alpha else 0))
        return Banded(rows, colour, self.scale_rule(), self.pipeline.has_bank)

    def npy(self, result: Result) -> np.ndarray:
        """The pipeline's float32 result, colour channels (feature maps) only."""
        return result.array[:, :, : result.colour]
