"""The ECLAIRs L1 event file: its data model, reader and writer (``docs/formats.md``).

An L1 file holds the EVENTS table (time, pixel Y/Z, PI, energy), EBOUNDS, GTI, ATTITUDE,
BADPIX, optionally the spacecraft's ground track (ORBIT, :mod:`svomflow.products.orbit_track`)
and, for simulated files, the ORIGINS truth table. The simulator writes it with
:func:`write_eclairs_l1`; the pipelines read it with :func:`read_eclairs_l1`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.config import InstrumentDefinition, load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.products.burst_events import BurstEvents
from svomflow.products.eic_calibration_files import PixelGain
from svomflow.products.events import EventList
from svomflow.products.ogip import (
    MALFORMED_FILE_ERRORS,
    TimeReference,
    ebounds_hdu,
    gti_hdu,
    primary_hdu,
    write_hdulist,
)
from svomflow.products.orbit_track import OrbitTrack, orbit_hdu, read_orbit_track

__all__ = [
    "EclairsEvents",
    "RateTrigger",
    "apply_pixel_gains",
    "read_eclairs_l1",
    "recalibrate_energies",
    "write_eclairs_l1",
]


@dataclass
class RateTrigger:
    """Result of the count-rate trigger: time, band, timescale and significance."""

    time: float
    band_kev: tuple[float, float]
    timescale_s: float
    snr: float
    window_start: float


@dataclass
class EclairsEvents:
    """An ECLAIRs event list with its context (the content of an L1 event file).

    ``origin`` indexes ``labels`` and records which component made each event (truth, not
    written to the L1 file's science columns but kept in a ``ORIGIN`` column for the bench).
    """

    time: NDArray[np.float64]
    y: NDArray[np.int16]
    z: NDArray[np.int16]
    pi: NDArray[np.int16]
    energy_kev: NDArray[np.float32]
    origin: NDArray[np.int16]
    labels: list[str]
    gti: NDArray[np.float64]
    attitude: Attitude
    t_start: float
    t_stop: float
    dead_pixels: NDArray[np.bool_]
    trigger: RateTrigger | None = None
    instrument: str = "eclairs"
    header: dict[str, Any] = field(default_factory=dict)
    orbit: OrbitTrack | None = None

    def __len__(self) -> int:
        return int(self.time.size)

    @property
    def exposure_s(self) -> float:
        """Total good time (sum of GTIs) in seconds."""
        return float(np.sum(self.gti[:, 1] - self.gti[:, 0])) if self.gti.size else 0.0


def write_eclairs_l1(
    events: EclairsEvents,
    path: str | Path,
    *,
    instrument: InstrumentDefinition | None = None,
    trigger_id: str | int | None = None,
    object_name: str | None = None,
) -> Path:
    """Write an ECLAIRs L1 event file (EVENTS, EBOUNDS, GTI, ATTITUDE, ORBIT, BADPIX; docs/formats.md)."""
    inst = instrument or load_instrument(events.instrument)
    kw = inst.header_keywords
    resp = EclairsResponse.from_instrument(inst)
    ref = inst.get("time_reference")
    timeref = TimeReference(
        mjdref=float(ref["mjdref"]), timesys=ref["timesys"], timeunit=ref["timeunit"]
    )
    tel, ins = inst.telescope, inst.instrument
    att = events.attitude
    trig = events.trigger
    ident = [
        (kw.get("ra_pointing", "RA_PNT"), float(att.ra_deg), "boresight right ascension (deg)"),
        (kw.get("dec_pointing", "DEC_PNT"), float(att.dec_deg), "boresight declination (deg)"),
        (kw.get("roll", "PA_PNT"), float(att.roll_deg), "position angle of +Z (deg)"),
        ("TSTART", events.t_start, "start of the observation (mission s)"),
        ("TSTOP", events.t_stop, "end of the observation (mission s)"),
        (kw.get("object", "OBJECT"), object_name, "object name"),
        (
            kw.get("trigger_id", "TRIGID"),
            None if trigger_id is None else str(trigger_id),
            "trigger identifier",
        ),
    ]
    if trig is not None:
        ident += [
            (kw.get("trigger_time", "TRIGTIME"), trig.time, "on-board trigger time (mission s)"),
            ("TRIGEMIN", trig.band_kev[0], "trigger band lower edge (keV)"),
            ("TRIGEMAX", trig.band_kev[1], "trigger band upper edge (keV)"),
            ("TRIGTSCL", trig.timescale_s, "trigger timescale (s)"),
            ("TRIGSNR", trig.snr, "trigger signal-to-noise ratio"),
        ]
    ident += [(k.upper()[:8], v, "") for k, v in events.header.items()]
    prim = primary_hdu(telescope=tel, instrument=ins, extra=ident + timeref.cards())

    cols = [
        fits.Column(kw.get("time", "TIME"), "D", unit="s", array=events.time),
        fits.Column(kw.get("pixel_y", "Y"), "I", array=events.y),
        fits.Column(kw.get("pixel_z", "Z"), "I", array=events.z),
        fits.Column(kw.get("pi", "PI"), "I", array=events.pi),
        fits.Column("ENERGY", "E", unit="keV", array=events.energy_kev),
        fits.Column("ORIGIN", "I", array=events.origin),
    ]
    ev = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    h = ev.header
    for key, val, com in prim.header.cards:
        if key not in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "COMMENT", "HISTORY", ""):
            h[key] = (val, com)
    h["HDUCLASS"] = ("OGIP", "")
    h["HDUCLAS1"] = ("EVENTS", "")
    h["TLMIN2"], h["TLMAX2"] = 0, events.dead_pixels.shape[0] - 1
    h["TLMIN3"], h["TLMAX3"] = 0, events.dead_pixels.shape[1] - 1
    h["TLMIN4"], h["TLMAX4"] = 0, resp.n_channels - 1
    # the labels (one per simulated component, many with bright sources in the field) go in
    # their own table: a header card would exceed 80 characters and make astropy warn
    h["NORIGIN"] = (len(events.labels), "truth: ORIGIN indexes the ORIGINS table")
    width = max([len(lb) for lb in events.labels] + [1])
    origins = fits.BinTableHDU.from_columns(
        [
            fits.Column("ORIGIN", "I", array=np.arange(len(events.labels), dtype=np.int16)),
            fits.Column("LABEL", f"{width}A", array=np.array(events.labels, dtype=f"U{width}")),
        ],
        name="ORIGINS",
    )
    origins.header["COMMENT"] = "simulation truth: the component that made each ORIGIN value"
    dead = np.argwhere(events.dead_pixels)
    bad = fits.BinTableHDU.from_columns(
        [
            fits.Column(kw.get("pixel_y", "Y"), "I", array=dead[:, 0].astype(np.int16)),
            fits.Column(kw.get("pixel_z", "Z"), "I", array=dead[:, 1].astype(np.int16)),
        ],
        name="BADPIX",
    )
    bad.header["COMMENT"] = "pixels switched off (dead): they record no event"

    e_lo, e_hi = resp.channel_bounds()
    eb = ebounds_hdu(e_lo, e_hi, telescope=tel, instrument=ins, first_channel=0)
    gt = gti_hdu(events.gti[:, 0], events.gti[:, 1], timeref=timeref, telescope=tel, instrument=ins)
    gt.header["GTICAUSE"] = ("SAA", "gaps between GTIs: detectors off in the SAA")
    att_hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("TIME", "D", unit="s", array=np.array([events.t_start, events.t_stop])),
            fits.Column("RA", "D", unit="deg", array=np.full(2, att.ra_deg)),
            fits.Column("DEC", "D", unit="deg", array=np.full(2, att.dec_deg)),
            fits.Column("ROLL", "D", unit="deg", array=np.full(2, att.roll_deg)),
        ],
        name="ATTITUDE",
    )
    for card in timeref.cards():
        att_hdu.header[card[0]] = (card[1], card[2])
    hdus: list[Any] = [prim, ev, eb, gt, att_hdu, bad, origins]
    if events.orbit is not None:
        hdus.insert(5, orbit_hdu(events.orbit, timeref.cards()))
    return write_hdulist(hdus, path)


#: Events may precede TSTART or follow TSTOP by at most this much (s) before the file is refused.
_TIME_SLACK_S = 86400.0


def _check_times(
    path: Path, time: np.ndarray, gti: np.ndarray, att: Attitude, t_start: float, t_stop: float
) -> None:
    """Refuse an L1 file whose times, intervals or attitude cannot be right."""
    if not (
        np.all(np.isfinite(time))
        and np.all(np.isfinite(gti))
        and np.isfinite(t_start)
        and np.isfinite(t_stop)
    ):
        raise InputDataError(f"{path}: NaN or infinite times in EVENTS, GTI or TSTART/TSTOP")
    if t_stop < t_start or (gti.size and np.any(gti[:, 1] < gti[:, 0])):
        raise InputDataError(
            f"{path}: an interval ends before it starts (TSTOP < TSTART or GTI STOP < START)"
        )
    if time.size and (time.min() < t_start - _TIME_SLACK_S or time.max() > t_stop + _TIME_SLACK_S):
        raise InputDataError(
            f"{path}: event times {time.min():.6g}..{time.max():.6g} s lie far outside "
            f"TSTART..TSTOP = {t_start:.6g}..{t_stop:.6g} s"
        )
    if not np.all(np.isfinite([att.ra_deg, att.dec_deg, att.roll_deg])):
        raise InputDataError(f"{path}: the ATTITUDE table holds NaN or infinite angles")


def read_eclairs_l1(
    path: str | Path, *, instrument: InstrumentDefinition | None = None
) -> EclairsEvents:
    """Read an ECLAIRs L1 event file written by :func:`write_eclairs_l1` (or to its format)."""
    inst = instrument or load_instrument("eclairs")
    kw = inst.header_keywords
    try:
        with fits.open(path) as hdul:
            names = [h.name for h in hdul]
            for need in ("EVENTS", "GTI", "ATTITUDE"):
                if need not in names:
                    raise InputDataError(f"{path}: no {need} extension (not an ECLAIRs L1 file)")
            ev = hdul["EVENTS"]
            d = ev.data
            h = ev.header
            time = np.asarray(d[kw.get("time", "TIME")], dtype=np.float64)
            y = np.asarray(d[kw.get("pixel_y", "Y")], dtype=np.int16)
            z = np.asarray(d[kw.get("pixel_z", "Z")], dtype=np.int16)
            pi = np.asarray(d[kw.get("pi", "PI")], dtype=np.int16)
            resp = EclairsResponse.from_instrument(inst)
            if "ENERGY" in d.columns.names:
                energy = np.asarray(d["ENERGY"], dtype=np.float32)
            else:  # channel centre
                energy = (resp.e_min_kev + (pi + 0.5) * resp.channel_width_kev).astype(np.float32)
            origin = (
                np.asarray(d["ORIGIN"], dtype=np.int16)
                if "ORIGIN" in d.columns.names
                else np.zeros(time.size, np.int16)
            )
            if "ORIGINS" in names:
                o = hdul["ORIGINS"].data
                labels = [str(v).strip() for v in o["LABEL"][np.argsort(o["ORIGIN"])]]
            else:  # files written before the ORIGINS table: labels in one header card
                labels = str(h.get("ORIGLBLS", "")).split(",") if h.get("ORIGLBLS") else []
            g = hdul["GTI"].data
            gti = np.column_stack([np.asarray(g["START"], float), np.asarray(g["STOP"], float)])
            a = hdul["ATTITUDE"].data
            att = Attitude(float(a["RA"][0]), float(a["DEC"][0]), float(a["ROLL"][0]))
            att_time = np.asarray(a["TIME"], float) if "TIME" in a.columns.names else np.zeros(0)
            ny = int(h.get("TLMAX2", 79)) + 1
            nz = int(h.get("TLMAX3", 79)) + 1
            dead = np.zeros((ny, nz), dtype=bool)
            if "BADPIX" in names:
                bp = hdul["BADPIX"].data
                dead[
                    np.asarray(bp[kw.get("pixel_y", "Y")], int),
                    np.asarray(bp[kw.get("pixel_z", "Z")], int),
                ] = True
            trig = None
            tkey = kw.get("trigger_time", "TRIGTIME")
            if tkey in h:
                trig = RateTrigger(
                    time=float(h[tkey]),
                    band_kev=(float(h.get("TRIGEMIN", np.nan)), float(h.get("TRIGEMAX", np.nan))),
                    timescale_s=float(h.get("TRIGTSCL", np.nan)),
                    snr=float(h.get("TRIGSNR", np.nan)),
                    window_start=float(h[tkey]) - float(h.get("TRIGTSCL", 0.0)),
                )
            t_start = float(h.get("TSTART", gti[:, 0].min() if gti.size else time.min()))
            t_stop = float(h.get("TSTOP", gti[:, 1].max() if gti.size else time.max()))
    except KeyError as exc:
        raise InputDataError(f"{path}: missing column or keyword {exc}") from exc
    except MALFORMED_FILE_ERRORS as exc:
        raise InputDataError(
            f"{path}: cannot read FITS file ({type(exc).__name__}: {exc})"
        ) from exc
    if time.size > 1 and np.any(np.diff(time) < 0):
        raise InputDataError(f"{path}: EVENTS times are not sorted")
    _check_times(Path(path), time, gti, att, t_start, t_stop)
    if att_time.size and not np.all(
        np.abs(att_time - 0.5 * (t_start + t_stop)) < _TIME_SLACK_S + (t_stop - t_start)
    ):
        raise InputDataError(f"{path}: ATTITUDE times lie far from the observation (TSTART..TSTOP)")
    return EclairsEvents(
        time=time,
        y=y,
        z=z,
        pi=pi,
        energy_kev=energy,
        origin=origin,
        labels=labels,
        gti=gti,
        attitude=att,
        t_start=t_start,
        t_stop=t_stop,
        dead_pixels=dead,
        trigger=trig,
        instrument=inst.name,
        orbit=read_orbit_track(path),
    )


#: Raw ADC channel of each event (before the per-pixel gain), when the L1 file has it.
ADC_COLUMN = "ADC"


def recalibrate_energies(events: EventList, path: str | Path, gain: PixelGain) -> EventList | None:
    """Return the events with energies from their raw ADC channels through a per-pixel gain.

    ``events`` are the events of the single L1 file ``path`` as
    :func:`svomflow.products.events.read_events` returns them (sorted in time, with pixels);
    each event's energy becomes ``gain * (ADC + 0.5) + offset`` of its pixel, then the PI
    channel of the events' EBOUNDS that holds it (its midpoint is the event's energy, as for
    every other event list). ``None`` when the file has no ``ADC`` column (its PI is kept).

    Raises
    ------
    InputDataError
        When the file's events do not match ``events`` or a pixel lies outside the table.
    """
    if events.pixel_y is None or events.pixel_z is None or len(events.detectors) != 1:
        raise InputDataError(f"{path}: per-pixel gains need the events of one imaging detector")
    with fits.open(path, memmap=False) as hdul:
        data = hdul["EVENTS"].data
        if ADC_COLUMN not in [c.upper() for c in data.columns.names]:
            return None
        time = np.asarray(data["TIME"], dtype=np.float64)
        adc = np.asarray(data[ADC_COLUMN], dtype=np.float64)
    if adc.size != events.size:
        raise InputDataError(f"{path}: {adc.size} ADC values for {events.size} events")
    adc = adc[np.argsort(time, kind="stable")]  # the order read_events gives the events
    ny, nz = gain.gain.shape
    y, z = events.pixel_y.astype(np.int64), events.pixel_z.astype(np.int64)
    if y.size and (y.min() < 0 or z.min() < 0 or y.max() >= ny or z.max() >= nz):
        raise InputDataError(f"{path}: event pixels outside the {ny}x{nz} PIXGAIN table")
    energy = gain.energy(y, z, adc)
    det = events.detectors[0]
    lo, hi = events.ebounds[det]
    idx = np.clip(np.searchsorted(hi, energy, side="right"), 0, lo.size - 1)
    return replace(
        events,
        channel=(events.first_channel[det] + idx).astype(events.channel.dtype),
        energy=np.asarray(0.5 * (lo[idx] + hi[idx]), dtype=np.float64),
        flags=[*events.flags, f"{Path(path).name}: energies from the ADC channels through PIXGAIN"],
    )


def apply_pixel_gains(burst: BurstEvents, gains: Mapping[str, PixelGain]) -> None:
    """Give the imaging instruments' events their energies through the CALDB's per-pixel gains.

    ``gains`` maps instrument definition names (``eclairs``) to their ``PIXGAIN`` tables;
    an instrument without one, or whose file has no ``ADC`` column, keeps the PI of its
    file (the second case flagged).
    """
    for data in burst.instruments.values():
        gain = gains.get(data.key)
        if gain is None or not data.imaging:
            continue
        new = recalibrate_energies(data.events, data.files[0], gain)
        if new is None:
            data.flags.append(
                f"{data.name}: no ADC column in the events: the file's PI is used, not PIXGAIN"
            )
            continue
        data.events = new
