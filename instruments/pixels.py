"""Bad-pixel calibration of a pixelated detector plane: dead and noisy pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["PixelMap"]


@dataclass(frozen=True)
class PixelMap:
    """Dead pixels (switched off: they record nothing) and known noisy pixels of a plane."""

    dead: NDArray[np.bool_]
    noisy: NDArray[np.bool_]

    def __post_init__(self) -> None:
        if self.dead.shape != self.noisy.shape or self.dead.ndim != 2:
            raise ValueError("dead and noisy pixel maps must be 2-d arrays of one shape")

    @property
    def shape(self) -> tuple[int, int]:
        """Plane shape (ny, nz)."""
        return (int(self.dead.shape[0]), int(self.dead.shape[1]))

    @property
    def bad(self) -> NDArray[np.bool_]:
        """Pixels not to use: dead or noisy."""
        return np.asarray(self.dead | self.noisy)

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> PixelMap:
        """Return a plane with no bad pixel."""
        return cls(np.zeros(shape, bool), np.zeros(shape, bool))
