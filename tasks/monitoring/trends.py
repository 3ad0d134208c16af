"""Long-term trends of housekeeping parameters over a day, week, month or quarter.

Pure: the binned series of every parameter (from the store's rollups) become one FITS product
per instrument and period, with the min/mean/max per bin (``TRENDS``) and, per parameter, the
mean level and the drift fitted as a straight line through the bin means weighted by their
sample counts (``DRIFTS``: slope per day and its standard error from the fit residuals, so
orbital or daily cycles count as scatter around the drift).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from pydantic import Field
from svomflow.config.base import StepConfig
from svomflow.products.catalogue import FitsModel, Product
from svomflow.tasks.step import step

__all__ = [
    "PERIODS",
    "Drift",
    "ParamTrend",
    "TrendInputs",
    "TrendsConfig",
    "fit_drift",
    "trends",
]

#: period name -> length in days
PERIODS: dict[str, float] = {"day": 1.0, "week": 7.0, "month": 30.0, "quarter": 91.0}
UNIX_MJD = 40587.0


class TrendsConfig(StepConfig):
    """Configuration of the trend products."""

    points: int = Field(default=240, ge=10, description="bins per parameter over the period")


@dataclass(frozen=True)
class ParamTrend:
    """A parameter's binned series over the period (times in unix s UTC)."""

    name: str
    unit: str
    times: np.ndarray
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray
    resolution_s: float


@dataclass(frozen=True)
class TrendInputs:
    """Every parameter of one instrument over one period ending at ``end``."""

    instrument: str
    period: str
    start: float
    end: float
    parameters: tuple[ParamTrend, ...]


@dataclass(frozen=True)
class Drift:
    """Mean level and linear drift of one parameter over the period."""

    name: str
    mean: float
    slope_per_day: float
    slope_err: float
    n_bins: int


def fit_drift(p: ParamTrend) -> Drift:
    """Fit ``mean = a + b t`` through the bins weighted by their counts; b in unit/day."""
    ok = (p.count > 0) & np.isfinite(p.mean)
    n = int(ok.sum())
    if n < 3:
        mean = float(np.average(p.mean[ok], weights=p.count[ok])) if n else float("nan")
        return Drift(p.name, mean, float("nan"), float("nan"), n)
    x = (p.times[ok] - p.times[ok].mean()) / 86400.0
    y = p.mean[ok]
    w = p.count[ok].astype(float)
    xm = np.average(x, weights=w)
    ym = np.average(y, weights=w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = float(np.sum(w * (x - xm) * (y - ym)) / sxx) if sxx > 0 else float("nan")
    resid = y - ym - slope * (x - xm)
    # the scatter of the bins about the line, not the per-sample noise, sets the error
    s2 = float(np.sum(w * resid**2) / np.sum(w)) * n / (n - 2)
    err = float(np.sqrt(s2 * np.sum(w**2 * (x - xm) ** 2)) / sxx) if sxx > 0 else float("nan")
    return Drift(p.name, float(ym), slope, err, n)


@step(name="hk-trends", config=TrendsConfig, outputs=("HKTRND",))
def trends(inputs: TrendInputs, *, config: TrendsConfig) -> Product:
    """Return the period's trend product of one instrument (TRENDS and DRIFTS tables)."""
    names, t, mean, lo, hi, cnt = [], [], [], [], [], []
    for p in inputs.parameters:
        names += [p.name] * p.times.size
        t.append(p.times)
        mean.append(p.mean)
        lo.append(p.min)
        hi.append(p.max)
        cnt.append(p.count)

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    width = max([len(n) for n in names] + [8])
    mjdref = UNIX_MJD
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="PARAM", format=f"{width}A", array=np.array(names, dtype=f"U{width}")),
            fits.Column(name="TIME", format="D", unit="s", array=cat(t, float)),
            fits.Column(name="MEAN", format="D", array=cat(mean, float)),
            fits.Column(name="MIN", format="D", array=cat(lo, float)),
            fits.Column(name="MAX", format="D", array=cat(hi, float)),
            fits.Column(name="N", format="K", array=cat(cnt, np.int64)),
        ],
        name="TRENDS",
    )
    h = table.header
    h["MJDREFI"] = (int(mjdref), "TIME is unix seconds: MJD 40587 = 1970-01-01")
    h["MJDREFF"] = 0.0
    h["TIMESYS"] = "UTC"
    h["TIMEUNIT"] = "s"
    h["PERIOD"] = (inputs.period, "day, week, month or quarter")
    h["TSTART"] = inputs.start
    h["TSTOP"] = inputs.end
    drifts = [fit_drift(p) for p in inputs.parameters]
    units = {p.name: p.unit for p in inputs.parameters}
    dwidth = max([len(d.name) for d in drifts] + [8])
    drift_hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="PARAM", format=f"{dwidth}A", array=[d.name for d in drifts]),
            fits.Column(name="UNIT", format="16A", array=[units[d.name] for d in drifts]),
            fits.Column(name="MEAN", format="D", array=[d.mean for d in drifts]),
            fits.Column(
                name="SLOPE", format="D", unit="unit/d", array=[d.slope_per_day for d in drifts]
            ),
            fits.Column(
                name="SLOPE_ERR", format="D", unit="unit/d", array=[d.slope_err for d in drifts]
            ),
            fits.Column(name="NBINS", format="J", array=[d.n_bins for d in drifts]),
        ],
        name="DRIFTS",
    )
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = inputs.instrument
    primary.header["PERIOD"] = inputs.period
    day = np.datetime64(int(inputs.end), "s").astype("datetime64[D]")
    return Product(
        "HKTRND",
        inputs.instrument,
        FitsModel.from_hdus([primary, table, drift_hdu]),
        obs_id=f"hktrend-{inputs.period}-{day}",
        content={
            "period": inputs.period,
            "start": inputs.start,
            "end": inputs.end,
            "samples": int(sum(int(p.count.sum()) for p in inputs.parameters)),
        },
    )
