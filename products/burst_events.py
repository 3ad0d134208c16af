"""The one event model and reader of the burst instruments (ECLAIRs, GRM, and foreign files).

The VHF quick analysis and the X-band analysis read the same files with this module: each
file's ``INSTRUME`` keyword names its instrument, files of one instrument are read together
(:func:`svomflow.products.events.read_events`) onto one time axis, and an instrument whose
definition (``config/instruments/<name>.yaml``) has a coded mask and whose files carry pixel
columns keeps the pixel of every event (imaging). Instruments of the mission take their
channel bounds and dead time from the CALDB (given here by the caller, loaded by the
adapter); foreign files (Fermi GBM TTE, OGIP events) carry their own.

The common reference time ``t0`` is, in order: the caller's, the ``TRIGTIME`` of the
imaging instrument (the on-board trigger), the earliest ``TRIGTIME`` of the other files, the
start of the data.

SAA: when the caller gives an instrument's SAA contour (the CALDB's ``SAACONT``) and its
file carries the spacecraft's ground track (``ORBIT`` extension,
:mod:`svomflow.products.orbit_track`), the time the track spends inside the contour is
taken out of the GTIs (and the events recorded then are dropped), whatever the file's own
GTIs say; a file without ``ORBIT`` is read as it is, with a note in the flags.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from svomflow.config import InstrumentDefinition, available_instruments, load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.channels import EnergyBounds
from svomflow.instruments.dead_time import DeadTime
from svomflow.products.eic_saa_files import SaaContour
from svomflow.products.events import EventList, read_events
from svomflow.products.orbit_track import read_orbit_track, saa_intervals, subtract_intervals

__all__ = [
    "BurstEvents",
    "FileHeader",
    "InstrumentEvents",
    "choose_t0",
    "definition_of",
    "peek_headers",
    "read_burst_events",
]


@dataclass(frozen=True)
class FileHeader:
    """What is known of a file from its headers, before its events are read."""

    path: str
    instrument: str
    trigger_time: float | None
    trigger_id: str | None
    attitude: tuple[float, float, float] | None
    has_pixels: bool
    n_event_hdus: int


def _event_hdus(hdul: fits.HDUList) -> list[int]:
    out = []
    for i, h in enumerate(hdul):
        if i == 0 or not isinstance(h, fits.BinTableHDU):
            continue
        cls1 = str(h.header.get("HDUCLAS1", "")).upper()
        if (h.name == "EVENTS" or cls1 == "EVENTS") and "TIME" in [
            c.upper() for c in h.columns.names
        ]:
            out.append(i)
    return out


def definition_of(instrument: str) -> InstrumentDefinition | None:
    """Return the packaged definition of an ``INSTRUME`` value (None for a foreign one)."""
    for name in available_instruments():
        defn = load_instrument(name)
        if defn.instrument.upper() == instrument.upper():
            return defn
    return None


def _pixel_columns(defn: InstrumentDefinition | None) -> tuple[str, str] | None:
    if defn is None or defn.get("mask", None) is None:
        return None
    kw = defn.header_keywords
    return (kw.get("pixel_y", "Y"), kw.get("pixel_z", "Z"))


def peek_headers(paths: Sequence[str | Path]) -> list[FileHeader]:
    """Read the identity of each file (instrument, trigger time and id, pointing) from its headers.

    Raises
    ------
    InputDataError
        A missing, empty or unreadable file, or one with no events table.
    """
    out = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise InputDataError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise InputDataError(f"{path}: file is empty")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(path, memmap=False) as hdul:
                    idx = _event_hdus(hdul)
                    if not idx:
                        raise InputDataError(f"{path}: no EVENTS table with a TIME column")
                    h0 = hdul[0].header
                    hev = hdul[idx[0]].header
                    cols = [c.upper() for c in hdul[idx[0]].columns.names]

                    def get(key: str, h0: fits.Header = h0, hev: fits.Header = hev) -> object:
                        return hev.get(key, h0.get(key))

                    inst = str(get("INSTRUME") or path.stem).strip().upper()
                    pix = _pixel_columns(definition_of(inst)) or ("Y", "Z")
                    trig = get("TRIGTIME")
                    trig_id = get("TRIGID") or get("OBJECT")
                    ra, dec = get("RA_PNT"), get("DEC_PNT")
                    att = None
                    if ra is not None and dec is not None:
                        att = (float(ra), float(dec), float(get("PA_PNT") or 0.0))  # type: ignore[arg-type]
                    out.append(
                        FileHeader(
                            path=str(path),
                            instrument=inst,
                            trigger_time=None if trig is None else float(trig),  # type: ignore[arg-type]
                            trigger_id=None if trig_id is None else str(trig_id).strip(),
                            attitude=att,
                            has_pixels=pix[0].upper() in cols and pix[1].upper() in cols,
                            n_event_hdus=len(idx),
                        )
                    )
        except InputDataError:
            raise
        except Exception as exc:  # astropy raises many kinds on a damaged file
            raise InputDataError(
                f"{path}: not a readable FITS file ({type(exc).__name__}: {exc})"
            ) from None
    return out


def _is_imaging(defn: InstrumentDefinition | None, headers: Sequence[FileHeader]) -> bool:
    return _pixel_columns(defn) is not None and all(h.has_pixels for h in headers)


@dataclass
class InstrumentEvents:
    """One instrument's events on the burst's time axis (s since ``t0``).

    ``events.pixel_y``/``pixel_z`` hold each event's pixel for an imaging instrument.
    """

    name: str
    definition: InstrumentDefinition | None
    events: EventList
    headers: tuple[FileHeader, ...]
    flags: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The definition name (``eclairs``), else the ``INSTRUME`` value lower-cased."""
        return self.definition.name if self.definition is not None else self.name.lower()

    @property
    def imaging(self) -> bool:
        """Whether every event has its detector pixel (a coded-mask instrument)."""
        return self.events.has_pixels

    @property
    def trigger_time(self) -> float | None:
        """Earliest ``TRIGTIME`` in this instrument's files (mission s)."""
        trig = [h.trigger_time for h in self.headers if h.trigger_time is not None]
        return min(trig) if trig else None

    @property
    def attitude(self) -> Attitude | None:
        """Pointing from the headers (RA_PNT, DEC_PNT, PA_PNT), if given."""
        for h in self.headers:
            if h.attitude is not None:
                return Attitude(*h.attitude)
        return None

    @property
    def files(self) -> list[str]:
        """Return the instrument's input files."""
        return [h.path for h in self.headers]


