"""What the runner passes around: a :class:`Task` (one input and where its result goes), the
frozen :class:`Settings` every file of a run is processed with, and each file's
:class:`FileResult`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..io.files import PILLOW_DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Task:
    """One input and where its result goes (``-`` is stdin / stdout)."""

    source: str
    dest: str
    fmt: str


@dataclass(frozen=True)
class Settings:
    """How every file of a run is read and written (one object, built once, for the local pool,
    Dask and tests alike).

    ``stream``: True streams images in bands of rows where their formats allow, False never
    does, None (the default) streams images of more than
    :data:`poolcli.runner.banded.STREAM_ABOVE` pixels where the formats allow (contract §10).
    ``page``: the frame of a multi-frame file to read (0-based); ``layout``: how a ``.npy``
    input's axes are laid out (``hwc``, ``chw``, None: guarded); ``png_threads``: deflate
    threads (None: every core; workers use 1)."""

    max_pixels: int | None = PILLOW_DEFAULT_MAX_PIXELS
    png_level: int = 1
    skip_existing: bool = False
    strip: bool = False
    quality: int | None = None
    montage: str | None = None
    stream: bool | None = None
    page: int = 0
    layout: str | None = None
    png_threads: int | None = None

    def for_worker(self) -> Settings:
        """These settings in a worker process or thread: one deflate thread (its siblings use the
        other cores)."""
        return replace(self, png_threads=1)


@dataclass
class FileResult:
    input: str
    output: str | None
    width: int = 0
    height: int = 0
    channels: int = 0
    load_ms: float = 0.0
    compute_ms: float = 0.0
    save_ms: float = 0.0
    compile_ms: float = 0.0
    error: str | None = None
    skipped: bool = False
    values: list[float] | None = None
    out_width: int = 0
    out_height: int = 0
    dtype: str = ""
    bug: str | None = None  # the traceback of an unexpected exception (a bug in poolcli)
    stages: list[dict] | None = None  # a pipeline's stages and their milliseconds
    written: list[str] = field(default_factory=list)  # every file written (maps, --save-stages)
    notes: list[str] = field(default_factory=list)  # what was done that the user should know
    band: int = 0  # rows per band when the image was streamed (contract §10), else 0

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


