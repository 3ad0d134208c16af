"""QTEMP/QHR/OTLOC-time steps of one instrument: light curves, background, T90, peak, HR, trigger.

One call per instrument, on events already on the common time axis (s since ``t0``):

1. the T90 band (the caller's, else the instrument file's ``bands_kev.t90``, clipped to the
   channels the instrument has) is analysed by
   :func:`~svomflow.tasks.timing.durations_from_events`: the burst's extent is found on fine
   bins (Bayesian blocks above a polynomial background), the bin width is chosen from it
   (extent / 64 within [1 ms, 1 s]), the background refitted and T90/T50 measured. The same
   width serves a 0.1 s and a 100 s burst without a switch between "short" and "long"
   settings. When the burst is found but its T90 cannot be measured (typically the tail
   still rising or decaying at the end of the data: no post-burst background plateau), the
   light curve and background are kept and the reason recorded in :attr:`T90Status`;
2. peak flux on 64/256/1024 ms (:func:`~svomflow.tasks.timing.peak_flux`), the rate trigger
   over timescales and bands (:func:`~svomflow.tasks.timing.rate_trigger`);
3. the hardness ratio in the instrument's two hardness bands over the T90 interval, with the
   background of each band fitted on the same off-source intervals;
4. quick light curves in several bands (QLC, at ``lc_dt_s`` or the T90 width when finer)
   and an on-board-like count light curve (OBLC);
5. per detector, the net counts in the T90 band over the T90 interval (for the particle flag
   and the GRM count-ratio position).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from svomflow.errors import InputDataError
from svomflow.products.events import EventList
from svomflow.tasks.timing import (
    BackgroundConfig,
    BackgroundModel,
    BinnedCounts,
    Durations,
    HardnessRatio,
    NetCounts,
    PeakFlux,
    TriggerResult,
    adaptive_curve,
    durations,
    fit_background,
    hardness_ratio,
    net_counts,
    peak_flux,
    rate_trigger,
    uniform_bins,
)
from svomflow.tasks.timing.t90_status import T90Status, t90_status
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.inputs import InstrumentData

__all__ = [
    "BandCurve",
    "InstrumentCurves",
    "InstrumentTiming",
    "T90Status",
    "clip_band",
    "instrument_lightcurves",
    "instrument_measures",
    "instrument_timing",
    "manual_background",
    "t90_status",
]

Band = tuple[float, float]


@dataclass
class BandCurve:
    """A light curve of one band with its background model (None if it could not be fitted)."""

    band_kev: Band
    bins: BinnedCounts
    background: BackgroundModel | None


@dataclass
class InstrumentTiming:
    """Timing results of one instrument (times in s since ``t0``)."""

    instrument: str
    band_kev: Band
    curve: BandCurve
    durations: Durations | None
    peaks: list[PeakFlux]
    trigger: TriggerResult | None
    hardness: HardnessRatio | None
    light_curves: list[BandCurve]
    oblc: list[BandCurve]
    detector_net: dict[str, NetCounts]
    flags: list[str] = field(default_factory=list)
    dt_s: float = 0.064
    t90_status: T90Status = field(default_factory=lambda: T90Status("GOOD"))

    @property
    def burst_interval(self) -> tuple[float, float]:
        """The T90 interval, or the background fit's source interval when T90 failed."""
        if self.durations is not None:
            d = self.durations
            return (d.t90_start, d.t90_start + d.t90)
        assert self.curve.background is not None
        return self.curve.background.source

    @property
    def background_intervals(self) -> list[tuple[float, float]]:
        """Off-source intervals of the background fit (s since t0)."""
        assert self.curve.background is not None
        return [(float(a), float(b)) for a, b in self.curve.background.intervals]


def clip_band(band: Band, energy_range: Band) -> Band | None:
    """Return ``band`` clipped to ``energy_range`` (None when they do not overlap)."""
    lo, hi = max(band[0], energy_range[0]), min(band[1], energy_range[1])
    return (float(lo), float(hi)) if hi > lo else None


