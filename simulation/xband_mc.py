"""Monte Carlo of the X-band spectral fits: simulate a burst, fit its main interval.

Each trial simulates one ECLAIRs + GRM burst without spectral evolution
(:func:`simulate_burst`, own seed, with the calibration it used written as CALDB files), runs
the ``xband_analysis`` pipeline restricted to the main interval (:func:`main_interval_pipeline`: the
flow's own steps, inputs and configuration: timing and common intervals, PO_ECL, responses,
per-detector spectra as ``spectral.eclairs_method`` says, the joint fit and optionally the
one-instrument fits, fluence errors as ``spectral.flux_errors`` says; :func:`analyse_main`)
and compares the result with the injected truth. Used by the
X-band tests (the simulator, the analysis and the slow coverage test) and
``benchmarks/mc_xband.py`` (bias, pulls and 1-sigma coverage with per-trial diagnostics
that separate the causes of mis-coverage).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats
from svomflow.tasks.step import Pipeline

if TYPE_CHECKING:
    from svomflow.calibration.calibration_set import CalibrationSet
    from svomflow.tasks.step import Runner
    from svomflow.tasks.xband.config import XbandAnalysisConfig
    from svomflow.tasks.xband.extraction import IntervalSpectra
    from svomflow.tasks.xband.fitting import IntervalFit
    from svomflow.tasks.xband.inputs import XbandInputs, XbandRequest
    from svomflow.tasks.xband.localise import Positions
    from svomflow.tasks.xband.responses import Responses
    from svomflow.tasks.xband.t90 import XbandTiming

__all__ = [
    "COVERAGE_1SIGMA",
    "FIT_CODES",
    "MainAnalysis",
    "XbandTrial",
    "analyse_main",
    "coverage_summary",
    "main_interval_pipeline",
    "pull",
    "read_burst",
    "run_trial",
    "simulate_burst",
    "trial_pulls",
]

#: Probability that a Gaussian estimate lies within 1 sigma of the truth.
COVERAGE_1SIGMA = float(stats.norm.cdf(1.0) - stats.norm.cdf(-1.0))


def simulate_burst(
    out: Path,
    seed: int,
    *,
    spectrum: dict[str, Any] | None = None,
    peak_flux: float = 15.0,
    pulses: tuple[tuple[float, float, float], ...] = ((0.0, 1.0, 3.0),),
    span: tuple[float, float] = (-15.0, 25.0),
    soft_shift_s: float = 0.0,
    soft_below_kev: float = 20.0,
    offaxis_deg: float = 8.0,
) -> dict[str, Any]:
    """Simulate a burst without spectral evolution (ECLAIRs + GRM, no orbit, no bright source).

    ``soft_shift_s`` delays every photon with true energy below ``soft_below_kev`` (in both
    instruments): an injected soft lag. Returns the files, the injected truth and the
    calibration the simulation used (``calibration``: a
    :class:`~svomflow.calibration.calibration_set.CalibrationSet` loaded from the CALDB files
    written next to the L1 files).
    """
    from svomflow.calibration.calibration_set import CalibrationSet
    from svomflow.config import load_instrument
    from svomflow.instruments.attitude import Attitude
    from svomflow.instruments.spectra import Spectrum
    from svomflow.products.eclairs_l1 import write_eclairs_l1
    from svomflow.simulation.calibration import (
        eclairs_calibration,
        grm_calibration,
        write_calibration,
    )
    from svomflow.simulation.eclairs import simulate_eclairs
    from svomflow.simulation.grb import GRBModel, NorrisPulse
    from svomflow.simulation.grm import grm_photon_area, simulate_grm, write_grm_l1

    rng = np.random.default_rng(seed)
    t0 = 1.0e8
    att = Attitude(150.0, 20.0, 0.0)
    tan = np.tan(np.radians(offaxis_deg))
    ra, dec = att.from_projected(tan * np.cos(0.5), tan * np.sin(0.5))
    sp = spectrum or {"model": "band", "alpha": -0.8, "beta": -2.4, "epeak": 200.0}
    grb = GRBModel(
        tuple(NorrisPulse(t_start=a, tau_rise=r, tau_decay=d) for a, r, d in pulses),
        Spectrum(**sp),  # type: ignore[arg-type]
        peak_flux=peak_flux,
        ra_deg=float(ra),
        dec_deg=float(dec),
        t0=t0,
    )
    t_start, t_stop = t0 + span[0], t0 + span[1]

    def shifted(p: Any) -> Any:
        if soft_shift_s == 0:
            return p
        t = p.time.copy()
        t[p.energy_kev < soft_below_kev] += soft_shift_s
        order = np.argsort(t, kind="stable")
        return replace(p, time=t[order], energy_kev=p.energy_kev[order])

    out.mkdir(parents=True, exist_ok=True)
    pe = shifted(
        grb.sample_photons(
            rng, area_cm2=1024.0, t_start=t_start, t_stop=t_stop, e_min_kev=3.0, e_max_kev=200.0
        )
    )
    ev = simulate_eclairs(
        [pe], attitude=att, t_start=t_start, t_stop=t_stop, rng=rng, run_trigger=False
    )
    ecl = write_eclairs_l1(ev, out / "eclairs_l1_events.fits", trigger_id=f"sim{seed}")
    pg = shifted(
        grb.sample_photons(
            rng,
            area_cm2=grm_photon_area(),
            t_start=t_start,
            t_stop=t_stop,
            e_min_kev=10.0,
            e_max_kev=10000.0,
        )
    )
    sim = simulate_grm([pg], attitude=att, t_start=t_start, t_stop=t_stop, rng=rng)
    grm = write_grm_l1(
        out / "grm_l1_events.fits",
        sim,
        attitude=att,
        trigger_time=t0,
        extra={"TRIGID": f"sim{seed}"},
    )
    truth = grb.truth([(10.0, 1000.0), (4.0, 150.0), (4.0, 120.0), (50.0, 300.0)])
    files: dict[str, Path] = {}
    for name, objects in (
        ("eclairs", eclairs_calibration(load_instrument("eclairs"), ev.dead_pixels)),
        (
            "grm",
            grm_calibration(
                load_instrument("grm"),
                sim.channel_edges_kev,
                {n: d.dead_time_s for n, d in sim.detectors.items()},
            ),
        ),
    ):
        written = write_calibration(objects, out, load_instrument(name))
        files.update({f"{name}:{code}": path for code, path in written.items()})
    return {
        "files": [str(ecl), str(grm)],
        "calibration": CalibrationSet.from_files(files),
        "t0": t0,
        "truth": truth,
        "spectrum": sp,
        "ra": ra,
        "dec": dec,
    }


#: The fits of :func:`analyse_main`: codes as in the SP products (ECLAIRs, GRM, joint).
FIT_CODES = {"ECL": ("eclairs",), "GRM": ("grm",), "ECLGRM": ("eclairs", "grm")}


def read_burst(b: dict[str, Any]) -> XbandInputs:
    """Read a simulated burst's files as the pipeline does (its calibration, its ``t0``)."""
    from svomflow.tasks.xband.inputs import XbandRequest, read_inputs

    return read_inputs(XbandRequest(tuple(b["files"]), b["t0"]), b["calibration"])


