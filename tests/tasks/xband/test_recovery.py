"""Recovered vs injected on simulated bursts: spectra, fluence, T90 and an injected lag.

The bursts have no spectral evolution, so the time-integrated spectrum is the injected one
and the injected parameters are the truth for the main-interval joint fit. The default suite
runs a few seeds with tolerances that a correct analysis fails with probability well below
1 %; the ``slow`` Monte Carlo checks bias and 1-sigma coverage over many seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from svomflow.simulation.xband_mc import (
    COVERAGE_1SIGMA,
    analyse_main,
    coverage_summary,
    read_burst,
    run_trial,
    trial_pulls,
)
from svomflow.tasks.xband.config import XbandAnalysisConfig
from svomflow.tasks.xband.hardness_lag import hardness_lag
from svomflow.tasks.xband.intervals import common_intervals, instrument_timing

CFG = XbandAnalysisConfig()


@pytest.mark.parametrize("seed", [101, 102])
def test_joint_fit_recovers_spectrum_and_fluence(
    burst_factory: Any, tmp_path: Path, seed: int
) -> None:
    b = burst_factory(tmp_path / "sim", seed, span=(-10.0, 20.0))
    res = analyse_main(b)
    pulls = trial_pulls(b, res)
    # |pull| < 3.3 fails with probability 0.1 % per quantity for a correct analysis
    assert all(abs(v) < 3.3 for v in pulls.values()), pulls
    # the GRM/ECLAIRs cross-normalisation is 1 for a correct pair of responses
    norm = res.fit.result.parameters["norm_grm_GRD01"]
    assert abs(norm.value - 1.0) < 3.3 * max(norm.error_high, -norm.error_low)


def test_t90_consistent_between_eclairs_and_grm_bands(bright_burst: dict[str, Any]) -> None:
    ev = read_burst(bright_burst)
    tm = {name: instrument_timing(e, CFG.intervals) for name, e in ev.instruments.items()}
    d_e, d_g = tm["eclairs"].durations, tm["grm"].durations
    assert d_e is not None and d_g is not None
    sigma = np.hypot(d_e.t90_err, d_g.t90_err)
    assert abs(d_e.t90 - d_g.t90) < 3.3 * sigma, (d_e.t90, d_g.t90, sigma)
    truth = bright_burst["truth"]["bands"]
    # without spectral evolution the band T90s are the same number
    assert abs(d_e.t90 - truth["4-120"]["t90"]) < 3.3 * d_e.t90_err
    assert abs(d_g.t90 - truth["50-300"]["t90"]) < 3.3 * d_g.t90_err


def test_injected_soft_lag_is_recovered(burst_factory: Any, tmp_path: Path) -> None:
    """Photons below 20 keV are delayed by 0.4 s: LAG_ECL (4-20 vs 20-120 keV) finds it."""
    b = burst_factory(
        tmp_path / "lag", 7, soft_shift_s=0.4, soft_below_kev=20.0, span=(-10.0, 20.0)
    )
    ev = read_burst(b)
    timings = [instrument_timing(e, CFG.intervals) for e in ev.instruments.values()]
    ci = common_intervals(timings, ev.instruments, CFG.intervals)
    res = hardness_lag(ev.instruments, ci, ev.t0, CFG.seed, config=CFG.temporal)
    out, products = res.rows, res.products
    lag = out["ECL"]["lag"]
    assert abs(lag["lag"] - 0.4) < 2.5 * lag["lag_err"], lag
    # the GRM bands (50-100 vs 100-300 keV) hold no delayed photon: no lag there
    g = out["GRM"]["lag"]
    assert abs(g["lag"]) < 3.3 * g["lag_err"], g
    assert {(p.type_code, p.instrument) for p in products} >= {("LAG", "ECL"), ("HR", "ECLGRM")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("peak_flux", "n"),
    [(15.0, 150), (5.0, 100)],
    ids=["bright", "faint"],
)
def test_monte_carlo_bias_and_coverage(peak_flux: float, n: int) -> None:
    """The flow's default analysis: no bias, 1-sigma coverage inside its binomial 99 % band.

    Band bursts (alpha -0.8, beta -2.4, Epeak 200 keV) 8 deg off axis, bright (peak flux
    15 ph/cm2/s) and faint (5: beta mostly unconstrained, the Band fit falling back to a
    CPL). The data span (-30, 45) s leaves background on both sides of the burst, as the
    minutes of X-band data of a real burst do. The analysis is the flow's
    (:func:`~svomflow.simulation.xband_mc.analyse_main`: mask-weighted ECLAIRs spectra,
    W-stat GRM spectra, profile flux errors); measured coverages are in docs/xband.md and
    ``benchmarks/mc_xband.py`` runs more.
    """
    seeds = range(1000, 1000 + n) if peak_flux >= 10 else range(3000, 3000 + n)
    trials = [run_trial(seed, span=(-30.0, 45.0), peak_flux=peak_flux) for seed in seeds]
    failed = [(t.seed, t.error) for t in trials if t.error]
    assert not failed, failed
    lo, hi = stats.binom.ppf([0.005, 0.995], n, COVERAGE_1SIGMA)
    # the GRM/ECLAIRs cross-normalisation is left out: the simulators and the responses
    # differ by ~0.6 % in it (a calibration matter, measured by the benchmark)
    for k in ("alpha", "epeak", "fluence"):
        s = coverage_summary(trials, k)
        print(k, s)
        assert s["n"] == n, (k, s)
        assert lo <= s["inside"] <= hi, (k, s)
        # the median pull of an unbiased estimate: 0 within 3 of its standard errors
        assert abs(s["median_pull"]) < 3 * 1.2533 / np.sqrt(n), (k, s)
        # the mean: within 3.3 standard errors of the truth
        assert abs(s["bias"]) < 3.3 * s["bias_err"], (k, s)
