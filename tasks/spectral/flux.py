"""Photon and energy fluxes (and fluences) of a fit, with profile or sampled errors.

Two ways to the error of a flux (``method``):

* ``"profile"`` (XSPEC's ``cflux``): the model is refitted with its amplitude ``K`` replaced
  by the flux in the band (:class:`FluxNormalised`), and the error is where the statistic
  profiled over every other free parameter rises by ``chi2.ppf(cl, 1)``, exactly as the
  parameters' errors (:func:`~svomflow.tasks.spectral.errors`). It follows a non-Gaussian
  likelihood (e.g. a Band ``beta`` bounded on one side and long-tailed on the other),
  where draws from the covariance put too much weight on the flat side and give too large
  a flux error; it needs a single-amplitude model (``K``; sums fall back to sampling). A
  shape parameter at a bound (or whose interval runs to one) is flat there, where a refit
  has no gradient to follow: the profile refits then also start from the far end of its
  interval and half-way there, so the flux interval includes every spectrum the data
  allow (a Band beta anywhere from -10 to its 1-sigma edge).
* ``"sample"`` (XSPEC's ``flux err``): the quantiles of the fluxes of parameter sets drawn
  from the covariance.

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

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special
from svomflow.tasks.spectral.fit import (
    FitResult,
    ParameterResult,
    errors,
    fisher_covariance,
)
from svomflow.tasks.spectral.models import EnergyGrid, ParameterSpec, ParamValues, SpectralModel

__all__ = ["FluxNormalised", "FluxResult", "flux", "regularise_covariance"]

# Nodes of the band integral that turns the flux parameter back into an amplitude: the
# relative error of Simpson's rule on 513 nodes is far below any statistical error.
_FLUX_NODES = 513

# Eigenvalues of the correlation matrix below this are raised to it: a correlation of
# 1 - 1e-6 is kept, a degenerate direction is given a small but non-zero spread.
_MIN_CORR_EIGENVALUE = 1e-6


@dataclass
class FluxResult:
    """Flux in a band with its confidence interval.

    ``error_low``/``error_high`` are the distances from ``value`` (best fit) to the ends of
    the interval: for ``method == "profile"`` where the profiled statistic rises by
    ``chi2.ppf(cl, 1)``; for ``"sample"`` the ``(1-cl)/2`` and ``(1+cl)/2`` quantiles of the
    fluxes of parameter sets drawn from the fit's covariance (free parameters, bounds
    respected). ``at_bound``: the profile reached the flux parameter's bound (the interval
    is open on that side).
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
    method: str = "sample"
    at_bound: bool = False

    def scaled(self, factor: float, kind: str, unit: str, duration: float | None) -> FluxResult:
        """Return the same interval multiplied by ``factor`` (e.g. an energy flux to a fluence)."""
        return replace(
            self,
            kind=kind,
            value=self.value * factor,
            error_low=self.error_low * factor,
            error_high=self.error_high * factor,
            unit=unit,
            duration=duration,
            notes=list(self.notes),
        )

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
            "method": self.method,
        }


class FluxNormalised(SpectralModel):
    """A model whose amplitude ``K`` is replaced by its flux in a band (XSPEC's ``cflux``).

    Parameter ``flux`` (ph/cm2/s or erg/cm2/s, fitted in log) takes ``K``'s place; the other
    parameters are the model's. ``K = flux / flux_of_the_model_with_K=1``, so the spectrum
    is the same function of the shape parameters and the statistic's minimum is the same
    as the model's: the profile of ``flux`` is the likelihood interval of the flux.
    """

    def __init__(self, base: SpectralModel, band: tuple[float, float], kind: str) -> None:
        if "K" not in base.param_names:
            raise ValueError(f"{base.name} has no single amplitude K to replace by a flux")
        super().__init__(base.pivot)
        self.base = base
        self.band = (float(band[0]), float(band[1]))
        self.kind = kind
        self.k_index = base.param_names.index("K")
        unit = "ph/cm2/s" if kind == "photon" else "erg/cm2/s"
        specs = list(base.specs)
        # bounds wide enough never to bind: the flux of K at its own bounds is not known here
        specs[self.k_index] = ParameterSpec("flux", 1.0, 1e-300, 1e300, unit, log=True)
        self.specs = tuple(specs)
        self.name = f"flux({base.name})"
        # one fit step folds the same parameters through every dataset's grid: the band
        # integral of the last shape is kept
        self._last: tuple[tuple[float, ...], float] | None = None

    def base_values(self, p: Sequence[float]) -> list[float]:
        """Return the base model's parameter vector (``K`` from the flux) for ``p``."""
        q = [float(v) for v in p]
        q[self.k_index] = 1.0
        key = tuple(q)
        if self._last is not None and self._last[0] == key:
            unit = self._last[1]
        else:
            unit = self.base.flux(q, self.band, self.kind, n_nodes=_FLUX_NODES)
            self._last = (key, unit)
        q[self.k_index] = float(p[self.k_index]) / unit if unit > 0 else 0.0
        return q

    def flux_of(self, base_params: Sequence[float] | NDArray[np.float64]) -> float:
        """Flux in the band of the base model's parameter vector (same integration rule)."""
        return float(self.base.flux(list(base_params), self.band, self.kind, n_nodes=_FLUX_NODES))

    def _eval(self, energy: np.ndarray, p: Sequence[float], out: np.ndarray) -> None:
        self.base._eval(energy, self.base_values(p), out)

    def integrate(self, grid: EnergyGrid, params: ParamValues) -> np.ndarray:
        """Return the base model's bin integrals (analytic ones included)."""
        return self.base.integrate(grid, self.base_values(self._vector(params)))


