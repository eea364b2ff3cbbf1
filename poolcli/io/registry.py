"""The codec registry: one entry per format poolcli names, with what the format holds.

As Pillow's plugin registry and imageio's plugin table do, an entry names its module, which is
imported only when a file of that format is first read or written (``--help`` and PNG-only
workers never load tifffile or Pillow).  ``--format``'s choices and help, the suffixes taken from
folders, the sniffing of inputs, ``--skip-existing``'s completeness checks and the decision
whether a file can stream all come from here: a new format is one module and one entry.
Nothing here imports NumPy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

PILLOW_DEFAULT_MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS, without importing Pillow
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NPY_SIGNATURE = b"\x93NUMPY"
TIFF_SIGNATURES = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF, both byte orders


@dataclass(frozen=True)
class Codec:
    """One format: ``name`` (poolcli's), its ``extensions`` (the first is the one written),
    ``aliases`` for ``--format``, the ``signatures`` its files begin with and ``endings`` they
    end with (when the format has an end marker), the module that reads and writes it, and what
    it holds: 16 bits per channel, alpha, gray + alpha, ``metadata`` (icc, dpi, exif), a default
    ``quality`` (lossy formats), and whether it ``streams`` band by band."""

    name: str
    extensions: tuple[str, ...]
    module: str
    aliases: tuple[str, ...] = ()
    signatures: tuple[bytes, ...] = ()
    endings: tuple[bytes, ...] = ()
    depth16: bool = False
    alpha: bool = True
    gray_alpha: bool = True
    metadata: frozenset = field(default_factory=frozenset)
    quality: int | None = None
    pillow: str | None = None  # Pillow's name for it, where Pillow writes it
    streams: bool = False
    own: bool = True  # one of poolcli's names; False: written only if the installed Pillow writes it
    writes: bool = True

    def load(self):
        """The module that reads and writes this format (imported on first use)."""
        return importlib.import_module(self.module)


_PILLOW = "poolcli.io.pillow"
_ALL = frozenset({"icc", "dpi", "exif"})
CODECS = {
    c.name: c
    for c in (
        Codec("png", (".png",), "poolcli.io.png", signatures=(PNG_SIGNATURE,), endings=(b"IEND\xaeB`\x82",),
              depth16=True, metadata=_ALL, pillow="PNG", streams=True),
        Codec("jpg", (".jpg", ".jpeg", ".jpe"), _PILLOW, aliases=("jpeg",), signatures=(b"\xff\xd8\xff",),
              endings=(b"\xff\xd9",), alpha=False, metadata=_ALL, quality=92, pillow="JPEG"),
        Codec("webp", (".webp",), _PILLOW, signatures=(b"RIFF",), gray_alpha=False,
              metadata=frozenset({"icc", "exif"}), quality=90, pillow="WEBP"),
        Codec("tiff", (".tiff", ".tif"), "poolcli.io.tiff", aliases=("tif",), signatures=TIFF_SIGNATURES,
              depth16=True, metadata=_ALL, pillow="TIFF", streams=True),
        Codec("bmp", (".bmp",), _PILLOW, signatures=(b"BM",), gray_alpha=False, metadata=frozenset({"dpi"}),
              pillow="BMP"),
        Codec("npy", (".npy",), "poolcli.io.npy", signatures=(NPY_SIGNATURE,), streams=True),
        Codec("avif", (".avif",), _PILLOW, gray_alpha=False, metadata=frozenset({"icc", "exif"}), quality=90,
              own=False),
        Codec("pillow", (".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".pcx", ".sgi", ".im",
                         ".dds", ".psd", ".qoi"), _PILLOW, writes=False, own=False),
    )
}  # fmt: skip
OWN = tuple(c.name for c in CODECS.values() if c.own)  # poolcli's own format names: png, jpg, …
STREAMS_OUT = tuple(c.name for c in CODECS.values() if c.streams)
IMAGE_SUFFIXES = tuple(ext for c in CODECS.values() for ext in c.extensions)  # taken from folders
_NAMES = {key: c for c in CODECS.values() if c.own for key in (c.name, *c.aliases)}


def sniff(head: bytes) -> Codec | None:
    """The codec whose signature ``head`` (a file's first bytes) begins with; None for anything
    else (then Pillow reads it, or says it cannot)."""
    for codec in CODECS.values():
        if any(head.startswith(sig) for sig in codec.signatures):
            return codec
    return None


def codec(fmt: str) -> Codec:
    """The entry of an output format (``png``, ``tiff``), or, for a format only Pillow writes
    (``gif``, ``tga``), one made for it from Pillow's name."""
    if fmt in CODECS:
        return CODECS[fmt]
    return Codec(fmt, (f".{fmt}",), _PILLOW, own=False)


def pillow_formats() -> dict[str, str]:
    """Every extension Pillow writes (``.avif``, ``.jp2``, ``.gif``, ``.tga`` …) → its format name."""
    return codec("pillow").load().pillow_formats()


def format_for(path: str | None, fmt: str | None) -> str:
    """Output format: from the file extension, else ``--format``, else PNG.  poolcli's own names
    (png, jpg, webp, tiff, bmp, npy) or any extension Pillow writes."""
    import os

    from ..errors import UsageError

    def resolve(key: str, what: str) -> str:
        key = key.lower().lstrip(".")
        if key in _NAMES:
            return _NAMES[key].name
        if key in pillow_formats():
            return key  # Pillow's format name is looked up when the file is written
        raise UsageError(f"{what} '{key}' is not a format poolcli writes ({', '.join(OWN)}, "
                         f"or one of Pillow's: {', '.join(sorted(pillow_formats()))})")  # fmt: skip

    chosen = resolve(fmt, "--format") if fmt is not None else None
    if path and path != "-":
        ext = os.path.splitext(path)[1]
        if ext:
            return resolve(ext, f"{path}: the extension")
    return chosen or "png"


def extension(fmt: str) -> str:
    """The file extension of an output format (``.png``, ``.avif``)."""
    return codec(fmt).extensions[0]


def holds_16_bits(fmt: str) -> bool:
    return codec(fmt).depth16


def is_image_name(path: str) -> bool:
    """Whether a file name ends in a suffix poolcli takes from folders (``.png``, ``.JPG``)."""
    return path.lower().endswith(IMAGE_SUFFIXES)
