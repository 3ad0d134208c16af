"""Spectral extraction from events: source and background PHA (type I and II) with grouping.

Source spectrum of an interval: the counts per PI channel of one detector's events in the
interval (GTI-clipped). Its ``EXPOSURE`` is the live time *the source saw*: for a
non-paralyzable detector the live fraction of a time bin is ``1 - n tau / dt`` (``n``
recorded events of the detector, all channels), lowest at the burst's peak, so the source
loses a larger share of its counts than the interval's mean live fraction says. The exposure
is the on-time times the live fraction averaged over fine bins (``live_bin_s``) weighted by
the source's net rate in the background model's band (the background is scaled with the
plain live fraction, see below). With the interval-mean live time instead, a bright burst
with a 2 % dead fraction at its peak comes out about 0.8 % too faint (measured on simulated
GRM bursts: GRM/ECLAIRs cross-normalisation 0.991 +- 0.0025 with the GRM's 8 us dead time,
0.998 without).

Background: the counts per channel of the same detector in the off-source intervals
(pre- and post-burst), a Poisson spectrum, scaled to the source interval by the ratio of the
integrals of the detector's fitted background rate (a Poisson polynomial in time on the
off-source light curve of all its fitted channels, :func:`svomflow.tasks.timing.fit_background`
in manual mode). The scaling is written the OGIP way: ``BACKSCAL`` of the background file is
set so that ``EXPOSURE_b BACKSCAL_b / EXPOSURE_s = expected-off / expected-in-source``; the
background is therefore fitted with W-stat (Poisson source, Poisson background). This
assumes the background spectrum keeps its shape while its level varies (true for an orbital
modulation common to all energies); the time dependence of the level is exact to the order of
the polynomial.

Grouping (``GROUPING`` column, as grppha): consecutive channels are grouped until a group
holds ``min_counts`` source counts, ``min_bkg_counts`` background counts and at least
``min_channels`` channels; channels below the instrument's low threshold get
``QUALITY = 5`` (no response there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.ogip import (
    TimeReference,
    ebounds_hdu,
    gti_hdu,
    pha_type1_hdu,
    pha_type2_hdu,
)
from svomflow.tasks.timing import (
    BackgroundConfig,
    BinnedCounts,
    fit_background,
    uniform_bins,
)
from svomflow.tasks.timing.background import BackgroundModel
from svomflow.tasks.xband.selection import band_mask, channel_bounds, source_file

__all__ = [
    "DetectorBackground",
    "ExtractedSpectrum",
    "detector_background",
    "ebounds_gti_hdus",
    "extract_spectrum",
    "group_channels",
    "interval_pha_hdu",
    "low_threshold_quality",
    "spectra_hdus",
]

Interval = tuple[float, float]


@dataclass
class DetectorBackground:
    """Background rate model of one detector (all fitted channels) and its off-source intervals."""

    instrument: str
    detector: str
    detector_index: int
    model: BackgroundModel
    off_intervals: list[Interval]
    band_kev: tuple[float, float]


@dataclass
class ExtractedSpectrum:
    """Source and background counts per channel for one detector and one interval."""

    instrument: str
    detector: str
    interval: Interval
    counts: NDArray[np.float64]
    exposure: float
    bkg_counts: NDArray[np.float64]
    bkg_exposure: float
    bkg_backscal: float
    expected_background: float
    grouping: NDArray[np.int16]
    quality: NDArray[np.int16]
    first_channel: int

    @property
    def net_counts(self) -> float:
        """Total source counts minus the expected background counts."""
        return float(self.counts.sum() - self.expected_background)


def _intersect(intervals: Sequence[Interval], gti: NDArray[np.float64]) -> list[Interval]:
    out = []
    for a, b in intervals:
        for g0, g1 in gti:
            lo, hi = max(a, g0), min(b, g1)
            if hi > lo:
                out.append((float(lo), float(hi)))
    return out


def ebounds_gti_hdus(
    ev: InstrumentEvents,
    detector_index: int,
    intervals: Sequence[Interval],
    *,
    t0: float,
    timeref: TimeReference,
) -> list[fits.BinTableHDU]:
    """Return the ``EBOUNDS`` and ``GTI`` extensions a spectrum file carries, as GBM's do.

    ``EBOUNDS`` gives the detector's channel energies (so gdt-core, XSPEC and threeML read
    the spectrum without its response); ``GTI`` the spectra's intervals (s from ``t0``)
    inside the events' good time intervals, in mission seconds.
    """
    if ev.definition is None:
        raise InputDataError(f"{source_file(ev)}: no instrument definition for the spectrum file")
    e_min, e_max, first = channel_bounds(ev, detector_index)
    kept = sorted(_intersect(intervals, ev.events.gti))
    merged: list[list[float]] = []
    for a, b in kept:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    gti = np.array(merged, dtype=float).reshape(-1, 2) + t0
    tel, ins = ev.definition.telescope, ev.definition.instrument
    return [
        ebounds_hdu(e_min, e_max, telescope=tel, instrument=ins, first_channel=first),
        gti_hdu(gti[:, 0], gti[:, 1], timeref=timeref, telescope=tel, instrument=ins),
    ]


def detector_background(
    ev: InstrumentEvents,
    detector_index: int | None,
    off_intervals: Sequence[Interval],
    band_kev: Sequence[float],
    *,
    bin_s: float = 1.024,
    max_order: int = 2,
) -> DetectorBackground:
    """Fit one detector's (None: all detectors') background rate on the off-source intervals."""
    data = ev.events
    off = _intersect(off_intervals, data.gti)
    if not off:
        raise InputDataError(f"{source_file(ev)}: no off-source data for the background")
    sel = band_mask(ev, band_kev)
    if detector_index is not None:
        sel &= data.detector == detector_index
    bins = uniform_bins(data.time[sel], bin_s, data.gti)
    cfg = BackgroundConfig(method="manual", intervals=list(off), max_order=max_order)
    model = fit_background(bins, cfg)
    name = "ALL" if detector_index is None else data.detectors[detector_index]
    return DetectorBackground(
        ev.key,
        name,
        -1 if detector_index is None else detector_index,
        model,
        off,
        (float(band_kev[0]), float(band_kev[1])),
    )


def _integral(model: BackgroundModel, pieces: Sequence[Interval]) -> float:
    if not pieces:
        return 0.0
    lo = np.array([p[0] for p in pieces])
    hi = np.array([p[1] for p in pieces])
    one = BinnedCounts(lo, hi, np.zeros(lo.size), hi - lo)
    return float(model.counts(one)[0].sum())


def group_channels(
    counts: NDArray[np.float64],
    quality: NDArray[np.int16],
    min_counts: int,
    min_channels: int = 1,
    *,
    bkg_counts: NDArray[np.float64] | None = None,
    min_bkg_counts: int = 0,
) -> NDArray[np.int16]:
    """OGIP GROUPING flags: groups of good channels reaching ``min_counts`` and ``min_channels``.

    With ``bkg_counts`` a group must also hold ``min_bkg_counts`` background counts (W-stat
    is biased when groups have few background counts: XSPEC manual, appendix B). A last
    group short of the target joins the previous group; bad-quality channels are their own
    groups (they are ignored in fits anyway).
    """
    n = counts.size
    bkg = np.zeros(n) if bkg_counts is None else np.asarray(bkg_counts, dtype=float)
    grouping = np.ones(n, dtype=np.int16)
    start = None
    acc = 0.0
    acc_b = 0.0
    width = 0
    last_start = None
    for i in range(n):
        if quality[i] != 0:
            grouping[i] = 1
            start, acc, acc_b, width = None, 0.0, 0.0, 0
            continue
        if start is None:
            start, acc, acc_b, width = i, 0.0, 0.0, 0
            grouping[i] = 1
            last_start = i
        else:
            grouping[i] = -1
        acc += counts[i]
        acc_b += bkg[i]
        width += 1
        if acc >= min_counts and width >= min_channels and acc_b >= min_bkg_counts:
            start = None
    if start is not None and last_start is not None and last_start > 0:
        # the unfinished tail joins the previous good group, if it is adjacent
        prev = last_start - 1
        if quality[prev] == 0:
            grouping[last_start] = -1
    return grouping


def _live(
    ev: InstrumentEvents, pieces: Sequence[Interval], detector_index: int, dead_time_s: float
) -> tuple[float, int]:
    """Live time over the pieces and the number of recorded events of the detector in them."""
    total = sum(b - a for a, b in pieces)
    t = ev.events.time[ev.events.detector == detector_index]
    n = int(sum(np.searchsorted(t, b) - np.searchsorted(t, a) for a, b in pieces))
    return max(total - n * dead_time_s, 0.0), n


def _source_weighted_live(
    ev: InstrumentEvents,
    background: DetectorBackground,
    pieces: Sequence[Interval],
    live_fraction_off: float,
    bin_s: float,
    dead_time_s: float,
) -> float:
    """Live time of the pieces as seen by the source (module docstring); plain if no source.

    The live fraction of each ``bin_s`` bin comes from the detector's recorded events (all
    channels); the weights are the net true rate in the background model's band (recorded
    counts over the bin's live time minus the model's background, itself a recorded rate of
    the off-source intervals divided by their live fraction).
    """
    k = background.detector_index
    on_det = ev.events.detector == k
    t_all = ev.events.time[on_det]
    t_band = ev.events.time[on_det & band_mask(ev, background.band_kev)]
    gti = np.asarray(pieces, dtype=np.float64).reshape(-1, 2)
    plain, _ = _live(ev, pieces, k, dead_time_s)
    if dead_time_s <= 0:
        return plain
    all_bins = uniform_bins(t_all, bin_s, gti)
    band_bins = uniform_bins(t_band, bin_s, gti)
    dt = all_bins.exposure
    ok = dt > 0
    live = np.clip(dt - all_bins.counts * dead_time_s, 0.0, None)
    lf = np.divide(live, dt, out=np.ones_like(dt), where=ok)
    b_rec, _ = background.model.counts(band_bins)
    true_rate = np.divide(band_bins.counts, live, out=np.zeros_like(dt), where=live > 0)
    bkg_rate = np.divide(b_rec, dt * live_fraction_off, out=np.zeros_like(dt), where=ok)
    weight = (true_rate - bkg_rate) * dt
    total = float(weight[ok].sum())
    if not total > 0:
        return plain
    mean_lf = float(np.sum(lf[ok] * weight[ok]) / total)
    # noisy weights (a faint burst) cannot take the mean outside the bins' live fractions
    mean_lf = min(max(mean_lf, float(lf[ok].min())), float(lf[ok].max()))
    return mean_lf * float(dt.sum())


def _channel_counts(
    time: NDArray[np.float64],
    channel: NDArray[np.integer],
    detector: NDArray[np.integer],
    pieces: Sequence[Interval],
    detector_index: int,
    first_channel: int,
    n_channels: int,
) -> NDArray[np.float64]:
    m = np.zeros(time.size, dtype=bool)
    for a, b in pieces:
        i0, i1 = np.searchsorted(time, [a, b])
        m[i0:i1] = True
    m &= detector == detector_index
    idx = channel[m].astype(np.int64) - first_channel
    return np.bincount(idx, minlength=n_channels).astype(np.float64)


def low_threshold_quality(ev: InstrumentEvents, e_max: NDArray[np.float64]) -> NDArray[np.int16]:
    """OGIP QUALITY per channel: 5 (bad) for channels below the instrument's low threshold."""
    quality = np.zeros(e_max.size, dtype=np.int16)
    thr = None if ev.definition is None else ev.definition.get("low_threshold_kev", None)
    if thr is not None:
        quality[e_max <= float(thr) + 1e-9] = 5
    return quality


