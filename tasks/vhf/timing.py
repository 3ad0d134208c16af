"""Timing steps of one instrument: light curves, background, T90, peak flux, HR, rate trigger.

Two steps per instrument, on events already on the common time axis (s since ``t0``):

``lightcurves``
    1. the T90 band (the caller's, else the instrument file's ``bands_kev.t90``, clipped to
       the channels the instrument has) is analysed by
       :func:`~svomflow.tasks.timing.adaptive_curve`: the burst's extent is found on fine
       bins (Bayesian blocks above a polynomial background), the bin width is chosen from it
       (extent / 64 within [1 ms, 1 s]), the background refitted, then T90/T50 measured. The
       same width serves a 0.1 s and a 100 s burst without a switch between "short" and
       "long" settings. When the burst is found but its T90 cannot be measured (typically
       the tail still rising or decaying at the end of the data: no post-burst background
       plateau), the light curve and background are kept and the reason recorded in
       :class:`~svomflow.tasks.timing.t90_status.T90Status`;
    2. quick light curves in several bands (QLC, at ``lc_dt_s`` or the T90 width when finer)
       and the on-board-like count light curves (OBLC) in the trigger bands.

``timing``
    3. peak flux on 64/256/1024 ms (:func:`~svomflow.tasks.timing.peak_flux`), the rate
       trigger over timescales and bands (:func:`~svomflow.tasks.timing.rate_trigger`);
    4. the hardness ratio in the instrument's two hardness bands over the T90 interval, with
       the background of each band fitted on the same off-source intervals;
    5. per detector, the net counts in the T90 band over the T90 interval (for the particle
       flag and the count-ratio position);
    6. the products OBLC, QLC, QPF, QT90, QHR and the preview QLCPLOT.
"""

from __future__ import annotations

import numpy as np
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.products.events import EventList
from svomflow.tasks.step import step
from svomflow.tasks.timing import (
    BackgroundConfig,
    BackgroundModel,
    BinnedCounts,
    Durations,
    NetCounts,
    adaptive_curve,
    durations,
    fit_background,
    hardness_ratio,
    net_counts,
    peak_flux,
    rate_trigger,
    uniform_bins,
)
from svomflow.tasks.timing.t90_status import t90_status
from svomflow.tasks.vhf import fits_products as fp
from svomflow.tasks.vhf.bands import (
    Band,
    clip_band,
    definition_band,
    definition_bands,
    energy_range_kev,
)
from svomflow.tasks.vhf.config import LightCurvesConfig, TimingConfig
from svomflow.tasks.vhf.curves import BandCurve, InstrumentCurves, InstrumentTiming, NoBurst
from svomflow.tasks.vhf.previews import lightcurve_figure

__all__ = ["band_times", "lightcurves", "manual_background", "timing"]


def manual_background(
    bins: BinnedCounts, like: BackgroundModel, config: BackgroundConfig
) -> BackgroundModel:
    """Fit a band's background on the off-source intervals already chosen for another band."""
    iv = [(float(a), float(b)) for a, b in like.intervals]
    cfg = config.model_copy(update={"intervals": iv, "method": "manual"})
    return fit_background(bins, cfg)


def band_times(ev: EventList, band: Band, detector: int | None = None) -> np.ndarray:
    """Return the times of events whose channel lies in ``band`` (of one detector, if given)."""
    sel = ev.in_band(band[0], band[1])
    if detector is not None:
        sel &= ev.detector == detector
    return ev.time[sel]


def _t90_band(
    data: InstrumentEvents, config: LightCurvesConfig, erange: Band, flags: list[str]
) -> Band:
    """Return the T90 band clipped to the channels (outside them: the default band)."""
    default = definition_band(data, "t90", config.default_bands.t90)
    wanted = config.band_kev or default
    band = clip_band(wanted, erange)
    if band is None:
        band = clip_band(default, erange) or erange
        flags.append(f"band {wanted} outside the instrument's {erange} keV: used {band}")
    elif band != tuple(wanted):
        flags.append(f"band {tuple(wanted)} clipped to the instrument's channels: {band}")
    return band


