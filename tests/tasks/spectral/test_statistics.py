"""Statistics by hand on tiny spectra, and the profiled background against a numerical profile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from svomflow.errors import InputDataError
from svomflow.tasks.spectral.dataset import SpectrumDataset
from svomflow.tasks.spectral.models import EnergyGrid, PowerLaw
from svomflow.tasks.spectral.statistics import effective_statistic, make_evaluator


def _prep(synth, counts, bkg=None, bkg_err=None, exposure=10.0, bkg_exposure=20.0):
    n = len(counts)
    resp = synth.gaussian_response(n_e=40, n_chan=n)
    src = synth.memory_pha(np.array(counts, dtype=float), exposure)
    b = None
    if bkg is not None:
        b = synth.memory_pha(
            np.array(bkg, dtype=float),
            bkg_exposure,
            None if bkg_err is None else np.array(bkg_err, dtype=float),
        )
    return SpectrumDataset("t", src, resp, b).prepare()


def _eval(name, prep, mu):
    ev = make_evaluator(name, prep)
    mu = np.asarray(mu, dtype=float)
    return ev.name, ev(mu, np.empty_like(mu), np.empty_like(mu))


def test_cstat_by_hand(synth):
    prep = _prep(synth, [0, 3, 10])
    name, val = _eval("cstat", prep, [1.0, 2.0, 12.0])
    hand = 2 * (1.0 + (2 - 3 + 3 * math.log(3 / 2)) + (12 - 10 + 10 * math.log(10 / 12)))
    assert name == "cstat"
    assert val == pytest.approx(hand, rel=1e-12)


def test_chi2_variants_by_hand(synth):
    prep = _prep(synth, [4, 9, 16])
    mu = [5.0, 8.0, 15.0]
    _, chi = _eval("chi2", prep, mu)
    assert chi == pytest.approx(1 / 4 + 1 / 9 + 1 / 16, rel=1e-12)
    _, geh = _eval("chi2-gehrels", prep, mu)
    hand = sum(
        (s - m) ** 2 / (1 + math.sqrt(s + 0.75)) ** 2 for s, m in zip([4, 9, 16], mu, strict=True)
    )
    assert geh == pytest.approx(hand, rel=1e-12)


def test_chi2_with_background_and_zero_variance(synth):
    prep = _prep(synth, [10, 20], bkg=[8, 4])  # background exposure 2x: alpha = 1/2
    _, val = _eval("chi2", prep, [3.0, 15.0])
    hand = (10 - 4 - 3) ** 2 / (10 + 8 / 4) + (20 - 2 - 15) ** 2 / (20 + 4 / 4)
    assert val == pytest.approx(hand, rel=1e-12)
    with pytest.raises(InputDataError, match="zero counts"):
        make_evaluator("chi2", _prep(synth, [0, 5]))


def test_wstat_by_hand_special_cases(synth):
    prep = _prep(synth, [0, 6, 5], bkg=[4, 0, 3])  # r = t_b / t_s = 2
    r = 2.0
    mu = np.array([1.5, 1.0, 2.5])
    name, val = _eval("cstat", prep, mu)  # cstat with a Poisson background is W-stat
    assert name == "wstat"
    w0 = mu[0] - 4 * math.log(r / (1 + r))
    w1 = -r * mu[1] - 6 * math.log(1 / (1 + r))  # mu < S/(1+r) = 2
    d = math.sqrt(((1 + r) * mu[2] - 5 - 3) ** 2 + 4 * (1 + r) * 3 * mu[2])
    f = (5 + 3 - (1 + r) * mu[2] + d) / (2 * (1 + r))
    w2 = (
        mu[2]
        + (1 + r) * f
        - 5 * math.log(mu[2] + f)
        - 3 * math.log(r * f)
        - 5 * (1 - math.log(5))
        - 3 * (1 - math.log(3))
    )
    assert val == pytest.approx(2 * (w0 + w1 + w2), rel=1e-12)


def test_wstat_equals_numerical_profile(synth):
    prep = _prep(synth, [7, 12, 3], bkg=[10, 2, 6])
    r = 2.0
    mu = np.array([4.0, 9.5, 0.7])
    _, val = _eval("wstat", prep, mu)
    total = 0.0
    for s, b, m in zip([7, 12, 3], [10, 2, 6], mu, strict=True):

        def nll(f, s=s, b=b, m=m):
            lam, lb = m + f, r * f
            return 2 * (
                lam
                - s * math.log(lam)
                + lb
                - b * math.log(lb)
                - s * (1 - math.log(s))
                - b * (1 - math.log(b))
            )

        total += optimize.minimize_scalar(
            nll, bounds=(1e-9, 100), method="bounded", options={"xatol": 1e-10}
        ).fun
    assert val == pytest.approx(total, rel=1e-8)


def test_pgstat_equals_numerical_profile_and_zero_count_formula(synth):
    prep = _prep(synth, [7, 12, 0], bkg=[10, 2, 6], bkg_err=[3.0, 1.5, 2.0])
    r = 2.0
    mu = np.array([4.0, 9.5, 0.7])
    name, val = _eval("pgstat", prep, mu)
    assert name == "pgstat"
    total = 0.0
    for s, b, sig, m in zip([7, 12], [10, 2], [3.0, 1.5], mu[:2], strict=True):

        def nll(f, s=s, b=b, m=m, sig=sig):
            return 2 * (
                m
                + f
                - s * math.log(m + f)
                + (b - r * f) ** 2 / (2 * sig**2)
                - s * (1 - math.log(s))
            )

        total += optimize.minimize_scalar(
            nll, bounds=(1e-9, 100), method="bounded", options={"xatol": 1e-10}
        ).fun
    total += 2 * (mu[2] + 6 / r - 2.0**2 / (2 * r * r))  # XSPEC's S=0 closed form
    assert val == pytest.approx(total, rel=1e-8)
    assert effective_statistic("cstat", prep) == "pgstat"


def test_power_law_integral_is_analytic_and_simpson_is_accurate():
    lo = np.geomspace(1.0, 1000.0, 50)[:-1]
    hi = np.geomspace(1.0, 1000.0, 50)[1:]
    grid = EnergyGrid(lo, hi, 1)
    pl = PowerLaw(pivot=1.0)
    exact = 2.0 * (hi**-0.7 - lo**-0.7) / -0.7
    assert np.allclose(pl.integrate(grid, [2.0, -1.7]), exact, rtol=1e-13)
    # The generic Simpson-in-log path on the same function (3 points per bin).
    simpson = grid.integrate(pl.evaluate(grid.nodes, [2.0, -1.7]))
    assert np.allclose(simpson, exact, rtol=1e-6)
