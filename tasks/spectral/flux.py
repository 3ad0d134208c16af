"""Photon and energy fluxes (and fluences) of a fit, with errors by sampling the covariance.

The covariance is the inverse of a finite-difference Hessian: near a bound or along a
nearly flat direction it can come out indefinite (a negative eigenvalue or a negative
variance). It is then regularised before sampling (:func:`regularise_covariance`): the
standard deviations are taken from the profile errors when :func:`~svomflow.tasks.spectral.errors`
was run (else from the positive Hessian variances), the correlations from the expected
(Fisher) information, positive semi-definite by construction
(:func:`~svomflow.tasks.spectral.fit.fisher_covariance`), or failing that from the Hessian's
correlation matrix projected on the positive-definite cone (eigenvalues clipped, unit
diagonal restored); the result says so (``covariance_regularised``, ``notes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from svomflow.tasks.spectral.fit import FitResult, fisher_covariance

__all__ = ["FluxResult", "flux", "regularise_covariance"]

# Eigenvalues of the correlation matrix below this are raised to it: a correlation of
# 1 - 1e-6 is kept, a degenerate direction is given a small but non-zero spread.
_MIN_CORR_EIGENVALUE = 1e-6


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
    covariance_regularised: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary."""
        return {
            "kind": self.kind,
            "band_keV": list(self.band),
            "value": self.value,
            "error_low": self.error_low,
            "error_high": self.error_high,
            "unit": self.unit,
            "covariance_regularised": self.covariance_regularised,
            "notes": list(self.notes),
        }


def regularise_covariance(
    cov: np.ndarray,
    sigma: Sequence[float | None] | None = None,
    names: Sequence[str] | None = None,
    fallback: np.ndarray | None = None,
) -> tuple[np.ndarray, bool, list[str]]:
    """A positive-definite covariance close to ``cov``; whether it had to change, and why.

    Parameters
    ----------
    cov : symmetric (or nearly) covariance matrix.
    sigma : preferred standard deviation of each parameter (e.g. the mean of the profile
        errors), used for the diagonal when the matrix is regularised; ``None`` entries fall
        back to ``sqrt(cov[i, i])`` when that is positive.
    names : parameter names, for the notes.
    fallback : another estimate of the covariance (e.g. the Fisher information's inverse);
        when it is positive definite its correlations are used.

    Returns
    -------
    (matrix, regularised, notes). An already positive-definite ``cov`` is returned
    symmetrised and unchanged otherwise. A parameter with no usable standard deviation (no
    profile error and a non-positive variance) gets zero spread, and a note says so.
    """
    c = np.asarray(cov, dtype=float)
    n = c.shape[0]
    labels = list(names) if names is not None else [f"p{i}" for i in range(n)]
    c = 0.5 * (c + c.T)
    notes: list[str] = []
    if _is_positive_definite(c):
        return c, False, notes
    use_fallback = fallback is not None and _is_positive_definite(0.5 * (fallback + fallback.T))
    if use_fallback:
        f = 0.5 * (fallback + fallback.T)  # type: ignore[operator]
        var = np.where(np.isfinite(np.diag(c)) & (np.diag(c) > 0), np.diag(c), np.diag(f))
        fd = np.sqrt(np.diag(f))
        corr = f / np.outer(fd, fd)
        std = np.array(
            [
                float(s_i) if s_i is not None and np.isfinite(s_i) and s_i > 0 else np.sqrt(var[i])
                for i, s_i in enumerate(sigma if sigma is not None else [None] * n)
            ]
        )
        out = corr * np.outer(std, std)
        notes.append(
            "covariance not positive definite: Fisher-information correlations used, "
            + ("profile errors on the diagonal" if sigma is not None else "Hessian variances")
        )
        return 0.5 * (out + out.T), True, notes
    diag = np.where(np.isfinite(np.diag(c)), np.diag(c), -1.0)
    std = np.zeros(n)
    for i in range(n):
        s_i = None if sigma is None else sigma[i]
        if s_i is not None and np.isfinite(s_i) and s_i > 0:
            std[i] = float(s_i)
        elif diag[i] > 0:
            std[i] = float(np.sqrt(diag[i]))
        else:
            notes.append(f"{labels[i]} has no usable error: held at its best fit in the draws")
    ok = diag > 0
    corr = np.eye(n)
    if np.any(ok):
        d = np.sqrt(np.where(ok, diag, 1.0))
        raw = np.where(np.isfinite(c), c, 0.0) / np.outer(d, d)
        both = np.outer(ok, ok)
        corr = np.where(both, np.clip(raw, -1.0, 1.0), 0.0)
        np.fill_diagonal(corr, 1.0)
    w, v = np.linalg.eigh(corr)
    w = np.maximum(w, _MIN_CORR_EIGENVALUE)
    corr = (v * w) @ v.T
    dn = np.sqrt(np.diag(corr))
    corr = corr / np.outer(dn, dn)
    out = corr * np.outer(std, std)
    notes.insert(
        0,
        "covariance not positive definite: correlations projected (eigenvalues clipped), "
        + ("profile errors on the diagonal" if sigma is not None else "Hessian variances kept"),
    )
    return 0.5 * (out + out.T), True, notes


def _is_positive_definite(c: np.ndarray) -> bool:
    if c.shape[0] == 0 or not np.all(np.isfinite(c)) or np.any(np.diag(c) <= 0):
        return False
    w = np.linalg.eigvalsh(c)
    return bool(w[0] > 1e-12 * w[-1])


def _draw(rng: np.random.Generator, mean: np.ndarray, cov: np.ndarray, size: int) -> np.ndarray:
    # Eigen-factorisation of a positive semi-definite matrix (after regularisation): no
    # warning path, zero-spread directions stay at the mean.
    w, v = np.linalg.eigh(cov)
    root = v * np.sqrt(np.clip(w, 0.0, None))
    return mean + rng.standard_normal((size, mean.size)) @ root.T


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
    sigma = []
    for n in free_model:
        pr = result.parameters[n]
        lo_e, hi_e = pr.error_low, pr.error_high
        good = lo_e is not None and hi_e is not None and np.isfinite(lo_e) and np.isfinite(hi_e)
        sigma.append(0.5 * (hi_e - lo_e) if good and hi_e - lo_e > 0 else None)  # type: ignore[operator]
    cov = result.covariance[np.ix_(sel, sel)]
    fallback = None
    if not _is_positive_definite(0.5 * (cov + cov.T)):
        fallback = fisher_covariance(result)[np.ix_(sel, sel)]
    cov, regularised, notes = regularise_covariance(cov, sigma, free_model, fallback)
    mean = np.array([result.parameters[n].value for n in free_model])
    problem = result.problem
    lo = np.array([problem.param(n).lower for n in free_model])
    hi = np.array([problem.param(n).upper for n in free_model])
    rng = np.random.default_rng(seed)
    draws = np.empty((0, len(free_model)))
    # Reject draws outside the bounds (e.g. alpha <= -2 has no Epeak); a few rounds suffice.
    for _ in range(20):
        d = _draw(rng, mean, cov, n_samples)
        ok = np.all((d >= lo) & (d <= hi), axis=1)
        draws = np.vstack([draws, d[ok]])
        if draws.shape[0] >= n_samples:
            break
    draws = draws[:n_samples]
    if draws.shape[0] == 0:
        notes.append("no draw inside the parameter bounds: flux error not estimated")
        return FluxResult(kind, band, float(value), 0.0, 0.0, unit, 0, duration, regularised, notes)
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
        covariance_regularised=regularised,
        notes=notes,
    )
