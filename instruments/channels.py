"""Channel-to-energy calibration of an instrument: the energy bounds of its PI channels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["EnergyBounds"]


@dataclass(frozen=True)
class EnergyBounds:
    """Energy bounds (keV) of consecutive PI channels, from ``first_channel`` on (EBOUNDS)."""

    first_channel: int
    e_min: NDArray[np.float64]
    e_max: NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.e_min.shape != self.e_max.shape or self.e_min.ndim != 1 or not self.e_min.size:
            raise ValueError("EBOUNDS needs two equal, non-empty 1-d arrays E_MIN and E_MAX")
        if np.any(self.e_max <= self.e_min):
            raise ValueError("EBOUNDS has a channel with E_MAX <= E_MIN")

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(self.e_min.size)

    @property
    def channels(self) -> NDArray[np.int64]:
        """Channel numbers."""
        return np.arange(self.first_channel, self.first_channel + self.n_channels)

    def midpoints(self, channel: NDArray[np.integer]) -> NDArray[np.float64]:
        """Energy (keV) of events: the midpoint of their channel.

        Raises
        ------
        ValueError
            When a channel lies outside the table.
        """
        idx = np.asarray(channel, dtype=np.int64) - self.first_channel
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_channels):
            raise ValueError(
                f"channels {int(idx.min()) + self.first_channel}..{int(idx.max()) + self.first_channel}"
                f" outside EBOUNDS {self.first_channel}..{self.first_channel + self.n_channels - 1}"
            )
        return np.asarray(0.5 * (self.e_min[idx] + self.e_max[idx]), dtype=np.float64)

    def same_as(self, other: EnergyBounds, rtol: float = 1e-5) -> bool:
        """Whether two tables describe the same channels (to float32 precision)."""
        return (
            self.first_channel == other.first_channel
            and self.n_channels == other.n_channels
            and bool(np.allclose(self.e_min, other.e_min, rtol=rtol, atol=1e-6))
            and bool(np.allclose(self.e_max, other.e_max, rtol=rtol, atol=1e-6))
        )
