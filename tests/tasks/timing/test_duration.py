"""T90/T50 on simulated FRED bursts (bias, 68 % coverage) and on GRB 080916C (GBM n3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from svomflow.errors import InputDataError
from svomflow.tasks.timing.background import BackgroundConfig, fit_background
from svomflow.tasks.timing.binning import BinnedCounts, uniform_bins
from svomflow.tasks.timing.duration import DurationConfig, _crossing, durations


def _monte_carlo(fred, n_trials: int, seed: int, dt: float = 0.256, **kw) -> np.ndarray:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_trials):
        b = fred(rng, **kw)
        bins = uniform_bins(b.times, dt, b.gti)
        d = durations(bins, fit_background(bins), DurationConfig(n_sims=100, seed=i))
        rows.append(
            (
                d.t90 - b.t90,
                d.t90_err,
                d.t90_start - b.t90_start,
                d.t90_start_err,
                d.t50 - b.t50,
                d.t50_err,
            )
        )
    return np.array(rows)


def test_t90_unbiased_and_covered(fred) -> None:  # type: ignore[no-untyped-def]
    r = _monte_carlo(fred, 100, seed=0)
    n = r.shape[0]
    for dev_col, err_col in ((0, 1), (2, 3), (4, 5)):
        dev = r[:, dev_col]
        # no significant bias: the mean offset is within 3 standard errors
        assert abs(dev.mean()) < 3 * dev.std(ddof=1) / np.sqrt(n)
        # the reported 1-sigma error covers the truth in about 68 % of trials
        cover = np.mean(np.abs(dev) < r[:, err_col])
        assert abs(cover - 0.68) < 3 * np.sqrt(0.68 * 0.32 / n)


@pytest.mark.slow
def test_t90_coverage_faint_and_bright_slow(fred) -> None:  # type: ignore[no-untyped-def]
    # bins about T90 / 40 (interpolation within coarser bins biases short pulses low)
    for kw in ({"n_source": 20000}, {"n_source": 6000, "tau1": 1.0, "tau2": 0.5, "dt": 0.064}):
        r = _monte_carlo(fred, 300, seed=1, **kw)
        dev = r[:, 0]
        # with 300 bright trials a small negative offset is detectable (0.3-0.7 % of T90 for
        # the FRED pulse: the part of its exponential tail below the noise falls into the
        # post-burst plateau, as with any Koshut-style measurement); require it to be
        # insignificant or below half of the reported error
        assert abs(dev.mean()) < max(
            3 * dev.std(ddof=1) / np.sqrt(dev.size), 0.5 * np.median(r[:, 1])
        )
        assert abs(np.mean(np.abs(dev) < r[:, 1]) - 0.68) < 3 * np.sqrt(0.68 * 0.32 / dev.size)


def test_crossing_interpolates_within_bins() -> None:
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    s = np.array([0.0, 0.0, 10.0, 10.0])
    assert _crossing(edges, s, 2.5) == pytest.approx(1.25)
    # a noisy curve crossing three times: mean of the first and last crossing
    s2 = np.array([0.0, 6.0, 4.0, 10.0])
    assert _crossing(edges, s2, 5.0) == pytest.approx(0.5 * (5 / 6 + 2 + 1 / 6))


def test_no_burst_is_an_error() -> None:
    rng = np.random.default_rng(5)
    t = np.sort(rng.uniform(0, 100, 30000))
    bins = uniform_bins(t, 0.5, np.array([[0.0, 100.0]]))
    with pytest.raises(InputDataError, match="no burst"):
        fit_background(bins)


def test_burst_at_edge_is_an_error(fred) -> None:  # type: ignore[no-untyped-def]
    b = fred(np.random.default_rng(2))
    cut = b.times[b.times > 3.0]  # data start after the burst began
    bins = uniform_bins(cut, 0.256, np.array([[3.0, 120.0]]))
    bk = fit_background(bins, BackgroundConfig(intervals=[(60.0, 120.0)]))
    with pytest.raises(InputDataError, match="plateau"):
        durations(bins, bk, DurationConfig(n_sims=0))


def test_gap_in_window_is_an_error(fred) -> None:  # type: ignore[no-untyped-def]
    b = fred(np.random.default_rng(3))
    gti = np.array([[-60.0, 5.0], [6.0, 120.0]])
    t = b.times[(b.times < 5.0) | (b.times >= 6.0)]
    bins = uniform_bins(t, 0.256, gti)
    bk = fit_background(bins)
    with pytest.raises(InputDataError, match="gap"):
        durations(bins, bk, DurationConfig(n_sims=0))


def test_grb080916c_n3_t90(shared_data: Path) -> None:
    from svomflow.products.events import read_events

    path = shared_data / "gbm" / "bn080916009" / "glg_tte_n3_bn080916009_v01.fit.gz"
    ev = read_events(path)
    sel = ev.in_band(50.0, 300.0)
    bins = uniform_bins(ev.time[sel], 0.064, ev.gti)
    d = durations(bins, fit_background(bins), DurationConfig(n_sims=200), band_kev=(50, 300))
    catalog, catalog_err = 62.977, 0.810  # GBM catalog T90 and its error (n3+n4 summed)
    # single detector vs the catalog: agree within 3 combined sigma (the error includes the
    # background-interval systematic: this burst's background is not one polynomial)
    assert abs(d.t90 - catalog) < 3 * np.hypot(d.t90_err, catalog_err)
    assert 0.0 < d.t90_start < 5.0
    # the statistical part: 6.4 s here, the background noise of a window to T0 + 190 s
    assert 0.3 < np.sqrt(d.t90_err**2 - d.t90_sys**2) < 8.0


def test_binned_counts_input_validation() -> None:
    bins = BinnedCounts(np.arange(3.0), np.arange(1.0, 4.0), np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="one band"):
        fit_background(bins)


def _short_mc(fred, n_trials: int, seed: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Short FRED bursts (T90 about 0.1-0.9 s) analysed with the data-driven bin width."""
    from svomflow.tasks.timing.adaptive import durations_from_events

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_trials):
        tau = 10 ** rng.uniform(-1.6, -0.6)
        b = fred(rng, n_source=1000, background_rate=300.0, tau1=tau, tau2=tau, span=(-20.0, 20.0))
        a = durations_from_events(b.times, b.gti, DurationConfig(n_sims=100, seed=i))
        d = a.durations
        rows.append((d.t90 - b.t90, d.t90_err, b.t90, a.dt_s))
    return np.array(rows)


