"""The Monte Carlo bench: statistics from known inputs, counts truth, and a small parallel run."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.errors import ConfigError
from svomflow.instruments.spectra import Spectrum
from svomflow.simulation.bench import (
    bench_statistics,
    counts_durations,
    grm_band_efficiency,
    run_bench,
    trial_seeds,
)
from svomflow.simulation.grb import GRBModel, NorrisPulse, SpectralEvolution


def _trials(
    rng: np.random.Generator, n: int, sigma: float, reported: float, bias: float
) -> list[dict]:
    out = []
    for i in range(n):
        est = 10.0 + bias + rng.normal(0.0, sigma)
        out.append(
            {"ok": True, "trial": i, "quantities": {"t90": (est, reported, 10.0, "s", 0.68)}}
        )
    out.append({"ok": False, "trial": n, "quantities": {}, "error": "x", "seed": 1})
    return out


def test_statistics_recover_bias_scatter_and_coverage() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    st = bench_statistics(_trials(rng, n, sigma=0.5, reported=0.5, bias=0.2))["t90"]
    assert st.n == n
    assert abs(st.bias - 0.2) < 4 * 0.5 / np.sqrt(n)
    assert abs(st.scatter - 0.5) < 4 * 0.5 / np.sqrt(2 * n)
    # with a bias of 0.4 sigma the coverage of |d| < sigma is P(|z + 0.4| < 1) = 0.6528
    p = 0.6528
    assert abs(st.coverage - p) < 4 * np.sqrt(p * (1 - p) / n)
    assert st.coverage_low < st.coverage < st.coverage_high
    # errors reported 3x too small: coverage far below nominal, flagged inconsistent
    bad = bench_statistics(_trials(rng, 400, sigma=0.5, reported=0.5 / 3, bias=0.0))["t90"]
    assert not bad.consistent() and bad.coverage < 0.4


def test_counts_truth_equals_photon_truth_for_flat_efficiency() -> None:
    model = GRBModel(
        (NorrisPulse(0.0, 1.0, 5.0), NorrisPulse(8.0, 0.5, 3.0, 0.6)),
        Spectrum("band", alpha=-1.0, beta=-2.3, epeak=300.0),
        peak_flux=10.0,
        ra_deg=10.0,
        dec_deg=20.0,
    )
    flat = counts_durations(model, (50.0, 300.0), lambda e: np.ones_like(e))
    photon = model.durations(50.0, 300.0)
    assert flat["t90"] == pytest.approx(photon["t90"], rel=2e-3)
    assert flat["t90_start"] == pytest.approx(photon["t90_start"], abs=5e-3)


def test_grm_folded_truth_follows_redistribution() -> None:
    """The GRM band truth folds the response: shape-independent without evolution, not with it."""
    truth = {
        "sources": [{"ra_deg": 10.0, "dec_deg": 20.0}],
        "attitude": {"ra_deg": 12.0, "dec_deg": 25.0, "roll_deg": 0.0},
    }
    eff, prange = grm_band_efficiency(truth, (50.0, 300.0))
    # photons far above the band still give counts in it (Compton tail), below it none
    assert eff(np.array([1000.0]))[0] > 0.02 * eff(np.array([150.0]))[0]
    assert eff(np.array([20.0]))[0] < 1e-3 * eff(np.array([150.0]))[0]
    pulses = (NorrisPulse(0.0, 1.0, 5.0), NorrisPulse(8.0, 0.5, 3.0, 0.6))
    kw = {"peak_flux": 10.0, "ra_deg": 10.0, "dec_deg": 20.0}
    flat = GRBModel(pulses, Spectrum("band", alpha=-1.0, beta=-2.3, epeak=300.0), **kw)
    folded = counts_durations(flat, (50.0, 300.0), eff, n_sub=96, photon_range_kev=prange)
    photon = flat.durations(50.0, 300.0)
    assert folded["t50"] == pytest.approx(photon["t50"], rel=2e-3)
    assert folded["t90"] == pytest.approx(
        counts_durations(flat, (50.0, 300.0), eff)["t90"], rel=1e-4
    )
    evolving = GRBModel(
        pulses,
        Spectrum("band", alpha=-1.0, beta=-2.3, epeak=300.0),
        evolution=SpectralEvolution(mode="decay", decay_time_s=5.0, decay_index=1.0),
        **kw,
    )
    band_only = counts_durations(evolving, (50.0, 300.0), eff)
    folded = counts_durations(evolving, (50.0, 300.0), eff, n_sub=96, photon_range_kev=prange)
    # with hard-to-soft evolution the redistributed counts change T90 (by ~0.2 %, 0.03 s here),
    # far above the integration error that the equality without evolution bounds
    assert abs(folded["t90"] - band_only["t90"]) > 0.01


def test_trial_seeds_are_distinct_and_reproducible() -> None:
    a = trial_seeds(5, 20)
    assert a == trial_seeds(5, 20) and len(set(a)) == 20 and a != trial_seeds(6, 20)


def test_bad_requests_are_user_errors() -> None:
    with pytest.raises(ConfigError, match="no bench"):
        run_bench("nope", trials=1, seed=0, scenario="short_grb")
    with pytest.raises(ConfigError, match="unknown scenario"):
        run_bench("vhf", trials=1, seed=0, scenario="no_such_scenario")


def test_small_parallel_bench_on_short_grbs() -> None:
    rep = run_bench("vhf", trials=4, seed=2, scenario="short_grb", workers=2)
    assert rep["succeeded"] == 4 and rep["failures"] == []
    q = rep["quantities"]
    # a 0.5 s burst: GRM T90 within a few reported errors of the counts truth on average
    t90 = q["t90_GRM"]
    assert t90["n"] == 4 and abs(t90["bias"]) < 4 * max(
        t90["bias_err"], t90["median_reported_error"]
    )
    assert (
        q["position_ECLAIRS"]["median_abs_error"]
        < 3 * q["position_ECLAIRS"]["median_reported_error"]
    )


@pytest.mark.slow
def test_bright_bench_positions_and_t90_start() -> None:
    """Bright long GRB, 40 trials: ECLAIRs positions inside r90 in >= 90 % (binomial), median < 10'."""
    rep = run_bench("vhf", trials=40, seed=11, scenario="bright_long_grb", workers=2)
    pos = rep["quantities"]["position_ECLAIRS"]
    assert pos["median_abs_error"] < 10.0
    assert pos["coverage_high"] >= 0.90
    start = rep["quantities"]["t90_start_GRM"]
    assert start["coverage_low"] <= 0.68 <= start["coverage_high"]


