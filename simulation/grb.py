"""Gamma-ray-burst source models: Norris pulses, Band/CPL spectra with evolution, truth values.

A burst is a photon flux ``A(t)`` in a normalisation band (ph/cm2/s) times a spectral shape
``S(E; Epeak(t))`` normalised to unit photon flux in that band, so the light curve in the
normalisation band is exactly ``A(t)`` and the peak flux given by the user is the model's peak
flux on the stated timescale. ``A(t)`` is a sum of Norris et al. (2005, ApJ 627, 324) pulses::

    I(t) = A lambda exp(-tau1 / (t - ts) - (t - ts) / tau2),  lambda = exp(2 sqrt(tau1/tau2)),

which peak at ``ts + sqrt(tau1 tau2)`` with value ``A``. All truth values (T90/T50 in any band,
peak flux on 64/256/1024 ms and 1 s, fluence) are computed from the model by numerical
integration on a fine time grid, not from sampled photons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from typing import Any, Literal

import numpy as np
import yaml
from numpy.typing import ArrayLike, NDArray
from scipy.special import k1
from svomflow.instruments.spectra import KEV_TO_ERG, Spectrum, energy_grid, sample_energies
from svomflow.simulation.photons import PhotonList

__all__ = [
    "PEAK_TIMESCALES_S",
    "GRBModel",
    "NorrisPulse",
    "SpectralEvolution",
    "T90Population",
    "draw_grb",
    "fit_t90_populations",
    "load_populations",
]

PEAK_TIMESCALES_S = (0.064, 0.256, 1.024, 1.0)


@dataclass(frozen=True)
class NorrisPulse:
    """One Norris (2005) pulse; times in seconds relative to the burst reference time."""

    t_start: float
    tau_rise: float
    tau_decay: float
    amplitude: float = 1.0

    def __post_init__(self) -> None:
        if self.tau_rise <= 0 or self.tau_decay <= 0 or self.amplitude < 0:
            raise ValueError("Norris pulse needs tau_rise > 0, tau_decay > 0, amplitude >= 0")

    @property
    def t_peak(self) -> float:
        """Return the time of the pulse maximum."""
        return self.t_start + float(np.sqrt(self.tau_rise * self.tau_decay))

    @property
    def t_end(self) -> float:
        """Return a time after which the pulse is below 1e-8 of its peak."""
        return self.t_peak + 20.0 * self.tau_decay

    def rate(self, t: ArrayLike) -> NDArray[np.float64]:
        """Return the pulse intensity at times ``t`` (peak value = ``amplitude``)."""
        x = np.asarray(t, dtype=np.float64) - self.t_start
        lam = np.exp(2.0 * np.sqrt(self.tau_rise / self.tau_decay))
        out = np.zeros_like(x)
        pos = x > 0
        xp = x[pos]
        out[pos] = self.amplitude * lam * np.exp(-self.tau_rise / xp - xp / self.tau_decay)
        return out

    def integral(self) -> float:
        """Return the exact time integral (2 sqrt(tau1 tau2) K1(2 sqrt(tau1/tau2)) A lambda)."""
        r = np.sqrt(self.tau_rise / self.tau_decay)
        lam = np.exp(2.0 * r)
        return float(
            self.amplitude * lam * 2.0 * np.sqrt(self.tau_rise * self.tau_decay) * k1(2.0 * r)
        )

    def scaled(self, factor: float, origin: float = 0.0) -> NorrisPulse:
        """Return the pulse stretched in time by ``factor`` about ``origin``."""
        return NorrisPulse(
            origin + (self.t_start - origin) * factor,
            self.tau_rise * factor,
            self.tau_decay * factor,
            self.amplitude,
        )


@dataclass(frozen=True)
class SpectralEvolution:
    """Hard-to-soft evolution of Epeak.

    ``mode``:

    * ``"none"``: constant Epeak;
    * ``"decay"``: ``Epeak(t) = Epeak0 (1 + max(t - t_onset, 0)/decay_time_s)^(-decay_index)``,
      with ``t_onset`` the start of the first pulse;
    * ``"tracking"``: ``Epeak(t) = Epeak0 (L(t)/L_peak)^tracking_index`` (intensity tracking).

    Epeak never falls below ``epeak_min_fraction * Epeak0``.
    """

    mode: Literal["none", "decay", "tracking"] = "none"
    decay_time_s: float = 10.0
    decay_index: float = 1.0
    tracking_index: float = 0.5
    epeak_min_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in ("none", "decay", "tracking"):
            raise ValueError(f"unknown evolution mode {self.mode!r} (none, decay, tracking)")
        if self.decay_time_s <= 0 or not (0 < self.epeak_min_fraction <= 1):
            raise ValueError("decay_time_s must be > 0 and 0 < epeak_min_fraction <= 1")


@dataclass(frozen=True)
class GRBModel:
    """A gamma-ray burst: pulses, spectrum, sky position and peak-flux normalisation.

    Parameters
    ----------
    pulses
        Norris pulses (times relative to ``t0``).
    spectrum
        Spectral shape; its ``k`` is ignored (set from the peak flux). ``epeak`` is the value at
        the start of the evolution.
    peak_flux
        Peak photon flux in ph/cm2/s in ``peak_flux_band_kev`` on ``peak_flux_timescale_s``.
    ra_deg, dec_deg
        Sky position.
    t0
        Mission time (s) of the burst reference time (time zero of the pulses).
    evolution
        Spectral evolution.
    name
        Label used in photon lists and truth.
    """

    pulses: tuple[NorrisPulse, ...]
    spectrum: Spectrum
    peak_flux: float
    ra_deg: float
    dec_deg: float
    t0: float = 0.0
    peak_flux_band_kev: tuple[float, float] = (10.0, 1000.0)
    peak_flux_timescale_s: float = 1.0
    evolution: SpectralEvolution = field(default_factory=SpectralEvolution)
    name: str = "grb"

    def __post_init__(self) -> None:
        if not self.pulses:
            raise ValueError("a GRB needs at least one pulse")
        if self.peak_flux <= 0:
            raise ValueError("peak_flux must be positive")
        lo, hi = self.peak_flux_band_kev
        if not 0 < lo < hi:
            raise ValueError("peak_flux_band_kev must be (low, high) with 0 < low < high")
        if self.peak_flux_timescale_s <= 0:
            raise ValueError("peak_flux_timescale_s must be positive")
        object.__setattr__(self, "pulses", tuple(self.pulses))

    # ----------------------------------------------------------------- time grid and profile
    @cached_property
    def _grid(self) -> NDArray[np.float64]:
        """Relative time grid covering every pulse, fine enough for 1 ms-level truth values."""
        t_lo = min(p.t_start for p in self.pulses)
        t_hi = max(p.t_end for p in self.pulses)
        shortest = min(np.sqrt(p.tau_rise * p.tau_decay) + p.tau_decay for p in self.pulses)
        dt = min(1e-3, shortest / 200.0)
        n = int(np.ceil((t_hi - t_lo) / dt)) + 1
        if n > 4_000_000:
            dt = (t_hi - t_lo) / 4_000_000
            n = 4_000_001
        return np.linspace(t_lo, t_hi, n)

    def shape(self, t_rel: ArrayLike) -> NDArray[np.float64]:
        """Return the unnormalised light curve (sum of pulses) at relative times."""
        t = np.asarray(t_rel, dtype=np.float64)
        return np.sum([p.rate(t) for p in self.pulses], axis=0)

    @cached_property
    def _shape_grid(self) -> NDArray[np.float64]:
        return self.shape(self._grid)

    @cached_property
    def _shape_peak(self) -> float:
        return float(self._shape_grid.max())

    def epeak_at(self, t_rel: ArrayLike) -> NDArray[np.float64]:
        """Return Epeak (keV) at relative times (constant without evolution)."""
        t = np.asarray(t_rel, dtype=np.float64)
        ep0 = self.spectrum.epeak
        ev = self.evolution
        if ev.mode == "none":
            return np.full(t.shape, ep0)
        if ev.mode == "decay":
            onset = min(p.t_start for p in self.pulses)
            ep = ep0 * (1.0 + np.maximum(t - onset, 0.0) / ev.decay_time_s) ** (-ev.decay_index)
        else:
            rel = np.clip(self.shape(t) / self._shape_peak, 1e-300, None)
            ep = ep0 * rel**ev.tracking_index
        return np.maximum(ep, ev.epeak_min_fraction * ep0)

    @cached_property
    def _ratio_table(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Log-Epeak lattice and unit-amplitude photon flux in the normalisation band on it."""
        ep0 = self.spectrum.epeak
        lattice = np.geomspace(ep0 * self.evolution.epeak_min_fraction * 0.999, ep0 * 1.001, 241)
        lo, hi = self.peak_flux_band_kev
        unit = self.spectrum.with_k(1.0)
        e = energy_grid(lo, hi)
        flux = _band_flux(unit, e, lattice)
        return lattice, flux

    def _band_fraction(self, e_min: float, e_max: float, epeak: NDArray[np.float64]) -> NDArray:
        """Return photon flux in [e_min, e_max] per unit photon flux in the norm band."""
        if self.evolution.mode == "none" or self.spectrum.model == "powerlaw":
            unit = self.spectrum.with_k(1.0)
            norm = unit.photon_flux(*self.peak_flux_band_kev)
            return np.full(epeak.shape, unit.photon_flux(e_min, e_max) / norm)
        lattice, band_norm = self._ratio_table
        e = energy_grid(e_min, e_max)
        flux = _band_flux(self.spectrum.with_k(1.0), e, lattice)
        return np.exp(np.interp(np.log(epeak), np.log(lattice), np.log(flux / band_norm)))

    @cached_property
    def norm(self) -> float:
        """Return the factor turning the pulse sum into ph/cm2/s in the normalisation band."""
        peak_shape, _ = _sliding_peak(self._grid, self._shape_grid, self.peak_flux_timescale_s)
        return self.peak_flux / peak_shape

    def photon_flux(self, t_rel: ArrayLike, e_min: float, e_max: float) -> NDArray[np.float64]:
        """Return the photon flux (ph/cm2/s) in [e_min, e_max] keV at relative times."""
        t = np.asarray(t_rel, dtype=np.float64)
        return self.norm * self.shape(t) * self._band_fraction(e_min, e_max, self.epeak_at(t))

    def amplitude_at(self, t_rel: ArrayLike) -> NDArray[np.float64]:
        """Return the spectral amplitude K(t) in ph/cm2/s/keV at the pivot."""
        t = np.asarray(t_rel, dtype=np.float64)
        ep = self.epeak_at(t)
        unit = self.spectrum.with_k(1.0)
        lo, hi = self.peak_flux_band_kev
        unit_flux = _band_flux(unit, energy_grid(lo, hi), np.atleast_1d(ep)).reshape(ep.shape)
        return self.norm * self.shape(t) / unit_flux

    # ----------------------------------------------------------------------- truth values
    def _band_curve(self, e_min: float, e_max: float) -> NDArray[np.float64]:
        g = self._grid
        return self.norm * self._shape_grid * self._band_fraction(e_min, e_max, self.epeak_at(g))

    def durations(self, e_min: float, e_max: float) -> dict[str, float]:
        """Return T90/T50 (s) and their start times (relative) of the photon flux in a band."""
        g = self._grid
        cum = _cumtrapz(self._band_curve(e_min, e_max), g)
        total = cum[-1]
        q = np.interp(np.array([0.05, 0.95, 0.25, 0.75]) * total, cum, g)
        return {
            "t90": float(q[1] - q[0]),
            "t90_start": float(q[0]),
            "t50": float(q[3] - q[2]),
            "t50_start": float(q[2]),
        }

    def peak_fluxes(
        self, e_min: float, e_max: float, timescales: Sequence[float] = PEAK_TIMESCALES_S
    ) -> dict[str, dict[str, float]]:
        """Return the peak photon flux (ph/cm2/s) and its start time per timescale."""
        curve = self._band_curve(e_min, e_max)
        out = {}
        for ts in timescales:
            value, start = _sliding_peak(self._grid, curve, ts)
            out[f"{ts:g}"] = {"flux": value, "start": start}
        return out

    def fluence(self, e_min: float, e_max: float) -> dict[str, float]:
        """Return photon fluence (ph/cm2) and energy fluence (erg/cm2) in a band."""
        g = self._grid
        photons = float(_cumtrapz(self._band_curve(e_min, e_max), g)[-1])
        # Energy per photon varies with Epeak: integrate K(t) * int E N_unit(E; Ep(t)) dE dt.
        e = energy_grid(e_min, e_max)
        ep = self.epeak_at(g)
        unit = self.spectrum.with_k(1.0)
        mean_e: float | NDArray[np.float64]
        if self.evolution.mode == "none" or self.spectrum.model == "powerlaw":
            mean_e = unit.energy_flux(e_min, e_max) / KEV_TO_ERG / unit.photon_flux(e_min, e_max)
            energy = photons * mean_e * KEV_TO_ERG
        else:
            lattice = self._ratio_table[0]
            nph = _band_flux(unit, e, lattice)
            nen = _band_flux(unit, e, lattice, moment=1)
            mean_e = np.interp(np.log(ep), np.log(lattice), nen / nph)
            curve = self._band_curve(e_min, e_max)
            energy = float(_cumtrapz(curve * mean_e, g)[-1]) * KEV_TO_ERG
        return {"photon_fluence": photons, "energy_fluence_erg": float(energy)}

    def truth(self, bands: Sequence[Sequence[float]] = ((10.0, 1000.0),)) -> dict[str, Any]:
        """Return every injected value (JSON-ready) with durations/fluxes in each band."""
        t_peak = float(self._grid[np.argmax(self._shape_grid)])
        per_band = {}
        for lo, hi in bands:
            key = f"{lo:g}-{hi:g}"
            per_band[key] = {
                **self.durations(lo, hi),
                "peak_flux": self.peak_fluxes(lo, hi),
                **self.fluence(lo, hi),
            }
        return {
            "name": self.name,
            "kind": "grb",
            "ra_deg": self.ra_deg,
            "dec_deg": self.dec_deg,
            "t0": self.t0,
            "peak_flux": self.peak_flux,
            "peak_flux_band_kev": list(self.peak_flux_band_kev),
            "peak_flux_timescale_s": self.peak_flux_timescale_s,
            "spectrum": {
                **self.spectrum.with_k(float(self.amplitude_at(t_peak))).parameters(),
                "K_at": "time of the light-curve maximum",
                "t_peak": t_peak,
            },
            "evolution": {
                "mode": self.evolution.mode,
                "decay_time_s": self.evolution.decay_time_s,
                "decay_index": self.evolution.decay_index,
                "tracking_index": self.evolution.tracking_index,
                "epeak_min_fraction": self.evolution.epeak_min_fraction,
            },
            "pulses": [
                {
                    "t_start": p.t_start,
                    "tau_rise": p.tau_rise,
                    "tau_decay": p.tau_decay,
                    "amplitude": p.amplitude * self.norm,
                }
                for p in self.pulses
            ],
            "bands": per_band,
        }

    # ------------------------------------------------------------------------- sampling
    def sample_photons(
        self,
        rng: np.random.Generator,
        *,
        area_cm2: float,
        t_start: float,
        t_stop: float,
        e_min_kev: float,
        e_max_kev: float,
    ) -> PhotonList:
        """Draw the burst photons on ``area_cm2`` between mission times ``t_start``/``t_stop``.

        Arrival times come from the inverse of the tabulated cumulative rate (piecewise
        constant within the <= 1 ms model grid), energies from the inverse CDF of the spectrum
        at each photon's Epeak. Fully vectorised.
        """
        if area_cm2 <= 0 or t_stop <= t_start:
            raise ValueError("need area_cm2 > 0 and t_stop > t_start")
        g = self._grid
        lo = max(t_start - self.t0, g[0])
        hi = min(t_stop - self.t0, g[-1])
        empty = PhotonList(np.empty(0), np.empty(0), self.ra_deg, self.dec_deg, area_cm2, self.name)
        if hi <= lo:
            return empty
        inside = (g > lo) & (g < hi)
        t = np.concatenate([[lo], g[inside], [hi]])
        ep = self.epeak_at(t)
        rate = self.norm * self.shape(t) * self._band_fraction(e_min_kev, e_max_kev, ep)
        cum = _cumtrapz(rate * area_cm2, t)
        n = int(rng.poisson(cum[-1]))
        if n == 0:
            return empty
        u = np.sort(rng.random(n)) * cum[-1]
        times = np.interp(u, cum, t)
        if self.evolution.mode == "none":
            energies = sample_energies(rng, self.spectrum, n, e_min=e_min_kev, e_max=e_max_kev)
        else:
            energies = sample_energies(
                rng, self.spectrum, e_min=e_min_kev, e_max=e_max_kev, epeak=self.epeak_at(times)
            )
        return PhotonList(times + self.t0, energies, self.ra_deg, self.dec_deg, area_cm2, self.name)

    def expected_photons(
        self, *, area_cm2: float, t_start: float, t_stop: float, e_min_kev: float, e_max_kev: float
    ) -> float:
        """Return the expected number of photons for :meth:`sample_photons` arguments."""
        g = self._grid
        lo = max(t_start - self.t0, g[0])
        hi = min(t_stop - self.t0, g[-1])
        if hi <= lo:
            return 0.0
        t = np.concatenate([[lo], g[(g > lo) & (g < hi)], [hi]])
        return float(_cumtrapz(self.photon_flux(t, e_min_kev, e_max_kev), t)[-1] * area_cm2)


