"""The protocol of an image read band by band (contract §10): what a streaming reader gives
and what every banded operation of :mod:`poolcli.bands` takes and gives."""

from __future__ import annotations

import numpy as np


class Rows:
    """Rows of an (height, width, channels) image of ``dtype``, read top to bottom."""

    height: int
    width: int
    channels: int
    dtype: np.dtype

    def read(self, n: int) -> np.ndarray:
        """The next ``min(n, rows left)`` rows, (rows, width, channels), C-contiguous."""
        raise NotImplementedError

    def rewind(self) -> None:
        """Start again from the first row."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what this holds (files); a closed Rows is not read again."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.height, self.width, self.channels