def test_short_burst_t90_unbiased_and_covered(fred) -> None:  # type: ignore[no-untyped-def]
    # a fixed 256 ms binning gave T90 of several seconds here (the old problem)
    r = _short_mc(fred, 16, seed=3)
    pull = r[:, 0] / r[:, 1]
    n = pull.size
    assert abs(pull.mean()) < 3 / np.sqrt(n)  # no bias beyond 3 standard errors
    cover = np.mean(np.abs(r[:, 0]) < r[:, 1])
    assert abs(cover - 0.68) < 3 * np.sqrt(0.68 * 0.32 / n)
    assert np.all(r[:, 3] <= 0.032)  # bins a small fraction of the burst, not 256 ms


@pytest.mark.slow
def test_short_burst_t90_coverage_slow(fred) -> None:  # type: ignore[no-untyped-def]
    r = _short_mc(fred, 150, seed=4)
    rel = r[:, 0] / r[:, 2]
    assert abs(rel.mean()) < 3 * rel.std(ddof=1) / np.sqrt(rel.size)
    cover = np.mean(np.abs(r[:, 0]) < r[:, 1])
    assert abs(cover - 0.68) < 3 * np.sqrt(0.68 * 0.32 / rel.size)


def test_rearranged_crossing() -> None:
    from svomflow.tasks.timing.duration import _rearranged

    edges = np.array([0.0, 1.0, 2.0, 3.0])
    # monotone curve: the rearranged crossing is the crossing
    s = np.array([0.0, 0.0, 10.0, 10.0])
    assert _rearranged(edges, s, 2.5) == pytest.approx(1.25)
    # noisy curve: time spent below the level, 5/6 + 1/6 + 1/6 of a bin
    s2 = np.array([0.0, 6.0, 4.0, 10.0])
    assert _rearranged(edges, s2, 5.0) == pytest.approx(5 / 6 + 0.5 + 1 / 6)
    assert np.isnan(_rearranged(edges, s2, -1.0))