@step(name="lightcurves", config=LightCurvesConfig, calibration=("EBOUNDS",))
def lightcurves(
    data: InstrumentEvents, *, config: LightCurvesConfig, calibration: CalibrationSet
) -> InstrumentCurves | NoBurst:
    """Light curves, background and T90/T50 of the T90 band; QLC and OBLC curves (1 and 2).

    An instrument whose T90 band shows no significant excess gives :class:`NoBurst` (the
    pipeline flags it rather than report numbers). A burst found whose T90 cannot be
    measured is not that: ``durations`` is None and ``t90_status`` says why.
    """
    ev = data.events
    gti = ev.gti
    flags: list[str] = []
    erange = energy_range_kev(data, calibration)
    band = _t90_band(data, config, erange, flags)
    times = band_times(ev, band)
    if times.size < 10:
        return NoBurst(data.name, f"{data.name}: only {times.size} events in {band} keV")
    # the clock and background first (no burst: no timing), then T90 on them; a T90 that
    # cannot be measured keeps the light curve and its background (t90_status says why)
    try:
        c = adaptive_curve(times, gti, config.background, config.binning)
    except InputDataError as exc:
        return NoBurst(data.name, f"{data.name} {band[0]:g}-{band[1]:g} keV: {exc}")
    bins, bkg, dt = c.bins, c.background, c.dt_s
    dur: Durations | None = None
    why: str | None = None
    try:
        dur = durations(bins, bkg, config.durations, band_kev=band)
    except InputDataError as exc:
        why = str(exc)
    flags.extend(bkg.flags)
    if dur is not None:
        flags.extend(dur.flags)
        if not (np.isfinite(dur.t90_err) and dur.t90_err > 0):
            flags.append("T90 error could not be estimated")
    g = np.asarray(gti, float).reshape(-1, 2)
    status = t90_status(bkg, (float(g[0, 0]), float(g[-1, 1])), dt, config.durations, why, flags)
    if not status.measured:
        dur = None  # a duration measured without a plateau is not reported (t90_status)
        flags.append(f"no T90 ({status.quality}): {status.reason}")
    lc_dt = min(config.lc_dt_s, dt)
    lcs = []
    for b in definition_bands(data, "light_curve", config.default_bands.light_curve):
        cb = clip_band(b, erange)
        if cb is None:
            continue
        lb = uniform_bins(band_times(ev, cb), lc_dt, gti)
        try:
            lbk: BackgroundModel | None = manual_background(lb, bkg, config.background)
        except InputDataError:
            lbk = None
        lcs.append(BandCurve(cb, lb, lbk))
    trig_bands = [tuple(b) for b in config.trigger.bands_kev]
    if "bands_kev" not in config.trigger.model_fields_set:
        trig_bands = list(definition_bands(data, "trigger", config.default_bands.trigger))
    clipped = [b for b in (clip_band(b, erange) for b in trig_bands) if b]
    oblc = [
        BandCurve(b, uniform_bins(band_times(ev, b), config.oblc_dt_s, gti), None) for b in clipped
    ]
    return InstrumentCurves(
        data.name,
        band,
        BandCurve(band, bins, bkg),
        lcs,
        oblc,
        clipped,
        dur,
        status,
        float(dt),
        flags,
    )