@dataclass
class BurstEvents:
    """All instruments of one burst on the common time axis (s since ``t0``)."""

    t0: float
    instruments: dict[str, InstrumentEvents]
    mjdref: float
    timesys: str

    @property
    def files(self) -> list[str]:
        """All input files."""
        return [f for d in self.instruments.values() for f in d.files]

    def get(self, key: str) -> InstrumentEvents | None:
        """One instrument by ``INSTRUME`` value or definition name, or None."""
        for name, d in self.instruments.items():
            if key.upper() == name.upper() or key.lower() == d.key:
                return d
        return None


def choose_t0(headers: Sequence[FileHeader], t0: float | None = None) -> float | None:
    """Return the common reference time (see the module notes); None: start of the data."""
    if t0 is not None:
        return float(t0)
    by_inst: dict[str, list[FileHeader]] = {}
    for h in headers:
        by_inst.setdefault(h.instrument, []).append(h)
    for name, hs in by_inst.items():
        trig = [h.trigger_time for h in hs if h.trigger_time is not None]
        if trig and _is_imaging(definition_of(name), hs):
            return min(trig)
    trig = [h.trigger_time for h in headers if h.trigger_time is not None]
    return min(trig) if trig else None


def _check_events(data: InstrumentEvents) -> None:
    """Refuse what would silently give wrong numbers: t0 outside or almost no events."""
    ev = data.events
    if ev.size < 10:
        raise InputDataError(f"{data.name}: only {ev.size} events")
    if not (ev.gti[0, 0] <= 0.0 <= ev.gti[-1, 1]):
        raise InputDataError(
            f"{data.name}: t0 is outside the data (data span {ev.gti[0, 0]:.3f} .. "
            f"{ev.gti[-1, 1]:.3f} s from t0)"
        )


