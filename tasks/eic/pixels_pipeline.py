"""The ECLAIRs pixel calibration as a pipeline: count histories to BADPIX, UNIFMAP, DEADTIME.

Request: the pixel count-history files of a period (``PIXHIST``) and, optionally, a
dead-time rates file (``DTRATES``), both in :mod:`svomflow.products.eic_pixel_files`. Plan:

1. ``pixel-health`` flags dead, noisy and intermittent pixels (:mod:`.pixel_health`);
2. ``uniformity`` measures the relative efficiency of every pixel from the same counts,
   leaving out what step 1 flagged (:mod:`.uniformity`);
3. ``dead-time`` fits the module dead times when a rates file is given (:mod:`.dead_time`).

Each step returns its candidate CALDB file as a product and its QC figures; the flow
(``flows/eic_pixels.py``) then hands every candidate to the promotion gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.time import Time
from pydantic import Field
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config import load_instrument
from svomflow.config.base import StepConfig
from svomflow.errors import InputDataError
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.products.eic_pixel_files import (
    DeadTimeRates,
    PixelCountHistory,
    read_dead_time_rates,
    read_history,
)
from svomflow.tasks.eic.dead_time import DeadTimeConfig, DeadTimeResult, module_dead_time
from svomflow.tasks.eic.gate import GateConfig
from svomflow.tasks.eic.pixel_health import PixelHealthConfig, PixelHealthResult, pixel_health
from svomflow.tasks.eic.qc_history import HistoryConfig
from svomflow.tasks.eic.uniformity import (
    UniformityConfig,
    UniformityResult,
    flat_illumination,
    uniformity_map,
)
from svomflow.tasks.step import Observation, Pipeline, Runner

__all__ = [
    "PIXELS_PIPELINE",
    "EicPixelsConfig",
    "PixelGates",
    "PixelsInputs",
    "PixelsOutcome",
    "PixelsRequest",
    "files_in_period",
    "mission_time_utc",
]

FLOW_NAME = "eic_pixel_calibration"


class PixelGates(StepConfig):
    """The promotion cuts of each code the flow makes."""

    badpix: GateConfig = Field(default_factory=GateConfig, description="Cuts of BADPIX candidates")
    unifmap: GateConfig = Field(
        default_factory=GateConfig, description="Cuts of UNIFMAP candidates"
    )
    deadtime: GateConfig = Field(
        default_factory=GateConfig, description="Cuts of DEADTIME candidates"
    )


class EicPixelsConfig(StepConfig):
    """Configuration of the ECLAIRs pixel calibration flow (``config/pipelines/eic_pixels.yaml``)."""

    instrument: str = Field("eclairs", description="Instrument definition of the plane")
    pixel_health: PixelHealthConfig = Field(
        default_factory=PixelHealthConfig, description="Bad pixels"
    )
    uniformity: UniformityConfig = Field(
        default_factory=UniformityConfig, description="Uniformity map"
    )
    dead_time: DeadTimeConfig = Field(default_factory=DeadTimeConfig, description="Dead-time fit")
    gates: PixelGates = Field(default_factory=PixelGates, description="Promotion cuts per code")
    history: HistoryConfig = Field(default_factory=HistoryConfig, description="QC history plots")


@dataclass(frozen=True)
class PixelsRequest:
    """The files of one period: count histories and an optional dead-time rates file."""

    history_files: tuple[str, ...]
    rates_file: str | None = None
    instrument: str = "eclairs"


@dataclass(frozen=True)
class PixelsInputs:
    """The period's data, read once."""

    history: PixelCountHistory
    rates: DeadTimeRates | None
    geometry: MaskGeometry
    n_modules: int


@dataclass(frozen=True)
class PixelsOutcome:
    """What the steps found (each result holds its candidate product and QC figures)."""

    health: PixelHealthResult
    uniformity: UniformityResult
    dead_time: DeadTimeResult | None


def mission_time_utc(t: float, mjdref: float) -> str:
    """Return the ISO UTC time of a mission time (TT seconds since ``mjdref``)."""
    return str(Time(mjdref + t / 86400.0, format="mjd", scale="tt").utc.isot)


def _mjdref(instrument: str) -> float:
    return float(load_instrument(instrument).get("time_reference.mjdref"))


def _observe(request: PixelsRequest) -> Observation:
    if not request.history_files:
        raise InputDataError("no pixel count-history file for the period")
    starts = []
    for path in request.history_files:
        try:
            starts.append(float(fits.getval(path, "TSTART", ext=0)))
        except (OSError, KeyError) as exc:
            raise InputDataError(f"{path}: no TSTART (not a pixel count history?): {exc}") from None
    return Observation(
        instruments=(request.instrument,),
        time=mission_time_utc(min(starts), _mjdref(request.instrument)),
    )


def _read(request: PixelsRequest, calibration: CalibrationSet) -> PixelsInputs:
    del calibration  # the steps need no calibration file
    history = PixelCountHistory.concatenate([read_history(p) for p in request.history_files])
    overlap = np.flatnonzero(history.start[1:] < history.stop[:-1] - 1e-6)
    if overlap.size:
        raise InputDataError(
            f"pixel histories overlap in time at mission time {history.start[overlap[0] + 1]:.1f} s "
            "(the same period given twice?)"
        )
    rates = read_dead_time_rates(request.rates_file) if request.rates_file else None
    inst = load_instrument(request.instrument)
    geometry = MaskGeometry.from_instrument(inst)
    if geometry.shape != history.shape:
        raise InputDataError(
            f"pixel histories are {history.shape} but {request.instrument} has a {geometry.shape} plane"
        )
    return PixelsInputs(history, rates, geometry, int(inst.get("detector_plane.n_modules")))


def _plan(
    runner: Runner, inputs: PixelsInputs, config: EicPixelsConfig, calibration: CalibrationSet
) -> PixelsOutcome:
    illum = flat_illumination(inputs.geometry, config.uniformity.cxb_fraction)
    health = runner.run(pixel_health, inputs.history, illum, config=config.pixel_health)
    unif = runner.run(uniformity_map, inputs.history, health, illum, config=config.uniformity)
    dt = None
    if inputs.rates is not None:
        dt_cfg = config.dead_time
        if dt_cfg.n_modules is None:  # the instrument's number (instruments are data)
            dt_cfg = dt_cfg.model_copy(update={"n_modules": inputs.n_modules})
        dt = runner.run(module_dead_time, inputs.rates, config=dt_cfg)
    else:
        runner.warn("no dead-time rates file for the period: no DEADTIME candidate")
    return PixelsOutcome(health, unif, dt)


PIXELS_PIPELINE: Pipeline[PixelsRequest, PixelsInputs, EicPixelsConfig, PixelsOutcome] = Pipeline(
    flow_name=FLOW_NAME,
    config=EicPixelsConfig,
    steps=(pixel_health, uniformity_map, module_dead_time),
    observe=_observe,
    read=_read,
    plan=_plan,
)


def files_in_period(paths: Sequence[str], t_start: float | None, t_stop: float | None) -> list[str]:
    """Return the files whose ``[TSTART, TSTOP]`` overlaps ``[t_start, t_stop)`` (mission s)."""
    out = []
    for p in paths:
        try:
            h = fits.getheader(p, ext=0)
            a, b = float(h["TSTART"]), float(h["TSTOP"])
        except (OSError, KeyError, ValueError):
            continue
        if (t_stop is None or a < t_stop) and (t_start is None or b > t_start):
            out.append(p)
    return sorted(out)
