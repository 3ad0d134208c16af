"""Kernels against plain NumPy references on seeded inputs (including the zero-count cases)."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.tasks.spectral import _kernels as kern


def _ref_cstat(s, mu):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(s > 0, mu - s + s * (np.log(s) - np.log(mu)), mu)
    return 2 * t.sum()


def _ref_wstat(s, b, mu, r):
    # XSPEC appendix with t_s = 1, t_b = r.
    out = 0.0
    for si, bi, m, ri in zip(s, b, mu, r, strict=True):
        ts, tb = 1.0, ri
        if si == 0:
            w = ts * m - bi * np.log(tb / (ts + tb))
        elif bi == 0:
            if m < si / (ts + tb):
                w = -tb * m - si * np.log(ts / (ts + tb))
            else:
                w = ts * m + si * (np.log(si) - np.log(ts * m) - 1)
        else:
            d = np.sqrt(((ts + tb) * m - si - bi) ** 2 + 4 * (ts + tb) * bi * m)
            f = (si + bi - (ts + tb) * m + d) / (2 * (ts + tb))
            w = (
                ts * m
                + (ts + tb) * f
                - si * np.log(ts * m + ts * f)
                - bi * np.log(tb * f)
                - si * (1 - np.log(si))
                - bi * (1 - np.log(bi))
            )
        out += 2 * w
    return out


def _ref_pgstat(s, b, v, mu, r):
    out = 0.0
    for si, bi, vi, m, ri in zip(s, b, v, mu, r, strict=True):
        ts, tb = 1.0, ri
        if si == 0:
            w = ts * m + bi * ts / tb - vi * (ts / tb) ** 2 / 2
        else:
            d = np.sqrt(
                (ts * vi - tb * bi + tb**2 * m) ** 2
                - 4 * tb**2 * (ts * vi * m - si * vi - tb * bi * m)
            )
            f = (-(ts * vi - tb * bi + tb**2 * m) + d) / (2 * tb**2)
            w = (
                ts * (m + f)
                - si * np.log(ts * m + ts * f)
                + (bi - tb * f) ** 2 / (2 * vi)
                - si * (1 - np.log(si))
            )
        out += 2 * w
    return out


@pytest.fixture
def inputs():
    rng = np.random.default_rng(42)
    n = 200
    mu = rng.uniform(0.05, 30.0, n)
    s = rng.poisson(mu * rng.uniform(0.5, 1.5, n)).astype(float)
    b = rng.poisson(rng.uniform(0.0, 20.0, n)).astype(float)
    s[:5] = 0.0
    b[5:10] = 0.0
    s[10:12] = 0.0
    b[10:12] = 0.0
    r = rng.uniform(0.5, 5.0, n)
    v = b + rng.uniform(0.5, 3.0, n)
    return s, b, v, mu, r


def _call(fn, *args):
    n = args[0].size
    g = np.empty(n)
    c = np.empty(n)
    return fn(*args, g, c), g, c


def test_cstat_matches_reference(inputs):
    s, _, _, mu, _ = inputs
    val, g, c = _call(kern.cstat_kernel, s, mu)
    assert val == pytest.approx(_ref_cstat(s, mu), rel=1e-12)
    assert np.allclose(g, 2 * (1 - s / mu))
    assert np.all(c > 0)


def test_wstat_matches_reference(inputs):
    s, b, _, mu, r = inputs
    val, _, _ = _call(kern.wstat_kernel, s, b, mu, r)
    assert val == pytest.approx(_ref_wstat(s, b, mu, r), rel=1e-10)
    # the B=0 branch with mu below S/(1+r)
    s1, b1, m1, r1 = np.array([10.0]), np.array([0.0]), np.array([1.0]), np.array([2.0])
    val1, g1, _ = _call(kern.wstat_kernel, s1, b1, m1, r1)
    assert val1 == pytest.approx(_ref_wstat(s1, b1, m1, r1), rel=1e-12)
    assert g1[0] == pytest.approx(-4.0)


def test_pgstat_matches_reference(inputs):
    s, b, v, mu, r = inputs
    val, _, _ = _call(kern.pgstat_kernel, s, b, v, mu, r)
    assert val == pytest.approx(_ref_pgstat(s, b, v, mu, r), rel=1e-10)


@pytest.mark.parametrize("kernel_name", ["wstat", "pgstat"])
def test_gradient_matches_finite_difference(inputs, kernel_name):
    s, b, v, mu, r = inputs
    mu = mu + 0.5
    fn = kern.wstat_kernel if kernel_name == "wstat" else kern.pgstat_kernel
    args = (s, b, mu, r) if kernel_name == "wstat" else (s, b, v, mu, r)
    _, g, _ = _call(fn, *args)
    h = 1e-6
    for i in [3, 7, 20, 50, 150]:
        mp = mu.copy()
        mp[i] += h
        mm = mu.copy()
        mm[i] -= h
        ap = (s, b, mp, r) if kernel_name == "wstat" else (s, b, v, mp, r)
        am = (s, b, mm, r) if kernel_name == "wstat" else (s, b, v, mm, r)
        num = (_call(fn, *ap)[0] - _call(fn, *am)[0]) / (2 * h)
        assert g[i] == pytest.approx(num, rel=1e-5, abs=1e-6)


def test_chi2_kernel(inputs):
    s, b, v, mu, _ = inputs
    val, _g, c = _call(kern.chi2_kernel, s, b, v, mu)
    assert val == pytest.approx(np.sum((s - b - mu) ** 2 / v), rel=1e-12)
    assert np.allclose(c, 2 / v)


def test_model_kernels_match_numpy():
    e = np.geomspace(5.0, 20000.0, 300)
    out = np.empty_like(e)
    kern.pl_eval(e, 0.1, -1.3, 100.0, out)
    assert np.allclose(out, 0.1 * (e / 100) ** -1.3, rtol=1e-13)
    kern.cpl_eval(e, 0.1, -0.8, 500.0, 100.0, out)
    assert np.allclose(out, 0.1 * (e / 100) ** -0.8 * np.exp(-1.2 * e / 500), rtol=1e-13)
    kern.band_eval(e, 0.1, -0.8, -2.5, 500.0, 100.0, out)
    e0 = 500 / 1.2
    eb = 1.7 * e0
    ref = np.where(
        e < eb,
        0.1 * (e / 100) ** -0.8 * np.exp(-e / e0),
        0.1 * (eb / 100) ** 1.7 * np.exp(-1.7) * (e / 100) ** -2.5,
    )
    assert np.allclose(out, ref, rtol=1e-12)
    kern.sbpl_eval(e, 0.1, -1.0, -2.5, 300.0, 0.3, 100.0, out)
    q = np.log10(e / 300) / 0.3
    qp = np.log10(100 / 300) / 0.3
    m, bb = -0.75, -1.75
    ref = 0.1 * (e / 100) ** bb * 10 ** (m * 0.3 * (np.log(np.cosh(q)) - np.log(np.cosh(qp))))
    assert np.allclose(out, ref, rtol=1e-10)
    kern.bb_eval(e[:100], 0.1, 30.0, 100.0, out[:100])
    ref = 0.1 * (e[:100] / 100) ** 2 * np.expm1(100 / 30) / np.expm1(e[:100] / 30)
    assert np.allclose(out[:100], ref, rtol=1e-12)
