"""Bayesian blocks after the speed work: same edges as astropy on signal-free data, threads."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from astropy.stats import bayesian_blocks as astropy_bb
from svomflow.tasks.timing import bayesian_blocks
from svomflow.tasks.timing import blocks as blocks_module
from svomflow.tasks.timing._kernels import bb_events_dp, bb_measures_dp
from svomflow.tasks.timing.blocks import dp_threads


def _events_reference(edges: np.ndarray, counts: np.ndarray, ncp: float) -> np.ndarray:
    """Plain NumPy O(N^2) programme (astropy's arithmetic): ``last`` per end cell."""
    n = counts.size
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    bl = edges[-1] - edges
    best = np.zeros(n)
    last = np.zeros(n, dtype=np.int64)
    for r in range(n):
        nk = cum[r + 1] - cum[: r + 1]
        tk = bl[: r + 1] - bl[r + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = np.where(nk > 0, nk * np.log(nk / tk), 0.0)
        a = fit - ncp
        a[1:] += best[:r]
        last[r] = int(np.argmax(a))
        best[r] = a[last[r]]
    return last


@pytest.mark.parametrize("n", [1000, 4000])
@pytest.mark.parametrize("seed", [0, 1])
def test_signal_free_events_same_edges_as_astropy(n: int, seed: int) -> None:
    # signal-free rows keep every candidate close to the best: the bound that skips the log
    # is tightest there, and ties decide the edges
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, 300.0, n))
    for kwargs in ({}, {"ncp_prior": 1.0}, {"ncp_prior": 0.5}):
        np.testing.assert_array_equal(bayesian_blocks(t, **kwargs), astropy_bb(t, **kwargs))


@pytest.mark.parametrize("n", [1000, 4000])
def test_signal_free_measures_same_edges_as_astropy(n: int) -> None:
    rng = np.random.default_rng(n)
    t = np.arange(n) * 0.064
    x = rng.normal(100.0, 10.0, n)
    for kwargs in ({}, {"ncp_prior": 0.5}):
        ours = bayesian_blocks(t, x, 10.0, fitness="measures", **kwargs)
        np.testing.assert_array_equal(ours, astropy_bb(t, x, 10.0, fitness="measures", **kwargs))


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_events_kernel_against_numpy_on_flat_and_steps(batch: int) -> None:
    """Flat stretches (candidates within rounding of each other) and steps, small priors."""
    rng = np.random.default_rng(batch)
    n = 600
    edges = np.concatenate([[0.0], np.cumsum(np.full(n, 0.1))])  # equal cells: exact ties
    counts = rng.poisson(np.where(np.arange(n) < 300, 5.0, 5.0 + 3.0 * (np.arange(n) > 450)))
    counts = counts.astype(float)
    counts[100:140] = 5.0  # constant stretch: tied candidates
    for ncp in (0.0, 0.3, 4.0):
        cum = np.concatenate([[0.0], np.cumsum(counts)])
        last = bb_events_dp(edges[-1] - edges, cum, ncp, batch)
        np.testing.assert_array_equal(last, _events_reference(edges, counts, ncp))


def test_measures_kernel_against_numpy_with_ties() -> None:
    n = 400
    x = np.repeat([1.0, 1.0, 4.0, 4.0], n // 4)  # exact ties between candidates
    w = np.ones(n)
    a_cum = np.concatenate([[0.0], np.cumsum(w)])
    b_cum = np.concatenate([[0.0], np.cumsum(w * x)])
    best = np.zeros(n)
    ref = np.zeros(n, dtype=np.int64)
    for r in range(n):
        a = 0.5 * (a_cum[r + 1] - a_cum[: r + 1])
        b = -(b_cum[r + 1] - b_cum[: r + 1])
        v = b * b / (4.0 * a) - 1.0
        v[1:] += best[:r]
        ref[r] = int(np.argmax(v))
        best[r] = v[ref[r]]
    for batch in (1, 32):
        np.testing.assert_array_equal(bb_measures_dp(a_cum, b_cum, 1.0, batch), ref)


def test_one_thread_below_the_size_or_when_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    if numba.get_num_threads() < 2:
        pytest.skip("numba has a single thread here")
    monkeypatch.setattr(blocks_module.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    monkeypatch.setattr(blocks_module.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert dp_threads(1000) == 1  # small: barriers cost more than the second core gives
    assert dp_threads(blocks_module.PARALLEL_MIN_CELLS) == 2  # large and idle
    monkeypatch.setattr(blocks_module.os, "getloadavg", lambda: (1.6, 1.6, 1.6))
    assert dp_threads(10**6) == 1  # another process holds the second core
    monkeypatch.setattr(blocks_module.os, "getloadavg", lambda: (12.0, 12.0, 12.0))
    assert dp_threads(10**6) == 1


def test_thread_setting_is_restored() -> None:
    before = numba.get_num_threads()
    rng = np.random.default_rng(3)
    bayesian_blocks(np.sort(rng.uniform(0, 10, 500)))
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("rate", [0.05, 0.7, 40.0])
def test_events_kernel_division_free_bound_on_flat_low_and_high_rates(rate: float) -> None:
    """Signal-free cells at rates below and above 1 (log lam < 0 and > 0, best values of
    either sign, many empty cells): the division-free screen skips nothing that wins."""
    rng = np.random.default_rng(int(rate * 100))
    n = 700
    edges = np.concatenate([[0.0], np.cumsum(rng.uniform(0.5, 1.5, n))])
    counts = rng.poisson(rate * np.diff(edges)).astype(float)
    for ncp in (0.0, 1.0, 6.0):
        cum = np.concatenate([[0.0], np.cumsum(counts)])
        for batch in (1, 32):
            last = bb_events_dp(edges[-1] - edges, cum, ncp, batch)
            np.testing.assert_array_equal(last, _events_reference(edges, counts, ncp))