def extract_spectrum(
    ev: InstrumentEvents,
    background: DetectorBackground,
    interval: Interval,
    *,
    dead_time_s: float,
    min_counts: int = 10,
    min_channels: int = 1,
    event_mask: NDArray[np.bool_] | None = None,
    min_bkg_counts: int = 0,
    live_bin_s: float = 0.064,
) -> ExtractedSpectrum:
    """Extract the source and background spectra of one detector for an interval.

    ``dead_time_s`` is the detector's dead time per recorded event (CALDB ``DEADTIME``).
    ``event_mask`` removes events (e.g. noisy pixels) from source and background alike.
    ``live_bin_s`` is the bin width of the source-weighted live time (module docstring).
    Each group holds ``min_counts`` source and ``min_bkg_counts`` background counts (the
    off-source counts) and spans ``min_channels`` channels (:func:`group_channels`).

    Raises
    ------
    InputDataError
        An empty interval (no good time or no counts), or an interval overlapping the
        background intervals.
    """
    where = source_file(ev)
    data = ev.events
    a, b = float(interval[0]), float(interval[1])
    if not b > a:
        raise InputDataError(f"{where}: empty interval [{a}, {b}] s")
    pieces = _intersect([(a, b)], data.gti)
    if not pieces:
        raise InputDataError(f"{where}: interval [{a:.3f}, {b:.3f}] s has no good time")
    for o0, o1 in background.off_intervals:
        if min(b, o1) - max(a, o0) > 1e-9:
            raise InputDataError(
                f"{where}: interval [{a:.3f}, {b:.3f}] s overlaps the background interval "
                f"[{o0:.3f}, {o1:.3f}] s"
            )
    k = background.detector_index
    e_min, e_max, first = channel_bounds(ev, k)
    keep = slice(None) if event_mask is None else np.asarray(event_mask, dtype=bool)
    view = (data.time[keep], data.channel[keep], data.detector[keep])

    def channel_counts(spans: Sequence[Interval]) -> NDArray[np.float64]:
        return _channel_counts(*view, spans, k, first, e_min.size)

    counts = channel_counts(pieces)
    if counts.sum() <= 0:
        raise InputDataError(
            f"{where}: no counts in {data.detectors[k]} in [{a:.3f}, {b:.3f}] s (empty interval)"
        )
    exposure, _n_src = _live(ev, pieces, k, dead_time_s)
    bkg_counts = channel_counts(background.off_intervals)
    bkg_exposure, _n_bkg = _live(ev, background.off_intervals, k, dead_time_s)
    w_src = _integral(background.model, pieces)
    w_off = _integral(background.model, background.off_intervals)
    if not (w_src > 0 and w_off > 0 and exposure > 0 and bkg_exposure > 0):
        raise InputDataError(f"{where}: background model not positive over the intervals")
    # recorded counts scale with the live fraction of each span
    lf_src = exposure / sum(q - p for p, q in pieces)
    lf_off = bkg_exposure / sum(q - p for p, q in background.off_intervals)
    r = (w_off * lf_off) / (w_src * lf_src)
    # the source's own live time (weighted by its light curve) is the spectrum's EXPOSURE;
    # BACKSCAL keeps the background's scaling 1/r relative to it
    exposure = _source_weighted_live(ev, background, pieces, lf_off, live_bin_s, dead_time_s)
    backscal = r * exposure / bkg_exposure
    # the background model was fitted in a band: the expected background of all channels is
    # the off-source spectrum scaled by 1/r
    expected = float(bkg_counts.sum() / r)
    quality = low_threshold_quality(ev, e_max)
    grouping = group_channels(
        counts,
        quality,
        min_counts,
        min_channels,
        bkg_counts=bkg_counts,
        min_bkg_counts=min_bkg_counts,
    )
    return ExtractedSpectrum(
        instrument=ev.key,
        detector=data.detectors[k],
        interval=(a, b),
        counts=counts,
        exposure=float(exposure),
        bkg_counts=bkg_counts,
        bkg_exposure=float(bkg_exposure),
        bkg_backscal=float(backscal),
        expected_background=expected,
        grouping=grouping,
        quality=quality,
        first_channel=first,
    )


