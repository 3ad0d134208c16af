"""Poisson polynomial background: recovery, order selection, fallbacks, overrides."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.errors import InputDataError
from svomflow.tasks.timing.background import (
    BackgroundConfig,
    _design,
    _poisson_z,
    fit_background,
    fit_poisson_polynomial,
)
from svomflow.tasks.timing.binning import BinnedCounts, uniform_bins


def _lc(rng: np.random.Generator, rate_fn, dt: float = 1.0, span=(-100.0, 200.0), burst=True):  # type: ignore[no-untyped-def]
    lo = np.arange(span[0], span[1], dt)
    hi = lo + dt
    mid = 0.5 * (lo + hi)
    mu = rate_fn(mid) * dt
    if burst:
        mu = mu + 3000.0 * dt * np.exp(-0.5 * ((mid - 20.0) / 4.0) ** 2)
    return BinnedCounts(lo, hi, rng.poisson(mu).astype(float), np.full(lo.size, dt))


def test_recovers_linear_background_and_covers_truth() -> None:
    rate = lambda t: 50.0 + 0.1 * t  # noqa: E731
    pulls = []
    orders = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        bins = _lc(rng, rate)
        bk = fit_background(bins)
        orders.append(bk.order)
        # model at t = 20 s (under the burst) against the truth, in units of its error
        x = np.array([[20.0]])
        a = bk.design(x[0], x[0] + 1.0)[0]
        pred = a @ bk.coeffs
        err = np.sqrt(a @ bk.cov @ a)
        pulls.append((pred - rate(20.5)) / err)
        assert bk.source[0] < 12.0 and bk.source[1] > 28.0
    pulls = np.array(pulls)
    assert abs(np.mean(pulls)) < 3 / np.sqrt(pulls.size) + 0.15
    assert 0.6 < np.std(pulls) < 1.5
    assert np.mean(np.array(orders) == 1) > 0.8  # the LRT keeps order 1, rarely more


def test_lrt_prefers_order_zero_for_flat_data() -> None:
    picks = [
        fit_background(_lc(np.random.default_rng(s), lambda t: 0 * t + 20.0)).order
        for s in range(40)
    ]
    # false acceptance of order 1 at alpha = 0.01: expect ~0.4 of 40
    assert sum(p > 0 for p in picks) <= 4


def test_low_counts_poisson_fit_is_unbiased() -> None:
    # 0.5 counts per bin: least squares on sqrt(n) weights would be biased low
    est = []
    for s in range(30):
        rng = np.random.default_rng(100 + s)
        y = rng.poisson(0.5, 400).astype(float)
        lo = np.arange(400.0)
        d = _design(lo, lo + 1, 200.0, 200.0, 0)
        fit = fit_poisson_polynomial(y, d, np.ones(400))
        assert fit is not None
        est.append(fit[0][0])
    assert abs(np.mean(est) - 0.5) < 3 * 0.5**0.5 / np.sqrt(400 * 30)


def test_failed_higher_order_falls_back() -> None:
    # counts that a quadratic would drive negative between off-source intervals
    lo = np.arange(0.0, 100.0)
    y = np.where(lo < 30, 1.0, 0.0)
    y[lo >= 70] = 100.0
    d = _design(lo, lo + 1, 50.0, 50.0, 2)
    assert fit_poisson_polynomial(y, d, np.ones(100)) is None


def test_manual_intervals_override() -> None:
    rng = np.random.default_rng(7)
    bins = _lc(rng, lambda t: 0 * t + 40.0)
    cfg = BackgroundConfig(intervals=[(-100.0, -20.0), (80.0, 200.0)])
    bk = fit_background(bins, cfg)
    np.testing.assert_allclose(bk.intervals, [[-100.0, -20.0], [80.0, 200.0]])
    assert bk.source == (-20.0, 80.0)
    assert bk.rate(np.array([0.0]))[0] == pytest.approx(40.0, abs=4 * np.sqrt(40 / 200))


def test_blocks_method_and_errors() -> None:
    rng = np.random.default_rng(8)
    bins = _lc(rng, lambda t: 0 * t + 40.0)
    bk = fit_background(bins, BackgroundConfig(method="blocks"))
    assert bk.source[0] < 15 and bk.source[1] > 25
    flat = _lc(rng, lambda t: 0 * t + 40.0, burst=False)
    with pytest.raises(InputDataError, match="no burst"):
        fit_background(flat, BackgroundConfig(method="blocks"))
    with pytest.raises(InputDataError, match="no burst"):
        fit_background(flat)


def test_counts_and_variance_per_bin() -> None:
    rng = np.random.default_rng(9)
    t = np.sort(rng.uniform(0, 100, 5000))
    t = np.sort(np.concatenate([t, rng.normal(50, 2, 3000)]))
    bins = uniform_bins(t, 0.5, np.array([[0.0, 100.0]]))
    bk = fit_background(bins)
    mu, var = bk.counts(bins)
    assert mu.sum() == pytest.approx(5000.0, rel=0.05)
    assert np.all(var > 0)


def test_every_order_is_tested_a_rise_and_fall_gets_its_curvature() -> None:
    """A background that rises and falls back has no linear term over the two intervals.

    The sequential test stopped at the first order refused (order 1 here) and kept a
    constant 3 % below the background under the burst; every order is now tested against
    the one kept, and order 2 wins.
    """
    # 400 counts/s at both ends, 430 at the middle, where the burst is
    rate = lambda t: 400.0 * (1.0 + 0.3 * (t / 300.0) * (1.0 - t / 300.0))  # noqa: E731
    orders = []
    for seed in range(10):
        lo = np.arange(0.0, 300.0, 1.0)
        mu = rate(lo + 0.5)
        bins = BinnedCounts(
            lo, lo + 1.0, np.random.default_rng(seed).poisson(mu).astype(float), np.ones(lo.size)
        )
        cfg = BackgroundConfig(intervals=[(0.0, 100.0), (200.0, 300.0)])
        bk = fit_background(bins, cfg)
        assert bk.order_tests[1] < 6.6  # the linear term alone is not significant
        orders.append(bk.order)
    assert orders == [2] * len(orders)


def test_poisson_significance_is_scipy_stats_tail() -> None:
    # the Gaussian-equivalent sigma of P(N >= n | mu), as scipy.stats gives it, from counts
    # below, at and far above the expectation (the tail held at exp(-700) when it underflows)
    from scipy import stats

    n = np.array([0.0, 3.0, 5.0, 12.0, 60.0, 200.0, 1e4, 7.5])
    mu = np.array([1.0, 3.0, 2.0, 4.0, 30.0, 199.0, 10.0, 2.0])
    got = _poisson_z(n, mu)
    up = n > mu
    lsf = stats.poisson.logsf(n[up] - 1.0, mu[up])
    want = stats.norm.isf(np.exp(np.maximum(lsf, -700.0)))
    np.testing.assert_allclose(got[up], want, rtol=1e-12)
    assert np.all(got[~up] == 0.0)
    assert got[3] > 3.0 and np.isfinite(got[6]) and got[6] > 37.0
