"""The SAA contour as a pipeline: the flow ``eic_saa``'s configuration, request and plan.

The steps live in :mod:`svomflow.tasks.eic.saa` (pure); this module says how they connect
and which CALDB file a run selects (the contour in force at the data's start, optional: the
first contour has none), and gives the gate the QC figures of contour files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import StepConfig
from svomflow.errors import InputDataError
from svomflow.products.eic_saa_files import OrbitRates, mission_time_utc
from svomflow.tasks.eic.gate import GateConfig, QCFigure
from svomflow.tasks.eic.saa import (
    CODENAME,
    INSTRUMENT,
    TELESCOPE,
    SaaCandidate,
    SaaContourConfig,
    SaaExportConfig,
    compare_contours,
    saa_contour_step,
    saa_export,
)
from svomflow.tasks.step import Observation, Pipeline, Runner

__all__ = [
    "FLOW_NAME",
    "SAA_PIPELINE",
    "EicSaaConfig",
    "SaaRequest",
    "compare_contour_files",
    "measure_contour_file",
    "read_rates",
]

FLOW_NAME = "eic_saa"


class EicSaaConfig(StepConfig):
    """Flow ``eic_saa``: period, contour, export and the promotion cuts of SAACONT."""

    days: float = Field(
        7.0, gt=0, description="[d] period measured: the last this many days of the rates given"
    )
    contour: SaaContourConfig = Field(default_factory=SaaContourConfig)
    export: SaaExportConfig = Field(default_factory=SaaExportConfig)
    gate: GateConfig = Field(
        default_factory=GateConfig, description="cuts of the promotion gate for SAACONT"
    )


@dataclass(frozen=True)
class SaaRequest:
    """What an SAA run measures: rate files, and the last ``days`` days of their samples."""

    rate_files: tuple[str, ...]
    days: float


def read_rates(request: SaaRequest) -> OrbitRates:
    """Read the rate files and keep the samples of the last ``days`` days they hold."""
    from svomflow.products.eic_saa_files import read_orbit_rates

    if not request.rate_files:
        raise InputDataError("no orbit-rate files given")
    rates = OrbitRates.concatenate([read_orbit_rates(f) for f in request.rate_files])
    if len(rates) == 0:
        raise InputDataError("the orbit-rate files hold no sample")
    end = float(rates.time.max())
    return rates.select(end - request.days * 86400.0, end + 1e-6)


def _observe(request: SaaRequest) -> Observation:
    rates = read_rates(request)
    return Observation(("eclairs",), mission_time_utc(float(rates.time.min()), rates.mjdref))


def _needs(observation: Observation, config: EicSaaConfig) -> list[CalibrationRequirement]:
    # the current contour is optional: the first contour has nothing to be compared with
    return [
        CalibrationRequirement(
            name=f"eclairs:{CODENAME}",
            codename=CODENAME,
            instrument=INSTRUMENT,
            telescope=TELESCOPE,
            optional=True,
        )
    ]


def _read(request: SaaRequest, calibration: CalibrationSet) -> OrbitRates:
    return read_rates(request)


def _plan(
    runner: Runner, rates: OrbitRates, config: EicSaaConfig, calibration: CalibrationSet
) -> SaaCandidate:
    return runner.run(saa_contour_step, rates, config=config.contour, calibration=calibration)


SAA_PIPELINE: Pipeline[SaaRequest, OrbitRates, EicSaaConfig, SaaCandidate] = Pipeline(
    flow_name=FLOW_NAME,
    config=EicSaaConfig,
    steps=(saa_contour_step, saa_export),
    observe=_observe,
    read=_read,
    plan=_plan,
    calibration_needs=_needs,
    optional_calibration=(CODENAME,),
)


def measure_contour_file(path: Path) -> list[QCFigure]:
    """Return the QC figures a contour file holds by itself: samples, polygons, area.

    Used for a current file the QC history does not know (registered outside the gate).
    """
    from svomflow.products.eic_saa_files import read_saa_contour

    c = read_saa_contour(path)
    return [
        QCFigure("n_samples", float(c.n_samples)),
        QCFigure("n_polygons", float(len(c.polygons))),
        QCFigure("area_deg2", c.area_deg2, "deg2"),
    ]


def compare_contour_files(candidate: Path, current: Path) -> list[QCFigure]:
    """Return the figures measured on both files (``iou_current``) for the gate."""
    from svomflow.products.eic_saa_files import read_saa_contour

    return compare_contours(read_saa_contour(candidate), read_saa_contour(current))
