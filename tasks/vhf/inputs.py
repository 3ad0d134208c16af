"""Input side of the VHF pipeline: the request, what its headers say, and the one read.

The flow takes "whatever instruments' files are given": each file's ``INSTRUME`` names its
instrument (:mod:`svomflow.products.burst_events`, the reader shared with the X-band
analysis). :func:`observe` tells the CALDB which instruments and what time, from the
headers only; :func:`read` reads every event file once, with the channel bounds and dead
time of the run's calibration for the mission's instruments (foreign files carry theirs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from astropy.io import fits
from astropy.time import Time
from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config import available_instruments
from svomflow.errors import InputDataError
from svomflow.instruments.channels import EnergyBounds
from svomflow.instruments.dead_time import DeadTime
from svomflow.products.burst_events import (
    BurstEvents,
    FileHeader,
    choose_t0,
    definition_of,
    peek_headers,
    read_burst_events,
)
from svomflow.products.eclairs_l1 import apply_pixel_gains
from svomflow.products.eic_calibration_files import PixelGain
from svomflow.products.eic_saa_files import SaaContour
from svomflow.products.ogip import TimeReference
from svomflow.tasks.step import Observation
from svomflow.tasks.vhf.responses import response_model

__all__ = [
    "VHFInputs",
    "VHFRequest",
    "instrument_names",
    "observe",
    "plane_calibration_requirements",
    "read",
]

T = TypeVar("T")


@dataclass(frozen=True)
class VHFRequest:
    """One quick analysis to run: the event files, the burst id, the reference time.

    Attributes
    ----------
    event_files
        Event files of any instruments (grouped by their ``INSTRUME`` keyword).
    obs_id
        Burst / observation id (titles of the previews).
    t0
        Reference time (mission s); None: the imaging instrument's ``TRIGTIME`` (see
        :func:`svomflow.products.burst_events.choose_t0`).
    """

    event_files: tuple[str, ...]
    obs_id: str = ""
    t0: float | None = None

    @classmethod
    def of(
        cls, event_files: Sequence[str | Path], obs_id: str = "", t0: float | None = None
    ) -> VHFRequest:
        """Build a request from paths (resolved, so that provenance names real files)."""
        return cls(tuple(str(Path(f).resolve()) for f in event_files), obs_id, t0)


@dataclass
class VHFInputs:
    """What the pipeline reads: every instrument's events on the burst's time axis."""

    burst: BurstEvents
    obs_id: str


def instrument_names(headers: Sequence[FileHeader]) -> list[str]:
    """Definition names of the instruments (``eclairs``), ``INSTRUME`` lower-cased if foreign."""
    names: dict[str, None] = {}
    for h in headers:
        defn = definition_of(h.instrument)
        names.setdefault(defn.name if defn is not None else h.instrument.lower(), None)
    return list(names)


def _observation_time(headers: Sequence[FileHeader], t0: float | None) -> str:
    """ISO UTC time of ``t0`` (else of the data start) from the first file's time reference."""
    head = fits.getheader(headers[0].path, 0)
    ref = TimeReference.from_header(head)
    seconds = t0 if t0 is not None else float(head.get("TSTART", 0.0))
    scale = ref.timesys.strip().lower() if ref.timesys.strip().lower() in Time.SCALES else "tt"
    return str(Time(ref.mjdref + seconds / 86400.0, format="mjd", scale=scale).utc.isot)


def observe(request: VHFRequest) -> Observation:
    """Instruments present and the observation time, from the files' headers.

    Raises
    ------
    InputDataError
        No file, or a missing, empty or unreadable one.
    """
    if not request.event_files:
        raise InputDataError("no event files given")
    headers = peek_headers(request.event_files)
    return Observation(
        instruments=tuple(instrument_names(headers)),
        time=_observation_time(headers, choose_t0(headers, request.t0)),
    )


def _per_instrument(calibration: CalibrationSet, codename: str, kind: type[T]) -> dict[str, T]:
    """Return the run's ``codename`` objects of the mission's instruments, by name."""
    out: dict[str, T] = {}
    for name in available_instruments():
        obj = calibration.optional(name, codename)
        if obj is not None:
            if not isinstance(obj, kind):
                raise TypeError(f"{name}:{codename} loaded as {type(obj).__name__}, not {kind}")
            out[name] = obj
    return out


def _check_detectors(burst: BurstEvents, calibration: CalibrationSet) -> None:
    """Refuse a run whose response model has detectors without events (a partial delivery)."""
    for data in burst.instruments.values():
        model = response_model(calibration, data.key)
        if model is not None:
            missing = [d for d in model.detectors if d not in data.events.detectors]
            if missing:
                raise InputDataError(
                    f"{data.name}: the response model has detectors {list(model.detectors)} "
                    f"but the data lack {missing}; give every detector's events"
                )


def read(request: VHFRequest, calibration: CalibrationSet) -> VHFInputs:
    """Read every event file once, with the run's EBOUNDS and DEADTIME where it has them.

    Raises
    ------
    InputDataError
        For unreadable, empty or truncated files, no channel energies, a ``t0`` outside the
        data, files of one burst on different time references, or detectors missing from
        an instrument whose response model has them.
    """
    burst = read_burst_events(
        request.event_files,
        t0=request.t0,
        ebounds=_per_instrument(calibration, "EBOUNDS", EnergyBounds),
        dead_time=_per_instrument(calibration, "DEADTIME", DeadTime),
        saa_contours=_per_instrument(calibration, "SAACONT", SaaContour),
    )
    apply_pixel_gains(burst, _per_instrument(calibration, "PIXGAIN", PixelGain))
    _check_detectors(burst, calibration)
    return VHFInputs(burst=burst, obs_id=request.obs_id)


def plane_calibration_requirements(observation: Observation) -> list[CalibrationRequirement]:
    """Return the optional ``PIXGAIN`` and ``SAACONT`` selections of each pixelated instrument.

    An instrument is pixelated when its definition has a ``detector_plane`` (ECLAIRs). The
    burst analyses read its events' raw ADC channels through ``PIXGAIN`` when the CALDB has
    one (else the files' PI), and take the SAA time of the file's ground track out of the
    GTIs with ``SAACONT`` when the CALDB has a contour (else the files' GTIs as they are).
    """
    from svomflow.config import load_instrument

    known = set(available_instruments())
    out = []
    for name in observation.instruments:
        if name not in known:
            continue
        inst = load_instrument(name)
        if inst.get("detector_plane", None) is None:
            continue
        out += [
            CalibrationRequirement(
                name=f"{name}:{code}",
                codename=code,
                instrument=inst.instrument,
                telescope=inst.telescope,
                optional=True,
            )
            for code in ("PIXGAIN", "SAACONT")
        ]
    return out
