"""Numba compiler flags, in one place.

Every compiled loop in :mod:`poolcli.engine` is decorated with :func:`jit` (serial helpers) or
:func:`pjit` (``prange`` over output rows).  Machine code is cached on disk next to the package;
when that folder is read-only Numba falls back to its per-user cache folder by itself.
"""

import types

from numba import njit

_FLAGS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


def jit(fn):
    """Compile ``fn`` as a serial no-Python function."""
    return njit(**_FLAGS)(fn)


def pjit(fn):
    """Compile ``fn`` with ``parallel=True`` so its ``prange`` loops run on all threads.

    The dispatcher's ``serial`` attribute is the same loops compiled without ``parallel``
    (``prange`` runs as ``range``), for callers computing on one thread (batch workers): there
    Numba's workqueue threading layer, which batches need, costs ≈ 0.25 ms per parallel call.
    The twin has a name of its own so that the two are cached apart: Numba's cache key leaves
    the parallel flag out.
    """
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = f"{fn.__qualname__}_serial"
    twin.__module__, twin.__doc__ = fn.__module__, fn.__doc__
    dispatcher = njit(parallel=True, **_FLAGS)(fn)
    dispatcher.serial = njit(**_FLAGS)(twin)
    return dispatcher


def inline(fn):
    """Compile ``fn`` as a serial helper that Numba inlines into its callers at the IR level
    (``inline="always"``), for small per-pixel helpers in hot loops."""
    return njit(cache=True, nogil=True, inline="always")(fn)
