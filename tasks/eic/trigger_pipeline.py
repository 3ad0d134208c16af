"""On-board trigger monitoring as a pipeline: the flow ``eic_triggers``'s configuration and plan.

The step lives in :mod:`svomflow.tasks.eic.trigger_monitor` (pure); this module says which
CALDB files a day needs (the threshold table ``TRIGTHR`` and known-source catalogue
``OBSRCCAT`` on board when its stream starts) and how the step is called.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import StepConfig
from svomflow.errors import InputDataError
from svomflow.products.eic_saa_files import TriggerLog, TriggerStream
from svomflow.tasks.eic.trigger_monitor import (
    TriggerComparison,
    TriggerMonitorConfig,
    monitor_triggers,
)
from svomflow.tasks.step import Observation, Pipeline, Runner

__all__ = [
    "FLOW_NAME",
    "TRIGGER_PIPELINE",
    "EicTriggersConfig",
    "TriggerInputs",
    "TriggerRequest",
    "stream_start_utc",
]

FLOW_NAME = "eic_triggers"


class EicTriggersConfig(StepConfig):
    """Flow ``eic_triggers``: the trigger-monitoring step."""

    monitor: TriggerMonitorConfig = Field(default_factory=TriggerMonitorConfig)


@dataclass(frozen=True)
class TriggerRequest:
    """One day of monitoring: the on-board rate stream and the on-board trigger log."""

    stream_file: str
    log_file: str


@dataclass(frozen=True)
class TriggerInputs:
    """The stream and the log, read."""

    stream: TriggerStream
    log: TriggerLog


def stream_start_utc(path: str) -> str:
    """Return the start of a rate-stream file as an ISO UTC time (from its header only)."""
    from astropy.io import fits
    from svomflow.products.eic_saa_files import MJDREF_DEFAULT, mission_time_utc

    try:
        h = fits.getheader(path, "RATESTRM")
        return mission_time_utc(float(h["TSTART"]), float(h.get("MJDREF", MJDREF_DEFAULT)))
    except (OSError, KeyError, ValueError) as exc:
        raise InputDataError(f"{path}: not a rate-stream file ({exc})") from None


def _observe(request: TriggerRequest) -> Observation:
    return Observation(("eclairs",), stream_start_utc(request.stream_file))


def _needs(observation: Observation, config: EicTriggersConfig) -> list[CalibrationRequirement]:
    # the table and catalogue on board when the stream starts (CALDB validity rules)
    return [
        CalibrationRequirement(
            name=f"eclairs:{code}", codename=code, instrument="ECLAIRS", telescope="SVOM"
        )
        for code in ("TRIGTHR", "OBSRCCAT")
    ]


def _read(request: TriggerRequest, calibration: CalibrationSet) -> TriggerInputs:
    from svomflow.products.eic_saa_files import read_trigger_log, read_trigger_stream

    return TriggerInputs(
        read_trigger_stream(request.stream_file), read_trigger_log(request.log_file)
    )


def _plan(
    runner: Runner, inputs: TriggerInputs, config: EicTriggersConfig, calibration: CalibrationSet
) -> TriggerComparison:
    return runner.run(
        monitor_triggers, inputs.stream, inputs.log, config=config.monitor, calibration=calibration
    )


TRIGGER_PIPELINE: Pipeline[TriggerRequest, TriggerInputs, EicTriggersConfig, TriggerComparison] = (
    Pipeline(
        flow_name=FLOW_NAME,
        config=EicTriggersConfig,
        steps=(monitor_triggers,),
        observe=_observe,
        read=_read,
        plan=_plan,
        calibration_needs=_needs,
    )
)
