"""What the X-band analysis reads: its request, the input check, the observation and the events.

The event files are recognised by their ``INSTRUME`` keyword against the instrument
definitions (``config/instruments/*.yaml``), not by their names, and read with the one burst
event reader (:func:`svomflow.products.burst_events.read_burst_events`) with the CALDB's
channel bounds and dead time: event energies are channel midpoints, times are seconds since
``t0`` (the caller's, else the ECLAIRs trigger time, else the GRM's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits
from astropy.time import Time
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.pixels import PixelMap
from svomflow.products.burst_events import (
    BurstEvents,
    InstrumentEvents,
    choose_t0,
    definition_of,
    peek_headers,
    read_burst_events,
)
from svomflow.products.eclairs_l1 import apply_pixel_gains
from svomflow.products.ogip import MALFORMED_FILE_ERRORS, reading_file
from svomflow.tasks.step import Observation

__all__ = [
    "EVENT_CALIBRATION",
    "KNOWN_INSTRUMENTS",
    "XbandInputs",
    "XbandRequest",
    "check_event_files",
    "instrument_of_file",
    "observe",
    "read_inputs",
]

#: Instrument definitions the X-band analysis reads (their files carry the INSTRUME value).
KNOWN_INSTRUMENTS = ("eclairs", "grm")

#: The CALDB codes the events are read with (channel energies, dead time per event): every
#: product depends on them, and records them in its provenance.
EVENT_CALIBRATION = ("EBOUNDS", "DEADTIME")


@dataclass(frozen=True)
class XbandRequest:
    """One X-band run: the event files (ECLAIRs and/or GRM) and the reference time."""

    events: tuple[str, ...]
    t0: float | None = None


@dataclass
class XbandInputs:
    """The events of the run on one time axis, with each imaging instrument's bad pixels."""

    events: BurstEvents
    bad_pixels: dict[str, PixelMap]

    @property
    def t0(self) -> float:
        """Reference time (mission s)."""
        return self.events.t0

    @property
    def instruments(self) -> dict[str, InstrumentEvents]:
        """The instruments present, by definition name (``eclairs``, ``grm``), in reading order."""
        return {name: ev for name in KNOWN_INSTRUMENTS if (ev := self.events.get(name)) is not None}

    def get(self, name: str) -> InstrumentEvents | None:
        """One instrument by definition name, or None when it was not given."""
        return self.instruments.get(name)


def instrument_of_file(path: str | Path) -> str:
    """Return which known instrument an event file belongs to (by its ``INSTRUME``).

    Raises
    ------
    InputDataError
        A missing or unreadable file, or one of no instrument the X-band analysis reads.
    """
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"{p}: no such event file")
    try:
        with fits.open(p, memmap=False) as hdul:
            values = {str(h.header.get("INSTRUME", "")).strip().upper() for h in hdul}
    except MALFORMED_FILE_ERRORS as exc:
        raise InputDataError(
            f"{p}: not a readable FITS file ({type(exc).__name__}: {exc})"
        ) from None
    for name in KNOWN_INSTRUMENTS:
        if load_instrument(name).instrument.upper() in values:
            return name
    raise InputDataError(
        f"{p}: INSTRUME {sorted(values - {''})} is none of "
        f"{', '.join(load_instrument(n).instrument for n in KNOWN_INSTRUMENTS)}"
    )


def check_event_files(paths: Sequence[str | Path]) -> dict[str, str]:
    """Check the input files before a run: ``{definition name: path}``, one file each.

    Raises
    ------
    InputDataError
        No file, an unusable file (:func:`instrument_of_file`) or two files of one instrument.
    """
    if not paths:
        raise InputDataError("no event files given")
    found: dict[str, str] = {}
    for p in paths:
        name = instrument_of_file(p)
        if name in found:
            raise InputDataError(f"two {name} event files given: {found[name]} and {p}")
        found[name] = str(p)
    return found


def _iso_utc(mission_s: float, name: str) -> str:
    ref = load_instrument(name).get("time_reference")
    mjd = float(ref["mjdref"]) + mission_s / 86400.0
    return str(Time(mjd, format="mjd", scale=str(ref["timesys"]).lower()).utc.isot)


def observe(request: XbandRequest) -> Observation:
    """Read the headers: the instruments present and the observation time (ISO UTC)."""
    check_event_files(request.events)
    headers = peek_headers(request.events)
    names: list[str] = []
    for h in headers:
        defn = definition_of(h.instrument)
        if defn is not None and defn.name not in names:
            names.append(defn.name)
    t0 = choose_t0(headers, request.t0)
    if t0 is None:  # no trigger time anywhere: the start of the first file's events
        with reading_file(headers[0].path), fits.open(headers[0].path, memmap=False) as hdul:
            t0 = float(hdul["EVENTS"].data["TIME"].min())
    ordered = tuple(n for n in KNOWN_INSTRUMENTS if n in names)
    return Observation(instruments=ordered, time=_iso_utc(t0, ordered[0]))


def read_inputs(request: XbandRequest, calibration: CalibrationSet) -> XbandInputs:
    """Read the event files once with the CALDB's channel bounds, dead time, SAA and bad pixels."""
    check_event_files(request.events)
    names = KNOWN_INSTRUMENTS
    events = read_burst_events(
        list(request.events),
        t0=request.t0,
        ebounds={n: calibration.get(n, "EBOUNDS") for n in names if calibration.has(n, "EBOUNDS")},
        dead_time={
            n: calibration.get(n, "DEADTIME") for n in names if calibration.has(n, "DEADTIME")
        },
        saa_contours={
            n: calibration.get(n, "SAACONT") for n in names if calibration.has(n, "SAACONT")
        },
    )
    apply_pixel_gains(
        events, {n: calibration.get(n, "PIXGAIN") for n in names if calibration.has(n, "PIXGAIN")}
    )
    bad: dict[str, PixelMap] = {}
    for name in names:
        ev = events.get(name)
        if ev is not None and ev.imaging:
            bad[name] = calibration.get(name, "BADPIX")
    return XbandInputs(events=events, bad_pixels=bad)
