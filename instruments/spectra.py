"""Photon spectra of gamma-ray bursts and X-ray sources, with fluxes and vectorised sampling.

Conventions follow the Fermi GBM spectral catalog (SCIENCE.md §3): the amplitude ``K`` is in
photons/cm2/s/keV at the ``pivot`` energy (100 keV by default; 1 keV for X-ray sources), photon
indices are signed exponents (``N(E) = K (E/pivot)^index``, so a GRB index is negative), and
``epeak`` is the peak of the nu F_nu spectrum in keV.

* ``powerlaw``: ``N = K (E/pivot)^index``.
* ``cpl`` (cutoff power law, Epeak form): ``N = K (E/pivot)^index exp(-(2 + index) E / epeak)``.
* ``band``: ``N = K (E/pivot)^alpha exp(-(2 + alpha) E / epeak)`` below
  ``E_b = (alpha - beta) epeak / (2 + alpha)`` and
  ``K (E_b/pivot)^(alpha - beta) exp(beta - alpha) (E/pivot)^beta`` above.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "KEV_TO_ERG",
    "Spectrum",
    "band",
    "cutoff_powerlaw",
    "energy_grid",
    "powerlaw",
    "sample_energies",
]

KEV_TO_ERG = 1.602176634e-9

SpectrumKind = Literal["powerlaw", "cpl", "band"]


def powerlaw(e_kev: ArrayLike, k: float, index: float, pivot: float = 100.0) -> NDArray[np.float64]:
    """Return a power-law photon spectrum in ph/cm2/s/keV."""
    e = np.asarray(e_kev, dtype=np.float64)
    return k * (e / pivot) ** index


def cutoff_powerlaw(
    e_kev: ArrayLike, k: float, index: float, epeak: float, pivot: float = 100.0
) -> NDArray[np.float64]:
    """Return a cutoff power law (Epeak parametrisation) in ph/cm2/s/keV.

    ``epeak`` may be an array broadcastable against ``e_kev`` (spectral evolution).
    """
    e = np.asarray(e_kev, dtype=np.float64)
    return k * (e / pivot) ** index * np.exp(-(2.0 + index) * e / np.asarray(epeak))


def band(
    e_kev: ArrayLike, k: float, alpha: float, beta: float, epeak: float, pivot: float = 100.0
) -> NDArray[np.float64]:
    """Return the Band function (Epeak parametrisation) in ph/cm2/s/keV.

    ``epeak`` may be an array broadcastable against ``e_kev`` (spectral evolution).
    """
    e = np.asarray(e_kev, dtype=np.float64)
    ep = np.asarray(epeak, dtype=np.float64)
    e0 = ep / (2.0 + alpha)  # e-folding energy
    e_break = (alpha - beta) * e0
    low = (e / pivot) ** alpha * np.exp(-e / e0)
    # Continuity at the break: A (E_b/pivot)^(alpha-beta) exp(beta-alpha) (E/pivot)^beta.
    high = (e_break / pivot) ** (alpha - beta) * np.exp(beta - alpha) * (e / pivot) ** beta
    return k * np.where(e < e_break, low, high)


@dataclass(frozen=True)
class Spectrum:
    """A photon spectrum model with GBM-catalog parameter names.

    Attributes
    ----------
    model
        ``"powerlaw"``, ``"cpl"`` or ``"band"``.
    k
        Amplitude at ``pivot`` in ph/cm2/s/keV.
    index
        Photon index (power law and cutoff power law), signed.
    alpha, beta
        Band low- and high-energy indices (signed, beta < alpha, beta < -2).
    epeak
        nu F_nu peak energy in keV (cpl and band).
    pivot
        Pivot energy in keV.
    """

    model: SpectrumKind = "band"
    k: float = 1.0
    index: float = -1.0
    alpha: float = -1.0
    beta: float = -2.3
    epeak: float = 300.0
    pivot: float = 100.0

    def __post_init__(self) -> None:
        if self.model not in ("powerlaw", "cpl", "band"):
            raise ValueError(f"unknown spectral model {self.model!r} (powerlaw, cpl, band)")
        if self.model in ("cpl", "band") and self.epeak <= 0:
            raise ValueError("epeak must be positive")
        if self.model == "cpl" and self.index <= -2.0:
            raise ValueError("a cutoff power law needs index > -2 for a finite Epeak")
        if self.model == "band" and not (self.beta < self.alpha and self.alpha > -2.0):
            raise ValueError("Band needs alpha > -2 and beta < alpha")
        if self.pivot <= 0:
            raise ValueError("pivot must be positive")

    def evaluate(self, e_kev: ArrayLike, epeak: ArrayLike | None = None) -> NDArray[np.float64]:
        """Return N(E) in ph/cm2/s/keV, optionally with another ``epeak`` (broadcast)."""
        ep = self.epeak if epeak is None else epeak
        if self.model == "powerlaw":
            return powerlaw(e_kev, self.k, self.index, self.pivot) * np.ones_like(
                np.asarray(ep, dtype=np.float64)
            )
        if self.model == "cpl":
            return cutoff_powerlaw(e_kev, self.k, self.index, ep, self.pivot)  # type: ignore[arg-type]
        return band(e_kev, self.k, self.alpha, self.beta, ep, self.pivot)  # type: ignore[arg-type]

    def with_k(self, k: float) -> Spectrum:
        """Return the same shape with amplitude ``k``."""
        return replace(self, k=float(k))

    def photon_flux(self, e_min: float, e_max: float, epeak: float | None = None) -> float:
        """Return the photon flux in ph/cm2/s between ``e_min`` and ``e_max`` keV."""
        e = energy_grid(e_min, e_max)
        return float(_trapz_log(self.evaluate(e, epeak) * e, e))

    def energy_flux(self, e_min: float, e_max: float, epeak: float | None = None) -> float:
        """Return the energy flux in erg/cm2/s between ``e_min`` and ``e_max`` keV."""
        e = energy_grid(e_min, e_max)
        return float(_trapz_log(self.evaluate(e, epeak) * e * e, e)) * KEV_TO_ERG

    def parameters(self) -> dict[str, float | str]:
        """Return the parameters that define this model (for truth files)."""
        out: dict[str, float | str] = {"model": self.model, "K": self.k, "pivot": self.pivot}
        if self.model == "powerlaw":
            out["index"] = self.index
        elif self.model == "cpl":
            out.update(index=self.index, epeak=self.epeak)
        else:
            out.update(alpha=self.alpha, beta=self.beta, epeak=self.epeak)
        return out


def energy_grid(e_min: float, e_max: float, n_per_decade: int = 400) -> NDArray[np.float64]:
    """Return a log-spaced grid from ``e_min`` to ``e_max`` keV (fine enough for quadrature)."""
    if not (0 < e_min < e_max):
        raise ValueError(f"need 0 < e_min < e_max, got {e_min}, {e_max}")
    n = max(int(np.ceil(np.log10(e_max / e_min) * n_per_decade)), 16) + 1
    return np.geomspace(e_min, e_max, n)


def _trapz_log(y_times_e: NDArray[np.float64], e: NDArray[np.float64]) -> NDArray[np.float64]:
    """Integrate y dE = (y E) dlnE with the trapezoid rule in ln E along the last axis."""
    dl = np.diff(np.log(e))
    return np.sum(0.5 * (y_times_e[..., 1:] + y_times_e[..., :-1]) * dl, axis=-1)


def _cumulative_log(y_times_e: NDArray[np.float64], e: NDArray[np.float64]) -> NDArray[np.float64]:
    dl = np.diff(np.log(e))
    seg = 0.5 * (y_times_e[..., 1:] + y_times_e[..., :-1]) * dl
    cum = np.concatenate([np.zeros((*seg.shape[:-1], 1)), np.cumsum(seg, axis=-1)], axis=-1)
    return cum


def sample_energies(
    rng: np.random.Generator,
    spectrum: Spectrum,
    n: int | None = None,
    *,
    e_min: float,
    e_max: float,
    epeak: ArrayLike | None = None,
    log_step: float = 0.01,
) -> NDArray[np.float64]:
    """Draw photon energies from ``spectrum`` between ``e_min`` and ``e_max`` (inverse CDF).

    Parameters
    ----------
    rng
        Random generator.
    spectrum
        The photon spectrum shape.
    n
        Number of photons when ``epeak`` is None (one fixed shape).
    e_min, e_max
        Energy range in keV.
    epeak
        One Epeak per photon (spectral evolution). Photons are grouped on a log-Epeak lattice
        of step ``log_step`` (1 % by default) and each photon picks one of its two neighbouring
        lattice shapes with linear weights, so the drawn spectrum is the exact mixture between
        neighbours; no Python loop over photons (only over lattice levels).

    Returns
    -------
    numpy.ndarray
        Energies in keV.
    """
    e = energy_grid(e_min, e_max, n_per_decade=600)
    if epeak is None:
        if n is None:
            raise ValueError("give n or one epeak per photon")
        cdf = _cumulative_log(spectrum.evaluate(e) * e, e)
        return _inverse_cdf(rng.random(n), cdf, e)
    ep = np.asarray(epeak, dtype=np.float64)
    if ep.size == 0:
        return np.empty(0)
    lo, hi = np.log(ep.min()), np.log(ep.max())
    levels = np.arange(lo, hi + log_step, log_step) if hi > lo else np.array([lo])
    pos = (np.log(ep) - lo) / log_step
    base = np.floor(pos).astype(np.int64)
    frac = pos - base
    level = np.minimum(base + (rng.random(ep.size) < frac), levels.size - 1)
    u = rng.random(ep.size)
    out = np.empty(ep.size)
    order = np.argsort(level, kind="stable")
    bounds = np.searchsorted(level[order], np.arange(levels.size + 1))
    for j in range(levels.size):
        idx = order[bounds[j] : bounds[j + 1]]
        if idx.size == 0:
            continue
        cdf = _cumulative_log(spectrum.evaluate(e, np.exp(levels[j])) * e, e)
        out[idx] = _inverse_cdf(u[idx], cdf, e)
    return out


def _inverse_cdf(
    u: NDArray[np.float64], cdf: NDArray[np.float64], e: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Invert a tabulated CDF (piecewise linear in ln E) at uniform deviates ``u``."""
    total = cdf[-1]
    if not total > 0:
        raise ValueError("spectrum has no photons in the requested energy range")
    return np.exp(np.interp(u * total, cdf, np.log(e)))
