"""ECLAIRs pixel-health simulator: per-pixel count histories over days, with known bad pixels.

What it draws (numbers from ``config/instruments/eclairs.yaml``; orbit from
:mod:`svomflow.simulation.orbit`; the flat illumination from the coded-mask model of
:mod:`svomflow.instruments.coded_mask`, the one imaging uses):

* **Flat illumination**: the cosmic X-ray background (Gruber et al. 1999, folded with the
  detector efficiency) through the open mask, with each pixel's exposure to an isotropic sky
  (:func:`~svomflow.instruments.coded_mask.diffuse_illumination`), plus the flat instrumental
  component; both modulated along the orbit by the Earth crossing the field
  (:func:`~svomflow.simulation.orbit.background_modulation`), detectors off in the SAA.
* **True relative efficiency** per pixel: a module factor times a pixel factor (log-normal,
  mean 1), multiplying every photon component.
* **Bad pixels appearing over time**: noisy (an extra rate near threshold, not modulated by
  the orbit, from an onset time to the end), dead (nothing from an onset), intermittent
  (a telegraph process: bad episodes, noisy or off, of exponential length with a given duty
  cycle). Some are bad from before the period (onset ``NaN`` in the truth).
* **Model departures** (for the stress cases): a drift of the instrumental background over
  the period, and a hot module (all its pixels' photon rates scaled).
* **Dead time**: recorded counts per module at several incident rates, exact event by event
  for a non-paralyzable (the model of :class:`~svomflow.instruments.dead_time.DeadTime`) or,
  to test the fit against a different truth, paralyzable dead time.

Run ``python -m svomflow.simulation.eclairs_pixel_health --out DIR`` to write a period's
files (``pixhist_*.fits``, ``dtrates.fits``) and ``truth.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray
from svomflow.config import InstrumentDefinition, load_instrument
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry, diffuse_illumination, mask_pattern
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.products.eic_pixel_files import (
    DeadTimeRates,
    PixelCountHistory,
    module_map,
    write_dead_time_rates,
    write_history,
)
from svomflow.simulation.eclairs import gruber_cxb_photon_spectrum
from svomflow.simulation.orbit import Orbit, background_modulation, load_orbit

__all__ = [
    "DeadTimeScenario",
    "DeadTimeTruth",
    "InjectedPixel",
    "PixelHealthScenario",
    "PixelHealthSimulation",
    "draw_figures",
    "expected_illumination",
    "measure_dead_time",
    "measure_pixel_calibration",
    "run_pixel_health_sim",
    "simulate_dead_time_rates",
    "simulate_pixel_health",
    "true_dead_time_file",
    "write_pixel_health_files",
]

DAY_S = 86400.0
Kind = Literal["noisy", "dead", "intermittent"]


@dataclass(frozen=True)
class PixelHealthScenario:
    """What to simulate (defaults: 2 days in 10-minute bins, 20 noisy, 10 dead, 10 intermittent).

    Rates are counts/s; an intermittent pixel's bad episodes last ``intermittent_episode_s``
    on average, its good ones as long as its duty cycle implies.
    """

    t_start: float = 1.0e8
    days: float = 2.0
    bin_s: float = 600.0
    n_noisy: int = 20
    n_dead: int = 10
    n_intermittent: int = 10
    noisy_rate: tuple[float, float] = (0.05, 5.0)  # log-uniform
    intermittent_rate: tuple[float, float] = (0.5, 5.0)
    intermittent_duty: tuple[float, float] = (0.1, 0.6)
    intermittent_episode_s: float = 4.0 * 3600.0
    intermittent_off_fraction: float = 0.3  # share of intermittent pixels whose episodes are "off"
    from_start_fraction: float = 0.3  # share of noisy/dead pixels already bad at t_start
    module_efficiency_rms: float = 0.03
    pixel_efficiency_rms: float = 0.05
    drift_per_day: float = 0.0  # relative change of the instrumental background per day
    hot_module: int | None = None
    hot_module_factor: float = 1.3
    pointing: tuple[float, float, float] = (150.0, 20.0, 0.0)  # ra, dec, roll (deg)
    orbit: bool = True  # Earth modulation and SAA; False: constant rates, no gaps
    field_half_angle_deg: float = 44.5

    @property
    def t_stop(self) -> float:
        """End of the period (mission s)."""
        return self.t_start + self.days * DAY_S


@dataclass(frozen=True)
class InjectedPixel:
    """A bad pixel the simulator injected (the truth a detection is scored against).

    ``onset`` is NaN for a pixel bad before the period; ``duty_cycle`` is the realised
    fraction of the period's live time it was bad (1 for noisy/dead pixels bad from the start).
    """

    y: int
    z: int
    kind: Kind
    onset: float
    rate: float
    duty_cycle: float
    episodes: tuple[tuple[float, float], ...] = ()
    mode: Literal["noisy", "off"] = "noisy"


@dataclass(frozen=True)
class PixelHealthSimulation:
    """A simulated period: the history the flow reads and the truth it is scored against."""

    scenario: PixelHealthScenario
    history: PixelCountHistory
    pixels: tuple[InjectedPixel, ...]
    efficiency: NDArray[np.float64]
    illumination: NDArray[np.float64]
    modulation: NDArray[np.float64] = field(repr=False)

    def truth(self) -> dict[str, object]:
        """Return the truth as JSON-able data (no maps)."""
        return {
            "scenario": asdict(self.scenario),
            "pixels": [asdict(p) for p in self.pixels],
            "efficiency_rms": float(np.std(self.efficiency)),
        }


def expected_illumination(
    inst: InstrumentDefinition, *, cxb_weight: float = 1.0, instrumental_weight: float = 1.0
) -> NDArray[np.float64]:
    """Return each pixel's expected count rate (counts/s) under the flat background, efficiency 1.

    CXB: ``pi * A_pixel * exposure(y, z) * integral(I(E) * QE(E) dE)`` over the detected band
    (threshold to the top channel); instrumental: the instrument's flat rate per pixel.
    """
    geom = MaskGeometry.from_instrument(inst)
    resp = EclairsResponse.from_instrument(inst)
    e = np.geomspace(
        resp.threshold_kev, resp.e_min_kev + resp.n_channels * resp.channel_width_kev, 2049
    )
    f = gruber_cxb_photon_spectrum(e) * resp.efficiency(e)
    intensity = float(np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(e)))
    cxb = float(inst.get("background.cxb_scale")) * intensity * np.pi * geom.pixel_area_cm2
    exposure = diffuse_illumination(geom, mask_pattern(geom))
    instr = float(inst.get("background.instrumental_rate_per_pixel_s"))
    return np.asarray(cxb_weight * cxb * exposure + instrumental_weight * instr, dtype=np.float64)


def _efficiency_map(
    rng: np.random.Generator, modules: NDArray[np.int64], sc: PixelHealthScenario
) -> NDArray[np.float64]:
    n_mod = int(modules.max()) + 1
    mod = np.exp(rng.normal(0.0, sc.module_efficiency_rms, n_mod))[modules]
    pix = np.exp(rng.normal(0.0, sc.pixel_efficiency_rms, modules.shape))
    eff = mod * pix
    return np.asarray(eff / eff.mean(), dtype=np.float64)


def _live_and_modulation(
    sc: PixelHealthScenario, start: NDArray[np.float64], orbit: Orbit | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Return per bin the live time, the mean Earth modulation over the live time, and the live fine grid."""
    sub = 20
    fine = start[:, None] + (np.arange(sub) + 0.5) / sub * sc.bin_s  # bins x sub
    if orbit is None:
        ones = np.ones(fine.shape)
        return np.full(start.size, sc.bin_s), np.ones(start.size), ones
    live = ~orbit.in_saa(fine)
    att = Attitude(*sc.pointing)
    mod = background_modulation(
        fine.ravel(),
        attitude=att,
        amplitude=0.25,
        field_half_angle_deg=sc.field_half_angle_deg,
        orbit=orbit,
    ).reshape(fine.shape)
    n_live = live.sum(axis=1)
    exposure = n_live / sub * sc.bin_s
    mean_mod = np.where(n_live > 0, (mod * live).sum(axis=1) / np.maximum(n_live, 1), 1.0)
    return exposure, mean_mod, live.astype(np.float64)


