"""Rate trigger search over timescales and energy bands, like the on-board triggers.

For each band, events are binned on a base clock (``resolution_s``); for each timescale
``tau`` (a multiple of the base bin), every window ``[t, t + tau)`` starting on the clock is
compared with the background measured in ``[t - gap - bkg_s, t - gap)`` just before it. The
significance is Li & Ma (1983, eq. 17) with ``alpha = tau / bkg_s`` (on/off exposures;
signed: negative for a deficit), which stays valid at the few-count level of 10 ms windows
where ``(n - b)/sqrt(b)`` overstates the excess. Windows whose background interval falls
outside the data are skipped. The result is the best (timescale, band, time, significance)
and a table with the best window of every (timescale, band).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.timing.binning import uniform_bins

__all__ = ["TriggerConfig", "TriggerResult", "TriggerRow", "li_ma", "rate_trigger"]


class TriggerConfig(StepConfig):
    """Configuration of the rate-trigger search."""

    timescales_s: list[float] = Field(
        [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.48],
        description="window lengths (s)",
    )
    bands_kev: list[tuple[float, float]] = Field(
        [(4.0, 50.0), (50.0, 300.0), (15.0, 300.0)], description="energy bands (keV)"
    )
    resolution_s: float = Field(0.01, gt=0, description="base clock (s)")
    bkg_s: float = Field(20.0, gt=0, description="background interval before each window (s)")
    gap_s: float = Field(0.0, ge=0, description="gap between background and window (s)")
    threshold_sigma: float = Field(6.5, gt=0, description="detection threshold (sigma)")


@dataclass(frozen=True)
class TriggerRow:
    """Best window for one (timescale, band): start (s), counts, expected background, sigma."""

    timescale_s: float
    band_kev: tuple[float, float]
    start: float
    counts: float
    background: float
    significance: float


@dataclass(frozen=True)
class TriggerResult:
    """Best trigger over all timescales and bands, whether it passes, and the full table."""

    best: TriggerRow
    triggered: bool
    table: list[TriggerRow]


def li_ma(n_on: np.ndarray, n_off: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    """Signed Li & Ma significance (eq. 17) of ``n_on`` over ``alpha * n_off``."""
    n_on = np.asarray(n_on, float)
    n_off = np.asarray(n_off, float)
    alpha = np.asarray(alpha, float)
    tot = n_on + n_off
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(n_on > 0, n_on * np.log((1 + alpha) / alpha * n_on / tot), 0.0)
        t2 = np.where(n_off > 0, n_off * np.log((1 + alpha) * n_off / tot), 0.0)
    s = np.sqrt(np.maximum(2.0 * (t1 + t2), 0.0))
    return np.where(n_on >= alpha * n_off, s, -s)


def rate_trigger(
    times: np.ndarray,
    energies: np.ndarray,
    gti: np.ndarray,
    config: TriggerConfig | None = None,
) -> TriggerResult:
    """Search for the most significant rate excess over timescales and bands.

    Parameters
    ----------
    times : numpy.ndarray
        Sorted event times (s).
    energies : numpy.ndarray
        Event energies (keV).
    gti : numpy.ndarray
        (N, 2) good time intervals (s); background and window must both lie in one GTI.
    config : TriggerConfig, optional
    """
    cfg = config or TriggerConfig()
    t = np.asarray(times, float)
    e = np.asarray(energies, float)
    res = cfg.resolution_s
    table: list[TriggerRow] = []
    nb = round(cfg.bkg_s / res)
    ng = round(cfg.gap_s / res)
    for band in cfg.bands_kev:
        sel = (e >= band[0]) & (e < band[1])
        bins = uniform_bins(t[sel], res, gti)
        full = np.isclose(bins.exposure, res, rtol=1e-6) & bins.contiguous
        # a bin is usable if it is full; windows need a run of usable bins
        cum = np.concatenate([[0.0], np.cumsum(bins.counts)])
        bad = np.concatenate([[0], np.cumsum(~full)])
        for ts in cfg.timescales_s:
            w = max(1, round(ts / res))
            n = bins.counts.size
            starts = np.arange(nb + ng, n - w + 1)
            if starts.size == 0:
                continue
            on = cum[starts + w] - cum[starts]
            off = cum[starts - ng] - cum[starts - ng - nb]
            ok = (bad[starts + w] - bad[starts - ng - nb]) == 0
            sig = li_ma(on, off, w / nb)
            sig = np.where(ok, sig, -np.inf)
            k = int(np.argmax(sig))
            if not np.isfinite(sig[k]):
                continue
            table.append(
                TriggerRow(
                    timescale_s=w * res,
                    band_kev=(float(band[0]), float(band[1])),
                    start=float(bins.lo[starts[k]]),
                    counts=float(on[k]),
                    background=float(off[k] * w / nb),
                    significance=float(sig[k]),
                )
            )
    if not table:
        raise InputDataError(
            f"no window with {cfg.bkg_s} s of background before it: data too short for a trigger search"
        )
    best = max(table, key=lambda r: r.significance)
    return TriggerResult(best=best, triggered=best.significance >= cfg.threshold_sigma, table=table)