@dataclass
class MainAnalysis:
    """The steps' results of a main-interval analysis (:func:`analyse_main`).

    ``fit`` is the first of ``fits`` (by code, :data:`FIT_CODES`).
    """

    fit: IntervalFit
    fits: dict[str, IntervalFit]
    timing: XbandTiming
    positions: Positions
    responses: Responses
    spectra: IntervalSpectra


def _main_interval_plan(
    runner: Runner,
    inputs: XbandInputs,
    config: XbandAnalysisConfig,
    calibration: CalibrationSet,
    codes: Sequence[str],
) -> MainAnalysis:
    """Run the flow's plan up to the spectra, then the main-interval fits of ``codes``."""
    from svomflow.tasks.xband.extraction import spectra
    from svomflow.tasks.xband.localise import localise
    from svomflow.tasks.xband.responses import responses
    from svomflow.tasks.xband.spectral_fits import fit
    from svomflow.tasks.xband.t90 import timing

    ins, t0 = inputs.instruments, inputs.t0
    tm = runner.run(timing, ins, t0, config=config.intervals)
    ci = tm.intervals
    known = config.known_sources
    pos = runner.run(localise, ins, ci, known, t0, config=config.localise, calibration=calibration)
    rsp = runner.run(responses, ins, pos, config=config.spectral, calibration=calibration)
    sp = runner.run(
        spectra,
        ins,
        [("main", ci.main)],
        ci.off_source,
        pos,
        rsp,
        known,
        t0,
        config=config.spectral,
        calibration=calibration,
    )
    # the fluence bands the comparisons use, with the flow's fit settings
    bands = ((10.0, 1000.0), (4.0, 150.0))
    fits = {
        code: runner.run(
            fit, code, FIT_CODES[code], sp, bands[:1], bands, None, t0, config.seed,
            config=config.spectral,
        ).main
        for code in codes
    }  # fmt: skip
    return MainAnalysis(fits[codes[0]], fits, tm, pos, rsp, sp)


