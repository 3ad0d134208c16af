"""Peak flux: the highest background-subtracted count rate over sliding windows.

The events of one band are binned on a fine clock (``resolution_s``, by default 1/4 of the
shortest window) and a window of ``timescale / resolution`` consecutive bins slides one bin
at a time (:func:`svomflow.tasks.timing._kernels.sliding_window_max`); windows that bridge a
data gap or are not fully exposed are skipped. The rate is ``(counts - background) / width``
with the background counts from the fitted model; its error combines the Poisson error of
the window's counts and the model's variance. GBM uses 64, 256 and 1024 ms windows, Swift/BAT
and the GCNs 1 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.timing._kernels import sliding_window_max
from svomflow.tasks.timing.background import BackgroundModel
from svomflow.tasks.timing.binning import uniform_bins

__all__ = ["PeakFlux", "PeakFluxConfig", "peak_flux"]


class PeakFluxConfig(StepConfig):
    """Configuration of the peak-flux step."""

    timescales_s: list[float] = Field(
        [0.064, 0.256, 1.024], description="sliding-window widths (s)"
    )
    resolution_s: float | None = Field(
        None, gt=0, description="window step and bin width (s); default: shortest window / 4"
    )


@dataclass(frozen=True)
class PeakFlux:
    """Peak net count rate (counts/s) on one timescale, its 1-sigma error and window start (s)."""

    timescale_s: float
    rate: float
    rate_err: float
    start: float
    counts: float
    background_counts: float


def peak_flux(
    times: np.ndarray,
    gti: np.ndarray,
    background: BackgroundModel,
    config: PeakFluxConfig | None = None,
    *,
    window: tuple[float, float] | None = None,
) -> list[PeakFlux]:
    """Find the peak background-subtracted count rate on each configured timescale.

    Parameters
    ----------
    times : numpy.ndarray
        Sorted event times of the band (s since t0).
    gti : numpy.ndarray
        (N, 2) good time intervals (s).
    background : BackgroundModel
        Background of the same band.
    config : PeakFluxConfig, optional
    window : tuple, optional
        Time range searched (default: the background model's source interval).

    Returns
    -------
    list of PeakFlux
    """
    cfg = config or PeakFluxConfig()
    scales = sorted(cfg.timescales_s)
    res = cfg.resolution_s or scales[0] / 4.0
    w0, w1 = window if window is not None else background.source
    bins = uniform_bins(np.asarray(times, float), res, gti, tstart=w0, tstop=w1)
    if bins.lo.size == 0:
        raise InputDataError("no exposed time in the peak-flux window")
    a = background.design(bins.lo, bins.hi) * bins.exposure[:, None]
    bkg = a @ background.coeffs
    full = np.isclose(bins.exposure, res, rtol=1e-6, atol=1e-12) & bins.contiguous
    out = []
    for ts in scales:
        width = round(ts / res)
        if width < 1 or abs(width * res - ts) > 1e-6 * ts:
            raise InputDataError(f"timescale {ts} s is not a multiple of the resolution {res} s")
        # windows over partial bins or gaps are skipped
        i, rate, c, b = sliding_window_max(
            bins.counts, bkg, bins.exposure, full.astype(np.int8), width
        )
        if i < 0 or not np.isfinite(rate):
            raise InputDataError(f"no fully exposed {ts} s window in the search interval")
        av = a[i : i + width].sum(axis=0)
        var_b = float(av @ background.cov @ av)
        out.append(
            PeakFlux(
                timescale_s=ts,
                rate=float(rate),
                rate_err=float(np.sqrt(c + var_b) / (width * res)),
                start=float(bins.lo[i]),
                counts=float(c),
                background_counts=float(b),
            )
        )
    return out
