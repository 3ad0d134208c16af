"""Binning of event times into light curves with GTIs: uniform and constant-S/N bins.

Rules, for both: a bin never bridges a gap between GTIs, and its exposure is its overlap
with the GTIs (a bin cut by a GTI boundary keeps its true, shorter exposure). Uniform bins
follow one clock (``tstart + i dt``) across GTIs, so light curves of several bands or
detectors line up; grid bins that straddle a GTI boundary are split into pieces at it, and
grid bins wholly in a gap are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.products.ogip import LightCurve
from svomflow.tasks.timing._kernels import grow_bins

__all__ = [
    "BadGTIError",
    "BinnedCounts",
    "BinningConfig",
    "constant_sn_bins",
    "from_lightcurve",
    "gti_overlap",
    "normalise_gti",
    "uniform_bins",
]


class BinningConfig(StepConfig):
    """Configuration of light-curve binning."""

    dt_s: float = Field(0.064, gt=0, description="uniform bin width (s)")
    min_counts: int = Field(
        0, ge=0, description="constant-S/N binning: minimum counts per bin (counts)"
    )
    target_snr: float = Field(
        0.0, ge=0, description="constant-S/N binning: minimum (n - b)/sqrt(n) per bin (sigma)"
    )


@dataclass(frozen=True)
class BinnedCounts:
    """Counts in bins ``[lo, hi)`` (s), with the exposure of each bin (s).

    ``counts`` is 1-D (one band) or 2-D ``(n_bands, n_bins)``. Bins are in time order and
    contiguous except across gaps (``lo[i + 1] > hi[i]``). ``variance`` is None for
    Poisson counts; otherwise the counts are Gaussian measurements with that variance per
    bin (a binned curve given with errors: mask-weighted or background-subtracted counts
    may be non-integer or negative) and the steps use Gaussian statistics.
    """

    lo: np.ndarray
    hi: np.ndarray
    counts: np.ndarray
    exposure: np.ndarray
    variance: np.ndarray | None = None

    @property
    def gaussian(self) -> bool:
        """Whether the counts carry Gaussian errors (``variance``) rather than Poisson ones."""
        return self.variance is not None

    @property
    def width(self) -> np.ndarray:
        """Bin widths (s)."""
        return self.hi - self.lo

    @property
    def centre(self) -> np.ndarray:
        """Bin centres (s)."""
        return 0.5 * (self.lo + self.hi)

    @property
    def rate(self) -> np.ndarray:
        """Count rate (counts/s); zero where the exposure is zero."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.exposure > 0, self.counts / self.exposure, 0.0)

    @property
    def rate_error(self) -> np.ndarray:
        """Error of the rate (counts/s): ``sqrt(variance)``, else Poisson ``sqrt(max(n, 1))``, over the exposure."""
        var = self.variance if self.variance is not None else np.maximum(self.counts, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.exposure > 0, np.sqrt(var) / self.exposure, 0.0)

    @property
    def contiguous(self) -> np.ndarray:
        """``True`` where bin ``i`` starts where bin ``i - 1`` ends (first bin: ``True``)."""
        out = np.ones(self.lo.size, dtype=bool)
        out[1:] = np.isclose(self.lo[1:], self.hi[:-1], rtol=0, atol=1e-9)
        return out


class BadGTIError(InputDataError, ValueError):
    """Good time intervals that are empty, not finite or reversed (a ValueError for old callers)."""


def normalise_gti(gti: np.ndarray) -> np.ndarray:
    """Return GTIs as a sorted (N, 2) array with overlapping or touching intervals merged."""
    g = np.asarray(gti, dtype=float).reshape(-1, 2)
    if g.size == 0:
        raise BadGTIError("no good time intervals")
    if not np.all(np.isfinite(g)):
        raise BadGTIError("a GTI bound is NaN or infinite")
    if np.any(g[:, 1] < g[:, 0]):
        raise BadGTIError("a GTI stops before it starts")
    g = g[np.argsort(g[:, 0])]
    out = [list(g[0])]
    for a, b in g[1:]:
        if a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.array(out)


def _coverage(t: np.ndarray, gti: np.ndarray) -> np.ndarray:
    """GTI time accumulated before each ``t`` (piecewise linear, exact)."""
    starts = gti[:, 0]
    stops = gti[:, 1]
    xp = np.column_stack([starts, stops]).ravel()
    fp = np.column_stack(
        [np.concatenate([[0.0], np.cumsum(stops - starts)[:-1]]), np.cumsum(stops - starts)]
    ).ravel()
    return np.interp(t, xp, fp)


def gti_overlap(edges: np.ndarray, gti: np.ndarray) -> np.ndarray:
    """Return the overlap (s) of each bin ``[edges[i], edges[i+1])`` with the GTIs."""
    g = normalise_gti(gti)
    c = _coverage(np.asarray(edges, dtype=float), g)
    return np.diff(c)