def main_interval_pipeline(
    codes: Sequence[str] = ("ECLGRM",),
) -> Pipeline[XbandRequest, XbandInputs, XbandAnalysisConfig, MainAnalysis]:
    """Return the X-band pipeline whose plan stops at the main-interval fits of ``codes``."""
    from svomflow.tasks.xband.pipeline import XBAND_PIPELINE as FULL

    def plan(
        runner: Runner,
        inputs: XbandInputs,
        config: XbandAnalysisConfig,
        calibration: CalibrationSet,
    ) -> MainAnalysis:
        return _main_interval_plan(runner, inputs, config, calibration, tuple(codes))

    return Pipeline(
        flow_name=FULL.flow_name,
        config=FULL.config,
        steps=FULL.steps,
        observe=FULL.observe,
        read=FULL.read,
        plan=plan,
    )


def analyse_main(
    b: dict[str, Any],
    cfg: Any = None,
    *,
    fits: Sequence[str] = ("ECLGRM",),
) -> MainAnalysis:
    """Run the ``xband_analysis`` pipeline up to the main-interval fits on a simulated burst.

    ``b`` is :func:`simulate_burst`'s (its files and calibration); ``cfg`` an
    :class:`~svomflow.tasks.xband.config.XbandAnalysisConfig` (default one if ``None``): its
    ``spectral`` section chooses the ECLAIRs method, the grouping, the statistics and the
    flux-error method, as in the flow. The pipeline is the flow's
    (:func:`~svomflow.tasks.step.run_plain`: same inputs, same steps), its plan only
    restricted to the main interval, so the Monte Carlo tests what the flow does. ``fits``
    are the fits to make (``FIT_CODES``).
    """
    from svomflow.tasks.step import run_plain
    from svomflow.tasks.xband.config import XbandAnalysisConfig
    from svomflow.tasks.xband.inputs import XbandRequest

    cfg = cfg if cfg is not None else XbandAnalysisConfig()
    request = XbandRequest(tuple(b["files"]), b["t0"])
    outcome, _ = run_plain(main_interval_pipeline(fits), request, cfg, calibration=b["calibration"])
    return outcome


def pull(value: float, lo: float | None, hi: float | None, truth: float) -> float:
    """Signed distance to the truth in units of the error on the truth's side.

    ``lo`` is the (negative) lower error, ``hi`` the upper one; a zero error gives ``inf``.
    """
    err = hi if value < truth else -(lo or 0.0)
    return (value - truth) / err if err and err > 0 else math.inf


