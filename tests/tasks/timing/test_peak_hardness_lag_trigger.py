"""Peak flux, hardness ratio, time lag and rate trigger on simulated data; kernel references."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.errors import InputDataError
from svomflow.tasks.timing._kernels import sliding_window_max
from svomflow.tasks.timing.background import BackgroundModel
from svomflow.tasks.timing.hardness import hardness_ratio, net_counts
from svomflow.tasks.timing.lag import LagConfig, ccf, time_lag
from svomflow.tasks.timing.peak import PeakFluxConfig, peak_flux
from svomflow.tasks.timing.trigger import TriggerConfig, li_ma, rate_trigger


def _flat_background(rate: float, source=(-5.0, 40.0)) -> BackgroundModel:  # type: ignore[no-untyped-def]
    return BackgroundModel(
        coeffs=np.array([rate]),
        cov=np.array([[1e-6]]),
        t_ref=0.0,
        scale=1.0,
        intervals=np.array([[-60.0, -10.0], [50.0, 120.0]]),
        source=source,
    )


def test_sliding_window_kernel_against_numpy() -> None:
    rng = np.random.default_rng(0)
    c = rng.poisson(5.0, 10000).astype(float)
    b = np.full(c.size, 4.0)
    e = np.full(c.size, 0.01)
    valid = np.ones(c.size, np.int8)
    valid[5000:5003] = 0
    for w in (1, 7, 64):
        i, rate, cc, _ = sliding_window_max(c, b, e, valid, w)
        sums = np.convolve(c - b, np.ones(w), "valid") / (w * 0.01)
        bad = np.convolve(1 - valid, np.ones(w), "valid") > 0
        sums[bad] = -np.inf
        assert i == int(np.argmax(sums))
        assert rate == pytest.approx(sums.max())
        assert cc == pytest.approx(c[i : i + w].sum())


def test_peak_flux_recovers_simulated_peak(fred) -> None:  # type: ignore[no-untyped-def]
    pulls = []
    for seed in range(20):
        b = fred(np.random.default_rng(seed), n_source=20000)
        pk = peak_flux(
            b.times,
            b.gti,
            _flat_background(b.background_rate),
            PeakFluxConfig(timescales_s=[0.064, 1.024]),
        )
        one = pk[1]
        assert one.timescale_s == 1.024
        # the true 1.024 s peak rate of the expected source counts
        pulls.append((one.rate - b.peak_rate_1024ms) / one.rate_err)
        assert pk[0].rate > pk[1].rate  # the 64 ms peak picks up upward noise
        assert 0.0 < one.start < 10.0
    # max over windows is biased up by about one sigma of noise; require it below 2 sigma
    assert 0.0 < np.mean(pulls) < 2.0


def test_peak_flux_rejects_bad_timescale(fred) -> None:  # type: ignore[no-untyped-def]
    b = fred(np.random.default_rng(1))
    with pytest.raises(InputDataError, match="multiple"):
        peak_flux(
            b.times, b.gti, _flat_background(300.0), PeakFluxConfig(timescales_s=[0.064, 0.1])
        )


def test_hardness_ratio_recovers_input_and_error() -> None:
    ratios, errs = [], []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        hard = np.concatenate(
            [rng.uniform(-50, 50, rng.poisson(5000)), rng.uniform(0, 10, rng.poisson(1000))]
        )
        soft = np.concatenate(
            [rng.uniform(-50, 50, rng.poisson(10000)), rng.uniform(0, 10, rng.poisson(2000))]
        )
        gti = np.array([[-50.0, 50.0]])
        bh = _flat_background(50.0)
        bs = _flat_background(100.0)
        hr = hardness_ratio(
            net_counts(hard, gti, bh, (0.0, 10.0)),
            net_counts(soft, gti, bs, (0.0, 10.0)),
            hard_band_kev=(50, 300),
            soft_band_kev=(10, 50),
            interval=(0, 10),
        )
        ratios.append(hr.ratio)
        errs.append(hr.ratio_err)
        assert hr.reliable
    ratios = np.array(ratios)
    assert abs(ratios.mean() - 0.5) < 3 * ratios.std() / np.sqrt(ratios.size)
    assert 0.7 < ratios.std() / np.mean(errs) < 1.3


def test_ccf_normalisation_and_known_lag() -> None:
    x = np.sin(np.linspace(0, 20, 400))
    c = ccf(x, x, 5)
    assert c[5] == pytest.approx(1.0, rel=1e-12)
    # a Gaussian pulse delayed by 0.3 s (not a multiple of the 0.064 s bin)
    dt = 0.064
    t = np.arange(-10, 30, dt) + dt / 2
    a = 2000.0 * np.exp(-0.5 * ((t - 5.0) / 1.5) ** 2) * dt * 10
    b = 2000.0 * np.exp(-0.5 * ((t - 5.3) / 1.5) ** 2) * dt * 10
    lags = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        ca = rng.poisson(a + 20.0).astype(float)
        cb = rng.poisson(b + 20.0).astype(float)
        lag = time_lag(
            ca,
            cb,
            np.full(t.size, 20.0),
            np.full(t.size, 20.0),
            dt,
            LagConfig(n_sims=50, seed=seed),
        )
        lags.append((lag.lag, lag.lag_err))
        assert abs(lag.lag - 0.3) < 4 * lag.lag_err + 0.01
    assert abs(np.mean([v for v, _ in lags]) - 0.3) < 0.03  # sub-bin precision


def test_li_ma_limits() -> None:
    # equal on and off scaled: zero significance; large counts: close to (n - b)/sqrt(b(1+alpha))
    assert li_ma(100.0, 1000.0, 0.1) == pytest.approx(0.0, abs=1e-9)
    s = li_ma(1200.0, 10000.0, 0.1)
    assert s == pytest.approx(200 / np.sqrt(1000 * 1.1), rel=0.05)
    assert li_ma(50.0, 1000.0, 0.1) < 0


def test_trigger_finds_injected_spike_and_false_rate() -> None:
    rng = np.random.default_rng(3)
    bkg = np.sort(rng.uniform(0, 100, 100000))
    spike = rng.normal(60.0, 0.05, 300)
    t = np.sort(np.concatenate([bkg, spike]))
    e = np.where(np.isin(t, spike), 100.0, rng.uniform(5, 400, t.size))
    res = rate_trigger(t, e, np.array([[0.0, 100.0]]))
    assert res.triggered
    assert res.best.band_kev in [(50.0, 300.0), (15.0, 300.0)]
    assert 0.05 <= res.best.timescale_s <= 0.5
    assert 59.7 < res.best.start < 60.1
    assert len(res.table) == 33
    # no signal: the best of ~1e5 correlated trials stays below the 6.5 sigma threshold
    quiet = rate_trigger(
        bkg,
        rng.uniform(5, 400, bkg.size),
        np.array([[0.0, 100.0]]),
        TriggerConfig(bands_kev=[(15.0, 300.0)]),
    )
    assert not quiet.triggered
    assert 2.0 < quiet.best.significance < 6.5
    with pytest.raises(InputDataError, match="too short"):
        rate_trigger(bkg[bkg < 5], np.full(np.sum(bkg < 5), 100.0), np.array([[0.0, 5.0]]))
