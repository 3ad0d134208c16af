"""Event-list readers: Fermi GBM TTE, generic OGIP event files and svomflow's simulated L1 files.

:func:`read_events` opens one or several files, detects each one's format from its headers
(:func:`detect_format`) and returns one time-sorted :class:`EventList` with times in seconds
since ``t0`` (``TRIGTIME`` from the header, or the caller's ``t0``).

Decisions, for all formats:

* **Energies** are the midpoints of the event's channel (``E_MIN``/``E_MAX`` of EBOUNDS),
  deterministic and reproducible; band selections (:meth:`EventList.in_band`) therefore pick
  whole channels. A file that has an ``ENERGY`` column but no channel column uses it.
* **Unsorted times** are sorted (stable, so ties keep their file order) and the fact is
  recorded in ``flags``: real GBM TTE files are not strictly time ordered, so refusing them
  would refuse good data.
* **Duplicate time tags** (the same time in the same detector) are kept, counted in
  ``n_duplicates`` and flagged: on GBM they are distinct photons within one 2 us tick (their
  channels differ), not repeated packets.
* **Dead time** per event is kept (GBM: 2.6 us, 10 us for the overflow channel, the last
  one); :meth:`EventList.livetime` turns it into the exposure of a time interval.
* **Errors** (:class:`svomflow.errors.InputDataError`): missing, empty or truncated files,
  no EVENTS extension, no channel energies (no EBOUNDS and no ENERGY column), a ``t0``
  outside the data, trigger times that disagree between detectors, a binned light curve
  (read those with :func:`svomflow.products.ogip.read_lightcurve`).
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.instruments.channels import EnergyBounds
from svomflow.instruments.dead_time import DeadTime

__all__ = [
    "GBM_DEADTIME_S",
    "GBM_OVERFLOW_DEADTIME_S",
    "EventList",
    "detect_format",
    "read_events",
]

GBM_DEADTIME_S = 2.6e-6  # per event (Meegan et al. 2009)
GBM_OVERFLOW_DEADTIME_S = 10e-6  # overflow (last) channel
_T0_TOLERANCE_S = 1e-3  # trigger times of files of one burst must agree to this


@dataclass
class EventList:
    """Photon events of one or several detectors, sorted in time.

    Attributes
    ----------
    time : numpy.ndarray
        Event times in seconds since ``t0`` (float64, sorted).
    energy : numpy.ndarray
        Event energies (keV): midpoint of the event's channel.
    channel : numpy.ndarray
        Channel number (PHA/PI) of each event (-1 when the file gave energies only).
    detector : numpy.ndarray
        Index into ``detectors`` of each event (int16).
    deadtime : numpy.ndarray
        Dead time caused by each event (s).
    detectors : tuple of str
        Detector names (``DETNAM``, else ``INSTRUME``, else the file name).
    ebounds : dict
        Per detector name, the ``(e_min, e_max)`` arrays of its channels (keV), indexed by
        ``channel - first_channel``.
    first_channel : dict
        Per detector name, the number of the first channel.
    gti : numpy.ndarray
        (N, 2) good intervals in s since ``t0``: the intersection over all files.
    t0 : float
        Reference time in mission seconds (``TRIGTIME`` or the caller's value).
    mjdref : float
        MJD of mission time zero.
    timesys : str
        Time system of the mission times.
    formats : tuple of str
        Detected format of each file.
    files : tuple of str
        Source files.
    n_duplicates : int
        Number of events whose time equals the previous event's time in the same detector.
    flags : list of str
        Conditions found while reading (sorted on read, duplicates...).
    pixel_y, pixel_z : numpy.ndarray or None
        Detector-plane pixel of each event, for pixelated (imaging) instruments.
    """

    time: np.ndarray
    energy: np.ndarray
    channel: np.ndarray
    detector: np.ndarray
    deadtime: np.ndarray
    detectors: tuple[str, ...]
    ebounds: dict[str, tuple[np.ndarray, np.ndarray]]
    first_channel: dict[str, int]
    gti: np.ndarray
    t0: float
    mjdref: float
    timesys: str
    formats: tuple[str, ...]
    files: tuple[str, ...]
    n_duplicates: int = 0
    flags: list[str] = field(default_factory=list)
    pixel_y: np.ndarray | None = None
    pixel_z: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of events."""
        return int(self.time.size)

    @property
    def tstart(self) -> float:
        """Start of the first GTI (s since ``t0``)."""
        return float(self.gti[0, 0])

    @property
    def tstop(self) -> float:
        """End of the last GTI (s since ``t0``)."""
        return float(self.gti[-1, 1])

    def in_band(self, e_min: float, e_max: float) -> np.ndarray:
        """Return the mask of events whose channel midpoint lies in ``[e_min, e_max)`` keV."""
        return (self.energy >= e_min) & (self.energy < e_max)

    def band_edges(self, e_min: float, e_max: float) -> dict[str, tuple[float, float]]:
        """Return, per detector, the energy range actually covered by the selected channels."""
        out = {}
        for name in self.detectors:
            lo, hi = self.ebounds[name]
            mid = 0.5 * (lo + hi)
            sel = (mid >= e_min) & (mid < e_max)
            if np.any(sel):
                out[name] = (float(lo[sel].min()), float(hi[sel].max()))
        return out

    def select(self, mask: np.ndarray, *, detectors: tuple[str, ...] | None = None) -> EventList:
        """Return a new EventList with the events of ``mask`` (optionally only some detectors)."""
        mask = np.asarray(mask, dtype=bool)
        if detectors is not None:
            unknown = set(detectors) - set(self.detectors)
            if unknown:
                raise InputDataError(
                    f"unknown detector(s) {sorted(unknown)}; have {self.detectors}"
                )
            ids = [self.detectors.index(d) for d in detectors]
            mask = mask & np.isin(self.detector, ids)
        return EventList(
            time=self.time[mask],
            energy=self.energy[mask],
            channel=self.channel[mask],
            detector=self.detector[mask],
            deadtime=self.deadtime[mask],
            detectors=self.detectors,
            ebounds=self.ebounds,
            first_channel=self.first_channel,
            gti=self.gti.copy(),
            t0=self.t0,
            mjdref=self.mjdref,
            timesys=self.timesys,
            formats=self.formats,
            files=self.files,
            n_duplicates=self.n_duplicates,
            flags=list(self.flags),
            pixel_y=None if self.pixel_y is None else self.pixel_y[mask],
            pixel_z=None if self.pixel_z is None else self.pixel_z[mask],
        )

    @property
    def has_pixels(self) -> bool:
        """Whether every event has a detector-plane pixel (an imaging instrument)."""
        return self.pixel_y is not None and self.pixel_z is not None

    def livetime(self, edges: np.ndarray) -> np.ndarray:
        """Return the live time (s) of each bin ``[edges[i], edges[i+1])`` inside the GTIs.

        Live time = GTI overlap minus the dead time of the events in the bin, averaged over
        the detectors (each detector is dead only for its own events).
        """
        edges = np.asarray(edges, dtype=float)
        # GTI time accumulated before each edge (piecewise linear), differenced per bin
        g = self.gti
        xp = g.ravel()
        span = g[:, 1] - g[:, 0]
        fp = np.column_stack([np.cumsum(span) - span, np.cumsum(span)]).ravel()
        exposure = np.diff(np.interp(edges, xp, fp))
        dead = np.histogram(self.time, bins=edges, weights=self.deadtime)[0]
        ndet = max(1, len(self.detectors))
        return np.maximum(exposure - dead / ndet, 0.0)


def detect_format(path: str | Path) -> str:
    """Return the format of a file from its headers.

    One of ``"gbm_tte"`` (Fermi GBM TTE: ``INSTRUME='GBM'``, EVENTS with ``PHA``),
    ``"svomflow_l1"`` (written by svomflow's simulation: ``CREATOR`` starts with svomflow,
    EVENTS with ``TIME`` and ``PI``), ``"ogip_events"`` (any other EVENTS table with
    ``TIME``), ``"ogip_lightcurve"`` (``HDUCLAS1='LIGHTCURVE'`` or a RATE/COUNTS table with
    TIME).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _open(path) as hdul:
            return _detect(hdul, path)


def _open(path: str | Path) -> fits.HDUList:
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise InputDataError(f"{p}: file is empty")
    try:
        return fits.open(p, memmap=False)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise InputDataError(f"{p}: not a readable FITS file ({exc})") from None


def _detect(hdul: fits.HDUList, path: str | Path) -> str:
    events = _events_hdu(hdul)
    if events is None:
        for h in hdul[1:]:
            cls1 = str(h.header.get("HDUCLAS1", "")).upper()
            cols = [c.upper() for c in getattr(h, "columns", fits.ColDefs([])).names]
            if cls1 == "LIGHTCURVE" or ("TIME" in cols and ("RATE" in cols or "COUNTS" in cols)):
                return "ogip_lightcurve"
        raise InputDataError(f"{path}: no EVENTS table with a TIME column")
    h0 = hdul[0].header
    hev = events.header
    instrume = str(hev.get("INSTRUME", h0.get("INSTRUME", ""))).upper()
    cols = [c.upper() for c in events.columns.names]
    if instrume == "GBM" and "PHA" in cols:
        return "gbm_tte"
    creator = str(h0.get("CREATOR", hev.get("CREATOR", ""))).lower()
    if creator.startswith("svomflow") and "PI" in cols:
        return "svomflow_l1"
    return "ogip_events"


def _events_hdus(hdul: fits.HDUList) -> list[fits.BinTableHDU]:
    """All EVENTS tables with a TIME column (svomflow GRM files have one per detector)."""
    out = []
    for h in hdul[1:]:
        if not isinstance(h, fits.BinTableHDU):
            continue
        cls1 = str(h.header.get("HDUCLAS1", "")).upper()
        if h.name == "EVENTS" or cls1 == "EVENTS":
            if "TIME" in [c.upper() for c in h.columns.names]:
                out.append(h)
    return out


def _events_hdu(hdul: fits.HDUList) -> fits.BinTableHDU | None:
    hdus = _events_hdus(hdul)
    return hdus[0] if hdus else None


@dataclass
class _FileEvents:
    time_met: np.ndarray
    channel: np.ndarray
    energy: np.ndarray
    deadtime: np.ndarray
    detector: str
    e_min: np.ndarray
    e_max: np.ndarray
    first_channel: int
    gti_met: np.ndarray
    trigtime: float | None
    mjdref: float
    timesys: str
    fmt: str
    was_unsorted: bool
    source: str
    pixel_y: np.ndarray | None = None
    pixel_z: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Calibration:
    """What the caller's calibration replaces in the files (CALDB EBOUNDS, dead time)."""

    ebounds: EnergyBounds | None = None
    dead_time: DeadTime | None = None
    pixel_columns: tuple[str, str] | None = None


def _read_one(path: Path, cal: _Calibration = _Calibration()) -> list[_FileEvents]:
    # astropy reports a short file as a warning and may then return garbage: record the
    # warnings and turn a truncation into an error
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = _read_one_unchecked(path, cal)
        except (OSError, EOFError, zlib.error, KeyError, IndexError, ValueError, TypeError) as exc:
            raise InputDataError(
                f"{path}: cannot read event file ({type(exc).__name__}: {exc})"
            ) from None
    for w in caught:
        if "truncated" in str(w.message).lower():
            raise InputDataError(f"{path}: file is truncated ({w.message})")
    return out


def _read_one_unchecked(path: Path, cal: _Calibration) -> list[_FileEvents]:
    with _open(path) as hdul:
        fmt = _detect(hdul, path)
        if fmt == "ogip_lightcurve":
            raise InputDataError(
                f"{path}: a binned light curve, not an event list "
                "(read it with svomflow.products.ogip.read_lightcurve)"
            )
        hdus = _events_hdus(hdul)
        return [_read_hdu(path, hdul, ev, fmt, len(hdus) > 1, cal) for ev in hdus]


def _channel_energies(
    path: Path, hdul: fits.HDUList, chan: np.ndarray, cal: _Calibration
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[str]]:
    """Energies (channel midpoints) and the EBOUNDS used: the caller's (CALDB), else the file's."""
    notes: list[str] = []
    file_bounds = None
    if "EBOUNDS" in hdul:
        ebd = hdul["EBOUNDS"].data
        ch_numbers = np.array(ebd["CHANNEL"], dtype=np.int64)
        if ch_numbers.size == 0 or np.any(np.diff(ch_numbers) != 1):
            raise InputDataError(f"{path}: EBOUNDS channels are not consecutive")
        file_bounds = EnergyBounds(
            int(ch_numbers[0]),
            np.array(ebd["E_MIN"], dtype=np.float64),
            np.array(ebd["E_MAX"], dtype=np.float64),
        )
    bounds = cal.ebounds or file_bounds
    if bounds is None:
        raise InputDataError(
            f"{path}: events have channels but neither the file nor the CALDB gives their "
            "energies (no EBOUNDS)"
        )
    if cal.ebounds is not None and file_bounds is not None and not cal.ebounds.same_as(file_bounds):
        notes.append(
            f"{path.name}: EBOUNDS of the file differs from the CALDB's; the CALDB's is used"
        )
    try:
        energy = bounds.midpoints(chan)
    except ValueError as exc:
        raise InputDataError(f"{path}: event {exc}") from None
    return energy, bounds.e_min, bounds.e_max, bounds.first_channel, notes


def _read_hdu(
    path: Path,
    hdul: fits.HDUList,
    ev: fits.BinTableHDU,
    fmt: str,
    several: bool,
    cal: _Calibration,
) -> _FileEvents:
    """Read one EVENTS table (one detector) with its EBOUNDS (CALDB or file) and GTI."""
    h0 = hdul[0].header
    hev = ev.header
    try:
        data = ev.data
        n = 0 if data is None else len(data)
        cols = [] if data is None else [c.upper() for c in data.columns.names]
        time = np.array(data["TIME"], dtype=np.float64) if n else np.zeros(0)
        chan_col = next((c for c in ("PHA", "PI") if c in cols), None)
        chan = np.array(data[chan_col], dtype=np.int32) if (chan_col and n) else None
        energy_col = (
            np.array(data["ENERGY"], dtype=np.float64) if ("ENERGY" in cols and n) else None
        )
    except (OSError, EOFError, zlib.error, ValueError, TypeError, IndexError) as exc:
        raise InputDataError(f"{path}: EVENTS table cannot be read ({exc})") from None
    if time.size == 0:
        raise InputDataError(f"{path}: EVENTS table has no events")
    if not np.all(np.isfinite(time)):
        raise InputDataError(f"{path}: EVENTS has non-finite times")
    detector = str(hev.get("DETNAM", h0.get("DETNAM", hev.get("INSTRUME", path.name))))
    notes: list[str] = []
    # channel energies
    if chan is not None and (cal.ebounds is not None or "EBOUNDS" in hdul):
        energy, e_min, e_max, first, notes = _channel_energies(path, hdul, chan, cal)
    elif energy_col is not None:
        unit = str(hev.get(f"TUNIT{cols.index('ENERGY') + 1}", "keV")).strip().lower()
        scale = {"ev": 1e-3, "kev": 1.0, "mev": 1e3}.get(unit, 1.0)
        energy = energy_col * scale
        chan = np.full(time.size, -1, dtype=np.int32)
        e_min = np.array([energy.min()])
        e_max = np.array([energy.max()])
        first = 0
    elif chan is not None:
        raise InputDataError(
            f"{path}: events have {chan_col} channels but neither the file nor the CALDB "
            "gives their energies (no EBOUNDS)"
        )
    else:
        raise InputDataError(f"{path}: EVENTS has neither PHA/PI channels nor ENERGY")
    # dead time per event
    if cal.dead_time is not None:
        deadtime = np.full(time.size, cal.dead_time.of(detector))
    elif fmt == "gbm_tte":
        overflow = first + e_min.size - 1
        deadtime = np.where(chan == overflow, GBM_OVERFLOW_DEADTIME_S, GBM_DEADTIME_S)
    else:
        # DEADTAU: non-paralyzable dead time per event (svomflow GRM files); DEADTIME
        # is the total dead time of the table, so it is not used here
        per_event = float(hev.get("DEADTAU", h0.get("DEADTAU", 0.0)) or 0.0)
        deadtime = np.full(time.size, per_event)
    # GTIs
    if "GTI" in hdul:
        g = hdul["GTI"].data
        gti = np.column_stack(
            [np.asarray(g["START"], dtype=float), np.asarray(g["STOP"], dtype=float)]
        )
    else:
        lo = float(hev.get("TSTART", time.min()))
        hi = float(hev.get("TSTOP", time.max()))
        gti = np.array([[lo, hi]])
    gti = _usable_gti(path, gti, notes)
    notes.extend(_exposure_notes(path, (hev, h0)))
    _check_times_in_gti(path, time, gti, notes)
    trig = hev.get("TRIGTIME", h0.get("TRIGTIME"))
    mjdref = (
        float(hev.get("MJDREFI", h0.get("MJDREFI", 0.0)))
        + float(hev.get("MJDREFF", h0.get("MJDREFF", 0.0)))
        if ("MJDREFI" in hev or "MJDREFI" in h0)
        else float(hev.get("MJDREF", h0.get("MJDREF", 0.0)))
    )
    timesys = str(hev.get("TIMESYS", h0.get("TIMESYS", "TT")))
    pixels: tuple[np.ndarray, np.ndarray] | None = None
    if cal.pixel_columns is not None:
        cy, cz = cal.pixel_columns
        if cy.upper() not in cols or cz.upper() not in cols:
            raise InputDataError(f"{path}: EVENTS has no pixel columns {cy}/{cz}")
        pixels = (np.array(data[cy], dtype=np.int16), np.array(data[cz], dtype=np.int16))
    order = np.argsort(time, kind="stable")
    unsorted = bool(np.any(order != np.arange(order.size)))
    return _FileEvents(
        time_met=time[order],
        channel=chan[order],
        energy=energy[order],
        deadtime=deadtime[order],
        detector=detector,
        e_min=e_min,
        e_max=e_max,
        first_channel=first,
        gti_met=gti,
        trigtime=None if trig is None else float(trig),
        mjdref=mjdref,
        timesys=timesys,
        fmt=fmt,
        was_unsorted=unsorted,
        source=f"{path}[{ev.name},{ev.ver}]" if several else str(path),
        pixel_y=None if pixels is None else pixels[0][order],
        pixel_z=None if pixels is None else pixels[1][order],
        notes=notes,
    )


def _usable_gti(path: Path, gti: np.ndarray, notes: list[str]) -> np.ndarray:
    """Return the GTI rows with finite bounds and START <= STOP (dropped rows noted).

    A GTI with no such row is a damaged file: an interval with a NaN or reversed bound
    would otherwise become exposure (or none) without a word.
    """
    ok = np.all(np.isfinite(gti), axis=1) & (gti[:, 0] <= gti[:, 1])
    if gti.shape[0] and not ok.any():
        raise InputDataError(f"{path}: no GTI row has finite bounds with START <= STOP")
    if not ok.all():
        notes.append(
            f"{path.name}: {int((~ok).sum())} GTI rows with non-finite bounds or START after "
            "STOP dropped"
        )
    return gti[ok]


_EXPOSURE_KEYS = ("EXPOSURE", "ONTIME", "LIVETIME")
#: Events this far (s) outside the span of their file's GTIs are not of that observation.
_FAR_OUTSIDE_GTI_S = 86400.0


def _check_times_in_gti(path: Path, time: np.ndarray, gti: np.ndarray, notes: list[str]) -> None:
    """Refuse a table none of whose events lie in its GTI span; note events far outside it.

    Times shifted by an error (a wrong epoch, a corrupt clock) would otherwise give a light
    curve with no events of this file and no word about it.
    """
    if gti.shape[0] == 0:
        return
    lo, hi = float(gti[:, 0].min()), float(gti[:, 1].max())
    inside = (time >= lo) & (time <= hi)
    if not inside.any():
        raise InputDataError(
            f"{path}: no event lies within the GTIs ({lo!r} .. {hi!r} mission s); "
            f"event times span {float(time.min())!r} .. {float(time.max())!r}"
        )
    far = (time < lo - _FAR_OUTSIDE_GTI_S) | (time > hi + _FAR_OUTSIDE_GTI_S)
    if far.any():
        notes.append(f"{path.name}: {int(far.sum())} events more than a day outside the GTIs")


def _exposure_notes(path: Path, headers: tuple[fits.Header, ...]) -> list[str]:
    """Return a note for each exposure keyword that is not a positive number.

    Event lists take their exposure from the GTIs and the dead time, never from these
    keywords; one that is zero, negative or not a number still says the file is damaged.
    """
    notes = []
    for key in _EXPOSURE_KEYS:
        value = next((h[key] for h in headers if key in h), None)
        if value is None:
            continue
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or not np.isfinite(number) or number <= 0:
            notes.append(
                f"{path.name}: header {key} = {value!r} is not a positive exposure "
                "(ignored: exposure comes from the GTIs)"
            )
    return notes


def _intersect_gtis(gtis: list[np.ndarray]) -> np.ndarray:
    out = gtis[0]
    for g in gtis[1:]:
        pieces = []
        for a0, a1 in out:
            for b0, b1 in g:
                lo, hi = max(a0, b0), min(a1, b1)
                if hi > lo:
                    pieces.append((lo, hi))
        out = np.array(sorted(pieces), dtype=float).reshape(-1, 2)
    return out


def read_events(
    paths: str | Path | list[str | Path] | tuple[str | Path, ...],
    *,
    t0: float | None = None,
    ebounds: EnergyBounds | None = None,
    dead_time: DeadTime | None = None,
    pixel_columns: tuple[str, str] | None = None,
) -> EventList:
    """Read event files of one burst into one time-sorted :class:`EventList`.

    Parameters
    ----------
    paths : path or list of paths
        Fermi GBM TTE files (one per detector), generic OGIP event files or svomflow L1
        event files; formats may be mixed only if they share the time system.
    t0 : float, optional
        Reference time (mission seconds). Default: the ``TRIGTIME`` of the files (they must
        agree within 1 ms), else the start of the data.
    ebounds : EnergyBounds, optional
        The instrument's channel bounds from the CALDB: they replace the files' EBOUNDS (a
        file whose EBOUNDS differs is flagged).
    dead_time : DeadTime, optional
        The instrument's dead time per event from the CALDB (replaces ``DEADTAU``).
    pixel_columns : (str, str), optional
        Names of the pixel columns of an imaging instrument's events (kept in the list).

    Returns
    -------
    EventList

    Raises
    ------
    InputDataError
        For any unreadable, empty, truncated or inconsistent input (see the module notes).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = [Path(p) for p in paths]
    if not files:
        raise InputDataError("no event files given")
    cal = _Calibration(ebounds, dead_time, pixel_columns)
    parts = [part for p in files for part in _read_one(p, cal)]
    names = [p.detector for p in parts]
    if len(set(names)) != len(names):
        # two tables of the same detector: keep them apart by their source
        names = [f"{p.detector}:{Path(p.source).name}" for p in parts]
    if len({p.timesys for p in parts}) > 1 or len({round(p.mjdref, 9) for p in parts}) > 1:
        raise InputDataError("event files use different time references (TIMESYS/MJDREF)")
    trigs = [p.trigtime for p in parts if p.trigtime is not None]
    if t0 is None:
        if trigs:
            if max(trigs) - min(trigs) > _T0_TOLERANCE_S:
                raise InputDataError(
                    f"TRIGTIME differs between files ({min(trigs)} .. {max(trigs)}); give t0"
                )
            t0 = trigs[0]
        else:
            t0 = min(float(p.time_met[0]) for p in parts)
    t0 = float(t0)
    gti = _intersect_gtis([p.gti_met for p in parts])
    if gti.size == 0:
        raise InputDataError("the files' good time intervals do not overlap")
    lo = max(float(p.time_met[0]) for p in parts)
    hi = min(float(p.time_met[-1]) for p in parts)
    if not (min(lo, gti[0, 0]) <= t0 <= max(hi, gti[-1, 1])):
        raise InputDataError(f"t0 = {t0!r} is outside the data ({lo!r} .. {hi!r} mission s)")
    time = np.concatenate([p.time_met - t0 for p in parts])
    det = np.concatenate([np.full(p.time_met.size, i, dtype=np.int16) for i, p in enumerate(parts)])
    order = np.argsort(time, kind="stable")
    time = time[order]
    det = det[order]
    flags: list[str] = []
    unsorted = [part.source for part in parts if part.was_unsorted]
    if unsorted:
        flags.append(f"times not sorted in {', '.join(unsorted)}: sorted on read")
    n_dup = 0
    for part in parts:
        n_dup += int(np.count_nonzero(np.diff(part.time_met) == 0))
    if n_dup:
        flags.append(f"{n_dup} duplicate time tags (same time, same detector): kept")
    for part in parts:  # one note per file, not per detector table of it
        flags.extend(note for note in part.notes if note not in flags)
    pixel_y = pixel_z = None
    if pixel_columns is not None:
        pixel_y = np.concatenate([p.pixel_y for p in parts if p.pixel_y is not None])[order]
        pixel_z = np.concatenate([p.pixel_z for p in parts if p.pixel_z is not None])[order]
    return EventList(
        time=time,
        energy=np.concatenate([p.energy for p in parts])[order],
        channel=np.concatenate([p.channel for p in parts])[order],
        detector=det,
        deadtime=np.concatenate([p.deadtime for p in parts])[order],
        detectors=tuple(names),
        ebounds={n: (p.e_min, p.e_max) for n, p in zip(names, parts, strict=True)},
        first_channel={n: p.first_channel for n, p in zip(names, parts, strict=True)},
        gti=gti - t0,
        t0=t0,
        mjdref=parts[0].mjdref,
        timesys=parts[0].timesys,
        formats=tuple(p.fmt for p in parts),
        files=tuple(str(p) for p in files),
        n_duplicates=n_dup,
        flags=flags,
        pixel_y=pixel_y,
        pixel_z=pixel_z,
    )
