"""GRM quick spectrum (QSPEC, VHF flow): CPL or Band fit of the detectors' counts in one interval.

Pure step: counts per detector and channel, the background expected in the same interval
(from the background fit, with its variance), and the GRM responses for the burst direction
(RSP-like: effective area included). The detectors are fitted jointly without
cross-normalisation (one instrument, one calibration), with PG-stat by default (Poisson
counts, Gaussian background-model uncertainty; zero variance means a known background).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.products.ogip_spectra import PhaSpectrum, Response
from svomflow.tasks.spectral.dataset import SpectrumDataset
from svomflow.tasks.spectral.fit import FitResult, errors, fit
from svomflow.tasks.spectral.flux import flux

__all__ = ["QuickSpectrum", "QuickSpectrumConfig", "quick_spectrum"]


class QuickSpectrumConfig(StepConfig):
    """Configuration of the GRM quick spectral fit."""

    model: Literal["cpl", "band"] = Field(
        "cpl", description="photon model: cutoff power law or Band"
    )
    stat: Literal["pgstat", "cstat"] = Field(
        "pgstat",
        description="statistic (cstat with a background model becomes pgstat, as in XSPEC)",
    )
    energy_range_kev: tuple[float, float] = Field(
        (15.0, 5000.0), description="channels overlapping this band are fitted (keV)"
    )
    pivot_kev: float = Field(100.0, gt=0, description="pivot energy of the amplitude K (keV)")
    compute_errors: bool = Field(True, description="profile (delta-stat = 1) errors")
    flux_band_kev: tuple[float, float] = Field((10.0, 1000.0), description="flux band (keV)")
    n_flux_samples: int = Field(500, ge=0, description="covariance draws for flux errors")


@dataclass
class QuickSpectrum:
    """Quick spectral parameters (QSP_GRM): best fit, errors, fluxes and quality flags."""

    model: str
    statistic: str
    stat: float
    dof: int
    parameters: dict[str, dict[str, float | None]]
    photon_flux: dict[str, Any]
    energy_flux: dict[str, Any]
    converged: bool
    flags: list[str] = field(default_factory=list)
    result: FitResult | None = None

    @property
    def epeak(self) -> float:
        """Best-fit peak energy of the nuFnu spectrum (keV)."""
        return float(self.parameters["epeak"]["value"])  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "model": self.model,
            "statistic": self.statistic,
            "stat": self.stat,
            "dof": self.dof,
            "parameters": self.parameters,
            "photon_flux": self.photon_flux,
            "energy_flux": self.energy_flux,
            "converged": self.converged,
            "flags": list(self.flags),
        }


def _memory_pha(
    name: str, counts: np.ndarray, exposure: float, err: np.ndarray | None
) -> PhaSpectrum:
    n = counts.size
    return PhaSpectrum(
        path=Path(f"<{name}>"),
        row=None,
        channel=np.arange(1, n + 1),
        counts=np.asarray(counts, dtype=float),
        stat_err=err,
        sys_err=np.zeros(n),
        quality=np.zeros(n, dtype=np.int64),
        grouping=np.ones(n, dtype=np.int64),
        exposure=float(exposure),
        backscal=np.ones(n),
        areascal=np.ones(n),
        poisserr=err is None,
    )


def quick_spectrum(
    counts_per_detector: Sequence[np.ndarray],
    background: Sequence[np.ndarray | tuple[np.ndarray, np.ndarray]],
    responses: Sequence[Response],
    exposure: float | Sequence[float],
    model: str | None = None,
    config: QuickSpectrumConfig | None = None,
    names: Sequence[str] | None = None,
) -> QuickSpectrum:
    """Fit a CPL/Band spectrum to the GRM detectors' counts in one interval.

    Parameters
    ----------
    counts_per_detector : counts per channel, one array per detector.
    background : expected background counts per channel in the same interval, one per
        detector, either an array (known exactly) or ``(counts, variance)``.
    responses : response of each detector for the burst direction (effective area included).
    exposure : live time (s) of the interval, one value or one per detector.
    model : ``"cpl"`` or ``"band"`` (overrides ``config.model``).
    """
    cfg = config or QuickSpectrumConfig()
    mdl = model or cfg.model
    nd = len(counts_per_detector)
    if nd == 0 or len(background) != nd or len(responses) != nd:
        raise InputDataError(
            "quick_spectrum needs counts, background and response for each detector"
        )
    exposures = [float(exposure)] * nd if np.ndim(exposure) == 0 else [float(e) for e in exposure]  # type: ignore[arg-type]
    labels = list(names) if names is not None else [f"det{i}" for i in range(nd)]
    datasets = []
    for i in range(nd):
        counts = np.asarray(counts_per_detector[i], dtype=float)
        bk = background[i]
        if isinstance(bk, tuple):
            bcounts, bvar = (np.asarray(a, dtype=float) for a in bk)
        else:
            bcounts, bvar = np.asarray(bk, dtype=float), np.zeros(counts.size)
        if bcounts.shape != counts.shape or bvar.shape != counts.shape:
            raise InputDataError(f"{labels[i]}: background and counts have different lengths")
        src = _memory_pha(labels[i], counts, exposures[i], None)
        bkg = _memory_pha(
            labels[i] + " background", bcounts, exposures[i], np.sqrt(np.maximum(bvar, 0.0))
        )
        ds = SpectrumDataset(name=labels[i], source=src, response=responses[i], background=bkg)
        ds.select_energy([cfg.energy_range_kev])
        datasets.append(ds)
    result = fit(datasets, mdl, stat=cfg.stat, pivot=cfg.pivot_kev, cross_norm=False)
    if cfg.compute_errors:
        errors(result)
    flags = []
    if not result.converged:
        flags.append("not_converged")
    for name, pr in result.parameters.items():
        if pr.at_bound and not pr.frozen:
            flags.append(f"{name}_at_bound")
    pf = flux(result, cfg.flux_band_kev, "photon", n_samples=cfg.n_flux_samples)
    ef = flux(result, cfg.flux_band_kev, "energy", n_samples=cfg.n_flux_samples)
    params = {
        k: {
            "value": v.value,
            "error_low": v.error_low,
            "error_high": v.error_high,
            "error": v.error,
        }
        for k, v in result.parameters.items()
        if not v.frozen
    }
    return QuickSpectrum(
        model=mdl,
        statistic=result.statistic,
        stat=result.stat,
        dof=result.dof,
        parameters=params,
        photon_flux=pf.to_dict(),
        energy_flux=ef.to_dict(),
        converged=result.converged,
        flags=flags,
        result=result,
    )
