"""Photon lists: what a source model hands to an instrument simulator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["PhotonList"]


@dataclass
class PhotonList:
    """Photons from one sky position arriving on a collecting area.

    Attributes
    ----------
    time
        Arrival times in mission seconds (sorted).
    energy_kev
        Photon energies in keV.
    ra_deg, dec_deg
        Sky position of the source (None for a diffuse component).
    area_cm2
        The geometric area the photons were drawn for; an instrument keeps each photon with
        probability (its effective area at that energy and angle) / ``area_cm2``.
    label
        Name of the component (``"grb"``, ``"cxb"``, ``"crab"``...), kept in the truth.
    """

    time: NDArray[np.float64]
    energy_kev: NDArray[np.float64]
    ra_deg: float | None
    dec_deg: float | None
    area_cm2: float
    label: str = "source"

    def __post_init__(self) -> None:
        self.time = np.asarray(self.time, dtype=np.float64)
        self.energy_kev = np.asarray(self.energy_kev, dtype=np.float64)
        if self.time.shape != self.energy_kev.shape or self.time.ndim != 1:
            raise ValueError("time and energy_kev must be 1-D arrays of equal length")
        if self.area_cm2 <= 0:
            raise ValueError("area_cm2 must be positive")

    def __len__(self) -> int:
        return int(self.time.size)

    def thin(self, keep: NDArray[np.bool_]) -> PhotonList:
        """Return the photons where ``keep`` is true (same position, area and label)."""
        return PhotonList(
            self.time[keep],
            self.energy_kev[keep],
            self.ra_deg,
            self.dec_deg,
            self.area_cm2,
            self.label,
        )
