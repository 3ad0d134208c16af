"""FITS content of the VHF products: OGIP light curves, responses and one-row tables with units.

Every function returns a list of HDUs (primary first), which a step turns into its product's
model (:meth:`svomflow.products.catalogue.FitsModel.from_hdus`); the catalogue's publisher
adds the provenance keywords. Times in tables are given twice: relative to ``T0`` (s) and in
mission seconds (``MET``); ``T0``, ``MJDREFI/F`` and ``TIMESYS`` are in every primary header
(:class:`ProductHeader`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from svomflow.products.burst_events import BurstEvents, InstrumentEvents
from svomflow.products.catalogue.instrument_codes import joint_code
from svomflow.products.ogip import (
    LightCurve,
    TimeReference,
    gti_hdu,
    lightcurve_hdu,
    primary_hdu,
)
from svomflow.tasks.timing import Durations, HardnessRatio, PeakFlux, TriggerResult
from svomflow.tasks.vhf.curves import BandCurve

__all__ = [
    "Column",
    "ProductHeader",
    "hardness_hdus",
    "lightcurve_hdus",
    "peak_flux_hdus",
    "t90_hdus",
    "table_hdus",
    "trigger_hdus",
]

# (name, value, unit, description)
Column = tuple[str, Any, str, str]


@dataclass(frozen=True)
class ProductHeader:
    """What every VHF product says of itself: telescope, instrument, T0 and time reference."""

    telescope: str
    instrument: str
    t0: float
    timeref: TimeReference

    @classmethod
    def of(cls, data: InstrumentEvents) -> ProductHeader:
        """Return the header of one instrument's products."""
        ev = data.events
        tel = data.definition.telescope if data.definition is not None else "UNKNOWN"
        return cls(tel, data.name, ev.t0, TimeReference(mjdref=ev.mjdref, timesys=ev.timesys))

    @classmethod
    def joint(cls, burst: BurstEvents) -> ProductHeader:
        """Return the header of a product of the whole burst (instrument: the joint code)."""
        first = next(iter(burst.instruments.values()))
        tel = first.definition.telescope if first.definition is not None else "UNKNOWN"
        return cls(
            tel,
            joint_code(list(burst.instruments)),
            burst.t0,
            TimeReference(mjdref=burst.mjdref, timesys=burst.timesys),
        )


def _set(header: fits.Header, key: str, value: Any, comment: str = "") -> None:
    """Set a card, shortening the comment so that the card fits in 80 characters."""
    if isinstance(value, str):
        value = value[:68]
        width = max(len(value.replace("'", "''")) + 2, 20)
    else:
        width = 20
    room = 80 - 10 - width - 3
    header[key] = (value, comment[: max(room, 0)])


def _primary(
    head: ProductHeader, flags: Sequence[str], quality: tuple[str, str] | None = None
) -> fits.PrimaryHDU:
    """Primary header with T0, the time reference and the quality (``QUALITY``, ``FLAGnn``).

    ``quality`` overrides the GOOD/FLAGGED keyword with a (value, reason) pair; the reason
    goes to ``QUALREAS`` (and in full to the FLAGnn cards).
    """
    h = primary_hdu(
        telescope=head.telescope,
        instrument=head.instrument,
        extra=[
            ("T0", float(head.t0), "[s] reference time of relative times (MET)"),
            *head.timeref.cards(),
        ],
    )
    if quality is None:
        _set(
            h.header, "QUALITY", "FLAGGED" if flags else "GOOD", "FLAGGED: read the FLAGnn keywords"
        )
    else:
        _set(h.header, "QUALITY", quality[0], "product quality: read QUALREAS and FLAGnn")
        # the full reason: astropy writes long strings with CONTINUE cards
        h.header["QUALREAS"] = (str(quality[1]), "why the quality is not GOOD")
    for i, f in enumerate(flags[:99], start=1):
        _set(h.header, f"FLAG{i:02d}", str(f), "quality note")
    return h