# ---------------------------------------------------------------------------- helpers
def _band_flux(
    unit: Spectrum, e: NDArray[np.float64], epeaks: NDArray[np.float64], moment: int = 0
) -> NDArray[np.float64]:
    """Photon (moment 0) or energy-weighted (moment 1, keV) flux for each Epeak."""
    vals = unit.evaluate(e[None, :], np.asarray(epeaks, dtype=np.float64)[:, None])
    vals = vals * e[None, :] ** (1 + moment)
    dl = np.diff(np.log(e))
    return np.sum(0.5 * (vals[:, 1:] + vals[:, :-1]) * dl, axis=1)


def _cumtrapz(y: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))])


def _sliding_peak(
    t: NDArray[np.float64], y: NDArray[np.float64], width: float
) -> tuple[float, float]:
    """Maximum over start times of the mean of ``y`` over ``width``; returns (value, start)."""
    cum = _cumtrapz(y, t)
    starts = t[t <= t[-1] - width] if t[-1] - t[0] > width else t[:1]
    mean = (np.interp(starts + width, t, cum) - np.interp(starts, t, cum)) / width
    i = int(np.argmax(mean))
    return float(mean[i]), float(starts[i])


# ------------------------------------------------------------------------- populations
@dataclass(frozen=True)
class T90Population:
    """A lognormal family of burst durations: log10 T90 ~ Normal(mu, sigma), with its weight."""

    name: str
    weight: float
    mu_log10_t90: float
    sigma_log10_t90: float
    spectrum: dict[str, float] = field(default_factory=dict)
    pulses: dict[str, float] = field(default_factory=dict)


