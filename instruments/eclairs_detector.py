"""The ECLAIRs detector model: CdTe efficiency, energy resolution, threshold and PI channels.

One model, read from the instrument file, for the simulator (which draws measured energies
and channels with it) and for the spectral response (which integrates it): the two cannot
drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray
from svomflow.config import InstrumentDefinition

__all__ = ["EclairsDetectorModel"]


@dataclass(frozen=True)
class EclairsDetectorModel:
    """Detector numbers of the response: efficiency table, resolution, threshold and channels."""

    eff_energy_kev: NDArray[np.float64]
    eff_value: NDArray[np.float64]
    fwhm_noise_kev: float
    fwhm_slope_kev: float
    threshold_kev: float
    e_min_kev: float
    channel_width_kev: float
    n_channels: int

    @classmethod
    def from_instrument(cls, inst: InstrumentDefinition) -> EclairsDetectorModel:
        """Read the detector numbers from the instrument file."""
        lo = inst.get("detector_plane.low_energy_efficiency")
        hi = inst.get("detector_plane.high_energy_efficiency")
        e = np.concatenate([lo["energies_kev"], hi["energies_kev"]]).astype(float)
        v = np.concatenate([lo["efficiency"], hi["efficiency"]]).astype(float)
        e, idx = np.unique(e, return_index=True)
        noise = float(inst.get("detector_plane.energy_resolution_noise_fwhm_kev"))
        f60 = float(inst.get("detector_plane.energy_resolution_fwhm_kev_at_60"))
        return cls(
            eff_energy_kev=e,
            eff_value=v[idx],
            fwhm_noise_kev=noise,
            fwhm_slope_kev=max(f60**2 - noise**2, 0.0) / 60.0,
            threshold_kev=float(inst.get("low_threshold_kev")),
            e_min_kev=float(inst.get("channels.e_min_kev")),
            channel_width_kev=float(inst.get("channels.channel_width_kev")),
            n_channels=int(inst.get("channels.n_channels")),
        )

    def efficiency(self, energy_kev: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return the detection efficiency at true energies (0 below the table, last value above)."""
        e = np.asarray(energy_kev, dtype=np.float64)
        return np.interp(e, self.eff_energy_kev, self.eff_value, left=0.0, right=self.eff_value[-1])

    def sigma_kev(self, energy_kev: NDArray[np.float64]) -> NDArray[np.float64]:
        """Gaussian sigma of the measured energy (keV)."""
        e = np.clip(np.asarray(energy_kev, dtype=np.float64), 0.0, None)
        return np.sqrt(self.fwhm_noise_kev**2 + self.fwhm_slope_kev * e) / (
            2.0 * np.sqrt(2.0 * np.log(2.0))
        )

    def channel_edges(self) -> NDArray[np.float64]:
        """PI channel edges (n_channels + 1) in keV."""
        return np.asarray(
            self.e_min_kev + self.channel_width_kev * np.arange(self.n_channels + 1), dtype=float
        )

    def channel_bounds(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return (E_MIN, E_MAX) of every PI channel in keV."""
        edges = self.channel_edges()
        return edges[:-1].copy(), edges[1:].copy()

    def to_channel(self, energy_kev: NDArray[np.float64]) -> NDArray[np.int64]:
        """Return the PI channel of measured energies (may fall outside [0, n_channels))."""
        e = np.asarray(energy_kev, dtype=np.float64)
        return np.floor((e - self.e_min_kev) / self.channel_width_kev).astype(np.int64)


@dataclass(frozen=True)
class EclairsResponse(EclairsDetectorModel):
    """The detector model of the pipelines' response, plus the time resolution of the events."""

    time_resolution_s: float

    @classmethod
    def from_instrument(cls, inst: InstrumentDefinition) -> EclairsResponse:
        """Read the response numbers from an instrument definition."""
        base = EclairsDetectorModel.from_instrument(inst)
        values = {f.name: getattr(base, f.name) for f in fields(EclairsDetectorModel)}
        return cls(**values, time_resolution_s=float(inst.get("time_resolution_s")))
