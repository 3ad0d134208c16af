"""T90/T50 from an event list with the bin width chosen from the burst itself.

A fixed bin width cannot serve a 0.1 s and a 100 s burst: coarse bins smear a short burst
over a few bins (the crossing times are then interpolated inside bins much wider than the
burst), fine bins make a long burst's analysis slow without adding information. Here:

1. the events are binned finely (``fine_dt_s``, widened so that there are at most
   ``max_fine_bins`` bins) and the burst's extent is found with the ``auto`` background
   method (Bayesian blocks significantly above a polynomial background,
   :func:`svomflow.tasks.timing.background.source_interval_auto`);
2. the bin width is ``extent / bins_per_extent``, clipped to ``[min_dt_s, max_dt_s]`` and
   rounded down to a power-of-two multiple of ``min_dt_s`` (so light curves of several
   bands or instruments analysed this way share clocks);
3. the events are binned at that width, the background refitted and
   :func:`svomflow.tasks.timing.duration.durations` run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.timing.background import BackgroundConfig, BackgroundModel, fit_background
from svomflow.tasks.timing.binning import BinnedCounts, normalise_gti, uniform_bins
from svomflow.tasks.timing.duration import DurationConfig, Durations, durations

__all__ = [
    "AdaptiveBinningConfig",
    "AdaptiveCurve",
    "DurationAnalysis",
    "adaptive_curve",
    "choose_bin_width",
    "durations_from_events",
]


class AdaptiveBinningConfig(StepConfig):
    """How the light-curve bin width of the T90 analysis is chosen from the data."""

    fine_dt_s: float = Field(0.001, gt=0, description="bin width of the extent search (s)")
    max_fine_bins: int = Field(
        200000, ge=100, description="the extent-search bins are widened to stay below this (bins)"
    )
    bins_per_extent: float = Field(
        64.0, gt=1, description="bins across the burst's extent (dimensionless)"
    )
    min_dt_s: float = Field(0.001, gt=0, description="smallest bin width (s)")
    max_dt_s: float = Field(1.0, gt=0, description="largest bin width (s)")


@dataclass(frozen=True)
class DurationAnalysis:
    """Durations with the light curve and background they were measured on.

    ``extent`` is the source interval found on the fine bins (s); ``dt_s`` the chosen width.
    """

    durations: Durations
    bins: BinnedCounts
    background: BackgroundModel
    dt_s: float
    extent: tuple[float, float]


@dataclass(frozen=True)
class AdaptiveCurve:
    """Light curve on the clock chosen from the burst, its background and the extent found."""

    bins: BinnedCounts
    background: BackgroundModel
    dt_s: float
    extent: tuple[float, float]


def adaptive_curve(
    times: np.ndarray,
    gti: np.ndarray,
    background: BackgroundConfig | None = None,
    binning: AdaptiveBinningConfig | None = None,
) -> AdaptiveCurve:
    """Run steps 1-3 of the module docstring without the durations: extent, width, refit.

    Raises
    ------
    InputDataError
        No burst found (the extent search's background fit raises).
    """
    bcfg = binning or AdaptiveBinningConfig()
    g = normalise_gti(gti)
    span = float(g[-1, 1] - g[0, 0])
    fine = max(bcfg.fine_dt_s, span / bcfg.max_fine_bins)
    fine_bins = uniform_bins(times, fine, g)
    try:
        first = fit_background(fine_bins, background)
    except InputDataError as exc:
        raise InputDataError(f"burst extent search on {fine:g} s bins: {exc}") from None
    extent = first.source
    dt = choose_bin_width(extent[1] - extent[0], bcfg)
    if dt <= fine * (1 + 1e-9):
        return AdaptiveCurve(fine_bins, first, fine, extent)
    bins = uniform_bins(times, dt, g)
    # seeded with the extent found on the fine bins: a fresh search on the coarser clock
    # could lock onto another excess (a drift, a noise bin) and lose the burst
    return AdaptiveCurve(bins, fit_background(bins, background, seed=extent), dt, extent)


def choose_bin_width(extent_s: float, config: AdaptiveBinningConfig | None = None) -> float:
    """Return ``extent / bins_per_extent`` clipped and rounded down to ``min_dt_s * 2^k``."""
    cfg = config or AdaptiveBinningConfig()
    if cfg.max_dt_s < cfg.min_dt_s:
        raise ValueError("max_dt_s must not be below min_dt_s")
    want = min(max(extent_s / cfg.bins_per_extent, cfg.min_dt_s), cfg.max_dt_s)
    k = int(np.floor(np.log2(want / cfg.min_dt_s) + 1e-9))
    return float(cfg.min_dt_s * 2.0 ** max(k, 0))


def durations_from_events(
    times: np.ndarray,
    gti: np.ndarray,
    config: DurationConfig | None = None,
    *,
    background: BackgroundConfig | None = None,
    binning: AdaptiveBinningConfig | None = None,
    band_kev: tuple[float, float] | None = None,
) -> DurationAnalysis:
    """Measure T90/T50 on events with a bin width adapted to the burst (module docstring).

    Parameters
    ----------
    times : numpy.ndarray
        Sorted event times of one band (s).
    gti : numpy.ndarray
        (N, 2) good time intervals (s).
    config : DurationConfig, optional
    background : BackgroundConfig, optional
        Background settings (``auto`` by default; a ``manual`` configuration skips the
        extent search's interval choice but the extent still comes from its source gap).
    binning : AdaptiveBinningConfig, optional
    band_kev : tuple, optional
        Band of the events (recorded in the result).

    Returns
    -------
    DurationAnalysis

    Raises
    ------
    InputDataError
        No burst found, no background plateau, or a gap inside the accumulation window.
    """
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 10:
        raise InputDataError(f"need at least 10 events for durations, got {t.size}")
    if np.any(np.diff(t) < 0):
        raise ValueError("times must be sorted")
    c = adaptive_curve(t, gti, background, binning)
    d = durations(c.bins, c.background, config, band_kev=band_kev)
    return DurationAnalysis(
        durations=d, bins=c.bins, background=c.background, dt_s=c.dt_s, extent=c.extent
    )
