"""Input side of the VHF flow: group event files by instrument and read them on one time axis.

The flow takes "whatever instruments' files are given": each file's ``INSTRUME`` keyword
names its instrument, files of one instrument are read together
(:func:`svomflow.products.events.read_events`), and the instrument's definition file, when
there is one, supplies its bands. An instrument whose definition has a coded mask and whose
files carry pixel columns also gets its imaging data (pixel, energy, attitude, dead pixels)
for the quick position; any other instrument goes through the counts-only path (the GRM
path, also used for Fermi GBM TTE files with their own EBOUNDS).

The common reference time ``t0`` is, in order: the caller's, the ``TRIGTIME`` of the
imaging instrument (the on-board trigger), the earliest ``TRIGTIME`` of the other files, the
start of the data.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from svomflow.config import InstrumentDefinition, available_instruments, load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.products.events import EventList, read_events

__all__ = [
    "FileHeader",
    "ImagingData",
    "InstrumentData",
    "VHFInputs",
    "choose_t0",
    "load_inputs",
    "peek_headers",
]


@dataclass(frozen=True)
class FileHeader:
    """What the flow needs from a file's headers before reading its events."""

    path: str
    instrument: str
    trigger_time: float | None
    trigger_id: str | None
    attitude: tuple[float, float, float] | None
    has_pixels: bool
    n_event_hdus: int


@dataclass
class ImagingData:
    """Events of a coded-mask instrument with their pixels (times in s since ``t0``)."""

    time: np.ndarray
    y: np.ndarray
    z: np.ndarray
    energy_kev: np.ndarray
    gti: np.ndarray
    dead_pixels: np.ndarray
    attitude: Attitude


@dataclass
class InstrumentData:
    """One instrument's events, definition (if packaged) and imaging data (if any)."""

    name: str
    events: EventList
    definition: InstrumentDefinition | None
    headers: tuple[FileHeader, ...]
    imaging: ImagingData | None = None
    flags: list[str] = field(default_factory=list)

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
    def energy_range_kev(self) -> tuple[float, float]:
        """Energy range of the channels (keV), within the definition's ``energy_range_kev``."""
        lo = min(float(np.min(e[0])) for e in self.events.ebounds.values())
        hi = max(float(np.max(e[1])) for e in self.events.ebounds.values())
        if self.definition is not None:
            rng = self.definition.get("energy_range_kev", None)
            if rng is not None:
                lo, hi = max(lo, float(rng[0])), min(hi, float(rng[1]))
        return lo, hi

    def bands(self, key: str, default: object) -> object:
        """Return ``bands_kev.<key>`` of the definition, else ``default``."""
        if self.definition is None:
            return default
        return self.definition.get(f"bands_kev.{key}", default)


@dataclass
class VHFInputs:
    """All instruments of one burst on the common time axis (s since ``t0``)."""

    t0: float
    instruments: dict[str, InstrumentData]
    mjdref: float
    timesys: str

    @property
    def files(self) -> list[str]:
        """All input files."""
        return [h.path for d in self.instruments.values() for h in d.headers]


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
                            has_pixels="Y" in cols and "Z" in cols,
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


def _definition(name: str) -> InstrumentDefinition | None:
    return load_instrument(name.lower()) if name.lower() in available_instruments() else None


def _is_imaging(defn: InstrumentDefinition | None, headers: Sequence[FileHeader]) -> bool:
    return (
        defn is not None
        and defn.get("mask", None) is not None
        and all(h.has_pixels for h in headers)
    )


def choose_t0(headers: Sequence[FileHeader], t0: float | None = None) -> float | None:
    """Return the common reference time (see the module notes); None: start of the data."""
    if t0 is not None:
        return float(t0)
    by_inst: dict[str, list[FileHeader]] = {}
    for h in headers:
        by_inst.setdefault(h.instrument, []).append(h)
    for name, hs in by_inst.items():
        trig = [h.trigger_time for h in hs if h.trigger_time is not None]
        if trig and _is_imaging(_definition(name), hs):
            return min(trig)
    trig = [h.trigger_time for h in headers if h.trigger_time is not None]
    return min(trig) if trig else None


def _read_imaging(
    defn: InstrumentDefinition, headers: Sequence[FileHeader], t0: float
) -> ImagingData:
    from svomflow.products.eclairs_l1 import read_eclairs_l1

    if len(headers) != 1:
        raise InputDataError(f"{defn.instrument}: give one imaging event file, not {len(headers)}")
    ev = read_eclairs_l1(headers[0].path, instrument=defn)
    return ImagingData(
        time=ev.time - t0,
        y=ev.y,
        z=ev.z,
        energy_kev=np.asarray(ev.energy_kev, np.float64),
        gti=ev.gti - t0,
        dead_pixels=ev.dead_pixels,
        attitude=ev.attitude,
    )


def _check_events(data: InstrumentData) -> None:
    """Refuse what would silently give wrong numbers: t0 outside or no events near it."""
    ev = data.events
    if ev.size < 10:
        raise InputDataError(f"{data.name}: only {ev.size} events")
    if not (ev.gti[0, 0] <= 0.0 <= ev.gti[-1, 1]):
        raise InputDataError(
            f"{data.name}: t0 is outside the data (data span {ev.gti[0, 0]:.3f} .. "
            f"{ev.gti[-1, 1]:.3f} s from t0)"
        )


def load_inputs(paths: Sequence[str | Path], t0: float | None = None) -> VHFInputs:
    """Read the event files of one burst, grouped by instrument, on a common time axis.

    Parameters
    ----------
    paths
        Event files (any instruments; one instrument may have several files).
    t0
        Reference time (mission s); default from the headers (module notes).

    Raises
    ------
    InputDataError
        For unreadable, empty or truncated files, missing EBOUNDS, a ``t0`` outside the data,
        or files that use different time references.
    """
    if not paths:
        raise InputDataError("no event files given")
    resolved = tuple(str(Path(p).resolve()) for p in paths)
    headers = tuple(peek_headers(resolved))
    # the cache key holds the resolved t0, so that t0=None and the t0 it resolves to share it
    stamps = tuple((Path(p).stat().st_mtime_ns, Path(p).stat().st_size) for p in resolved)
    return _load_cached(resolved, choose_t0(headers, t0), headers, stamps)


@lru_cache(maxsize=2)
def _load_cached(
    paths: tuple[str, ...],
    ref: float | None,
    headers: tuple[FileHeader, ...],
    stamps: tuple[tuple[int, int], ...],
) -> VHFInputs:
    # tasks of one flow run read the same files: keep the last result in this process
    groups: dict[str, list[FileHeader]] = {}
    for h in headers:
        groups.setdefault(h.instrument, []).append(h)
    instruments: dict[str, InstrumentData] = {}
    for name, hs in groups.items():
        ev = read_events([h.path for h in hs], t0=ref)
        ref = ev.t0 if ref is None else ref
        defn = _definition(name)
        data = InstrumentData(name=name, events=ev, definition=defn, headers=tuple(hs))
        data.flags.extend(ev.flags)
        if _is_imaging(defn, hs):
            assert defn is not None
            data.imaging = _read_imaging(defn, hs, ev.t0)
        _check_events(data)
        instruments[name] = data
    first = next(iter(instruments.values())).events
    for d in instruments.values():
        if d.events.timesys != first.timesys or abs(d.events.mjdref - first.mjdref) > 1e-9:
            raise InputDataError("instruments use different time references (TIMESYS/MJDREF)")
    assert ref is not None
    return VHFInputs(
        t0=float(ref), instruments=instruments, mjdref=first.mjdref, timesys=first.timesys
    )