@pytest.mark.slow
def test_short_bench_duration_errors_cover() -> None:
    """Short GRB, 300 trials: the 1-sigma T90/T50 errors cover the counts truth ~68 % of the time.

    50 trials gave GRM coverages of 0.52-0.58 by chance (the 95 % binomial interval at n = 50
    is +-0.13 wide); 300 trials resolve an under-coverage of 0.1 (issue 4 follow-up).
    """
    rep = run_bench("vhf", trials=300, seed=2, scenario="short_grb", workers=2)
    q = rep["quantities"]
    for name in ("t90_GRM", "t50_GRM", "t90_ECLAIRS", "t50_ECLAIRS"):
        st = q[name]
        assert st["n"] >= 290, name
        # not under-covering (the case that misleads a circular), and not grossly inflated
        assert st["coverage_high"] >= 0.68 and st["coverage"] < 0.85, (name, st["coverage"])
        assert 0.8 < st["pull_std"] < 1.25, (name, st["pull_std"])


def test_match_sources_is_one_to_one_closest_first() -> None:
    from svomflow.simulation.bench import match_sources

    inj = [
        {"name": "a", "ra_deg": 150.0, "dec_deg": 20.0},
        {"name": "b", "ra_deg": 150.0, "dec_deg": 20.0 + 60 / 3600},
    ]
    # detection 0 is 10" from a and 50" from b; detection 1 is 5" from b; detection 2 is far
    found = [
        {"ra_deg": 150.0, "dec_deg": 20.0 + 10 / 3600},
        {"ra_deg": 150.0, "dec_deg": 20.0 + 65 / 3600},
        {"ra_deg": 151.0, "dec_deg": 20.0},
    ]
    matched, false = match_sources(inj, found, 120.0)
    assert matched == {"a": 0, "b": 1} and false == [2]
    # a detection cannot serve two sources: b alone is left unmatched when only 0 exists
    matched, false = match_sources(inj, found[:1], 120.0)
    assert matched == {"a": 0} and false == []


def test_statistics_pool_several_samples_per_trial() -> None:
    trials = [
        {
            "ok": True,
            "quantities": {"p": [(1.0, 2.0, 0.0, "arcsec", 0.9), (3.0, 2.0, 0.0, "arcsec", 0.9)]},
        },
        {"ok": True, "quantities": {"p": [(0.5, 2.0, 0.0, "arcsec", 0.9)]}},
    ]
    st = bench_statistics(trials)["p"]
    assert st.n == 3 and st.coverage == pytest.approx(2 / 3)


def test_mxt_trial_finds_the_afterglow_inside_its_radius() -> None:
    """One MXT field through merge -> calibrate (simulated CALDB) -> detect."""
    from svomflow.simulation.bench import run_trial

    r = run_trial("mxt", "mxt_one_source", [], [], 3)
    assert r["ok"], r["error"]
    c = r["counts"]
    assert c["injected"] == 1 and c["detected"] == 1 and c["false"] <= 1
    sep, r90, *_ = r["quantities"]["position_afterglow"]
    # one trial: inside 2 x r90 (a 90 % radius is exceeded by 2x far less than 1 % of the time)
    assert 0 < r90 < 60 and sep < 2 * r90