def _add_columns(
    hdu: fits.BinTableHDU, cols: list[fits.Column], drop_keys: Sequence[str]
) -> fits.BinTableHDU:
    new = fits.BinTableHDU.from_columns(hdu.columns + fits.ColDefs(cols), name=hdu.name)
    for card in hdu.header.cards:
        if card.keyword in new.header or card.keyword.startswith(
            ("TTYPE", "TFORM", "TUNIT", "NAXIS", "TDIM")
        ):
            continue
        if card.keyword in drop_keys:
            continue
        new.header[card.keyword] = (card.value, card.comment)
    for k in ("TLMIN", "TLMAX"):
        for i in range(1, len(hdu.columns) + 1):
            if f"{k}{i}" in hdu.header:
                new.header[f"{k}{i}"] = hdu.header[f"{k}{i}"]
    return new


def interval_pha_hdu(
    counts: Sequence[NDArray[np.float64]],
    exposure: Sequence[float],
    intervals: Sequence[Interval],
    *,
    t0: float,
    telescope: str,
    instrument: str,
    timeref: TimeReference,
    first_channel: int,
    respfile: str | None = None,
    backfile: Sequence[str] | None = None,
    backscal: Sequence[float] | None = None,
    stat_err: Sequence[NDArray[np.float64]] | None = None,
    channel_columns: Sequence[tuple[str, str, Sequence[NDArray[np.generic]]]] = (),
) -> fits.BinTableHDU:
    """One ``SPECTRUM`` HDU of spectra of intervals: PHA type I for one, type II for several.

    Per row: counts, exposure, interval (s from ``t0``; mission seconds in the file), and
    optionally ``backfile``/``backscal`` (keywords for type I, columns for type II) and
    ``stat_err``. ``channel_columns`` are ``(name, TFORM code, one array per row)`` columns
    per channel (``QUALITY``, ``GROUPING``...).
    """
    n_rows = len(counts)
    if n_rows == 0:
        raise InputDataError("no spectra to write")
    common = {
        "telescope": telescope,
        "instrument": instrument,
        "timeref": timeref,
        "first_channel": first_channel,
        "respfile": respfile,
    }
    row_cols: list[fits.Column] = []
    if n_rows == 1:
        hdu = pha_type1_hdu(
            counts[0],
            exposure=float(exposure[0]),
            backfile=None if backfile is None else backfile[0],
            backscal=1.0 if backscal is None else float(backscal[0]),
            stat_err=None if stat_err is None else stat_err[0],
            tstart=intervals[0][0] + t0,
            tstop=intervals[0][1] + t0,
            **common,  # type: ignore[arg-type]
        )
        forms = [(name, code, arrays[0]) for name, code, arrays in channel_columns]
    else:
        hdu = pha_type2_hdu(
            np.vstack(counts),
            exposure=np.asarray(exposure, dtype=np.float64),
            tstart=np.array([iv[0] + t0 for iv in intervals]),
            tstop=np.array([iv[1] + t0 for iv in intervals]),
            stat_err=None if stat_err is None else np.vstack(stat_err),
            **common,  # type: ignore[arg-type]
        )
        n = len(counts[0])
        forms = [(name, f"{n}{code}", np.vstack(arrays)) for name, code, arrays in channel_columns]
        if backfile is not None:
            width = max(len(x) for x in backfile)
            row_cols.append(fits.Column("BACKFILE", f"{width}A", array=np.array(backfile)))
        if backscal is not None:
            row_cols.append(fits.Column("BACKSCAL", "D", array=np.asarray(backscal, float)))
    cols = [fits.Column(name, form, array=arr) for name, form, arr in forms] + row_cols
    # keywords that the new columns replace (type II BACKFILE/BACKSCAL per row)
    return _add_columns(hdu, cols, tuple(c.name for c in cols))