def manual_background(
    bins: BinnedCounts, like: BackgroundModel, config: BackgroundConfig
) -> BackgroundModel:
    """Fit a band's background on the off-source intervals already chosen for another band."""
    iv = [(float(a), float(b)) for a, b in like.intervals]
    cfg = config.model_copy(update={"intervals": iv, "method": "manual"})
    return fit_background(bins, cfg)


def _band_times(ev: EventList, band: Band, detector: int | None = None) -> np.ndarray:
    sel = ev.in_band(band[0], band[1])
    if detector is not None:
        sel &= ev.detector == detector
    return ev.time[sel]


@dataclass
class InstrumentCurves:
    """Light curves of one instrument: the T90 band with its background and T90, QLC bands, OBLC.

    ``dt_s`` is the bin width chosen from the burst for the T90 analysis; the per-band and
    per-detector backgrounds of the later steps are fitted on that clock.
    """

    instrument: str
    band_kev: Band
    curve: BandCurve
    light_curves: list[BandCurve]
    oblc: list[BandCurve]
    trigger_bands: list[Band]
    durations: Durations | None
    t90_status: T90Status
    dt_s: float
    flags: list[str] = field(default_factory=list)


def instrument_lightcurves(
    data: InstrumentData, config: VHFConfig | None = None
) -> InstrumentCurves:
    """Light curves, background and T90/T50 of the T90 band (steps 1 and 4).

    Raises
    ------
    InputDataError
        When no burst is found in the T90 band (no significant excess): the flow then flags
        the instrument rather than report numbers. A burst found whose T90 cannot be
        measured is not an error: ``durations`` is None and ``t90_status`` says why.
    """
    cfg = config or VHFConfig()
    ev = data.events
    gti = ev.gti
    flags: list[str] = []
    erange = data.energy_range_kev
    wanted = cfg.band_kev or tuple(data.bands("t90", cfg.default_bands.t90))  # type: ignore[arg-type]
    band = clip_band(wanted, erange)
    if band is None:
        default = tuple(data.bands("t90", cfg.default_bands.t90))  # type: ignore[arg-type]
        band = clip_band(default, erange) or erange
        flags.append(f"band {wanted} outside the instrument's {erange} keV: used {band}")
    elif band != tuple(wanted):
        flags.append(f"band {tuple(wanted)} clipped to the instrument's channels: {band}")
    times = _band_times(ev, band)
    if times.size < 10:
        raise InputDataError(f"{data.name}: only {times.size} events in {band} keV")
    dur: Durations | None = None
    why: str | None = None
    # the clock and background first (no burst: an error), then T90 on them; a T90 that
    # cannot be measured keeps the light curve and its background (t90_status says why)
    try:
        c = adaptive_curve(times, gti, cfg.background, cfg.binning)
    except InputDataError as exc:
        raise InputDataError(f"{data.name} {band[0]:g}-{band[1]:g} keV: {exc}") from None
    bins, bkg, dt = c.bins, c.background, c.dt_s
    try:
        dur = durations(bins, bkg, cfg.durations, band_kev=band)
    except InputDataError as exc:
        why = str(exc)
    flags.extend(bkg.flags)
    if dur is not None:
        flags.extend(dur.flags)
        if not (np.isfinite(dur.t90_err) and dur.t90_err > 0):
            flags.append("T90 error could not be estimated")
    g = np.asarray(gti, float).reshape(-1, 2)
    status = t90_status(bkg, (float(g[0, 0]), float(g[-1, 1])), dt, cfg.durations, why, flags)
    if not status.measured:
        dur = None  # a duration measured without a plateau is not reported (t90_status)
        flags.append(f"no T90 ({status.quality}): {status.reason}")
    curve = BandCurve(band, bins, bkg)
    lc_dt = min(cfg.lc_dt_s, dt)
    lcs = []
    for b in data.bands("light_curve", cfg.default_bands.light_curve):  # type: ignore[union-attr]
        cb = clip_band(tuple(b), erange)
        if cb is None:
            continue
        lb = uniform_bins(_band_times(ev, cb), lc_dt, gti)
        try:
            lbk = manual_background(lb, bkg, cfg.background)
        except InputDataError:
            lbk = None
        lcs.append(BandCurve(cb, lb, lbk))
    trig_bands = cfg.trigger.bands_kev
    if "bands_kev" not in cfg.trigger.model_fields_set:
        trig_bands = [tuple(b) for b in data.bands("trigger", cfg.default_bands.trigger)]  # type: ignore[union-attr]
    trig_bands = [b for b in (clip_band(tuple(b), erange) for b in trig_bands) if b]
    oblc = [
        BandCurve(b, uniform_bins(_band_times(ev, b), cfg.oblc_dt_s, gti), None) for b in trig_bands
    ]
    return InstrumentCurves(
        data.name, band, curve, lcs, oblc, trig_bands, dur, status, float(dt), flags
    )