def test_choose_bin_width() -> None:
    from svomflow.tasks.timing.adaptive import choose_bin_width

    assert choose_bin_width(0.5) == pytest.approx(0.004)  # 0.5 / 64 = 7.8 ms -> 4 ms
    assert choose_bin_width(0.01) == pytest.approx(0.001)  # clipped to 1 ms
    assert choose_bin_width(500.0) == pytest.approx(0.512)  # <= 1 s, power of two ms


def test_soft_tail_kept_in_source(fred) -> None:  # type: ignore[no-untyped-def]
    # a faint slow tail (0.15 of the counts, 60 s decay) after a bright pulse: the source
    # must reach well into the tail, not stop where the bright pulse ends
    rng = np.random.default_rng(11)
    b = fred(rng, n_source=20000, background_rate=300.0, tau1=2.0, tau2=2.0)
    tail = rng.exponential(20.0, rng.poisson(3000)) + 5.0
    tail = tail[tail < 120.0]
    t = np.sort(np.concatenate([b.times, tail]))
    bins = uniform_bins(t, 0.256, b.gti)
    bk = fit_background(bins)
    assert bk.source[1] > 40.0
    assert bk.order <= 1


def _refit_setup(fred):  # type: ignore[no-untyped-def]
    from svomflow.tasks.timing.duration import _BackgroundRefit

    b = fred(np.random.default_rng(5))
    bins = uniform_bins(b.times, 0.256, b.gti)
    bkg = fit_background(bins, BackgroundConfig(tail_term=False))  # the polynomial alone
    window = np.flatnonzero((bins.lo >= -40.0) & (bins.hi <= 80.0))
    a = bkg.design(bins.lo, bins.hi) * bins.exposure[:, None]
    mu = a @ bkg.coeffs
    return bins, bkg, window, a, mu, _BackgroundRefit(bins, bkg, window, mu[window])


def test_background_refit_matches_exact_refit(fred) -> None:  # type: ignore[no-untyped-def]
    from svomflow.tasks.timing.background import _in_intervals, fit_poisson_polynomial

    bins, bkg, window, a, mu, refit = _refit_setup(fred)
    fit = _in_intervals(bins.lo, bins.hi, bkg.intervals) & (bins.exposure > 0)
    out = fit.copy()
    out[window] = False
    sigma = np.sqrt(np.diag(bkg.cov))
    rng = np.random.default_rng(1)
    for _ in range(5):
        y = rng.poisson(mu).astype(float)  # a background-only light curve drawn from the model
        exact = fit_poisson_polynomial(
            y[fit], bkg.design(bins.lo, bins.hi)[fit], bins.exposure[fit]
        )
        assert exact is not None
        score_out = a[out].T @ ((y[out] - mu[out]) / mu[out])
        lin = refit.coeffs(y[window], score_out)[0]
        # the one-step refit is the exact refit to first order: the difference is far below
        # the coefficients' own scatter (second order in the relative count noise)
        assert np.all(np.abs(lin - exact[0]) < 0.05 * sigma)


