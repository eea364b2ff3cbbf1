"""The named-kernel library and the parsing of user-given kernels.

One dict, :data:`KERNELS`, is the registry: the CLI's ``kernels`` listing, its error
suggestions and the tests' parameter sweeps are all generated from it.  A gradient-magnitude
kernel (``sobel``, ``scharr``, ``prewitt``) is a ``(2, kh, kw)`` stack of its x and y
kernels; :func:`poolcli.convolve` returns √(gx² + gy²) for such a stack.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import UsageError, did_you_mean
from .io.registry import NPY_SIGNATURE
from .tags import weights_hash


def _const(rows) -> Callable[..., np.ndarray]:
    matrix = np.array(rows, dtype=np.float64)
    return lambda: matrix.copy()


MAX_KERNEL_SIDE = 1025  # rows or columns of any kernel: named, inline, from a file or an array
MAX_KERNEL_FILE = 64 << 20  # characters of a text kernel file (1025² values of up to 60 characters)


def gaussian_1d(sigma: float, radius: int) -> np.ndarray:
    """scipy.ndimage.gaussian_filter's weights: exp(−x²/2σ²) for |x| ≤ radius, summing to 1."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        if sigma * sigma > 0 and math.isfinite(0.5 / (sigma * sigma)):
            phi = np.exp(-0.5 / (sigma * sigma) * x * x)
        else:  # so small a sigma that scipy's formula gives 0·∞: its limit, the centre tap alone
            phi = np.exp(-0.5 * (x / sigma) ** 2)
    return phi / phi.sum()


