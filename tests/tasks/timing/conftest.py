"""Simulated light curves for the timing tests: FRED (Norris 2005) pulses on a flat background."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class FredBurst:
    """Simulated events and the true durations of the source photons' expected counts."""

    times: np.ndarray
    source_times: np.ndarray
    t90: float
    t90_start: float
    t50: float
    peak_rate_1024ms: float
    gti: np.ndarray
    background_rate: float


def norris_rate(t: np.ndarray, ts: float, tau1: float, tau2: float) -> np.ndarray:
    """Norris et al. (2005) pulse shape with unit peak."""
    dt = np.asarray(t, float) - ts
    out = np.zeros_like(dt)
    ok = dt > 0
    out[ok] = np.exp(2 * np.sqrt(tau1 / tau2)) * np.exp(-tau1 / dt[ok] - dt[ok] / tau2)
    return out


def _simulate(
    rng: np.random.Generator,
    *,
    n_source: int = 6000,
    background_rate: float = 300.0,
    ts: float = 0.0,
    tau1: float = 10.0,
    tau2: float = 3.0,
    span: tuple[float, float] = (-60.0, 120.0),
) -> FredBurst:
    grid = np.linspace(ts, span[1], 400001)
    r = norris_rate(grid, ts, tau1, tau2)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (r[1:] + r[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    q = np.interp([0.05, 0.95, 0.25, 0.75], cdf, grid)
    n_src = rng.poisson(n_source)
    src = np.interp(rng.uniform(size=n_src), cdf, grid)
    n_bkg = rng.poisson(background_rate * (span[1] - span[0]))
    bkg = rng.uniform(span[0], span[1], n_bkg)
    peak_1024 = n_source * np.max(np.interp(grid + 1.024, grid, cdf) - cdf) / 1.024
    return FredBurst(
        times=np.sort(np.concatenate([src, bkg])),
        source_times=np.sort(src),
        t90=float(q[1] - q[0]),
        t90_start=float(q[0]),
        t50=float(q[3] - q[2]),
        peak_rate_1024ms=float(peak_1024),
        gti=np.array([list(span)]),
        background_rate=background_rate,
    )


@pytest.fixture
def fred() -> Callable[..., FredBurst]:
    """Factory: ``fred(rng, n_source=..., background_rate=..., tau1=..., tau2=...)``."""
    return _simulate