def fit_t90_populations(
    t90: ArrayLike, *, n_iter: int = 500, tol: float = 1e-10
) -> tuple[T90Population, T90Population]:
    """Fit a two-component Gaussian mixture to log10 T90 by expectation-maximisation.

    Returns (short, long) families ordered by their mean.
    """
    x = np.log10(np.asarray(t90, dtype=np.float64))
    x = x[np.isfinite(x)]
    if x.size < 10:
        raise ValueError("need at least 10 finite positive T90 values")
    w = np.array([0.25, 0.75])
    mu = np.array([np.quantile(x, 0.1), np.quantile(x, 0.6)])
    sig = np.array([0.4, 0.4])
    last = -np.inf
    for _ in range(n_iter):
        dens = w / (sig * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((x[:, None] - mu) / sig) ** 2)
        tot = dens.sum(axis=1, keepdims=True)
        resp = dens / tot
        loglike = float(np.log(tot).sum())
        nk = resp.sum(axis=0)
        w = nk / x.size
        mu = (resp * x[:, None]).sum(axis=0) / nk
        sig = np.sqrt((resp * (x[:, None] - mu) ** 2).sum(axis=0) / nk)
        if abs(loglike - last) < tol * abs(loglike):
            break
        last = loglike
    order = np.argsort(mu)
    fams = [
        T90Population(name, float(w[i]), float(mu[i]), float(sig[i]))
        for name, i in zip(("short", "long"), order, strict=True)
    ]
    return fams[0], fams[1]