def instrument_measures(
    data: InstrumentData, curves: InstrumentCurves, config: VHFConfig | None = None
) -> InstrumentTiming:
    """Peak flux, rate trigger, hardness and per-detector net counts (steps 2, 3, 5)."""
    cfg = config or VHFConfig()
    ev = data.events
    gti = ev.gti
    erange = data.energy_range_kev
    flags = list(curves.flags)
    band = curves.band_kev
    bkg = curves.curve.background
    assert bkg is not None
    times = _band_times(ev, band)
    dt = curves.dt_s
    bcfg = cfg.background
    dur = curves.durations
    src = (dur.t90_start, dur.t90_start + dur.t90) if dur is not None else bkg.source
    try:
        # widen the search so that the longest window fits around a short burst
        wide = max(cfg.peak_flux.timescales_s)
        s0, s1 = bkg.source
        win = (max(s0 - wide, float(gti[0, 0])), min(s1 + wide, float(gti[-1, 1])))
        peaks = peak_flux(times, gti, bkg, cfg.peak_flux, window=win)
    except InputDataError as exc:
        peaks = []
        flags.append(f"no peak flux: {exc}")
    trigger = None
    if curves.trigger_bands:
        try:
            trigger = rate_trigger(
                ev.time,
                ev.energy,
                gti,
                cfg.trigger.model_copy(update={"bands_kev": curves.trigger_bands}),
            )
        except InputDataError as exc:
            flags.append(f"no rate trigger: {exc}")
    hr = None
    hb = [tuple(b) for b in data.bands("hardness", cfg.default_bands.hardness)]  # type: ignore[union-attr]
    hb = [b for b in (clip_band(b, erange) for b in hb) if b]
    if len(hb) >= 2:
        nets = []
        for b in hb[:2]:
            tb = _band_times(ev, b)
            bb = manual_background(uniform_bins(tb, dt, gti), bkg, bcfg)
            nets.append(net_counts(tb, gti, bb, src))
        hr = hardness_ratio(
            nets[1], nets[0], hard_band_kev=hb[1], soft_band_kev=hb[0], interval=src
        )
        if not hr.reliable:
            flags.append("hardness ratio unreliable: soft-band net counts below 3 sigma")
    det_net: dict[str, NetCounts] = {}
    for i, name in enumerate(ev.detectors):
        td = _band_times(ev, band, i)
        if td.size < 10:
            continue
        try:
            db = manual_background(uniform_bins(td, dt, gti), bkg, bcfg)
        except InputDataError:
            continue
        det_net[name] = net_counts(td, gti, db, src)
    return InstrumentTiming(
        instrument=data.name,
        band_kev=band,
        curve=curves.curve,
        durations=dur,
        peaks=peaks,
        trigger=trigger,
        hardness=hr,
        light_curves=curves.light_curves,
        oblc=curves.oblc,
        detector_net=det_net,
        flags=flags,
        dt_s=dt,
        t90_status=curves.t90_status,
    )


def instrument_timing(data: InstrumentData, config: VHFConfig | None = None) -> InstrumentTiming:
    """Run every timing step of one instrument (light curves, background, measures)."""
    return instrument_measures(data, instrument_lightcurves(data, config), config)
