"""MXT spectral response model: on-axis effective area and CCD energy resolution.

Both are parametrised by the instrument definition (``optics.effective_area_*`` and
``ccd.energy_resolution_fwhm_ev_at_1p5kev``); the simulator draws photons with them and the
analysis builds the ARF and RMF of its spectra from the same functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["effective_area", "resolution_sigma_kev"]


def effective_area(energy_kev: NDArray[np.float64], instrument: Any) -> NDArray[np.float64]:
    """Return the on-axis effective area (cm2) at ``energy_kev`` (45 cm2 at 1 keV; shape assumed)."""
    a1 = float(instrument.get("optics.effective_area_cm2_at_1kev"))
    sh = instrument.get("optics.effective_area_shape")

    def shape(e: NDArray[np.float64]) -> NDArray[np.float64]:
        e = np.maximum(np.asarray(e, dtype=np.float64), 1e-3)
        return np.exp(-((sh["e_low_kev"] / e) ** sh["p_low"])) / (
            1.0 + (e / sh["e_high_kev"]) ** sh["p_high"]
        )

    return a1 * shape(energy_kev) / shape(np.array(1.0))


def resolution_sigma_kev(energy_kev: NDArray[np.float64], instrument: Any) -> NDArray[np.float64]:
    """Return the CCD energy resolution (Gaussian sigma, keV): FWHM at 1.5 keV scaled as sqrt(E)."""
    fwhm = float(instrument.get("ccd.energy_resolution_fwhm_ev_at_1p5kev")) * 1e-3
    return fwhm / 2.3548 * np.sqrt(np.maximum(energy_kev, 1e-3) / 1.5)
