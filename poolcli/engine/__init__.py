"""Numba-compiled loops: NumPy in, NumPy out; no validation, I/O or printing."""