def _count(times: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Count sorted ``times`` in ``[lo, hi)`` for non-overlapping sorted bins."""
    return (
        np.searchsorted(times, hi, side="left") - np.searchsorted(times, lo, side="left")
    ).astype(float)


def uniform_bins(
    times: np.ndarray | list[np.ndarray],
    dt: float,
    gti: np.ndarray,
    *,
    tstart: float | None = None,
    tstop: float | None = None,
) -> BinnedCounts:
    """Bin sorted event times (one array or one per band) on a uniform clock, split at GTI edges.

    Parameters
    ----------
    times : numpy.ndarray or list of numpy.ndarray
        Sorted event times (s); a list gives a 2-D ``counts`` (one row per band).
    dt : float
        Bin width (s).
    gti : numpy.ndarray
        (N, 2) good time intervals (s).
    tstart, tstop : float, optional
        Range to bin (default: the GTIs' span). The clock is ``tstart + i dt``.

    Returns
    -------
    BinnedCounts
    """
    if dt <= 0:
        raise ValueError("dt must be positive")
    g = normalise_gti(gti)
    lo_t = float(g[0, 0]) if tstart is None else float(tstart)
    hi_t = float(g[-1, 1]) if tstop is None else float(tstop)
    if hi_t <= lo_t:
        raise ValueError("tstop must be after tstart")
    n = int(np.ceil((hi_t - lo_t) / dt - 1e-9))
    grid = lo_t + dt * np.arange(n + 1)
    grid[-1] = min(grid[-1], hi_t) if grid[-1] > hi_t else grid[-1]
    # cut the grid at GTI boundaries inside the range, then keep the pieces inside GTIs
    cuts = g.ravel()
    cuts = cuts[(cuts > lo_t) & (cuts < hi_t)]
    edges = np.unique(np.concatenate([grid, cuts]))
    lo = edges[:-1]
    hi = edges[1:]
    mid = 0.5 * (lo + hi)
    k = np.searchsorted(g[:, 0], mid, side="right") - 1
    inside = (k >= 0) & (mid < g[np.maximum(k, 0), 1])
    lo = lo[inside]
    hi = hi[inside]
    exposure = hi - lo
    if isinstance(times, list):
        counts = np.vstack([_count(np.asarray(t, float), lo, hi) for t in times])
    else:
        counts = _count(np.asarray(times, dtype=float), lo, hi)
    return BinnedCounts(lo=lo, hi=hi, counts=counts, exposure=exposure)


def constant_sn_bins(
    times: np.ndarray,
    gti: np.ndarray,
    *,
    min_counts: int = 1,
    target_snr: float = 0.0,
    background_rate: float = 0.0,
) -> BinnedCounts:
    """Bin sorted event times so that each bin reaches ``min_counts`` and a target S/N.

    A bin closes at the first event where it holds at least ``min_counts`` events and
    ``(n - background_rate * duration) / sqrt(n) >= target_snr``; its stop lies halfway to
    the next event. Bins restart at every GTI start and stop at its end (never bridging a
    gap); a GTI's last bin that misses the target is merged into the previous bin of that
    GTI.
    """
    if min_counts < 1 and target_snr <= 0:
        raise ValueError("set min_counts >= 1 or target_snr > 0")
    t = np.asarray(times, dtype=float)
    if t.size > 1 and np.any(np.diff(t) < 0):
        raise ValueError("times must be sorted")
    g = normalise_gti(gti)
    lo, hi = grow_bins(
        t,
        g[:, 0].copy(),
        g[:, 1].copy(),
        float(max(min_counts, 1)),
        float(target_snr),
        float(background_rate),
    )
    counts = _count(t, lo, hi)
    return BinnedCounts(lo=lo, hi=hi, counts=counts, exposure=hi - lo)


def from_lightcurve(lc: LightCurve, *, statistic: str = "auto") -> BinnedCounts:
    """Turn an OGIP light curve (:func:`svomflow.products.ogip.read_lightcurve`) into binned counts.

    Counts are ``RATE * TIMEDEL * FRACEXP`` (exposure ``TIMEDEL * FRACEXP``), never
    rounded. With ``statistic="auto"``, a curve whose counts are integers (a file written
    from COUNTS, or a RATE column that is counts over exposure) is Poisson; any other curve
    (non-integer or negative counts: background-subtracted, mask-weighted) is Gaussian,
    with the variance ``(ERROR * exposure)^2`` from the file's errors. ``"poisson"`` and
    ``"gaussian"`` force the choice.

    Raises
    ------
    InputDataError
        ``poisson`` asked for counts that are not non-negative integers; ``gaussian`` (or a
        non-integer curve) with errors that are not positive and finite; no bin with
        exposure.
    """
    exposure = np.asarray(lc.timedel, float) * np.asarray(lc.fracexp, float)
    counts = np.asarray(lc.rate, float) * exposure
    err = np.asarray(lc.error, float) * exposure
    lo = np.asarray(lc.time, float)
    hi = lo + np.asarray(lc.timedel, float)
    keep = exposure > 0
    if not np.any(keep):
        raise InputDataError("light curve has no bin with exposure (FRACEXP or TIMEDEL zero)")
    lo, hi, counts, err, exposure = lo[keep], hi[keep], counts[keep], err[keep], exposure[keep]
    n = np.rint(counts)
    integer = bool(np.all(counts > -1e-6) and np.allclose(counts, n, rtol=0, atol=1e-3))
    if statistic == "poisson" or (statistic == "auto" and integer):
        if not integer:
            raise InputDataError(
                "light curve counts (RATE x TIMEDEL x FRACEXP) are not non-negative integers: "
                "Poisson statistics impossible (use Gaussian errors from the ERROR column)"
            )
        return BinnedCounts(lo=lo, hi=hi, counts=np.maximum(n, 0.0), exposure=exposure)
    if statistic not in ("auto", "gaussian"):
        raise ValueError(f"statistic must be auto, poisson or gaussian, not {statistic!r}")
    if not np.all(np.isfinite(err) & (err > 0)):
        bad = int(np.sum(~(np.isfinite(err) & (err > 0))))
        raise InputDataError(
            f"light curve with non-integer or negative counts needs positive ERROR values "
            f"for Gaussian statistics; {bad} bins have none"
        )
    return BinnedCounts(lo=lo, hi=hi, counts=counts, exposure=exposure, variance=err**2)