def load_populations() -> dict[str, T90Population]:
    """Return the packaged burst families (config/scenarios/_populations.yaml)."""
    path = resources.files("svomflow.config") / "scenarios" / "_populations.yaml"
    data = yaml.safe_load(path.read_text())
    out = {}
    for name, fam in data["families"].items():
        out[name] = T90Population(
            name=name,
            weight=float(fam["weight"]),
            mu_log10_t90=float(fam["mu_log10_t90"]),
            sigma_log10_t90=float(fam["sigma_log10_t90"]),
            spectrum=dict(fam.get("spectrum", {})),
            pulses=dict(fam.get("pulses", {})),
        )
    return out


def draw_grb(
    rng: np.random.Generator,
    family: str | T90Population,
    *,
    ra_deg: float,
    dec_deg: float,
    peak_flux: float,
    t0: float = 0.0,
    t90_s: float | None = None,
    spectrum: Spectrum | None = None,
    evolution: SpectralEvolution | None = None,
    peak_flux_band_kev: tuple[float, float] = (10.0, 1000.0),
    peak_flux_timescale_s: float = 1.0,
    name: str = "grb",
) -> GRBModel:
    """Draw a burst of a family: pulses stretched so the norm-band T90 is exactly the target.

    The target T90 is ``t90_s`` or a draw from the family's lognormal; the number of pulses,
    their start times, widths and asymmetries are random (family ``pulses`` settings), and the
    whole profile is then stretched in time so that its T90 equals the target. The first
    pulse starts at relative time 0. The spectrum, when not given, is drawn from the family's
    ``spectrum`` settings (lognormal Epeak, normal alpha/beta).
    """
    fam = load_populations()[family] if isinstance(family, str) else family
    target = (
        float(t90_s)
        if t90_s is not None
        else float(10 ** rng.normal(fam.mu_log10_t90, fam.sigma_log10_t90))
    )
    if target <= 0:
        raise ValueError("t90_s must be positive")
    pset = {"max_pulses": 6.0, "mean_extra_pulses": 1.5, **fam.pulses}
    n = 1 + min(int(rng.poisson(pset["mean_extra_pulses"])), int(pset["max_pulses"]) - 1)
    starts = np.sort(rng.uniform(0.0, 1.0, n))
    starts -= starts[0]
    pulses = []
    for s in starts:
        tau2 = rng.uniform(0.05, 0.3)
        tau1 = tau2 * 10 ** rng.uniform(-1.5, 0.5)
        pulses.append(NorrisPulse(float(s), float(tau1), float(tau2), float(rng.uniform(0.3, 1))))
    if spectrum is None:
        sp = fam.spectrum
        spectrum = Spectrum(
            model="band",
            alpha=float(
                np.clip(rng.normal(sp.get("alpha", -1.0), sp.get("alpha_sigma", 0.2)), -1.8, 0.5)
            ),
            beta=float(min(rng.normal(sp.get("beta", -2.3), sp.get("beta_sigma", 0.2)), -2.05)),
            epeak=float(
                10 ** rng.normal(sp.get("log10_epeak", 2.3), sp.get("log10_epeak_sigma", 0.3))
            ),
        )
    model = GRBModel(
        tuple(pulses),
        spectrum,
        peak_flux,
        ra_deg,
        dec_deg,
        t0=t0,
        peak_flux_band_kev=peak_flux_band_kev,
        peak_flux_timescale_s=peak_flux_timescale_s,
        evolution=evolution or SpectralEvolution(),
        name=name,
    )
    # Only the pulse sum matters for the norm-band T90, so the stretch is exact.
    current = model.durations(*peak_flux_band_kev)["t90"]
    factor = target / current
    return replace(model, pulses=tuple(p.scaled(factor) for p in pulses))