def _measures(
    data: InstrumentEvents, curves: InstrumentCurves, config: TimingConfig, erange: Band
) -> InstrumentTiming:
    """Peak flux, rate trigger, hardness and per-detector net counts (3 to 5)."""
    ev = data.events
    gti = ev.gti
    flags = list(curves.flags)
    band = curves.band_kev
    bkg = curves.curve.background
    assert bkg is not None
    times = band_times(ev, band)
    dt = curves.dt_s
    bcfg = config.background
    dur = curves.durations
    src = (dur.t90_start, dur.t90_start + dur.t90) if dur is not None else bkg.source
    try:
        # widen the search so that the longest window fits around a short burst
        wide = max(config.peak_flux.timescales_s)
        s0, s1 = bkg.source
        win = (max(s0 - wide, float(gti[0, 0])), min(s1 + wide, float(gti[-1, 1])))
        peaks = peak_flux(times, gti, bkg, config.peak_flux, window=win)
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
                config.trigger.model_copy(update={"bands_kev": curves.trigger_bands}),
            )
        except InputDataError as exc:
            flags.append(f"no rate trigger: {exc}")
    hr = None
    hb = definition_bands(data, "hardness", config.default_bands.hardness)
    hb = [b for b in (clip_band(b, erange) for b in hb) if b]
    if len(hb) >= 2:
        nets = []
        for b in hb[:2]:
            tb = band_times(ev, b)
            bb = manual_background(uniform_bins(tb, dt, gti), bkg, bcfg)
            nets.append(net_counts(tb, gti, bb, src))
        hr = hardness_ratio(
            nets[1], nets[0], hard_band_kev=hb[1], soft_band_kev=hb[0], interval=src
        )
        if not hr.reliable:
            flags.append("hardness ratio unreliable: soft-band net counts below 3 sigma")
    det_net: dict[str, NetCounts] = {}
    for i, name in enumerate(ev.detectors):
        td = band_times(ev, band, i)
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


def _timing_products(
    data: InstrumentEvents, t: InstrumentTiming, obs_id: str, previews: bool
) -> list[Product]:
    """OBLC, QLC, QPF, QT90, QHR and QLCPLOT of one instrument."""
    head = fp.ProductHeader.of(data)
    code = instrument_code(data.name)
    flags = list(data.flags) + list(t.flags)
    gti = data.events.gti
    files = tuple(data.files)

    def product(type_code: str, hdus: list[object]) -> Product:
        return Product(type_code, code, FitsModel.from_hdus(hdus), inputs=files)

    out = []
    if t.oblc:
        out.append(
            product(
                "OBLC",
                fp.lightcurve_hdus(t.oblc, head, gti=gti, flags=flags, with_background=False),
            )
        )
    curves = [t.curve, *t.light_curves]
    out.append(product("QLC", fp.lightcurve_hdus(curves, head, gti=gti, flags=flags)))
    if t.peaks:
        out.append(product("QPF", fp.peak_flux_hdus(t.peaks, t.band_kev, head, flags=flags)))
    st = t.t90_status
    bkg = t.curve.background
    out.append(
        product(
            "QT90",
            fp.t90_hdus(
                t.durations,
                head,
                flags=flags,
                quality=None if st.measured else (st.quality, st.reason),
                band_kev=t.band_kev,
                source=bkg.source if bkg is not None else None,
                data_span=(float(gti[0, 0]), float(gti[-1, 1])),
                dt_s=t.dt_s,
            ),
        )
    )
    if t.hardness is not None:
        hflags = flags + ([] if t.hardness.reliable else ["soft band below 3 sigma"])
        out.append(product("QHR", fp.hardness_hdus(t.hardness, head, flags=hflags)))
    if previews:
        title = f"{obs_id} {code}".strip()
        out.append(Product("QLCPLOT", code, lightcurve_figure(t, title=title), inputs=files))
    return out


@step(
    name="timing",
    config=TimingConfig,
    calibration=("EBOUNDS",),
    outputs=("OBLC", "QLC", "QPF", "QT90", "QHR", "QLCPLOT"),
)
def timing(
    data: InstrumentEvents,
    curves: InstrumentCurves,
    obs_id: str,
    *,
    config: TimingConfig,
    calibration: CalibrationSet,
) -> InstrumentTiming:
    """Peak flux, rate trigger, hardness, detector net counts and the timing products (3 to 6).

    ``obs_id`` titles the preview; the hardness bands are clipped to the instrument's
    channels (its EBOUNDS).
    """
    t = _measures(data, curves, config, energy_range_kev(data, calibration))
    t.products = _timing_products(data, t, obs_id, config.previews)
    return t
