"""Photon and energy fluxes (and fluences) of a fit, with errors by sampling the covariance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from svomflow.tasks.spectral.fit import FitResult

__all__ = ["FluxResult", "flux"]


@dataclass
class FluxResult:
    """Flux in a band with the central interval of the sampled distribution.

    ``error_low``/``error_high`` are the distances from ``value`` (best fit) to the
    ``(1-cl)/2`` and ``(1+cl)/2`` quantiles of the fluxes of parameter sets drawn from the
    fit's covariance (free parameters, bounds respected).
    """

    kind: str
    band: tuple[float, float]
    value: float
    error_low: float
    error_high: float
    unit: str
    n_samples: int
    duration: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary."""
        return {
            "kind": self.kind,
            "band_keV": list(self.band),
            "value": self.value,
            "error_low": self.error_low,
            "error_high": self.error_high,
            "unit": self.unit,
        }


def flux(
    result: FitResult,
    band: tuple[float, float] = (10.0, 1000.0),
    kind: str = "energy",
    n_samples: int = 1000,
    seed: int | None = 0,
    cl: float = 0.6827,
    duration: float | None = None,
) -> FluxResult:
    """Flux of the best-fit model in ``band`` (keV), errors from ``n_samples`` draws.

    ``kind`` is ``"photon"`` (ph/cm2/s), ``"energy"`` (erg/cm2/s), or ``"fluence"``
    (erg/cm2: energy flux times ``duration``, by default the first dataset's elapsed time).
    """
    if kind not in {"photon", "energy", "fluence"}:
        raise ValueError("kind must be 'photon', 'energy' or 'fluence'")
    model = result.model
    names = model.param_names
    flux_kind = "photon" if kind == "photon" else "energy"
    factor = 1.0
    unit = "ph/cm2/s" if kind == "photon" else "erg/cm2/s"
    if kind == "fluence":
        duration = duration if duration is not None else result.problem.datasets[0].duration
        if duration is None:
            raise ValueError("fluence needs a duration (the spectrum gives no elapsed time)")
        factor = float(duration)
        unit = "erg/cm2"
    best = np.array([result.parameters[n].value for n in names])
    value = model.flux(best, band, flux_kind) * factor
    free_model = [n for n in result.free if n in names]
    if not free_model or n_samples <= 0:
        return FluxResult(kind, band, value, 0.0, 0.0, unit, 0, duration)
    sel = [result.free.index(n) for n in free_model]
    cov = result.covariance[np.ix_(sel, sel)]
    mean = np.array([result.parameters[n].value for n in free_model])
    problem = result.problem
    lo = np.array([problem.param(n).lower for n in free_model])
    hi = np.array([problem.param(n).upper for n in free_model])
    rng = np.random.default_rng(seed)
    draws = np.empty((0, len(free_model)))
    # Reject draws outside the bounds (e.g. alpha <= -2 has no Epeak); a few rounds suffice.
    for _ in range(20):
        d = rng.multivariate_normal(mean, cov, size=n_samples, method="eigh")
        ok = np.all((d >= lo) & (d <= hi), axis=1)
        draws = np.vstack([draws, d[ok]])
        if draws.shape[0] >= n_samples:
            break
    draws = draws[:n_samples]
    pos = {n: names.index(n) for n in free_model}
    values = np.empty(draws.shape[0])
    p = best.copy()
    for j, row in enumerate(draws):
        for n, v in zip(free_model, row, strict=True):
            p[pos[n]] = v
        values[j] = model.flux(p, band, flux_kind, n_nodes=513) * factor
    q_lo, q_hi = np.quantile(values, [(1 - cl) / 2, (1 + cl) / 2])
    return FluxResult(
        kind=kind,
        band=(float(band[0]), float(band[1])),
        value=float(value),
        error_low=float(q_lo - value),
        error_high=float(q_hi - value),
        unit=unit,
        n_samples=int(values.size),
        duration=duration,
    )