def _gaussian(size: int | None = None, sigma: float | None = None) -> np.ndarray:
    if sigma is None:
        if size is None:
            sigma = 1.0
        else:
            # OpenCV's getGaussianKernel rule for a size without a sigma.
            sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    if not (sigma > 0 and math.isfinite(sigma)):
        raise UsageError(f"--sigma must be a positive number, got {sigma}")
    if size is not None:
        if size % 2 == 0:
            raise UsageError(f"--size for gaussian must be odd, got {size}")
        radius = size // 2
    else:
        radius = int(4.0 * sigma + 0.5) if sigma < MAX_KERNEL_SIDE else MAX_KERNEL_SIDE
        if 2 * radius + 1 > MAX_KERNEL_SIDE:
            top = (MAX_KERNEL_SIDE // 2 + 0.5) / 4.0
            raise UsageError(
                f"--sigma {sigma:g} needs a {2 * radius + 1}x{2 * radius + 1} kernel; at most "
                f"{MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE} (--sigma below {top:g})"
            )
    g = gaussian_1d(sigma, radius)
    return np.outer(g, g)


def _box(size: int | None = None) -> np.ndarray:
    n = 3 if size is None else size
    return np.full((n, n), 1.0 / (n * n))


SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
SCHARR_X = [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]
PREWITT_X = [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]


def _magnitude(x_rows) -> Callable[..., np.ndarray]:
    kx = np.array(x_rows, dtype=np.float64)
    return lambda: np.stack([kx, kx.T])


@dataclass(frozen=True)
class Kernel:
    description: str
    build: Callable[..., np.ndarray]
    params: tuple[str, ...] = ()


KERNELS: dict[str, Kernel] = {
    "identity": Kernel("leaves the image unchanged (the centre tap)", _const([[0, 0, 0], [0, 1, 0], [0, 0, 0]])),
    "box": Kernel("mean of an N×N window (--size, default 3)", _box, ("size",)),
    "blur": Kernel("3×3 binomial blur, [1 2 1]ᵀ[1 2 1]/16", _const(np.outer([1, 2, 1], [1, 2, 1]) / 16)),
    "gaussian": Kernel(
        "Gaussian blur as scipy's gaussian_filter (--sigma, default 1; or --size)", _gaussian, ("size", "sigma")
    ),
    "sharpen": Kernel("4-neighbour sharpen: 5 at the centre, −1 around", _const([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])),
    "unsharp": Kernel(
        "5×5 unsharp mask: 2·identity − binomial blur",
        _const(2 * np.pad([[1.0]], 2) - np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256),
    ),
    "sobel": Kernel("Sobel gradient magnitude √(gx² + gy²)", _magnitude(SOBEL_X)),
    "sobel-x": Kernel("Sobel derivative along x (responds to vertical edges)", _const(SOBEL_X)),
    "sobel-y": Kernel("Sobel derivative along y (responds to horizontal edges)", _const(np.transpose(SOBEL_X))),
    "scharr": Kernel("Scharr gradient magnitude √(gx² + gy²)", _magnitude(SCHARR_X)),
    "scharr-x": Kernel("Scharr derivative along x (better rotation symmetry than Sobel)", _const(SCHARR_X)),
    "scharr-y": Kernel("Scharr derivative along y", _const(np.transpose(SCHARR_X))),
    "prewitt": Kernel("Prewitt gradient magnitude √(gx² + gy²)", _magnitude(PREWITT_X)),
    "prewitt-x": Kernel("Prewitt derivative along x", _const(PREWITT_X)),
    "prewitt-y": Kernel("Prewitt derivative along y", _const(np.transpose(PREWITT_X))),
    "laplacian": Kernel("4-neighbour Laplacian (second derivative)", _const([[0, 1, 0], [1, -4, 1], [0, 1, 0]])),
    "edge": Kernel(
        "8-neighbour outline: 8 at the centre, −1 around", _const([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    ),
    "emboss": Kernel("emboss, lit from the top left", _const([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])),
}

ALIASES: dict[str, str] = {
    "mean": "box",
    "average": "box",
    "gauss": "gaussian",
    "laplace": "laplacian",
    "outline": "edge",
}


def resolve_name(name: str) -> str:
    """Canonical registry name for ``name`` or an alias; UsageError with a suggestion otherwise."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in KERNELS:
        return key
    hint = did_you_mean(key, [*KERNELS, *ALIASES])
    raise UsageError(f"unknown kernel '{name}'{hint} (see `poolcli kernels`)")


def get_kernel(name: str, *, size: int | None = None, sigma: float | None = None) -> np.ndarray:
    """The weights of a named kernel.

    Parameters
    ----------
    name : str
        A name from :data:`KERNELS` or an alias (``mean``, ``gauss``, ...).
    size : int, optional
        Window size of ``box`` (default 3) and ``gaussian`` (radius ``size // 2``).
    sigma : float, optional
        Standard deviation of ``gaussian`` (default 1; radius ``int(4σ + 0.5)``).

    Returns
    -------
    (kh, kw) float64 ndarray, or (2, kh, kw) for a gradient-magnitude kernel (x, then y).

    Examples
    --------
    >>> get_kernel("sobel-x")
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]])
    >>> get_kernel("gaussian", sigma=1).shape
    (9, 9)
    """
    key = resolve_name(name)
    spec = KERNELS[key]
    given = {"size": size, "sigma": sigma}
    for param, value in given.items():
        if value is not None and param not in spec.params:
            raise UsageError(f"kernel '{key}' takes no --{param}")
    if size is not None and not 1 <= size <= MAX_KERNEL_SIDE:
        raise UsageError(f"--size must be from 1 to {MAX_KERNEL_SIDE}, got {size}")
    if sigma is not None and not (sigma > 0 and math.isfinite(sigma)):
        raise UsageError(f"--sigma must be a positive number, got {sigma}")
    return spec.build(**{p: given[p] for p in spec.params})


def kernel_sums_to_zero(k: np.ndarray) -> bool:
    """Whether a kernel's weights sum to 0 (an edge detector: its results are signed); for a
    (2, kh, kw) gradient pair, its x kernel's."""
    first = k[0] if k.ndim == 3 else k
    return abs(float(first.sum())) <= 1e-9 * float(np.abs(first).max())


def parse_matrix(text: str, source: str = "--kernel") -> np.ndarray:
    """A 2-D float64 matrix from rows split by ';' or newlines, values by ',' or whitespace;
    at most MAX_KERNEL_SIDE rows and columns.  Errors name the row (and, in a file, its line)."""
    rows = []
    for number, line in enumerate(text.replace(";", "\n").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"row {len(rows) + 1}" + (f" (line {number})" if source != "--kernel" else "")
        if len(rows) == MAX_KERNEL_SIDE:
            raise UsageError(f"{source}: more than {MAX_KERNEL_SIDE} rows; a kernel has at most {MAX_KERNEL_SIDE}")
        tokens = line.replace(",", " ").split()
        if len(tokens) > MAX_KERNEL_SIDE:
            raise UsageError(f"{source}: {where} has {len(tokens)} values; a kernel has at most {MAX_KERNEL_SIDE}")
        values = []
        for token in tokens:
            try:
                v = float(token)
            except ValueError:
                raise UsageError(f"{source}: {where}: '{token[:40]}' is not a number") from None
            if not math.isfinite(v):
                raise UsageError(f"{source}: {where}: kernel values must be finite, got '{token}'")
            values.append(v)
        rows.append(values)
    if not rows:
        raise UsageError(f"{source}: the kernel is empty")
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise UsageError(f"{source}: row {i} has {len(row)} values but row 1 has {len(rows[0])}")
    return np.array(rows, dtype=np.float64)


def load_kernel_file(path: str) -> np.ndarray:
    """A kernel from a text/CSV file of rows, or from a ``.npy`` array (2-D, or 1-D as one row).
    The file must be a regular file of at most :data:`MAX_KERNEL_FILE` bytes (a FIFO would
    block, a device never end), read once, never unpickled."""
    label = f"@{path}"
    data = read_kernel_file(path, label)
    if path.lower().endswith(".npy") or data.startswith(NPY_SIGNATURE):
        import io

        try:
            matrix = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - NumPy raises many kinds on hostile bytes
            why = " ".join(str(exc).split())[:120] or exc.__class__.__name__
            raise UsageError(f"{label}: not a readable .npy array ({why})") from None
        if not isinstance(matrix, np.ndarray):  # an .npz archive under a .npy name
            raise UsageError(f"{label}: an .npz archive, not a .npy array")
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2 or matrix.size == 0:
            raise UsageError(f"{label}: a kernel must be a non-empty 2-D array, got shape {matrix.shape}")
        if not np.issubdtype(matrix.dtype, np.number) or np.iscomplexobj(matrix):
            raise UsageError(f"{label}: a kernel must hold real numbers, got {matrix.dtype}")
        matrix = matrix.astype(np.float64)
        if not np.isfinite(matrix).all():
            raise UsageError(f"{label}: kernel values must be finite")
        return matrix
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{label}: cannot read kernel file (not UTF-8 text, nor a .npy array)") from None
    return parse_matrix(text, label)


def read_kernel_file(path: str, label: str) -> bytes:
    """The bytes of a kernel file: a regular file within :data:`MAX_KERNEL_FILE`."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{label}: no such kernel file") from None
    except OSError as exc:
        raise UsageError(f"{label}: cannot read kernel file ({exc.strerror or exc.__class__.__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{label}: is a directory, not a kernel file")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{label}: not a regular file (a FIFO or a device?); refusing to read it")
    if st.st_size > MAX_KERNEL_FILE:
        raise UsageError(f"{label}: larger than {MAX_KERNEL_FILE >> 20} MB; not a kernel file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KERNEL_FILE + 1)
    except OSError as exc:
        raise UsageError(f"{label}: cannot read kernel file ({exc.strerror or exc.__class__.__name__})") from None
    if len(data) > MAX_KERNEL_FILE:
        raise UsageError(f"{label}: larger than {MAX_KERNEL_FILE >> 20} MB; not a kernel file")
    if not data:
        raise UsageError(f"{label}: empty file (0 bytes)")
    return data


@dataclass(frozen=True)
class KernelChoice:
    """A kernel as the user named it: its weights and the tag used in output file names."""

    matrix: np.ndarray
    tag: str  # in output names: the name, the file's stem and a hash of its weights, or custom-<hash>
    label: str


def choose_kernel(spec: str, *, size: int | None = None, sigma: float | None = None) -> KernelChoice:
    """Interpret ``--kernel``: a registry name, ``@FILE`` or an inline matrix."""
    spec = spec.strip()
    if not spec:
        raise UsageError("--kernel: empty; give a name (see `poolcli kernels`), a matrix or @FILE")
    if spec.startswith("@"):
        path = spec[1:]
        _no_params(size, sigma, spec)
        matrix = load_kernel_file(path)
        stem = os.path.splitext(os.path.basename(path))[0] or "kernel"
        return KernelChoice(matrix, f"{stem}-{weights_hash(matrix)}", spec)
    looks_numeric = spec[0] in "+-.0123456789" or any(ch in spec for ch in ",; \t\n")
    if looks_numeric and ALIASES.get(spec.lower(), spec.lower()) not in KERNELS:
        _no_params(size, sigma, "an inline matrix")
        matrix = parse_matrix(spec)
        return KernelChoice(matrix, f"custom-{weights_hash(matrix)}", "custom")
    key = resolve_name(spec)
    return KernelChoice(get_kernel(key, size=size, sigma=sigma), key, key)


def _no_params(size, sigma, what: str) -> None:
    if size is not None or sigma is not None:
        raise UsageError(f"--size and --sigma apply to named kernels only, not to {what}")