def _estimates(
    fit: Any, b: dict[str, Any], band: str = "10-1000"
) -> dict[str, tuple[float, Any, Any, float]]:
    """(value, error_low, error_high, truth) of alpha, Epeak, the fluence and the rest.

    ``fluence`` is that in ``band`` (keV: ``10-1000`` or ``4-150``). A CPL (the simulated CPL, or the flow's fallback) gives its photon index as ``alpha``;
    Band's ``beta`` and the cross-normalisation (``norm``, truth 1) are added when free.
    """
    r = fit.result
    sp = b["spectrum"]
    truth = {
        "alpha": sp.get("alpha", sp.get("index")),
        "epeak": sp["epeak"],
        "beta": sp.get("beta"),
    }
    out: dict[str, tuple[float, Any, Any, float]] = {}
    for key, name in (("alpha", "alpha"), ("alpha", "index"), ("epeak", "epeak"), ("beta", "beta")):
        if name in r.parameters and name in r.free and truth[key] is not None:
            p = r.parameters[name]
            out[key] = (p.value, p.error_low, p.error_high, float(truth[key]))
    f = fit.fluxes[f"fluence_{band}"]
    out["fluence"] = (
        f.value,
        f.error_low,
        f.error_high,
        float(b["truth"]["bands"][band]["energy_fluence_erg"]),
    )
    for n in r.free:
        if n.startswith("norm_"):
            p = r.parameters[n]
            out["norm"] = (p.value, p.error_low, p.error_high, 1.0)
    return out


def trial_pulls(b: dict[str, Any], res: MainAnalysis) -> dict[str, float]:
    """Return the pulls of alpha, Epeak and the 10-1000 keV fluence of one analysed burst."""
    est = _estimates(res.fit, b)
    return {k: pull(*est[k]) for k in ("alpha", "epeak", "fluence")}


