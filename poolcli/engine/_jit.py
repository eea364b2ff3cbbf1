"""Numba compiler flags, in one place.

Every compiled loop in :mod:`poolcli.engine` is decorated with :func:`jit` (serial helpers) or
:func:`pjit` (``prange`` over output rows).  Machine code is cached on disk next to the package;
when that folder is read-only Numba falls back to its per-user cache folder by itself.
"""

from numba import njit

_FLAGS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


def jit(fn):
    """Compile ``fn`` as a serial no-Python function."""
    return njit(**_FLAGS)(fn)


def pjit(fn):
    """Compile ``fn`` with ``parallel=True`` so its ``prange`` loops run on all threads."""
    return njit(parallel=True, **_FLAGS)(fn)