def _exclude_saa(ev: EventList, paths: Sequence[str], contour: SaaContour) -> tuple[EventList, str]:
    """Take the SAA time of the files' ground track out of the GTIs; return the note to flag."""
    tracks = [read_orbit_track(p) for p in paths]
    if any(t is None for t in tracks):
        return ev, "no ORBIT extension: SAA time not checked against the CALDB contour"
    cut = [saa_intervals(t, contour) - ev.t0 for t in tracks if t is not None]
    inside = np.concatenate(cut) if cut else np.zeros((0, 2))
    gti = subtract_intervals(ev.gti, inside)
    removed = float(np.sum(np.diff(ev.gti, axis=1)) - np.sum(np.diff(gti, axis=1)))
    if gti.size == 0:
        raise InputDataError("every good time interval lies in the SAA (CALDB contour, ORBIT)")
    keep = np.zeros(ev.size, bool)
    for a, b in gti:
        keep |= (ev.time >= a) & (ev.time < b)
    out = ev.select(keep)
    out.gti = gti
    note = (
        f"SAA (CALDB contour, ORBIT track): {removed:.1f} s in {len(inside)} interval(s) "
        f"taken out of the GTIs, {int(ev.size - keep.sum())} events dropped"
    )
    return out, note


def read_burst_events(
    paths: Sequence[str | Path],
    *,
    t0: float | None = None,
    ebounds: Mapping[str, EnergyBounds] | None = None,
    dead_time: Mapping[str, DeadTime] | None = None,
    saa_contours: Mapping[str, SaaContour] | None = None,
) -> BurstEvents:
    """Read the event files of one burst, grouped by instrument, on a common time axis.

    Parameters
    ----------
    paths
        Event files (any instruments; one instrument may have several files, an imaging
        instrument one).
    t0
        Reference time (mission s); default from the headers (module notes).
    ebounds, dead_time
        Per instrument definition name (``eclairs``, ``grm``), the CALDB's channel bounds and
        dead time; instruments without them use their files' (foreign missions).
    saa_contours
        Per instrument definition name, the CALDB's SAA contour: SAA time on the files'
        ground track (``ORBIT``) is taken out of the GTIs (module notes).

    Raises
    ------
    InputDataError
        For unreadable, empty or truncated files, no channel energies, a ``t0`` outside the
        data, two files of one imaging instrument, or files that use different time
        references.
    """
    if not paths:
        raise InputDataError("no event files given")
    resolved = [str(Path(p).resolve()) for p in paths]
    headers = peek_headers(resolved)
    ref = choose_t0(headers, t0)
    groups: dict[str, list[FileHeader]] = {}
    for h in headers:
        groups.setdefault(h.instrument, []).append(h)
    instruments: dict[str, InstrumentEvents] = {}
    for name, hs in groups.items():
        defn = definition_of(name)
        key = defn.name if defn is not None else name.lower()
        imaging = _is_imaging(defn, hs)
        if imaging and len(hs) != 1:
            raise InputDataError(f"{name}: give one imaging event file, not {len(hs)}")
        ev = read_events(
            [h.path for h in hs],
            t0=ref,
            ebounds=(ebounds or {}).get(key),
            dead_time=(dead_time or {}).get(key),
            pixel_columns=_pixel_columns(defn) if imaging else None,
        )
        ref = ev.t0 if ref is None else ref
        data = InstrumentEvents(name=name, definition=defn, events=ev, headers=tuple(hs))
        data.flags.extend(ev.flags)
        contour = (saa_contours or {}).get(key)
        if contour is not None:
            data.events, note = _exclude_saa(ev, [h.path for h in hs], contour)
            data.flags.append(note)
        _check_events(data)
        instruments[name] = data
    first = next(iter(instruments.values())).events
    for d in instruments.values():
        if d.events.timesys != first.timesys or abs(d.events.mjdref - first.mjdref) > 1e-9:
            raise InputDataError("instruments use different time references (TIMESYS/MJDREF)")
    assert ref is not None
    return BurstEvents(
        t0=float(ref), instruments=instruments, mjdref=first.mjdref, timesys=first.timesys
    )