def _profile_interval(
    result: FitResult,
    band: tuple[float, float],
    kind: str,
    cl: float,
    starts: Sequence[Mapping[str, float]] = (),
) -> tuple[float, float, float, bool] | None:
    """Best flux and its profile-likelihood interval (value, low, high, at_bound).

    ``None`` when the model has no free single amplitude ``K`` (the caller then samples).
    ``starts``: more starting points of the profile refits (see :func:`errors`).
    """
    model = result.model
    problem = result.problem
    if "K" not in model.param_names or "K" not in result.free:
        return None
    wrapped = FluxNormalised(model, band, kind)
    best = np.array([result.parameters[n].value for n in model.param_names])
    value = wrapped.flux_of(best)
    if not value > 0:
        return None
    # the same datasets, statistic and links; only the amplitude is re-expressed
    prob = copy.copy(problem)
    prob.model = wrapped
    prob.params = [replace(p, value=result.parameters[p.name].value) for p in problem.params]
    k = problem.index["K"]
    prob.params[k] = replace(
        prob.params[k], name="flux", value=value, lower=value * 1e-6, upper=value * 1e6, log=True
    )
    prob.index = {p.name: i for i, p in enumerate(prob.params)}
    free = ["flux" if n == "K" else n for n in result.free]
    # first step of the root search: the flux's linear error from the covariance
    sel = [result.free.index(n) for n in result.free if n in model.param_names]
    grad = np.zeros(len(result.free))
    for j in sel:
        name = result.free[j]
        i = model.param_names.index(name)
        h = 1e-4 * max(abs(best[i]), 1e-6)
        up = best.copy()
        up[i] += h
        grad[j] = (wrapped.flux_of(up) - value) / h
    var = float(grad @ result.covariance @ grad) if result.covariance.size else 0.0
    sigma = np.sqrt(var) if np.isfinite(var) and var > 0 else 0.1 * value
    cov = np.zeros((len(free), len(free)))
    cov[free.index("flux"), free.index("flux")] = sigma**2
    params = dict(result.parameters)
    params.pop("K")
    params["flux"] = ParameterResult(value=value, error=sigma)
    res2 = replace(
        result, parameters=params, free=free, covariance=cov, model=wrapped, problem=prob
    )
    # the chi2 quantile of 1 dof (what scipy.stats.chi2.ppf computes; importing scipy.stats
    # costs every process about 0.3 s of CPU)
    delta = float(2.0 * special.gammaincinv(0.5, cl))
    res2 = errors(res2, params=["flux"], delta=delta, starts=starts)
    pr = res2.parameters["flux"]
    # the profile always gives both ends here (the flux is a free parameter of res2)
    lo_e = float("nan") if pr.error_low is None else float(pr.error_low)
    hi_e = float("nan") if pr.error_high is None else float(pr.error_high)
    return value, lo_e, hi_e, bool(pr.at_bound)