def spectra_hdus(
    spectra: Sequence[ExtractedSpectrum],
    *,
    telescope: str,
    instrument: str,
    timeref: TimeReference,
    t0: float,
    respfile: str | None,
    backfile: str,
    extra_cards: Sequence[tuple[str, object, str]] = (),
) -> tuple[fits.BinTableHDU, fits.BinTableHDU]:
    """Build the ``SPECTRUM`` HDUs of one detector's spectra: (source, background).

    PHA type I for one interval, type II for several. Times in the files are mission
    seconds (``t0`` is added); the source names its background ``backfile`` (per row
    ``backfile{n}`` for type II) and its response ``respfile``.
    """
    if not spectra:
        raise InputDataError("no spectra to write")
    det = spectra[0].detector
    intervals = [s.interval for s in spectra]
    where = {
        "t0": t0,
        "telescope": telescope,
        "instrument": instrument,
        "timeref": timeref,
        "first_channel": spectra[0].first_channel,
    }
    names = (
        [backfile] if len(spectra) == 1 else [f"{backfile}{{{k + 1}}}" for k in range(len(spectra))]
    )
    src = interval_pha_hdu(
        [s.counts for s in spectra],
        [s.exposure for s in spectra],
        intervals,
        respfile=respfile,
        backfile=names,
        channel_columns=[
            ("QUALITY", "I", [s.quality for s in spectra]),
            ("GROUPING", "I", [s.grouping for s in spectra]),
        ],
        **where,  # type: ignore[arg-type]
    )
    bak = interval_pha_hdu(
        [s.bkg_counts for s in spectra],
        [s.bkg_exposure for s in spectra],
        intervals,
        backscal=[s.bkg_backscal for s in spectra],
        **where,  # type: ignore[arg-type]
    )
    for h, clas2 in ((src, "TOTAL"), (bak, "BKG")):
        h.header["HDUCLAS2"] = clas2
        h.header["DETNAM"] = (det, "detector")
        for k, v, c in extra_cards:
            h.header[k] = (v, c)
    return src, bak