def test_background_refit_has_the_fit_covariance(fred) -> None:  # type: ignore[no-untyped-def]
    # the refitted coefficients scatter with the fit's covariance (the window's share of the
    # noise comes from the simulated counts, the rest from the outside draw), not twice it
    _, bkg, window, _, mu, refit = _refit_setup(fred)
    rng = np.random.default_rng(2)
    n = 2000
    outside = refit.outside_scores(rng, n)
    c = np.array([refit.coeffs(rng.poisson(mu[window]).astype(float), o)[0] for o in outside])
    ratio = np.var(c, axis=0, ddof=1) / np.diag(bkg.cov)
    # the sample variance of n Gaussian draws has relative standard deviation sqrt(2 / n)
    assert np.all(np.abs(ratio - 1.0) < 5 * np.sqrt(2.0 / n))


def test_background_refit_with_a_tail_term_matches_exact_refit() -> None:
    """With the tail term the linearised refit is the joint fit's (polynomial part returned)."""
    from svomflow.simulation.drift_tail import DriftTailScenario, simulate_drift_tail
    from svomflow.tasks.timing.background import _in_intervals, fit_poisson_polynomial
    from svomflow.tasks.timing.duration import _BackgroundRefit

    b = simulate_drift_tail(
        DriftTailScenario(drift="linear", tail_fraction=0.2), np.random.default_rng(0)
    )
    bins = uniform_bins(b.times, 0.5, b.gti)
    bkg = fit_background(bins)
    assert bkg.has_tail
    k = bkg.order + 1
    params, cov = bkg.fit_params()
    assert params.size == k + 1 and cov.shape == (k + 1, k + 1)
    window = np.flatnonzero((bins.lo >= -20.0) & (bins.hi <= 90.0))
    a = bkg.fit_design(bins.lo, bins.hi) * bins.exposure[:, None]
    mu = a @ params
    refit = _BackgroundRefit(bins, bkg, window, mu[window])
    fit = _in_intervals(bins.lo, bins.hi, bkg.intervals) & (bins.exposure > 0)
    out = fit.copy()
    out[window] = False
    sigma = np.sqrt(np.diag(cov))[:k]
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(8):
        y = rng.poisson(mu).astype(float)
        exact = fit_poisson_polynomial(
            y[fit], bkg.fit_design(bins.lo, bins.hi)[fit], bins.exposure[fit]
        )
        assert exact is not None
        if exact[0][k] <= 0:
            continue  # the bound applies: compared below through the conditional fit
        lin = refit.coeffs(y[window], a[out].T @ ((y[out] - mu[out]) / mu[out]))[0]
        assert np.all(np.abs(lin - exact[0][:k]) < 0.05 * sigma)
        checked += 1
    assert checked >= 4


def _rearranged_reference(edges, s, level):  # type: ignore[no-untyped-def]
    """The rearranged crossing written per level: time spent below it, linear in each bin."""
    total = 0.0
    reached = False
    left = False  # some bin not wholly below the level
    for k in range(len(edges) - 1):
        a, b, w = s[k], s[k + 1], edges[k + 1] - edges[k]
        if a < level or b < level:
            reached = True
        if not (a < level and b < level):
            left = True
        if a < level and b < level:
            total += w
        elif a < level <= b:
            total += w * (level - a) / (b - a)
        elif b < level <= a:
            total += w * (a - level) / (a - b)
    if not reached or not left:
        return np.nan
    return edges[0] + total


def test_rearranged_levels_are_each_levels_crossing() -> None:
    from svomflow.tasks.timing.duration import _rearranged_levels

    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(3, 60))
        edges = np.cumsum(rng.uniform(0.1, 2.0, n + 1))
        s = np.concatenate([[0.0], np.cumsum(rng.normal(1.0, 2.0, n))])
        lo, hi = s.min(), s.max()
        levels = lo + np.array([0.05, 0.95, 0.25, 0.75, -0.1, 1.1]) * (hi - lo)
        got = _rearranged_levels(edges, s, levels)
        want = np.array([_rearranged_reference(edges, s, v) for v in levels])
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
        assert np.isnan(got[4]) and np.isnan(got[5])  # below the curve, above it