def _table(extname: str, rows: Sequence[Sequence[Column]]) -> fits.BinTableHDU:
    """Build a table whose columns are given row by row (every row has the same columns)."""
    first = rows[0]
    cols = []
    for j, (name, _, unit, _) in enumerate(first):
        values = [r[j][1] for r in rows]
        if all(isinstance(v, str) for v in values):
            width = max(1, max(len(v) for v in values))
            cols.append(fits.Column(name=name, format=f"{width}A", array=np.array(values)))
        elif all(isinstance(v, (bool, np.bool_)) for v in values):
            cols.append(fits.Column(name=name, format="L", array=np.array(values, dtype=bool)))
        else:
            arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            cols.append(fits.Column(name=name, format="D", unit=unit or None, array=arr))
    hdu = fits.BinTableHDU.from_columns(cols, name=extname)
    for j, (name, _, _, desc) in enumerate(first, start=1):
        if desc:
            _set(hdu.header, f"TTYPE{j}", name, desc)
    return hdu


def table_hdus(
    head: ProductHeader,
    *,
    extname: str,
    rows: Sequence[Sequence[Column]],
    keywords: Sequence[tuple[str, Any, str]] = (),
    flags: Sequence[str] = (),
    extra_tables: Sequence[tuple[str, Sequence[Sequence[Column]]]] = (),
    quality: tuple[str, str] | None = None,
) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Primary header plus a table of scalar results (one row per entry) with units."""
    prim = _primary(head, flags, quality)
    tab = _table(extname, rows)
    for k, v, c in keywords:
        if v is not None:
            _set(tab.header, k, v, c)
    out: list[fits.PrimaryHDU | fits.BinTableHDU] = [prim, tab]
    for name, r in extra_tables:
        if r:
            out.append(_table(name, r))
    return out


def lightcurve_hdus(
    curves: Sequence[BandCurve],
    head: ProductHeader,
    *,
    gti: np.ndarray,
    flags: Sequence[str] = (),
    with_background: bool = True,
) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """OGIP light curve: one RATE extension per band (TIME relative to TIMEZERO = T0) + GTI."""
    out: list[fits.PrimaryHDU | fits.BinTableHDU] = [_primary(head, flags)]
    for i, c in enumerate(curves, start=1):
        b = c.bins
        lc = LightCurve(
            time=b.lo,
            timedel=b.hi - b.lo,
            rate=b.rate,
            error=b.rate_error,
            fracexp=np.where(b.hi > b.lo, b.exposure / (b.hi - b.lo), 0.0),
            gti=gti,
            timeref=head.timeref,
            band_kev=c.band_kev,
            timezero=float(head.t0),
        )
        hdu = lightcurve_hdu(
            lc,
            telescope=head.telescope,
            instrument=head.instrument,
            extname="RATE",
            extra=[("EXTVER", i, "band index")],
        )
        if with_background and c.background is not None:
            mu, _ = c.background.counts(b)
            with np.errstate(divide="ignore", invalid="ignore"):
                bk = np.where(b.exposure > 0, mu / b.exposure, 0.0)
            hdu = fits.BinTableHDU.from_columns(
                hdu.columns
                + fits.ColDefs([fits.Column("BKG_RATE", "E", unit="count/s", array=bk)]),
                header=hdu.header,
            )
            hdu.header["BKGORDER"] = (c.background.order, "order of the background polynomial")
        out.append(hdu)
    out.append(
        gti_hdu(
            gti[:, 0] + head.t0,
            gti[:, 1] + head.t0,
            timeref=head.timeref,
            telescope=head.telescope,
            instrument=head.instrument,
        )
    )
    return out


def _band_keys(band: tuple[float, float] | None) -> list[tuple[str, Any, str]]:
    if band is None:
        return []
    return [
        ("E_MIN", float(band[0]), "[keV] lower edge of the band"),
        ("E_MAX", float(band[1]), "[keV] upper edge of the band"),
    ]


def t90_hdus(
    d: Durations | None,
    head: ProductHeader,
    *,
    flags: Sequence[str],
    quality: tuple[str, str] | None = None,
    band_kev: tuple[float, float] | None = None,
    source: tuple[float, float] | None = None,
    data_span: tuple[float, float] | None = None,
    dt_s: float | None = None,
) -> list[Any]:
    """QT90: T90/T50 with start times and 1-sigma errors in a stated band.

    Without durations (``d`` None: the burst was found but T90 could not be measured) the
    values are NaN, ``quality`` says why (e.g. ``TAIL_AT_DATA_END``) and the table gives the
    excess interval found (``SRC_START``/``SRC_STOP``) and the data span, so that a reader
    sees the burst extends to the edge of the data rather than a wrong duration.
    """
    nan = float("nan")
    t0 = head.t0
    row: list[Column] = [
        ("T90", d.t90 if d else nan, "s", "duration of 5-95 % of the net counts"),
        ("T90_ERR", d.t90_err if d else nan, "s", "1-sigma error (simulation)"),
        ("T90_START", d.t90_start if d else nan, "s", "start of T90, from T0"),
        ("T90_START_ERR", d.t90_start_err if d else nan, "s", "1-sigma error"),
        ("T90_START_MET", d.t90_start + t0 if d else nan, "s", "start of T90, mission time"),
        ("T50", d.t50 if d else nan, "s", "duration of 25-75 % of the net counts"),
        ("T50_ERR", d.t50_err if d else nan, "s", "1-sigma error"),
        ("T50_START", d.t50_start if d else nan, "s", "start of T50, from T0"),
        ("T50_START_ERR", d.t50_start_err if d else nan, "s", "1-sigma error"),
        ("T90_SYS", d.t90_sys if d else nan, "s", "background-choice systematic in T90_ERR"),
        ("T50_SYS", d.t50_sys if d else nan, "s", "background-choice systematic in T50_ERR"),
        ("POSTPLAT", d.post_plateau_start if d else nan, "s", "post-burst plateau start, from T0"),
        ("NET_COUNTS", d.total_counts if d else nan, "count", "background-subtracted counts"),
        ("NET_COUNTS_ERR", d.total_counts_err if d else nan, "count", "1-sigma error"),
        ("WIN_START", d.window[0] if d else nan, "s", "accumulation window start, from T0"),
        ("WIN_STOP", d.window[1] if d else nan, "s", "accumulation window stop, from T0"),
    ]
    if source is not None:
        row += [
            ("SRC_START", source[0], "s", "start of the excess over background, from T0"),
            ("SRC_STOP", source[1], "s", "end of the excess over background, from T0"),
        ]
    if data_span is not None:
        row += [
            ("DATA_START", data_span[0], "s", "first good time of the data, from T0"),
            ("DATA_STOP", data_span[1], "s", "last good time of the data, from T0"),
        ]
    band = d.band_kev if d is not None else band_kev
    keys: list[tuple[str, Any, str]] = list(_band_keys(band))
    if d is not None:
        keys.append(("METHOD", d.method[:68], "T90 method"))
        keys.append(("PLATMODE", d.post_plateau, "post-burst plateau: gap or established"))
        bkg = ",".join(f"[{lo:.1f},{hi:.1f}]" for lo, hi in d.background_intervals)
        keys.append(("BKGINT", bkg[:68], "[s] background fit intervals, from T0"))
    if dt_s is not None:
        keys.append(("TIMEDEL", float(dt_s), "[s] bin width of the T90 light curve"))
    return table_hdus(head, extname="T90", rows=[row], keywords=keys, flags=flags, quality=quality)


def peak_flux_hdus(
    peaks: Sequence[PeakFlux],
    band: tuple[float, float],
    head: ProductHeader,
    *,
    flags: Sequence[str],
) -> list[Any]:
    """QPF: peak net count rate per timescale with its window start."""
    rows = [
        [
            ("TIMESCALE", p.timescale_s, "s", "sliding window width"),
            ("RATE", p.rate, "count/s", "peak background-subtracted rate"),
            ("ERROR", p.rate_err, "count/s", "1-sigma error"),
            ("TSTART", p.start, "s", "window start, from T0"),
            ("TSTART_MET", p.start + head.t0, "s", "window start, mission time"),
            ("COUNTS", p.counts, "count", "counts in the window"),
            ("BKG_COUNTS", p.background_counts, "count", "background model counts"),
        ]
        for p in peaks
    ]
    return table_hdus(head, extname="PEAKFLUX", rows=rows, keywords=_band_keys(band), flags=flags)


def hardness_hdus(hr: HardnessRatio, head: ProductHeader, *, flags: Sequence[str]) -> list[Any]:
    """QHR: hard/soft net-count ratio with error, bands and interval."""
    row: list[Column] = [
        ("RATIO", hr.ratio, "", "hard / soft net counts"),
        ("ERROR", hr.ratio_err, "", "1-sigma error (propagated)"),
        ("SOFT_EMIN", hr.soft_band_kev[0], "keV", "soft band"),
        ("SOFT_EMAX", hr.soft_band_kev[1], "keV", "soft band"),
        ("HARD_EMIN", hr.hard_band_kev[0], "keV", "hard band"),
        ("HARD_EMAX", hr.hard_band_kev[1], "keV", "hard band"),
        ("TSTART", hr.interval[0], "s", "interval start, from T0"),
        ("TSTOP", hr.interval[1], "s", "interval stop, from T0"),
        ("SOFT_NET", hr.soft.net, "count", "soft net counts"),
        ("SOFT_NET_ERR", hr.soft.net_err, "count", "1-sigma"),
        ("HARD_NET", hr.hard.net, "count", "hard net counts"),
        ("HARD_NET_ERR", hr.hard.net_err, "count", "1-sigma"),
        ("RELIABLE", bool(hr.reliable), "", "soft net counts above 3 sigma"),
    ]
    return table_hdus(head, extname="HARDNESS", rows=[row], flags=flags)


def trigger_hdus(
    trig: TriggerResult | None,
    head: ProductHeader,
    *,
    onboard_time: float | None,
    image: Any | None,
    flags: Sequence[str],
) -> list[Any]:
    """TT: the trigger time (best rate-trigger window) and the table of every (timescale, band)."""
    t0 = head.t0
    row: list[Column] = [
        ("T0", t0, "s", "reference time T0 (mission s)"),
        ("ONBOARD_TRIGTIME", onboard_time, "s", "TRIGTIME of the input (mission s)"),
    ]
    table: list[list[Column]] = []
    if trig is not None:
        b = trig.best
        row += [
            ("TRIGTIME", b.start + t0, "s", "start of the best window (mission s)"),
            ("TSTART", b.start, "s", "start of the best window, from T0"),
            ("TIMESCALE", b.timescale_s, "s", "best window length"),
            ("EMIN", b.band_kev[0], "keV", "best band"),
            ("EMAX", b.band_kev[1], "keV", "best band"),
            ("SIGNIF", b.significance, "sigma", "Li & Ma significance"),
            ("TRIGGERED", bool(trig.triggered), "", "above the threshold"),
        ]
        table = [
            [
                ("TIMESCALE", r.timescale_s, "s", "window length"),
                ("EMIN", r.band_kev[0], "keV", "band"),
                ("EMAX", r.band_kev[1], "keV", "band"),
                ("TSTART", r.start, "s", "best window start, from T0"),
                ("COUNTS", r.counts, "count", "counts in the window"),
                ("BKG", r.background, "count", "expected background"),
                ("SIGNIF", r.significance, "sigma", "Li & Ma significance"),
            ]
            for r in trig.table
        ]
    if image is not None:
        row += [
            ("IMG_TSTART", image.t_start, "s", "image-trigger window start, from T0"),
            ("IMG_EXPOSURE", image.exposure_s, "s", "image-trigger exposure"),
            ("IMG_SNR", image.snr, "sigma", "image-trigger S/N"),
        ]
    return table_hdus(
        head, extname="TRIGGER", rows=[row], flags=flags, extra_tables=[("WINDOWS", table)]
    )
