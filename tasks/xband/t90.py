"""Step ``timing``: T90 per instrument and the common intervals (T90, TINT, TINT-PREVIEW).

Each instrument's light curve, background and T90/T50 in its T90 band
(:func:`~svomflow.tasks.xband.intervals.instrument_timing`), then the intervals the
instruments share (:func:`~svomflow.tasks.xband.intervals.common_intervals`): the spectra,
fluxes, hardness ratios and lags of the later steps all use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.products.catalogue.xband import JOINT_CODE
from svomflow.tasks.step import step
from svomflow.tasks.xband.config import IntervalsConfig
from svomflow.tasks.xband.inputs import EVENT_CALIBRATION
from svomflow.tasks.xband.intervals import (
    CommonIntervals,
    InstrumentTiming,
    common_intervals,
    instrument_timing,
)
from svomflow.tasks.xband.tables import lightcurve_figure, primary, results_table

__all__ = ["XbandTiming", "timing"]

_TIMEZERO = "mission time of T0 (s)"


@dataclass
class XbandTiming:
    """Timing of every instrument and the common intervals (s since ``t0``)."""

    t0: float
    timings: dict[str, InstrumentTiming]
    intervals: CommonIntervals
    products: list[Product] = field(default_factory=list)

    def t90_rows(self) -> dict[str, dict[str, Any]]:
        """Return the T90 table row of each instrument (JSON-ready: the flow's ``t90`` result)."""
        return {name: _t90_row(tm) for name, tm in self.timings.items()}


def _t90_row(tm: InstrumentTiming) -> dict[str, Any]:
    d = tm.durations
    row: dict[str, Any] = {"band_lo": tm.band_kev[0], "band_hi": tm.band_kev[1]}
    if d is not None:
        row.update(
            t90=d.t90,
            t90_err=d.t90_err,
            t90_start=d.t90_start,
            t90_start_err=d.t90_start_err,
            t50=d.t50,
            t50_err=d.t50_err,
            t50_start=d.t50_start,
            t50_start_err=d.t50_start_err,
            total_counts=d.total_counts,
            total_counts_err=d.total_counts_err,
            method=d.method,
        )
    row["flags"] = "; ".join(tm.flags) or "none"
    row["quality"] = tm.status.quality
    row["dt_s"] = tm.dt_s
    if not tm.status.measured:
        row["quality_reason"] = tm.status.reason
    return row


def _t90_product(ev: InstrumentEvents, tm: InstrumentTiming, t0: float) -> Product:
    row = _t90_row(tm)
    bkg = tm.background.counts(tm.bins)[0]
    lc = results_table(
        [
            {"time": lo, "timedel": hi - lo, "counts": c, "background": b, "exposure": x}
            for lo, hi, c, b, x in zip(
                tm.bins.lo, tm.bins.hi, tm.bins.counts, bkg, tm.bins.exposure, strict=True
            )
        ],
        extname="LIGHTCURVE",
        units={
            "time": "s",
            "timedel": "s",
            "counts": "count",
            "background": "count",
            "exposure": "s",
        },
        header=[
            ("TIMEZERO", t0, _TIMEZERO),
            ("E_MIN", tm.band_kev[0], "keV"),
            ("E_MAX", tm.band_kev[1], "keV"),
        ],
    )
    tab = results_table(
        [row],
        extname="DURATIONS",
        units={k: "s" for k in row if k.startswith(("t90", "t50"))}
        | {
            "band_lo": "keV",
            "band_hi": "keV",
            "total_counts": "count",
            "total_counts_err": "count",
            "dt_s": "s",
        },
        header=[("TIMEZERO", t0, _TIMEZERO)],
    )
    prim = primary(ev.definition)
    # QUALITY: GOOD / FLAGGED, or why no T90 was measured (e.g. TAIL_AT_DATA_END: the
    # burst is still above background at the end of the data) with the full reason
    prim.header["QUALITY"] = (tm.status.quality, "T90 quality: read QUALREAS")
    if not tm.status.measured:
        prim.header["QUALREAS"] = (tm.status.reason, "why no T90 was measured")
    model = FitsModel.from_hdus([prim, tab, lc])
    return Product("T90", instrument_code(tm.instrument), model, calibration=EVENT_CALIBRATION)


def _intervals_products(
    timings: Mapping[str, InstrumentTiming], ci: CommonIntervals, t0: float
) -> list[Product]:
    named = ci.all_named()
    rows = [
        {"name": n, "tstart": a, "tstop": b, "tstart_met": a + t0, "tstop_met": b + t0}
        for n, (a, b) in named
    ]
    itab = results_table(
        rows,
        extname="INTERVALS",
        units={"tstart": "s", "tstop": "s", "tstart_met": "s", "tstop_met": "s"},
        header=[
            ("TIMEZERO", t0, _TIMEZERO),
            ("RESMETH", ci.method, "time-resolved intervals method"),
            ("PEAKINST", ci.peak_instrument, "instrument of the peak interval"),
        ],
    )
    curves = [
        (
            f"{tm.instrument} {tm.band_kev[0]:g}-{tm.band_kev[1]:g} keV",
            tm.bins.lo,
            tm.bins.hi - tm.bins.lo,
            tm.bins.rate,
            tm.bins.rate_error,
        )
        for tm in timings.values()
    ]
    preview = lightcurve_figure(curves, named, ylabel="counts/s", title="X-band intervals")
    model = FitsModel.from_hdus([primary(None), itab])
    return [
        Product("TINT", JOINT_CODE, model, calibration=EVENT_CALIBRATION),
        Product("TINT-PREVIEW", JOINT_CODE, preview, calibration=EVENT_CALIBRATION),
    ]


@step(name="timing", config=IntervalsConfig, outputs=("T90", "TINT", "TINT-PREVIEW"))
def timing(
    instruments: Mapping[str, InstrumentEvents], t0: float, *, config: IntervalsConfig
) -> XbandTiming:
    """Measure T90 per instrument and build the common intervals of the later steps.

    ``instruments`` are the events by definition name (``eclairs``, ``grm``) on the time
    axis of ``t0`` (mission s).
    """
    timings = {name: instrument_timing(ev, config) for name, ev in instruments.items()}
    ci = common_intervals(list(timings.values()), instruments, config)
    products = [_t90_product(instruments[n], tm, t0) for n, tm in timings.items()]
    products += _intervals_products(timings, ci, t0)
    return XbandTiming(t0=t0, timings=timings, intervals=ci, products=products)
