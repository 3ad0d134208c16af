"""Hardness ratio: background-subtracted counts in a hard band over those in a soft band.

``HR = (C_h - B_h) / (C_s - B_s)`` over a stated interval (default the T90 interval), with
the bands stated in keV. Errors by first-order propagation of the Poisson variance of the
counts and the background models' variances; when the soft net counts are not significant
(below 3 sigma) the ratio is flagged as unreliable (its distribution is then far from
Gaussian). For ECLAIRs+GRM the two bands come from two instruments: pass each band's own
events, GTIs and background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from svomflow.tasks.timing.background import BackgroundModel
from svomflow.tasks.timing.binning import BinnedCounts, gti_overlap

__all__ = ["HardnessRatio", "NetCounts", "hardness_ratio", "net_counts"]


@dataclass(frozen=True)
class NetCounts:
    """Background-subtracted counts in an interval with its 1-sigma error."""

    counts: float
    background: float
    net: float
    net_err: float
    exposure: float


@dataclass(frozen=True)
class HardnessRatio:
    """Hardness ratio (hard/soft), error, bands (keV) and interval (s)."""

    ratio: float
    ratio_err: float
    hard_band_kev: tuple[float, float]
    soft_band_kev: tuple[float, float]
    interval: tuple[float, float]
    hard: NetCounts
    soft: NetCounts
    reliable: bool


def net_counts(
    times: np.ndarray, gti: np.ndarray, background: BackgroundModel, interval: tuple[float, float]
) -> NetCounts:
    """Count events in ``interval`` and subtract the background model (exposure from GTIs)."""
    t = np.asarray(times, dtype=float)
    a, b = interval
    n = float(np.count_nonzero((t >= a) & (t < b)))
    exposure = float(gti_overlap(np.array([a, b]), gti)[0])
    one = BinnedCounts(np.array([a]), np.array([b]), np.array([n]), np.array([exposure]))
    mu, var = background.counts(one)
    net = n - float(mu[0])
    return NetCounts(
        counts=n,
        background=float(mu[0]),
        net=net,
        net_err=float(np.sqrt(n + var[0])),
        exposure=exposure,
    )


def hardness_ratio(
    hard: NetCounts,
    soft: NetCounts,
    *,
    hard_band_kev: tuple[float, float],
    soft_band_kev: tuple[float, float],
    interval: tuple[float, float],
) -> HardnessRatio:
    """Combine the net counts of two bands into a hardness ratio with propagated error."""
    if soft.net != 0:
        ratio = hard.net / soft.net
        err = np.sqrt((hard.net_err / soft.net) ** 2 + (hard.net * soft.net_err / soft.net**2) ** 2)
    else:
        ratio, err = np.nan, np.nan
    reliable = bool(soft.net > 3 * soft.net_err and hard.net_err > 0)
    return HardnessRatio(
        ratio=float(ratio),
        ratio_err=float(err),
        hard_band_kev=hard_band_kev,
        soft_band_kev=soft_band_kev,
        interval=interval,
        hard=hard,
        soft=soft,
        reliable=reliable,
    )