def _telegraph(
    rng: np.random.Generator, t0: float, t1: float, duty: float, mean_bad_s: float
) -> tuple[tuple[float, float], ...]:
    """Bad episodes of a two-state process with exponential durations and a given duty cycle."""
    mean_good = mean_bad_s * (1.0 - duty) / duty
    t = t0 + rng.uniform(0.0, mean_good)  # random phase: start in a good state
    out = []
    while t < t1:
        d = rng.exponential(mean_bad_s)
        out.append((t, min(t + d, t1)))
        t += d + rng.exponential(mean_good)
    return tuple(out)


def _overlap(
    start: NDArray[np.float64], stop: NDArray[np.float64], a: float, b: float
) -> NDArray[np.float64]:
    return np.clip(np.minimum(stop, b) - np.maximum(start, a), 0.0, None)


def _bad_fraction(
    start: NDArray[np.float64],
    stop: NDArray[np.float64],
    episodes: tuple[tuple[float, float], ...],
) -> NDArray[np.float64]:
    """Fraction of each bin inside the episodes."""
    frac = np.zeros(start.size)
    for a, b in episodes:
        frac += _overlap(start, stop, a, b)
    return np.asarray(frac / (stop - start), dtype=np.float64)


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def simulate_pixel_health(
    rng: np.random.Generator,
    scenario: PixelHealthScenario | None = None,
    *,
    instrument: InstrumentDefinition | None = None,
    orbit: Orbit | None = None,
) -> PixelHealthSimulation:
    """Simulate a period of per-pixel counts with injected bad pixels.

    Parameters
    ----------
    rng
        Random generator (same seed, same period).
    scenario
        What to inject (:class:`PixelHealthScenario`).
    instrument
        Instrument definition (default: the packaged ``eclairs``).
    orbit
        Orbit (default: the packaged one; ignored when ``scenario.orbit`` is False).
    """
    sc = scenario or PixelHealthScenario()
    inst = instrument or load_instrument("eclairs")
    orb = (orbit or load_orbit()) if sc.orbit else None
    illum_cxb = expected_illumination(inst, instrumental_weight=0.0)
    illum_ins = expected_illumination(inst, cxb_weight=0.0)
    shape = illum_cxb.shape
    modules = module_map(shape, tuple(inst.get("detector_plane.module_shape")))
    eff = _efficiency_map(rng, modules, sc)
    n = max(round(sc.days * DAY_S / sc.bin_s), 1)
    start = sc.t_start + sc.bin_s * np.arange(n, dtype=np.float64)
    stop = start + sc.bin_s
    exposure, mod, live_grid = _live_and_modulation(sc, start, orb)
    days = (0.5 * (start + stop) - sc.t_start) / DAY_S
    drift = 1.0 + sc.drift_per_day * days
    hot = np.ones(shape)
    if sc.hot_module is not None:
        hot[modules == sc.hot_module] = sc.hot_module_factor
    # photons: (bin, y, z) expectation
    base = (exposure * mod)[:, None, None] * (
        illum_cxb[None] + illum_ins[None] * drift[:, None, None]
    )
    mu = base * (eff * hot)[None]

    # bad pixels: distinct random pixels
    n_bad = sc.n_noisy + sc.n_dead + sc.n_intermittent
    flat = rng.choice(shape[0] * shape[1], size=n_bad, replace=False)
    counts_of: tuple[tuple[Kind, int], ...] = (
        ("noisy", sc.n_noisy),
        ("dead", sc.n_dead),
        ("intermittent", sc.n_intermittent),
    )
    kinds: list[Kind] = [k for k, n_k in counts_of for _ in range(n_k)]
    extra = np.zeros(mu.shape)
    live_frac = exposure / sc.bin_s
    injected: list[InjectedPixel] = []
    for idx, kind in zip(flat, kinds, strict=True):
        y, z = divmod(int(idx), shape[1])
        if kind == "intermittent":
            duty = float(rng.uniform(*sc.intermittent_duty))
            episodes = _telegraph(rng, sc.t_start, sc.t_stop, duty, sc.intermittent_episode_s)
            mode: Literal["noisy", "off"] = (
                "off" if rng.random() < sc.intermittent_off_fraction else "noisy"
            )
            rate = _log_uniform(rng, sc.intermittent_rate) if mode == "noisy" else 0.0
            onset = episodes[0][0] if episodes else float("nan")
        else:
            mode = "off" if kind == "dead" else "noisy"
            rate = _log_uniform(rng, sc.noisy_rate) if kind == "noisy" else 0.0
            from_start = rng.random() < sc.from_start_fraction
            onset = (
                float("nan")
                if from_start
                else float(
                    rng.uniform(
                        sc.t_start + 0.1 * (sc.t_stop - sc.t_start),
                        sc.t_start + 0.8 * (sc.t_stop - sc.t_start),
                    )
                )
            )
            episodes = ((sc.t_start if from_start else onset, sc.t_stop),)
        frac = _bad_fraction(start, stop, episodes)
        # the bad share of each bin's live time (SAA-free bins: the plain overlap)
        bad_live = frac * exposure
        if mode == "off":
            mu[:, y, z] *= 1.0 - frac
        else:
            extra[:, y, z] += rate * bad_live
        duty_real = float(bad_live.sum() / max(exposure.sum(), 1e-9))
        injected.append(
            InjectedPixel(
                y, z, kind, onset, rate, duty_real, episodes if kind == "intermittent" else (), mode
            )
        )
    del live_frac, live_grid
    counts = rng.poisson(mu + extra).astype(np.int32)
    history = PixelCountHistory(
        start=start,
        stop=stop,
        exposure=exposure,
        counts=counts,
        telescope=inst.telescope,
        instrument=inst.instrument,
    )
    return PixelHealthSimulation(
        scenario=sc,
        history=history,
        pixels=tuple(injected),
        efficiency=eff,
        illumination=np.asarray(illum_cxb + illum_ins, dtype=np.float64),
        modulation=mod,
    )


