"""Post-burst plateau choices of the T90 method (issue 13): gap or established, and their systematic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from svomflow.tasks.timing.background import BackgroundConfig, fit_background
from svomflow.tasks.timing.binning import BinnedCounts
from svomflow.tasks.timing.duration import DurationConfig, _plateau_start, durations


def _curve(step: float, rng: np.random.Generator | None = None) -> tuple[BinnedCounts, float]:
    """Burst 300 exp(-t/8) counts/s on 0-40 s over 400 counts/s, ``step`` counts/s more on 40-120 s.

    Returns the 1 s light curve (expected counts, or Poisson draws with ``rng``) and the true
    T90 of the burst alone.
    """
    lo = np.arange(-60.0, 300.0, 1.0)
    mid = lo + 0.5
    burst = np.where((mid > 0) & (mid < 40), 300.0 * np.exp(-mid / 8.0), 0.0)
    rate = 400.0 + burst + np.where((mid > 40) & (mid < 120), step, 0.0)
    counts = rate if rng is None else rng.poisson(rate).astype(float)
    cum = np.cumsum(burst)
    t90 = float(np.interp(0.95 * cum[-1], cum, lo + 1) - np.interp(0.05 * cum[-1], cum, lo + 1))
    return BinnedCounts(lo, lo + 1.0, counts, np.ones(lo.size)), t90


def test_plateau_start_is_where_the_excess_ends() -> None:
    bins, _ = _curve(step=50.0)  # 50 counts/s more until 120 s: the curve flattens there
    bk = fit_background(bins, BackgroundConfig(intervals=[(-60.0, -10.0), (200.0, 300.0)]))
    t_p = _plateau_start(bins, bk, 40.0, 5.0, 2.0)
    # a 5 s window starting at t holds 50 (120 - t) net counts, 2 sigma is 2 sqrt(2000) = 89
    assert t_p is not None and 117.0 <= t_p <= 120.0
    # nothing flat before the data end: None (no plateau), not the data end
    assert _plateau_start(bins, bk, 40.0, 400.0, 2.0) is None


def test_established_plateau_leaves_a_background_step_out_of_the_burst() -> None:
    """A 2 % background step after the burst (GRB 080916C n3) is burst for the fixed gap only."""
    bins, truth = _curve(step=8.0)
    bk = fit_background(bins, BackgroundConfig(intervals=[(-60.0, -12.0), (120.0, 300.0)]))
    bk = dataclasses.replace(bk, source=(0.0, 40.0))
    gap = durations(bins, bk, DurationConfig(n_sims=0))
    est = durations(bins, bk, DurationConfig(n_sims=0, post_plateau="established"))
    assert gap.t90 > 1.3 * truth  # the 640 counts of the step are accumulated as burst
    assert est.t90 == pytest.approx(truth, rel=0.1)
    assert est.post_plateau_start < 60.0 and est.background_intervals[-1][0] < 60.0
    assert gap.post_plateau_start == pytest.approx(120.0)
    # each choice carries the other as its systematic
    assert gap.t90_sys == pytest.approx(abs(gap.t90 - est.t90), rel=1e-6)
    assert est.t90_sys == pytest.approx(abs(gap.t90 - est.t90), rel=1e-6)
    # with simulated errors only the change beyond the statistical error is systematic:
    # stat^2 + sys^2 = change^2, so the total error is the change itself
    sim = durations(bins, bk, DurationConfig(n_sims=50))
    assert 0 < sim.t90_sys < abs(gap.t90 - est.t90)
    assert sim.t90_err == pytest.approx(abs(gap.t90 - est.t90), rel=1e-6)


def test_plateau_choice_agrees_without_a_step() -> None:
    bins, truth = _curve(step=0.0, rng=np.random.default_rng(3))
    bk = fit_background(bins)
    gap = durations(bins, bk, DurationConfig(n_sims=100))
    est = durations(bins, bk, DurationConfig(n_sims=100, post_plateau="established"))
    for d in (gap, est):
        assert abs(d.t90 - truth) < 3 * d.t90_err
    assert abs(gap.t90 - est.t90) < 2 * gap.t90_err


def test_qt90_product_states_the_systematic_and_the_intervals() -> None:
    from svomflow.products.ogip import TimeReference
    from svomflow.tasks.vhf.fits_products import ProductHeader, t90_hdus

    bins, _ = _curve(step=8.0)
    bk = fit_background(bins, BackgroundConfig(intervals=[(-60.0, -12.0), (120.0, 300.0)]))
    bk = dataclasses.replace(bk, source=(0.0, 40.0))
    d = durations(bins, bk, DurationConfig(n_sims=20), band_kev=(50.0, 300.0))
    head = ProductHeader("SVOM", "GRM", 1000.0, TimeReference(mjdref=51910.0))
    hdus = t90_hdus(d, head, flags=[])
    table = hdus[1]
    assert table.data["T90_SYS"][0] == pytest.approx(d.t90_sys) and d.t90_sys > 0
    assert table.data["POSTPLAT"][0] == pytest.approx(120.0)
    assert table.header["BKGINT"] == "[-60.0,-12.0],[120.0,300.0]"
    assert table.header["PLATMODE"] == "gap"
    assert table.columns["T90_SYS"].unit == "s"
