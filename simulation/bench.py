"""Monte Carlo bench: simulate a scenario N times, run a flow's steps, compare with the truth.

Each trial simulates the scenario with its own seed (spawned from the bench seed), runs the
flow's pure steps (no Prefect flow run per trial) and returns, per output quantity, the
estimate, its reported error and the injected value. Trials run in parallel in worker
processes (:class:`concurrent.futures.ProcessPoolExecutor`); :func:`bench_statistics` turns
them into bias, scatter and coverage (the fraction of trials whose truth lies inside the
reported error: 68 % for 1-sigma errors, 90 % for 90 % radii) with binomial intervals.

Truth values of durations are those of the expected *counts* light curve in the
instrument's band (photon flux times the detection efficiency, integrated over the band),
which is what a counts T90 measures; with spectral evolution it differs from the photon-flux
T90 of ``truth.json``. For the GRM the band is one of deposited energy, so the truth folds
the response matrices (:func:`grm_band_efficiency`): photons of all energies contribute.
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats
from svomflow.errors import ConfigError

if TYPE_CHECKING:
    from svomflow.calibration.calibration_set import CalibrationSet

__all__ = [
    "BENCH_FLOWS",
    "BENCH_SCENARIOS",
    "BENCH_SCENARIO_SETTINGS",
    "MXT_MATCH_ARCSEC",
    "QuantityStats",
    "bench_statistics",
    "counts_durations",
    "grb_model_from_truth",
    "grm_band_efficiency",
    "match_sources",
    "mxt_pipeline",
    "mxt_trial",
    "run_bench",
    "run_trial",
    "simulated_calibration",
]

# flow alias -> trial function "module:function"
BENCH_FLOWS = {
    "vhf": "svomflow.simulation.bench:vhf_trial",
    "mxt": "svomflow.simulation.bench:mxt_trial",
}

# default scenario of each flow's bench (the CLI's --scenario default)
BENCH_SCENARIOS = {"vhf": "short_grb", "mxt": "mxt_one_source"}

# scenario settings every trial of a flow's bench adds: MXT trials give the pipeline the
# simulator's calibration files directly, so they register nothing in the user's CALDB
BENCH_SCENARIO_SETTINGS: dict[str, tuple[str, ...]] = {
    "mxt": ("instrument_options.mxt.caldb=false",),
}

# a detection matches an injected MXT source when closer than this (arcsec): well above the
# r90 of the faintest sources the bench injects (~1 arcmin) and below the closest pair
# (4 arcmin in mxt_three_sources), so a match is unambiguous
MXT_MATCH_ARCSEC = 120.0


def grb_model_from_truth(src: dict[str, Any]) -> Any:
    """Rebuild the injected burst model from its ``truth.json`` entry."""
    from svomflow.instruments.spectra import Spectrum
    from svomflow.simulation.grb import GRBModel, NorrisPulse, SpectralEvolution

    sp = src["spectrum"]
    kw = {k: sp[k] for k in ("alpha", "beta", "index", "epeak", "pivot") if k in sp}
    ev = {k: v for k, v in src["evolution"].items() if k in SpectralEvolution.__dataclass_fields__}
    return GRBModel(
        tuple(NorrisPulse(**p) for p in src["pulses"]),
        Spectrum(model=sp["model"], **kw),
        peak_flux=src["peak_flux"],
        ra_deg=src["ra_deg"],
        dec_deg=src["dec_deg"],
        t0=src["t0"],
        peak_flux_band_kev=tuple(src["peak_flux_band_kev"]),
        peak_flux_timescale_s=src["peak_flux_timescale_s"],
        evolution=SpectralEvolution(**ev),
    )


def counts_durations(
    model: Any,
    band_kev: tuple[float, float],
    efficiency: Callable[[np.ndarray], np.ndarray],
    *,
    n_sub: int = 32,
    n_time: int = 40000,
    photon_range_kev: tuple[float, float] | None = None,
) -> dict[str, float]:
    """T90/T50 and starts (s from the burst t0) of the expected counts curve in a band.

    The photon energies (``band_kev``, or ``photon_range_kev`` when the detector redistributes
    photons into the measured band, ``efficiency`` then being the area times the probability
    of a count in the band) are split in ``n_sub`` logarithmic sub-bands; each contributes
    its photon flux times the efficiency at its centre. Times are on a grid of ``n_time``
    points over the pulses.
    """
    t_lo = min(p.t_start for p in model.pulses)
    t_hi = max(p.t_peak + 12.0 * p.tau_decay for p in model.pulses)
    t = np.linspace(t_lo, t_hi, n_time)
    e_lo, e_hi = photon_range_kev or band_kev
    edges = np.geomspace(e_lo, e_hi, n_sub + 1)
    rate = np.zeros_like(t)
    for lo, hi in itertools.pairwise(edges):
        rate += model.photon_flux(t, lo, hi) * float(efficiency(np.array([np.sqrt(lo * hi)]))[0])
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(t))])
    q = np.interp(np.array([0.05, 0.95, 0.25, 0.75]) * cum[-1], cum, t)
    return {"t90": q[1] - q[0], "t90_start": q[0], "t50": q[3] - q[2], "t50_start": q[2]}


def _efficiencies(
    truth: dict[str, Any],
) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]]:
    """Return the detection efficiency vs photon energy per instrument (for the counts truth)."""
    from svomflow.config import load_instrument

    out: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {}
    inst = truth.get("instruments", {})
    if "eclairs" in inst:
        from svomflow.instruments.eclairs_detector import EclairsResponse

        resp = EclairsResponse.from_instrument(load_instrument("eclairs"))
        out["ECLAIRS"] = (resp.efficiency, "eclairs")
    if "grm" in inst and inst["grm"].get("sources"):
        from svomflow.instruments.grm_response import GRMGeometry

        geom = GRMGeometry.from_instrument(load_instrument("grm"))
        cos = list(inst["grm"]["sources"][0]["cos_theta"].values())

        def grm_eff(e: np.ndarray) -> np.ndarray:
            return np.sum([geom.interacting_area(e, c) for c in cos if c > 0], axis=0)

        out["GRM"] = (grm_eff, "grm")
    return out


def grm_band_efficiency(
    truth: dict[str, Any], band_kev: tuple[float, float]
) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[float, float]]:
    """Area (cm2, all GRM detectors) for a photon to give a count in a measured band.

    The GRM's NaI redistributes photons (Compton and escape tails, resolution): counts in a
    measured band come from photons of all energies, so with hard-to-soft evolution their
    light curve differs from that of the photons of the same band. Folds the detectors'
    response matrices for the source direction over the channels in the band (channels
    straddling an edge count by their overlap). Returns the efficiency and the photon-energy
    range of the matrices.
    """
    from svomflow.instruments.attitude import Attitude
    from svomflow.instruments.grm_response import GRMResponseModel, grm_response

    src = truth["sources"][0]
    a = truth["attitude"]
    att = Attitude(a["ra_deg"], a["dec_deg"], a["roll_deg"])
    total = None
    model = GRMResponseModel.from_instrument()
    for det in model.detectors:
        lo, hi, m, eb = grm_response(
            (src["ra_deg"], src["dec_deg"]), detector=det, attitude=att, model=model
        )
        overlap = np.clip(
            np.minimum(eb[:, 1], band_kev[1]) - np.maximum(eb[:, 0], band_kev[0]), 0, None
        )
        frac = overlap / np.maximum(eb[:, 1] - eb[:, 0], 1e-12)
        eff = m @ frac
        total = eff if total is None else total + eff
    assert total is not None  # the model has detectors
    centre = np.sqrt(lo * hi)
    area = total

    def efficiency(e: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(np.log(e), np.log(centre), area))

    return efficiency, (float(lo[0]), float(hi[-1]))


def simulated_calibration(sim_dir: Path, truth: dict[str, Any]) -> CalibrationSet:
    """Load the calibration a simulation wrote next to its L1 files (the run's calibration).

    A trial uses the simulator's own files rather than the CALDB: trials run in parallel and
    must not depend on what another trial registered.
    """
    from svomflow.calibration.calibration_set import CalibrationSet

    files = {
        f"{name}:{code}": sim_dir / fname
        for name, info in truth["instruments"].items()
        for code, fname in info.get("files", {}).get("calibration", {}).items()
    }
    return CalibrationSet.from_files(files)


def vhf_trial(sim_dir: Path, truth: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Run the VHF pipeline on one simulated burst; return estimate/error/truth per quantity."""
    from svomflow.config import load_config
    from svomflow.instruments.attitude import angular_separation_deg
    from svomflow.tasks.step import run_plain
    from svomflow.tasks.vhf.config import VHFConfig
    from svomflow.tasks.vhf.inputs import VHFRequest
    from svomflow.tasks.vhf.outcome import summary
    from svomflow.tasks.vhf.pipeline import VHF_PIPELINE

    files = sorted(str(p) for p in sim_dir.glob("*_l1_events.fits"))
    cfg = load_config(VHFConfig, flow="vhf_quick_analysis", overrides=overrides)
    cfg.previews = False  # nothing is published: no figure to prepare
    outcome, _ = run_plain(
        VHF_PIPELINE,
        VHFRequest.of(files, "bench"),
        cfg,
        calibration=simulated_calibration(sim_dir, truth),
    )
    s = summary(outcome)
    src = truth["sources"][0]
    model = grb_model_from_truth(src)
    shift = s["t0"] - src["t0"]  # flow times are from its own T0
    q: dict[str, Any] = {}
    for name, (eff, _) in _efficiencies(truth).items():
        per = s["per_instrument"].get(name)
        if per is None or per["t90"] is None:
            continue
        band = tuple(per["band_kev"])
        if name == "GRM":  # the measured band holds redistributed photons of all energies
            eff_band, prange = grm_band_efficiency(truth, band)
            true = counts_durations(model, band, eff_band, n_sub=96, photon_range_kev=prange)
        else:
            true = counts_durations(model, band, eff)
        q[f"t90_{name}"] = (per["t90"], per["t90_err"], true["t90"], "s", 0.68)
        q[f"t90_start_{name}"] = (
            per["t90_start"] + shift,
            per["t90_start_err"],
            true["t90_start"],
            "s",
            0.68,
        )
        q[f"t50_{name}"] = (per["t50"], per["t50_err"], true["t50"], "s", 0.68)
    for name, p in s["positions"].items():
        sep = float(
            angular_separation_deg(p["ra_deg"], p["dec_deg"], src["ra_deg"], src["dec_deg"])
        )
        if "r90_arcmin" in p:
            q[f"position_{name}"] = (sep * 60.0, p["r90_arcmin"], 0.0, "arcmin", 0.90)
        else:
            q[f"position_{name}"] = (sep, p["error_radius_90_deg"], 0.0, "deg", 0.90)
    return {"quantities": q, "flags": s["flags"], "class": (s["classification"] or {}).get("class")}


def mxt_pipeline(
    sim_dir: Path, truth: dict[str, Any], overrides: list[str]
) -> list[dict[str, float]]:
    """Run the MXT pipeline on one simulated field without Prefect; return its sources.

    The same pipeline definition as the ``mxt_analysis`` flow
    (:data:`svomflow.tasks.xray.pipeline.MXT_PIPELINE` through
    :func:`svomflow.tasks.step.run_plain`), given the simulator's true GAIN, CTI, PATTERN and
    PSF files directly (a trial registers nothing in a CALDB) and without the per-source
    products. ``overrides`` are ``dotted.key=value`` settings of
    :class:`svomflow.tasks.xray.pipeline.MXTAnalysisConfig`. Each source has ``ra_deg``,
    ``dec_deg``, ``r90_arcsec``, ``counts`` and ``ml``.
    """
    from svomflow.simulation.mxt_mc import analyse_field

    return analyse_field(sim_dir, truth["files"], overrides=overrides)


def match_sources(
    injected: list[dict[str, Any]], found: list[dict[str, Any]], radius_arcsec: float
) -> tuple[dict[str, int], list[int]]:
    """Match detections to injected sources (closest pairs first, one-to-one, within ``radius``).

    Returns ``{injected name: detection index}`` and the indices of unmatched detections.
    """
    from svomflow.instruments.attitude import angular_separation_deg

    pairs = []
    for i, src in enumerate(injected):
        for j, det in enumerate(found):
            sep = 3600.0 * float(
                angular_separation_deg(det["ra_deg"], det["dec_deg"], src["ra_deg"], src["dec_deg"])
            )
            if sep < radius_arcsec:
                pairs.append((sep, i, j))
    matched: dict[str, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(pairs):
        name = injected[i]["name"]
        if name in matched or j in used:
            continue
        matched[name] = j
        used.add(j)
    return matched, [j for j in range(len(found)) if j not in used]


def mxt_trial(sim_dir: Path, truth: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Run the MXT steps on one simulated field; return position error vs r90 and detection counts.

    Quantities: ``position_<source>`` per injected source and ``position_all`` pooled over
    sources (error in arcsec against the 90 % radius, nominal coverage 0.90), for the
    sources detected. Counts: injected, detected (matched within
    :data:`MXT_MATCH_ARCSEC`), and false detections (unmatched).
    """
    from svomflow.instruments.attitude import angular_separation_deg

    mxt = truth["instruments"]["mxt"]
    found = mxt_pipeline(sim_dir / "mxt", mxt, overrides)
    injected = mxt["sources"]
    matched, false = match_sources(injected, found, MXT_MATCH_ARCSEC)
    q: dict[str, Any] = {}
    pooled = []
    for src in injected:
        j = matched.get(src["name"])
        if j is None:
            continue
        f = found[j]
        sep = 3600.0 * float(
            angular_separation_deg(f["ra_deg"], f["dec_deg"], src["ra_deg"], src["dec_deg"])
        )
        row = (sep, f["r90_arcsec"], 0.0, "arcsec", 0.90)
        q[f"position_{src['name']}"] = row
        pooled.append(row)
    if pooled:
        q["position_all"] = pooled
    counts = {
        "injected": len(injected),
        "detected": len(matched),
        "false": len(false),
    }
    for src in injected:
        counts[f"detected_{src['name']}"] = int(src["name"] in matched)
    return {"quantities": q, "counts": counts, "flags": []}


def run_trial(
    flow: str, scenario: str, overrides: list[str], flow_overrides: list[str], seed: int
) -> dict[str, Any]:
    """Simulate and analyse one trial in a temporary directory (worker-process entry point)."""
    import importlib

    from svomflow.simulation.scenario import load_scenario, run_scenario

    t = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="svomflow-bench-"))
    try:
        settings = [*BENCH_SCENARIO_SETTINGS.get(flow, ()), *overrides]
        # each trial is analysed with its own files: nothing goes into the user's CALDB
        truth = run_scenario(
            load_scenario(scenario, settings), tmp, seed, register_calibration=False
        )
        module, _, func = BENCH_FLOWS[flow].partition(":")
        out = getattr(importlib.import_module(module), func)(tmp, truth, flow_overrides)
        out.update(seed=seed, ok=True, error=None)
    except Exception as exc:  # a failed trial is a result of the bench, with its reason
        last = traceback.extract_tb(exc.__traceback__)[-1]
        out = {
            "seed": seed,
            "ok": False,
            "error": f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})",
            "quantities": {},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["wall_s"] = time.perf_counter() - t
    return out


@dataclass
class QuantityStats:
    """Bias, scatter and coverage of one output quantity over the successful trials."""

    name: str
    unit: str
    n: int
    bias: float
    bias_err: float
    scatter: float
    median_abs_error: float
    median_reported_error: float
    coverage: float
    coverage_low: float
    coverage_high: float
    nominal_coverage: float
    pull_mean: float
    pull_std: float
    extra: dict[str, float] = field(default_factory=dict)

    def consistent(self) -> bool:
        """Whether the nominal coverage lies in the 95 % binomial interval of the measured one."""
        return self.coverage_low <= self.nominal_coverage <= self.coverage_high


def _binomial_interval(k: int, n: int, cl: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a proportion."""
    a = 1.0 - cl
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def bench_statistics(trials: list[dict[str, Any]]) -> dict[str, QuantityStats]:
    """Per quantity: bias (mean of estimate - truth, with its error), scatter, coverage, pulls."""
    names = sorted({k for t in trials if t["ok"] for k in t["quantities"]})
    out: dict[str, QuantityStats] = {}
    for name in names:
        rows = []
        for t in trials:
            if t["ok"] and name in t["quantities"]:
                v = t["quantities"][name]
                # several samples per trial (e.g. one per source) come as a list of rows
                rows.extend(v if isinstance(v, list) else [v])
        est = np.array([r[0] for r in rows], float)
        err = np.array([np.nan if r[1] is None else r[1] for r in rows], float)
        tru = np.array([r[2] for r in rows], float)
        unit, nominal = rows[0][3], float(rows[0][4])
        ok = np.isfinite(est) & np.isfinite(tru) & np.isfinite(err)
        est, err, tru = est[ok], err[ok], tru[ok]
        n = int(est.size)
        if n == 0:
            continue
        d = est - tru
        inside = int(np.count_nonzero(np.abs(d) <= err))
        lo, hi = _binomial_interval(inside, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            pull = np.where(err > 0, d / err, np.nan)
        pull = pull[np.isfinite(pull)]
        out[name] = QuantityStats(
            name=name,
            unit=unit,
            n=n,
            bias=float(np.mean(d)),
            bias_err=float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
            scatter=float(np.std(d, ddof=1)) if n > 1 else math.nan,
            median_abs_error=float(np.median(np.abs(d))),
            median_reported_error=float(np.median(err)),
            coverage=inside / n,
            coverage_low=lo,
            coverage_high=hi,
            nominal_coverage=nominal,
            pull_mean=float(np.mean(pull)) if pull.size else math.nan,
            pull_std=float(np.std(pull, ddof=1)) if pull.size > 1 else math.nan,
            extra={"mean_truth": float(np.mean(tru))},
        )
    return out


def _sum_counts(trials: list[dict[str, Any]]) -> dict[str, int]:
    """Sum the integer ``counts`` of the successful trials (detections, false detections...)."""
    out: dict[str, int] = {}
    for t in trials:
        if t["ok"]:
            for k, v in t.get("counts", {}).items():
                out[k] = out.get(k, 0) + int(v)
    return out


def trial_seeds(seed: int, n: int) -> list[int]:
    """Independent seeds of the trials, spawned from the bench seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def run_bench(
    flow: str,
    *,
    trials: int,
    seed: int,
    scenario: str,
    overrides: list[str] | None = None,
    flow_overrides: list[str] | None = None,
    workers: int = 2,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``trials`` Monte Carlo trials in ``workers`` processes; return trials and statistics.

    Raises
    ------
    ConfigError
        Unknown flow or scenario, or non-positive counts.
    """
    from svomflow.simulation.scenario import load_scenario

    if flow not in BENCH_FLOWS:
        raise ConfigError(f"no bench for flow {flow!r}; available: {', '.join(BENCH_FLOWS)}")
    if trials < 1 or workers < 1:
        raise ConfigError("--trials and --workers must be at least 1")
    load_scenario(scenario, overrides or [])  # fail early on a bad scenario or override
    seeds = trial_seeds(seed, trials)
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    args = (flow, scenario, list(overrides or []), list(flow_overrides or []))
    if workers == 1:
        for i, s in enumerate(seeds):
            r = run_trial(*args, s) | {"trial": i}
            results.append(r)
            if progress:
                progress(r)
    else:
        import multiprocessing as mp

        # spawn: the workers must not inherit the parent's threads (progress bar, numba)
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(run_trial, *args, s): i for i, s in enumerate(seeds)}
            for f in as_completed(futs):
                r = f.result() | {"trial": futs[f]}
                results.append(r)
                if progress:
                    progress(r)
    results.sort(key=lambda r: r["trial"])
    st = bench_statistics(results)
    return {
        "flow": flow,
        "scenario": scenario,
        "overrides": list(overrides or []),
        "trials": trials,
        "seed": seed,
        "workers": workers,
        "succeeded": sum(r["ok"] for r in results),
        "wall_s": time.perf_counter() - start,
        "quantities": {k: v.__dict__ | {"consistent": v.consistent()} for k, v in st.items()},
        "counts": _sum_counts(results),
        "failures": [
            {"trial": r["trial"], "seed": r["seed"], "reason": r["error"]}
            for r in results
            if not r["ok"]
        ],
        "trial_results": results,
    }
