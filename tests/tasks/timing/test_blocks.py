"""Bayesian blocks: same change points as astropy, kernels against a NumPy reference, fast path."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import bayesian_blocks as astropy_bb
from svomflow.tasks.timing import (
    BayesianBlocksConfig,
    bayesian_blocks,
    bayesian_blocks_binned,
    bayesian_blocks_fast,
    blocks_from_events,
    calibrate_ncp_prior,
)
from svomflow.tasks.timing._kernels import bb_events_dp, bb_measures_dp, bb_peel


def _burst_events(rng: np.random.Generator, n: int) -> np.ndarray:
    """Background plus a Gaussian pulse plus a short spike."""
    nb = n // 2
    ns = n // 3
    return np.concatenate(
        [
            rng.uniform(0.0, 100.0, nb),
            rng.normal(40.0, 4.0, ns),
            rng.normal(70.0, 0.3, n - nb - ns),
        ]
    )


@pytest.mark.parametrize("n", [2, 7, 60, 500, 3000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_same_edges_as_astropy(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = _burst_events(rng, n)  # unsorted on purpose
    for kwargs in ({}, {"p0": 0.01}, {"gamma": 0.2}, {"ncp_prior": 2.5}):
        ours = bayesian_blocks(t, **kwargs)
        ref = astropy_bb(t, **kwargs)
        np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("seed", [3, 4])
def test_events_with_ties_same_as_astropy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # 1 ms time tags: many duplicate times, which both codes turn into cell counts
    t = np.round(_burst_events(rng, 4000), 3)
    assert np.unique(t).size < t.size
    np.testing.assert_array_equal(bayesian_blocks(t), astropy_bb(t))


@pytest.mark.parametrize("seed", [5, 6])
def test_events_with_weights_same_as_astropy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.unique(rng.uniform(0, 50, 1500))
    x = rng.poisson(3.0 + 20.0 * (np.abs(t - 25) < 3)).astype(float)  # zeros included
    assert np.any(x == 0)
    np.testing.assert_array_equal(
        bayesian_blocks(t, x, fitness="events"), astropy_bb(t, x, fitness="events")
    )


def test_all_singleton_partition_keeps_every_edge() -> None:
    # astropy's peeling array has N slots for N+1 edges: when every cell is its own block it
    # overwrites one change point with 0 (3 cells here: it returns 3 edges instead of 4).
    t = np.array([1.44159613, 5.11821625, 9.50463696])
    x = np.array([3.9674528, 9.56237541, 5.4137859])
    s = np.array([1.92297417, 0.96774718, 1.13498967])
    # fitness (sum wx)^2 / (2 sum w): three blocks 62.32 - 3 > two blocks 58.95 - 2 > one 56.71 - 1
    ours = bayesian_blocks(t, x, s, fitness="measures", ncp_prior=1.0)
    np.testing.assert_allclose(ours, [t[0], 0.5 * (t[0] + t[1]), 0.5 * (t[1] + t[2]), t[2]])
    assert astropy_bb(t, x, s, fitness="measures", ncp_prior=1.0).size == 3


@pytest.mark.parametrize("n", [4, 200, 2500])
@pytest.mark.parametrize("seed", [0, 1])
def test_measures_same_edges_as_astropy(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 10, n))
    sigma = rng.uniform(0.5, 2.0, n)
    x = 5.0 + 4.0 * ((t > 3) & (t < 6)) + rng.normal(0, sigma)
    for kwargs in ({}, {"ncp_prior": 1.0}, {"p0": 0.2}):
        ours = bayesian_blocks(t, x, sigma, fitness="measures", **kwargs)
        ref = astropy_bb(t, x, sigma, fitness="measures", **kwargs)
        np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(
        bayesian_blocks(t, x, fitness="measures"), astropy_bb(t, x, fitness="measures")
    )


def test_input_errors_match_astropy() -> None:
    with pytest.raises(ValueError, match="integer counts"):
        bayesian_blocks([1.0, 2.0], [0.5, 1.0])
    with pytest.raises(ValueError, match="Repeated values"):
        bayesian_blocks([1.0, 1.0], [1, 2])
    with pytest.raises(ValueError, match="x must be specified"):
        bayesian_blocks([1.0, 2.0], fitness="measures")
    with pytest.raises(ValueError, match="sigma is specified"):
        bayesian_blocks([1.0, 2.0], sigma=1.0)
    with pytest.raises(TypeError, match="unexpected"):
        bayesian_blocks([1.0, 2.0], dt=0.1)


def test_other_fitness_delegates_to_astropy() -> None:
    t = np.arange(0, 10, 0.1)
    x = (np.random.default_rng(0).uniform(size=t.size) < 0.3).astype(float)
    np.testing.assert_array_equal(
        bayesian_blocks(t, x, fitness="regular_events", dt=0.1),
        astropy_bb(t, x, fitness="regular_events", dt=0.1),
    )


def _reference_dp(fit: np.ndarray, ncp: float) -> np.ndarray:
    """Plain NumPy O(N^2) programme over a precomputed fitness matrix fit[k, r]."""
    n = fit.shape[0]
    best = np.zeros(n)
    last = np.zeros(n, dtype=np.int64)
    for r in range(n):
        a = fit[: r + 1, r] - ncp
        a[1:] += best[:r]
        last[r] = int(np.argmax(a))
        best[r] = a[last[r]]
    return last


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_kernels_against_numpy_reference(batch: int) -> None:
    rng = np.random.default_rng(11)
    n = 300
    edges = np.concatenate([[0.0], np.cumsum(rng.exponential(1.0, n))])
    counts = rng.poisson(2.0 + 6.0 * (np.arange(n) > 150)).astype(float)
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    nk = cum[None, 1:] - cum[:-1, None]
    tk = edges[None, 1:] - edges[:-1, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        fit = np.where(nk > 0, nk * np.log(nk / tk), 0.0)
    fit[np.tril_indices(n, -1)] = -np.inf
    last = bb_events_dp(edges[-1] - edges, cum, 3.0, batch)
    np.testing.assert_array_equal(last, _reference_dp(fit, 3.0))

    x = rng.normal(0, 1, n) + 3 * (np.arange(n) > 100)
    w = rng.uniform(0.5, 2.0, n)
    a_cum = np.concatenate([[0.0], np.cumsum(w)])
    b_cum = np.concatenate([[0.0], np.cumsum(w * x)])
    ak = 0.5 * (a_cum[None, 1:] - a_cum[:-1, None])
    bk = -(b_cum[None, 1:] - b_cum[:-1, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        fitm = bk * bk / (4 * ak)
    fitm[np.tril_indices(n, -1)] = -np.inf
    lastm = bb_measures_dp(a_cum, b_cum, 2.0, batch)
    np.testing.assert_array_equal(lastm, _reference_dp(fitm, 2.0))
    # peeling: edges are strictly increasing, start at 0 and end at n
    cps = bb_peel(last)
    assert cps[0] == 0 and cps[-1] == n and np.all(np.diff(cps) > 0)


def test_binned_uses_true_edges_no_end_bias() -> None:
    # constant rate in equal bins must give one block (astropy issue 14017 splits the ends
    # when bin centres are passed as t, because the first and last cells are half-width)
    counts = np.full(400, 50.0)
    edges = np.linspace(0.0, 40.0, 401)
    out = bayesian_blocks_binned(edges, counts, ncp_prior=6.0)
    np.testing.assert_array_equal(out, [0.0, 40.0])
    with pytest.raises(ValueError, match="one more"):
        bayesian_blocks_binned(edges[:-1], counts)
    with pytest.raises(ValueError, match="increasing"):
        bayesian_blocks_binned(edges[::-1], counts)


def test_fast_path_close_to_exact() -> None:
    rng = np.random.default_rng(21)
    t = np.sort(_burst_events(rng, 20000))
    exact = bayesian_blocks(t, ncp_prior=8.0)
    fast, res = bayesian_blocks_fast(t, resolution=0.01, ncp_prior=8.0)
    assert res == pytest.approx(0.01)
    # every exact change point of the strong structure has a fast one within a few ticks
    dist = np.array([np.min(np.abs(fast - e)) for e in exact])
    assert np.mean(dist <= 3 * res) >= 0.8
    assert abs(fast.size - exact.size) <= max(3, exact.size // 4)


def test_fast_path_widens_tick_to_max_cells() -> None:
    t = np.sort(np.random.default_rng(0).uniform(0, 1000, 5000))
    _, res = bayesian_blocks_fast(t, resolution=1e-4, max_cells=1000)
    assert res == pytest.approx(1.0, rel=1e-3)


def test_blocks_from_events_counts_and_rates() -> None:
    rng = np.random.default_rng(3)
    t = _burst_events(rng, 3000)
    b = blocks_from_events(t, BayesianBlocksConfig(ncp_prior=6.0))
    assert b.counts.sum() == t.size
    assert b.resolution_s == 0.0
    peak = np.argmax(b.rate)
    assert 69.0 < 0.5 * (b.edges[peak] + b.edges[peak + 1]) < 71.0  # the spike at t=70


def test_calibrate_ncp_prior_gives_stated_false_rate() -> None:
    ncp = calibrate_ncp_prior(300, false_positive_rate=0.1, n_sims=60, seed=1)
    assert 1.0 < ncp < 10.0
    # independent signal-free series: the rate of spurious splits is near 10 %
    rng = np.random.default_rng(99)
    n_trials = 150
    split = sum(
        bayesian_blocks(rng.uniform(0, 1, 300), ncp_prior=ncp).size > 2 for _ in range(n_trials)
    )
    # binomial 3-sigma band around 0.1 plus the calibration's own spread (60 sims)
    assert split / n_trials < 0.1 + 3 * np.sqrt(0.1 * 0.9 / n_trials) + 0.08
    assert split / n_trials > 0.1 - 3 * np.sqrt(0.1 * 0.9 / n_trials) - 0.08


def test_events_all_at_one_time_give_astropys_single_edge() -> None:
    """Duplicated time tags only (corpus mxt-094): a ZeroDivisionError in the kernel."""
    import warnings

    t = np.full(5, 7.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # astropy divides 0 by 0 here
        ref = astropy_bb(t)
    np.testing.assert_array_equal(bayesian_blocks(t), ref)
    np.testing.assert_array_equal(bayesian_blocks(t), [7.5])