@dataclass
class XbandTrial:
    """One simulated burst: estimates, errors and pulls, and what the analysis did with it.

    Keys of ``value`` (and errors, truth, pull): ``alpha``, ``epeak``, ``fluence``,
    ``beta``, ``norm`` of the first fit (the joint one by default); those of the other fits
    carry the fit's code (``fluence_GRM``, ``alpha_ECL``). The fluence is that in 10-1000
    keV, but for ECLAIRs alone (``fluence_ECL``) in 4-150 keV.
    """

    seed: int
    span: tuple[float, float]
    value: dict[str, float] = field(default_factory=dict)
    error_low: dict[str, float] = field(default_factory=dict)
    error_high: dict[str, float] = field(default_factory=dict)
    truth: dict[str, float] = field(default_factory=dict)
    pull: dict[str, float] = field(default_factory=dict)
    main: tuple[float, float] = (math.nan, math.nan)
    pre_burst: tuple[float, float] = (math.nan, math.nan)
    post_burst: tuple[float, float] | None = None
    t90_measured: dict[str, bool] = field(default_factory=dict)
    background_order: dict[str, int] = field(default_factory=dict)
    beta_constrained: bool = True
    at_bound: list[str] = field(default_factory=list)
    converged: bool = True
    covariance_regularised: bool = False
    fallback: dict[str, bool] = field(default_factory=dict)
    burst: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the trial as a plain dict."""
        return asdict(self)


def _beta_constrained(fit: Any) -> bool:
    r = fit.result
    if "beta" not in r.free:
        return False
    p = r.parameters["beta"]
    lim = r.problem.param("beta")
    ok = p.error_low is not None and p.error_high is not None
    return bool(
        ok
        and not p.at_bound
        and p.value + p.error_low > lim.lower + 1e-6  # type: ignore[operator]
        and p.value + p.error_high < lim.upper - 1e-6  # type: ignore[operator]
    )


def run_trial(
    seed: int,
    *,
    span: tuple[float, float] = (-30.0, 45.0),
    cfg: Any = None,
    fits: Sequence[str] = ("ECLGRM",),
    **burst: Any,
) -> XbandTrial:
    """Simulate a burst with ``seed`` over ``span`` (s), fit its main interval, compare.

    ``burst`` goes to :func:`simulate_burst`, ``cfg`` and ``fits`` to :func:`analyse_main`.
    A trial whose analysis raises (any error: the Monte Carlo counts failures rather than
    stopping) is returned with ``error`` set and no pulls.
    """
    trial = XbandTrial(seed=seed, span=(float(span[0]), float(span[1])))
    trial.burst = {k: v for k, v in burst.items() if isinstance(v, (int, float, str, dict))}
    with tempfile.TemporaryDirectory(prefix="xband-mc-") as tmp:
        b = simulate_burst(Path(tmp) / "sim", seed, span=span, **burst)
        try:
            res = analyse_main(b, cfg, fits=fits)
        except Exception as exc:  # a failed trial is counted, not fatal
            trial.error = f"{type(exc).__name__}: {exc}"
            return trial
    for i, code in enumerate(fits):
        fit = res.fits[code]
        trial.fallback[code] = bool(fit.fallback)
        # ECLAIRs alone: its own band (FLUENCE_ECL), not an extrapolation to 1 MeV
        band = "4-150" if code == "ECL" else "10-1000"
        for k, (v, lo, hi, t) in _estimates(fit, b, band).items():
            key = k if i == 0 else f"{k}_{code}"
            trial.value[key] = float(v)
            trial.error_low[key] = float(lo) if lo is not None else math.nan
            trial.error_high[key] = float(hi) if hi is not None else math.nan
            trial.truth[key] = float(t)
            trial.pull[key] = pull(v, lo, hi, t)
    fit = res.fit
    r = fit.result
    ci = res.timing.intervals
    trial.main = (float(ci.main[0]), float(ci.main[1]))
    trial.pre_burst = (float(ci.pre_burst[0]), float(ci.pre_burst[1]))
    post = ci.post_burst
    trial.post_burst = (float(post[0]), float(post[1])) if post else None
    trial.t90_measured = {k: tm.durations is not None for k, tm in res.timing.timings.items()}
    trial.background_order = dict(res.spectra.background_order)
    trial.beta_constrained = _beta_constrained(fit)
    trial.at_bound = [n for n in r.free if r.parameters[n].at_bound]
    trial.converged = bool(r.converged)
    trial.covariance_regularised = any(f.covariance_regularised for f in fit.fluxes.values())
    return trial


def _binomial_band(n: int, p: float, cl: float) -> tuple[int, int]:
    lo, hi = stats.binom.ppf([(1 - cl) / 2, (1 + cl) / 2], n, p)
    return int(lo), int(hi)


def coverage_summary(
    trials: Iterable[XbandTrial], key: str, cl: float = 0.95
) -> dict[str, float | int]:
    """Bias, median pull and 1-sigma coverage of one quantity over trials that have it.

    ``coverage_lo/hi``: Clopper-Pearson ``cl`` interval of the measured coverage;
    ``expected_lo/hi``: the central ``cl`` band of the number inside 1 sigma for a correct
    analysis (binomial, p = 68.27 %); ``coverage_z``: the coverage's distance from 68.27 %
    in binomial standard deviations; ``bias`` is the mean of value - truth, ``bias_err`` its
    standard error, ``ratio`` the mean of value / truth.
    """
    rows = [t for t in trials if key in t.pull and np.isfinite(t.value.get(key, math.nan))]
    n = len(rows)
    if n == 0:
        return {"n": 0}
    v = np.array([t.value[key] for t in rows])
    tr = np.array([t.truth[key] for t in rows])
    pl = np.array([t.pull[key] for t in rows])
    inside = int(np.sum(np.abs(pl) < 1.0))
    lo = stats.beta.ppf((1 - cl) / 2, inside, n - inside + 1) if inside > 0 else 0.0
    hi = stats.beta.ppf((1 + cl) / 2, inside + 1, n - inside) if inside < n else 1.0
    e_lo, e_hi = _binomial_band(n, COVERAGE_1SIGMA, cl)
    p = COVERAGE_1SIGMA
    return {
        "n": n,
        "mean": float(v.mean()),
        "truth": float(tr.mean()),
        "bias": float(np.mean(v - tr)),
        "bias_err": float(np.std(v - tr, ddof=1) / np.sqrt(n)) if n > 1 else math.nan,
        "ratio": float(np.mean(v / tr)),
        "median_pull": float(np.median(pl)),
        "inside": inside,
        "coverage": inside / n,
        "coverage_lo": float(lo),
        "coverage_hi": float(hi),
        "coverage_z": float((inside - n * p) / np.sqrt(n * p * (1 - p))),
        "expected_lo": e_lo,
        "expected_hi": e_hi,
    }


def trials_for(seeds: Sequence[int], **kwargs: Any) -> list[XbandTrial]:
    """Run :func:`run_trial` for each seed (same options)."""
    return [run_trial(int(s), **kwargs) for s in seeds]
