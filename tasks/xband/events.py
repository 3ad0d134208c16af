"""X-band inputs: recognise ECLAIRs and GRM L1 event files and read them on one time axis.

Each file is recognised by its ``INSTRUME`` keyword against the instrument definitions
(``config/instruments/*.yaml``: ``instrument``), not by its name. ECLAIRs L1 files are read by
:func:`svomflow.simulation.eclairs.read_eclairs_l1` (pixels, attitude, bad pixels); GRM L1
files hold one ``EVENTS`` extension per detector (``DETNAM``, ``DEADTAU``) and are read here,
all detectors at once (the generic :func:`svomflow.products.events.read_events` reads the
first EVENTS extension only).

Times are returned in seconds since ``t0`` (the caller's value, else the ECLAIRs ``TRIGTIME``,
else the GRM one). Event energies are channel midpoints (from EBOUNDS), so energy bands
select whole channels, the same channels the spectra use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.config import InstrumentDefinition, load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude

__all__ = ["InstrumentEvents", "XbandEvents", "classify_event_file", "read_xband_events"]

# instrument definitions the X-band flow knows how to read (the names are data: the
# definitions carry the INSTRUME value that identifies a file)
KNOWN_INSTRUMENTS = ("eclairs", "grm")


@dataclass
class InstrumentEvents:
    """Events of one instrument (all its detectors), times in s since ``t0``.

    ``pixel_y``/``pixel_z``/``dead_pixels`` are set for imaging instruments only.
    """

    name: str
    path: Path
    definition: InstrumentDefinition
    time: NDArray[np.float64]
    pi: NDArray[np.int32]
    energy: NDArray[np.float64]
    detector: NDArray[np.int16]
    detectors: tuple[str, ...]
    e_min: NDArray[np.float64]
    e_max: NDArray[np.float64]
    first_channel: int
    gti: NDArray[np.float64]
    t0: float
    attitude: Attitude | None
    dead_time_s: float = 0.0
    pixel_y: NDArray[np.int16] | None = None
    pixel_z: NDArray[np.int16] | None = None
    dead_pixels: NDArray[np.bool_] | None = None
    header: dict[str, object] = field(default_factory=dict)

    @property
    def n_channels(self) -> int:
        """Number of PI channels."""
        return int(self.e_min.size)

    def band_mask(self, band_kev: Sequence[float]) -> NDArray[np.bool_]:
        """Events whose channel midpoint lies in ``[lo, hi)`` keV."""
        return (self.energy >= band_kev[0]) & (self.energy < band_kev[1])

    def times_in_band(
        self, band_kev: Sequence[float], detectors: Sequence[int] | None = None
    ) -> NDArray[np.float64]:
        """Sorted times of the events in a band (optionally of some detectors)."""
        m = self.band_mask(band_kev)
        if detectors is not None:
            m &= np.isin(self.detector, list(detectors))
        return self.time[m]

    def live_fraction(self, rate_per_detector: float) -> float:
        """Live fraction of a non-paralyzable detector at a recorded rate (counts/s)."""
        return max(1.0 - rate_per_detector * self.dead_time_s, 0.0)


@dataclass
class XbandEvents:
    """The instruments found among the input files, on one time axis."""

    t0: float
    instruments: dict[str, InstrumentEvents]
    files: tuple[str, ...]

    def get(self, name: str) -> InstrumentEvents | None:
        """The events of one instrument, or None when it was not given."""
        return self.instruments.get(name)


def classify_event_file(path: str | Path) -> str:
    """Return which known instrument an event file belongs to (by its ``INSTRUME``)."""
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"{p}: no such event file")
    try:
        with fits.open(p, memmap=False) as hdul:
            values = {str(h.header.get("INSTRUME", "")).strip().upper() for h in hdul}
    except OSError as exc:
        raise InputDataError(f"{p}: not a readable FITS file ({exc})") from None
    for name in KNOWN_INSTRUMENTS:
        if load_instrument(name).instrument.upper() in values:
            return name
    raise InputDataError(
        f"{p}: INSTRUME {sorted(values - {''})} is none of "
        f"{', '.join(load_instrument(n).instrument for n in KNOWN_INSTRUMENTS)}"
    )


def _read_eclairs(path: Path, inst: InstrumentDefinition) -> tuple[InstrumentEvents, float | None]:
    from svomflow.products.eclairs_l1 import read_eclairs_l1

    ev = read_eclairs_l1(path, instrument=inst)
    with fits.open(path, memmap=False) as hdul:
        if "EBOUNDS" not in hdul:
            raise InputDataError(f"{path}: no EBOUNDS extension")
        eb = hdul["EBOUNDS"].data
        ch = np.asarray(eb["CHANNEL"], dtype=np.int64)
        e_min = np.asarray(eb["E_MIN"], dtype=float)
        e_max = np.asarray(eb["E_MAX"], dtype=float)
    first = int(ch[0])
    idx = ev.pi.astype(np.int64) - first
    if np.any(idx < 0) or np.any(idx >= e_min.size):
        raise InputDataError(f"{path}: PI channels outside EBOUNDS")
    trig = ev.trigger.time if ev.trigger is not None else None
    out = InstrumentEvents(
        name="eclairs",
        path=path,
        definition=inst,
        time=ev.time,
        pi=ev.pi.astype(np.int32),
        energy=0.5 * (e_min[idx] + e_max[idx]),
        detector=np.zeros(ev.time.size, dtype=np.int16),
        detectors=("PLANE",),
        e_min=e_min,
        e_max=e_max,
        first_channel=first,
        gti=ev.gti,
        t0=0.0,
        attitude=ev.attitude,
        dead_time_s=float(inst.get("dead_time_s", 0.0)),
        pixel_y=ev.y,
        pixel_z=ev.z,
        dead_pixels=ev.dead_pixels,
    )
    return out, trig


def _read_grm(path: Path, inst: InstrumentDefinition) -> tuple[InstrumentEvents, float | None]:
    kw = inst.header_keywords
    try:
        with fits.open(path, memmap=False) as hdul:
            h0 = hdul[0].header
            evs = [h for h in hdul[1:] if h.name == "EVENTS"]
            if not evs:
                raise InputDataError(f"{path}: no EVENTS extension (not a GRM L1 file)")
            if "EBOUNDS" not in hdul or "GTI" not in hdul:
                raise InputDataError(f"{path}: GRM L1 file needs EBOUNDS and GTI extensions")
            eb = hdul["EBOUNDS"].data
            e_min = np.asarray(eb["E_MIN"], dtype=float)
            e_max = np.asarray(eb["E_MAX"], dtype=float)
            first = int(np.asarray(eb["CHANNEL"])[0])
            g = hdul["GTI"].data
            gti = np.column_stack([np.asarray(g["START"], float), np.asarray(g["STOP"], float)])
            times, pis, dets, names, taus = [], [], [], [], []
            for k, h in enumerate(evs):
                d = h.data
                names.append(str(h.header.get(kw.get("detector", "DETNAM"), f"DET{k + 1}")))
                taus.append(float(h.header.get("DEADTAU", inst.get("dead_time_s", 0.0))))
                t = np.asarray(d[kw.get("time", "TIME")], dtype=np.float64)
                times.append(t)
                pis.append(np.asarray(d[kw.get("pi", "PI")], dtype=np.int32))
                dets.append(np.full(t.size, k, dtype=np.int16))
            trig = h0.get(kw.get("trigger_time", "TRIGTIME"), evs[0].header.get("TRIGTIME"))
            att = None
            if "RA_PNT" in h0 and "DEC_PNT" in h0:
                att = Attitude(
                    float(h0["RA_PNT"]), float(h0["DEC_PNT"]), float(h0.get("PA_PNT", 0.0))
                )
    except OSError as exc:
        raise InputDataError(f"{path}: cannot read FITS file ({exc})") from None
    except KeyError as exc:
        raise InputDataError(f"{path}: missing column or keyword {exc}") from None
    time = np.concatenate(times)
    pi = np.concatenate(pis)
    det = np.concatenate(dets)
    if time.size == 0:
        raise InputDataError(f"{path}: no events")
    idx = pi.astype(np.int64) - first
    if np.any(idx < 0) or np.any(idx >= e_min.size):
        raise InputDataError(f"{path}: PI channels outside EBOUNDS")
    order = np.argsort(time, kind="stable")
    out = InstrumentEvents(
        name="grm",
        path=path,
        definition=inst,
        time=time[order],
        pi=pi[order],
        energy=(0.5 * (e_min[idx] + e_max[idx]))[order],
        detector=det[order],
        detectors=tuple(names),
        e_min=e_min,
        e_max=e_max,
        first_channel=first,
        gti=gti,
        t0=0.0,
        attitude=att,
        dead_time_s=float(np.mean(taus)),
    )
    return out, None if trig is None else float(trig)


_READERS = {"eclairs": _read_eclairs, "grm": _read_grm}


def read_xband_events(paths: Sequence[str | Path], *, t0: float | None = None) -> XbandEvents:
    """Read ECLAIRs and GRM L1 event files onto one time axis (seconds since ``t0``).

    Raises
    ------
    InputDataError
        No file given, an unknown instrument, two files of one instrument, unreadable files.
    """
    if not paths:
        raise InputDataError("no event files given")
    found: dict[str, tuple[InstrumentEvents, float | None]] = {}
    for p in map(Path, paths):
        name = classify_event_file(p)
        if name in found:
            raise InputDataError(f"two {name} event files given: {found[name][0].path} and {p}")
        found[name] = _READERS[name](p, load_instrument(name))
    if t0 is None:
        trigs = [found[n][1] for n in KNOWN_INSTRUMENTS if n in found and found[n][1] is not None]
        if trigs:
            t0 = float(trigs[0])
        else:
            t0 = float(min(ev.time[0] for ev, _ in found.values()))
    for ev, _ in found.values():
        if not (ev.gti[0, 0] - 1.0 <= t0 <= ev.gti[-1, 1] + 1.0):
            raise InputDataError(
                f"{ev.path}: t0 = {t0} is outside the data ({ev.gti[0, 0]} .. {ev.gti[-1, 1]})"
            )
        ev.time = ev.time - t0
        ev.gti = ev.gti - t0
        ev.t0 = float(t0)
    return XbandEvents(
        t0=float(t0),
        instruments={n: found[n][0] for n in KNOWN_INSTRUMENTS if n in found},
        files=tuple(str(Path(p)) for p in paths),
    )