# --------------------------------------------------------------------------- dead time
@dataclass(frozen=True)
class DeadTimeScenario:
    """Dead-time data: every module at ``levels`` times its background rate for ``exposure_s``.

    ``tau_s`` and ``tau_rms`` set the true per-module dead time (normal, clipped positive);
    ``model`` is the true behaviour (``nonparalyzable``: the model the fit assumes).
    """

    n_modules: int = 200
    rate0: float = 12.0  # counts/s per module at reference 1 (the background level)
    levels: tuple[float, ...] = tuple(float(x) for x in np.geomspace(1.0, 2000.0, 10))
    exposure_s: float = 1.0
    tau_s: float = 10.0e-6  # assumption: ECLAIRs module dead time not public here
    tau_rms: float = 1.0e-6
    model: Literal["nonparalyzable", "paralyzable"] = "nonparalyzable"


@dataclass(frozen=True)
class DeadTimeTruth:
    """True dead time and background rate of every module."""

    tau: NDArray[np.float64]
    rate0: NDArray[np.float64]
    model: str


def _recorded(rng: np.random.Generator, rate: float, tau: float, t: float, model: str) -> int:
    """Return the recorded events in ``t`` seconds of a Poisson ``rate`` with dead time ``tau`` (exact)."""
    n_guess = int(rate * t + 10.0 * np.sqrt(rate * t) + 20)
    if model == "nonparalyzable":
        # recorded events form a renewal process: intervals tau + Exp(rate) (live at t = 0)
        first = rng.exponential(1.0 / rate)
        gaps = tau + rng.exponential(1.0 / rate, n_guess)
        times = first + np.concatenate([[0.0], np.cumsum(gaps)])
        return int(np.searchsorted(times, t))
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n_guess))
    arrivals = arrivals[arrivals < t]
    # paralyzable: an arrival is recorded when the one before it is more than tau earlier
    gaps = np.diff(np.concatenate([[-np.inf], arrivals]))
    return int(np.count_nonzero(gaps > tau))