def _inside_starts(result: FitResult, names: Sequence[str]) -> list[dict[str, float]]:
    """Return starting points for parameters flagged ``at_bound``: the far end of their interval.

    A parameter at a bound is moved inside, to its 1-sigma edge and half-way there; one
    whose interval runs to a bound is moved to that end and half-way there.
    """
    out: list[dict[str, float]] = []
    for n in names:
        pr = result.parameters[n]
        lim = result.problem.param(n)
        tol = 1e-6 * max(1.0, abs(lim.upper - lim.lower))
        lo_e, hi_e = pr.error_low or 0.0, pr.error_high or 0.0
        if abs(pr.value - lim.lower) <= tol or abs(pr.value - lim.upper) <= tol:
            # at a bound: the error on the inside side
            err = hi_e if abs(pr.value - lim.lower) <= tol else lo_e
        else:
            # the interval reached a bound: towards it
            err = lo_e if pr.value + lo_e <= lim.lower + tol else hi_e
        if not np.isfinite(err) or err == 0:
            continue
        for f in (1.0, 0.5):
            out.append({n: float(pr.value + f * err)})
    return out


def regularise_covariance(
    cov: np.ndarray,
    sigma: Sequence[float | None] | None = None,
    names: Sequence[str] | None = None,
    fallback: np.ndarray | None = None,
) -> tuple[np.ndarray, bool, list[str]]:
    """Return a positive-definite covariance close to ``cov``; whether it had to change, and why.

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
        assert fallback is not None
        f = 0.5 * (fallback + fallback.T)
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


def flux(  # noqa: C901 - one decision per error method and fallback, in order
    result: FitResult,
    band: tuple[float, float] = (10.0, 1000.0),
    kind: str = "energy",
    n_samples: int = 1000,
    seed: int | None = 0,
    cl: float = 0.6827,
    duration: float | None = None,
    method: str = "sample",
) -> FluxResult:
    """Flux of the best-fit model in ``band`` (keV) with its ``cl`` confidence interval.

    ``kind`` is ``"photon"`` (ph/cm2/s), ``"energy"`` (erg/cm2/s), or ``"fluence"``
    (erg/cm2: energy flux times ``duration``, by default the first dataset's elapsed time).
    ``method``: ``"sample"`` (quantiles of ``n_samples`` draws from the covariance) or
    ``"profile"`` (likelihood interval of the flux, see the module docstring; a model
    without a single free amplitude falls back to sampling, and a note says so).
    """
    if kind not in {"photon", "energy", "fluence"}:
        raise ValueError("kind must be 'photon', 'energy' or 'fluence'")
    if method not in {"sample", "profile"}:
        raise ValueError("method must be 'sample' or 'profile'")
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
    band = (float(band[0]), float(band[1]))
    fallback_note: list[str] = []
    bounded = [n for n in free_model if n != "K" and result.parameters[n].at_bound]
    if method == "profile" and free_model:
        # A shape parameter at its bound (an unconstrained Band beta run to -10) sits on a
        # flat likelihood where a refit started there has no gradient to follow: the
        # profile refits also start with it moved inside, to its 1-sigma edge and half-way
        # there, so the interval includes the spectra (a high-energy tail) the data allow.
        prof = _profile_interval(result, band, flux_kind, cl, _inside_starts(result, bounded))
        if prof is not None:
            v, lo_e, hi_e, bound = prof
            out = FluxResult(kind, band, v * factor, lo_e * factor, hi_e * factor, unit, 0,
                             duration, method="profile", at_bound=bound)  # fmt: skip
            if bound:
                out.notes.append("the flux profile reached its bound: the interval is open")
            return out
        fallback_note = ["no single free amplitude K: flux error from covariance draws"]
    if not free_model or n_samples <= 0:
        return FluxResult(kind, band, value, 0.0, 0.0, unit, 0, duration, notes=fallback_note)
    sel = [result.free.index(n) for n in free_model]
    sigma: list[float | None] = []
    for n in free_model:
        pr = result.parameters[n]
        e_lo, e_hi = pr.error_low, pr.error_high
        if e_lo is None or e_hi is None or not (np.isfinite(e_lo) and np.isfinite(e_hi)):
            sigma.append(None)
        else:
            sigma.append(0.5 * (e_hi - e_lo) if e_hi - e_lo > 0 else None)
    cov = result.covariance[np.ix_(sel, sel)]
    fallback = None
    if not _is_positive_definite(0.5 * (cov + cov.T)):
        fallback = fisher_covariance(result)[np.ix_(sel, sel)]
    cov, regularised, notes = regularise_covariance(cov, sigma, free_model, fallback)
    notes = fallback_note + notes
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
