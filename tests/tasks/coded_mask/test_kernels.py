"""numba and FFT imaging kernels against plain NumPy references on seeded inputs."""

from __future__ import annotations

import numpy as np
from svomflow.instruments.correlation import Correlator, correlate_full
from svomflow.tasks.coded_mask._kernels import accumulate_shadowgram, correlate_direct


def _reference_correlation(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """out[m] = sum_i a[i] q[i + m - (na - 1)] by padding and slicing."""
    na = np.array(a.shape)
    pad = np.pad(q, [(n - 1, n - 1) for n in na])
    out = np.zeros(tuple(na + np.array(q.shape) - 1))
    for my in range(out.shape[0]):
        for mz in range(out.shape[1]):
            out[my, mz] = np.sum(a * pad[my : my + na[0], mz : mz + na[1]])
    return out


def test_correlations_match_reference() -> None:
    rng = np.random.default_rng(11)
    a = rng.poisson(3.0, (7, 5)).astype(float)
    q = (rng.random((12, 9)) < 0.4).astype(float)
    ref = _reference_correlation(a, q)
    assert np.allclose(correlate_direct(a, q), ref)
    assert np.allclose(correlate_full(a, q), ref, atol=1e-9)
    corr = Correlator(q, a.shape)
    assert np.allclose(corr(a), ref, atol=1e-9)
    assert np.allclose(corr(a * 2.5), 2.5 * ref, atol=1e-9)


def test_accumulate_shadowgram_matches_histogram() -> None:
    rng = np.random.default_rng(5)
    n = 20000
    t = rng.uniform(0, 100, n)
    e = rng.uniform(0, 150, n)
    y = rng.integers(-2, 12, n)
    z = rng.integers(0, 8, n)
    got = accumulate_shadowgram(y, z, t, e, 10.0, 60.0, 4.0, 50.0, 10, 8)
    sel = (t >= 10) & (t < 60) & (e >= 4) & (e < 50) & (y >= 0) & (y < 10)
    ref, _, _ = np.histogram2d(y[sel], z[sel], bins=[np.arange(11), np.arange(9)])
    assert np.array_equal(got, ref.astype(np.int64))