def simulate_dead_time_rates(
    rng: np.random.Generator, scenario: DeadTimeScenario | None = None
) -> tuple[DeadTimeRates, DeadTimeTruth]:
    """Simulate recorded module counts at several incident rates (dead-time-free reference)."""
    sc = scenario or DeadTimeScenario()
    tau = np.clip(rng.normal(sc.tau_s, sc.tau_rms, sc.n_modules), 0.1 * sc.tau_s, None)
    rate0 = sc.rate0 * np.exp(rng.normal(0.0, 0.05, sc.n_modules))
    mods, expo, counts, ref = [], [], [], []
    for m in range(sc.n_modules):
        for lvl in sc.levels:
            mods.append(m)
            expo.append(sc.exposure_s)
            counts.append(_recorded(rng, rate0[m] * lvl, float(tau[m]), sc.exposure_s, sc.model))
            ref.append(lvl)
    rates = DeadTimeRates(
        module=np.asarray(mods, np.int64),
        exposure=np.asarray(expo, np.float64),
        counts=np.asarray(counts, np.int64),
        reference=np.asarray(ref, np.float64),
    )
    return rates, DeadTimeTruth(tau=tau, rate0=rate0, model=sc.model)


# --------------------------------------------------------------------------- files
def write_pixel_health_files(
    out_dir: str | Path,
    sim: PixelHealthSimulation,
    dead_time: tuple[DeadTimeRates, DeadTimeTruth] | None = None,
    *,
    files_per_day: bool = True,
) -> dict[str, object]:
    """Write the period's history files (one per day), the dead-time rates and ``truth.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h = sim.history
    day = (
        np.floor((h.start - h.t_start) / DAY_S).astype(int)
        if files_per_day
        else np.zeros(h.n_bins, int)
    )
    files = []
    for d in np.unique(day):
        sel = day == d
        part = replace(
            h, start=h.start[sel], stop=h.stop[sel], exposure=h.exposure[sel], counts=h.counts[sel]
        )
        files.append(write_history(out / f"pixhist_{int(h.start[sel][0]):d}.fits", part).name)
    truth: dict[str, object] = {"pixhist": files, **sim.truth()}
    if dead_time is not None:
        rates, dtt = dead_time
        truth["dtrates"] = write_dead_time_rates(out / "dtrates.fits", rates).name
        truth["dead_time"] = {
            "tau": dtt.tau.tolist(),
            "rate0": dtt.rate0.tolist(),
            "model": dtt.model,
        }
    np.save(out / "true_efficiency.npy", sim.efficiency)
    truth["efficiency_file"] = "true_efficiency.npy"
    (out / "truth.json").write_text(json.dumps(truth, indent=1, default=_json_default))
    return truth


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON-able: {type(obj).__name__}")


# --------------------------------------------------------------------------- measurements
def _expected_class(p: InjectedPixel, t_stop: float) -> str:
    """Return the class a perfect detector gives (one episode to the end is a change)."""
    if p.kind != "intermittent":
        return "NOISY" if p.kind == "noisy" else "DEAD"
    if len(p.episodes) == 1 and p.episodes[0][1] >= t_stop:
        return "DEAD" if p.mode == "off" else "NOISY"
    return "INTERMIT"


def measure_pixel_calibration(
    trials: int = 10, seed: int = 20261205, scenario: PixelHealthScenario | None = None
) -> dict[str, object]:
    """Run the pixel-health and uniformity steps on simulated periods; score them against the truth.

    Returns completeness and class confusion per injected kind, false flags per good pixel,
    noisy-pixel completeness by rate, duty-cycle and onset errors, and the uniformity map's
    residuals (used by ``docs/eic_pixels.md``; ``--measure`` prints them).
    """
    from svomflow.tasks.eic.pixel_health import PixelHealthConfig, pixel_health
    from svomflow.tasks.eic.uniformity import UniformityConfig, flat_illumination, uniformity_map

    sc = scenario or PixelHealthScenario()
    inst = load_instrument("eclairs")
    illum = flat_illumination(MaskGeometry.from_instrument(inst), UniformityConfig().cxb_fraction)
    kinds = ("noisy", "dead", "intermittent")
    found = dict.fromkeys(kinds, 0)
    right = dict.fromkeys(kinds, 0)
    total = dict.fromkeys(kinds, 0)
    false, good_pixels = 0, 0
    rate_found: list[tuple[float, bool, bool]] = []  # noisy: rate, found, bad from start
    duty_err: list[float] = []
    onset_err: list[float] = []
    pulls: list[NDArray[np.float64]] = []
    resid: list[NDArray[np.float64]] = []
    for k in range(trials):
        sim = simulate_pixel_health(np.random.default_rng(seed + k), sc)
        health = pixel_health(sim.history, illum, config=PixelHealthConfig())
        unif = uniformity_map(sim.history, health, illum, config=UniformityConfig())
        flagged = {(q.y, q.z): q for q in health.table.pixels}
        truth = {(p.y, p.z): p for p in sim.pixels}
        false += sum(1 for key in flagged if key not in truth)
        good_pixels += sim.history.shape[0] * sim.history.shape[1] - len(truth)
        for key, p in truth.items():
            q = flagged.get(key)
            total[p.kind] += 1
            if p.kind == "noisy":
                rate_found.append((p.rate, q is not None, bool(np.isnan(p.onset))))
            if q is None:
                continue
            found[p.kind] += 1
            if q.kind == _expected_class(p, sc.t_stop):
                right[p.kind] += 1
                if q.kind == "INTERMIT":
                    duty_err.append(q.duty_cycle - p.duty_cycle)
                elif not np.isnan(p.onset) and p.kind != "intermittent" and not np.isnan(q.onset):
                    onset_err.append(q.onset - p.onset)
        injected = np.zeros(sim.efficiency.shape, bool)
        for p in sim.pixels:
            injected[p.y, p.z] = True
        m = unif.umap.measured & ~injected
        t = sim.efficiency / sim.efficiency[unif.umap.measured].mean()
        pulls.append((unif.umap.efficiency[m] - t[m]) / unif.umap.error[m])
        resid.append(unif.umap.efficiency[m] - t[m])
    rf = np.array(rate_found, dtype=float).reshape(-1, 3)
    edges = np.array([0.05, 0.1, 0.2, 0.5, 1.0, 5.0])
    by_rate = []
    for lo, hi in itertools.pairwise(edges):
        for start in (True, False):
            sel = (rf[:, 0] >= lo) & (rf[:, 0] < hi) & (rf[:, 2] == start)
            by_rate.append(
                {"rate": [float(lo), float(hi)], "from_start": start, "n": int(sel.sum()),
                 "found": int(rf[sel, 1].sum())}
            )  # fmt: skip
    p_all, r_all = np.concatenate(pulls), np.concatenate(resid)
    return {
        "trials": trials,
        "bins": round(sc.days * DAY_S / sc.bin_s),
        "completeness": {k: [found[k], total[k]] for k in kinds},
        "right_class": {k: [right[k], found[k]] for k in kinds},
        "false_flags": [false, good_pixels],
        "noisy_by_rate": by_rate,
        "duty_error": {"n": len(duty_err), "mean": float(np.mean(duty_err)) if duty_err else None,
                       "rms": float(np.sqrt(np.mean(np.square(duty_err)))) if duty_err else None,
                       "max": float(np.max(np.abs(duty_err))) if duty_err else None},
        "onset_error_s": {"n": len(onset_err), "median_abs": float(np.median(np.abs(onset_err))) if onset_err else None,
                          "max_abs": float(np.max(np.abs(onset_err))) if onset_err else None},
        "uniformity": {"pull_mean": float(p_all.mean()), "pull_std": float(p_all.std()),
                       "residual_rms": float(r_all.std()), "n_pixels": int(p_all.size)},
    }  # fmt: skip


def measure_dead_time(seed: int = 20261205) -> dict[str, object]:
    """Fit the simulated module dead times, non-paralyzable (the model) and paralyzable (not)."""
    from svomflow.tasks.eic.dead_time import DeadTimeConfig, dead_time_figures, module_dead_time

    out: dict[str, object] = {}
    for model in ("nonparalyzable", "paralyzable"):
        rates, truth = simulate_dead_time_rates(
            np.random.default_rng(seed),
            DeadTimeScenario(model=model),  # type: ignore[arg-type]
        )
        res = module_dead_time(rates, config=DeadTimeConfig())
        pull = (res.fit.tau - truth.tau) / res.fit.tau_err
        figs = {f.name: f.value for f in dead_time_figures(res.fit)}
        out[model] = {
            "modules": int(pull.size),
            "mean_ratio_minus_1": float(np.mean(res.fit.tau / truth.tau) - 1.0),
            "pull_mean": float(pull.mean()),
            "pull_std": float(pull.std()),
            "median_rel_error": float(np.median(res.fit.tau_err / res.fit.tau)),
            "plane_dead_time": figs["plane_dead_time"],
            "true_plane_dead_time": float(truth.tau.mean() / 200),
            "model_p_value": figs["model_p_value"],
            "chosen_model": res.fit.model,
            "delta_deviance": figs["delta_deviance"],
            "nonparalyzable_fit_ratio_minus_1": float(
                np.mean(res.fit.tau_by_model["NONPARALYZABLE"] / truth.tau) - 1.0
            ),
        }
    return out


def draw_figures(
    out_dir: str | Path, measured: dict[str, object], seed: int = 20261205
) -> list[Path]:
    """Draw the figures of ``docs/eic_pixels.md`` from a ``--measure`` result and one period."""
    from matplotlib.figure import Figure
    from svomflow.tasks.eic.pixel_health import PixelHealthConfig, pixel_health
    from svomflow.tasks.eic.uniformity import UniformityConfig, flat_illumination, uniformity_map

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    # 1. completeness of noisy pixels against their extra rate
    rows = cast(list[dict[str, Any]], measured["noisy_by_rate"])
    fig = Figure(figsize=(6.0, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for start, label in ((True, "noisy before the period"), (False, "noisy from an onset")):
        sel = [r for r in rows if r["from_start"] is start and r["n"]]
        x = [np.sqrt(r["rate"][0] * r["rate"][1]) for r in sel]
        y = [r["found"] / r["n"] for r in sel]
        ax.plot(x, y, "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("extra rate of the noisy pixel (counts/s; photons ~0.44)")
    ax.set_ylabel("completeness")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("noisy pixels found (2-day periods, 10-min bins, 5 sigma)", fontsize=9)
    fig.tight_layout()
    paths.append(out / "eic_pixels_completeness.png")
    fig.savefig(paths[-1])
    # 2. one period: flagged pixels and the uniformity map's residual against the truth
    inst = load_instrument("eclairs")
    illum = flat_illumination(MaskGeometry.from_instrument(inst), UniformityConfig().cxb_fraction)
    sim = simulate_pixel_health(np.random.default_rng(seed), PixelHealthScenario())
    health = pixel_health(sim.history, illum, config=PixelHealthConfig())
    umap = uniformity_map(sim.history, health, illum, config=UniformityConfig()).umap
    truth = sim.efficiency / sim.efficiency[umap.measured].mean()
    fig = Figure(figsize=(10.0, 4.0), dpi=100)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    im = ax1.imshow(umap.efficiency, origin="lower", cmap="viridis")
    fig.colorbar(im, ax=ax1, label="relative efficiency")
    for p in sim.pixels:
        ax1.plot(
            p.z,
            p.y,
            "s",
            mfc="none",
            mec={"noisy": "r", "dead": "k", "intermittent": "orange"}[p.kind],
            ms=5,
        )
    for q in health.table.pixels:
        ax1.plot(q.z, q.y, "+", color="w", ms=4)
    ax1.set_title("uniformity map; injected bad pixels (squares), flagged (+)", fontsize=8)
    pull = (umap.efficiency - truth) / umap.error
    ax2.hist(
        pull[np.isfinite(pull)], bins=60, range=(-5, 5), density=True, label="(map - truth) / error"
    )
    xx = np.linspace(-5, 5, 200)
    ax2.plot(xx, np.exp(-0.5 * xx**2) / np.sqrt(2 * np.pi), "k--", label="unit Gaussian")
    ax2.legend(fontsize=8)
    ax2.set_title("uniformity residuals, one 2-day period", fontsize=9)
    fig.tight_layout()
    paths.append(out / "eic_pixels_uniformity.png")
    fig.savefig(paths[-1])
    # 3. dead time: recorded vs incident rate of one module, both true behaviours
    from svomflow.tasks.eic.dead_time import fit_module

    fig = Figure(figsize=(6.0, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for model, colour in (("nonparalyzable", "C0"), ("paralyzable", "C1")):
        sc = DeadTimeScenario(n_modules=1, model=model, tau_rms=0.0)  # type: ignore[arg-type]
        rates, tr = simulate_dead_time_rates(np.random.default_rng(seed), sc)
        fit = fit_module(rates.counts.astype(float), rates.exposure, rates.reference)
        incident = tr.rate0[0] * rates.reference
        ax.plot(incident, rates.counts / rates.exposure / incident, "o", color=colour,
                label=f"{model} truth; fit tau = {fit.tau * 1e6:.2f} us (true 10)")  # fmt: skip
        grid = np.geomspace(incident.min(), incident.max(), 100)
        ax.plot(grid, 1.0 / (1.0 + grid * fit.tau), "-", color=colour, lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("incident rate per module (counts/s)")
    ax.set_ylabel("recorded / incident")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "eic_pixels_dead_time.png")
    fig.savefig(paths[-1])
    return paths


def true_dead_time_file(
    out_dir: str | Path, truth: DeadTimeTruth, inst: InstrumentDefinition
) -> Path:
    """Write the simulator's true module dead times as a DEADTIME file (the fit's format).

    Rows ``MOD000``.. hold the true ``tau`` (no errors, no chi-square) and ``DEADDEF`` the
    plane equivalent, as a fitted file has: the gate compares a fitted candidate with it.
    """
    from svomflow.products.eic_pixel_files import DeadTimeFit, dead_time_hdus
    from svomflow.products.ogip import write_hdulist

    n = truth.tau.size
    fit = DeadTimeFit(
        modules=np.arange(n, dtype=np.int64),
        tau=np.asarray(truth.tau, np.float64),
        tau_err=np.zeros(n),
        rate0=np.asarray(truth.rate0, np.float64),
        chi2=np.full(n, np.nan),
        ndof=np.zeros(n, np.int64),
        n_modules=n,
        model=truth.model.upper(),
    )
    hdus = dead_time_hdus(fit, telescope=inst.telescope, instrument=inst.instrument)
    return write_hdulist(hdus, Path(out_dir) / f"{inst.name}_deadtime.fits")


def run_pixel_health_sim(ctx: Any, rng: np.random.Generator) -> dict[str, Any]:
    """Scenario runner (``svomflow simulate eic_pixels``): a period's files and the true dead time.

    Options (``instrument_options.eclairs_pixel_health``): any :class:`PixelHealthScenario`
    field but ``t_start`` (the scenario's ``epoch_s``), and ``dead_time_model``
    (``nonparalyzable``/``paralyzable``). Writes ``eic_pixels/pixhist_*.fits``,
    ``eic_pixels/dtrates.fits``, ``eic_pixels/truth.json`` and the true module dead times
    ``eic_pixels/eclairs_deadtime.fits``, registered in the home CALDB (code ``DEADTIME``)
    unless the run says not to.
    """
    from svomflow.simulation.calibration import register_calibration

    opts = dict(ctx.options)
    model = str(opts.pop("dead_time_model", "nonparalyzable"))
    for key in ("noisy_rate", "intermittent_rate", "intermittent_duty", "pointing"):
        if key in opts:
            opts[key] = tuple(float(v) for v in opts[key])
    sc = PixelHealthScenario(t_start=float(ctx.t0), **opts)
    out = Path(ctx.out_dir) / "eic_pixels"
    sim = simulate_pixel_health(rng, sc)
    dt = simulate_dead_time_rates(rng, DeadTimeScenario(model=model))  # type: ignore[arg-type]
    truth = write_pixel_health_files(out, sim, dt)
    inst = load_instrument("eclairs")
    dt_file = true_dead_time_file(out, dt[1], inst)
    registered = (
        register_calibration({"DEADTIME": dt_file}, inst) if ctx.register_calibration else {}
    )
    return {
        "folder": "eic_pixels",
        "pixhist": truth["pixhist"],
        "dtrates": truth["dtrates"],
        "calibration": {"DEADTIME": dt_file.name},
        "registered": registered,
        "dead_time_model": model,
        "injected": {
            k: sum(p.kind == k for p in sim.pixels) for k in ("noisy", "dead", "intermittent")
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Write a simulated period (``python -m svomflow.simulation.eclairs_pixel_health``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="output directory (required unless --measure)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--bin-s", type=float, default=600.0)
    ap.add_argument("--t-start", type=float, default=1.0e8, help="mission time of the start (s)")
    ap.add_argument(
        "--dead-time-model", choices=("nonparalyzable", "paralyzable"), default="nonparalyzable"
    )
    ap.add_argument(
        "--measure", type=int, metavar="TRIALS", help="score the steps on TRIALS periods"
    )
    ap.add_argument(
        "--drift-per-day", type=float, default=0.0, help="instrumental background drift"
    )
    ap.add_argument("--hot-module", type=int, default=None, help="module with scaled photon rates")
    ap.add_argument("--figures", metavar="DIR", help="with --measure: draw the docs' figures here")
    args = ap.parse_args(argv)
    sc = PixelHealthScenario(
        t_start=args.t_start,
        days=args.days,
        bin_s=args.bin_s,
        drift_per_day=args.drift_per_day,
        hot_module=args.hot_module,
    )
    if args.measure:
        result = {"pixels": measure_pixel_calibration(args.measure, args.seed, sc)}
        if args.drift_per_day == 0 and args.hot_module is None:
            result["dead_time"] = measure_dead_time(args.seed)
        if args.figures:
            draw_figures(args.figures, result["pixels"], args.seed)
        print(json.dumps(result, indent=1))
        return 0
    if not args.out:
        ap.error("--out is required")
    rng = np.random.default_rng(args.seed)
    sim = simulate_pixel_health(rng, sc)
    dt = simulate_dead_time_rates(rng, DeadTimeScenario(model=args.dead_time_model))
    truth = write_pixel_health_files(args.out, sim, dt)
    files = truth["pixhist"]
    n_files = len(files) if isinstance(files, list) else 0
    print(f"wrote {n_files} pixel history file(s), dtrates.fits and truth.json in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
