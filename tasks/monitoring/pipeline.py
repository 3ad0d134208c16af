"""The daily report and trend pipelines: read the housekeeping store, run one step, publish.

``read`` is the only I/O (queries of :mod:`svomflow.products.housekeeping`); the steps
(:func:`~svomflow.tasks.monitoring.report.daily_report`,
:func:`~svomflow.tasks.monitoring.trends.trends`) are pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlmodel import Session, select
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import StepConfig
from svomflow.errors import InputDataError
from svomflow.products import housekeeping as hk
from svomflow.products.catalogue import Product
from svomflow.products.database import make_engine
from svomflow.tasks.monitoring.checks import (
    CheckConfig,
    CheckInputs,
    CheckOutcome,
    IngestBatch,
    IngestConfig,
    ParamCheckInput,
    check_limits,
    prepare_ingest,
)
from svomflow.tasks.monitoring.hkfiles import HkFileData, read_hk_file
from svomflow.tasks.monitoring.limits import Carry, rules_for
from svomflow.tasks.monitoring.report import (
    AlarmInfo,
    DailyInputs,
    DailyReportConfig,
    ParamDay,
    daily_report,
)
from svomflow.tasks.monitoring.trends import (
    PERIODS,
    ParamTrend,
    TrendInputs,
    TrendsConfig,
    trends,
)
from svomflow.tasks.step import Observation, Pipeline, Runner

__all__ = [
    "CHECK_PIPELINE",
    "DAILY_PIPELINE",
    "INGEST_PIPELINE",
    "TRENDS_PIPELINE",
    "CheckPipelineConfig",
    "CheckRequest",
    "DailyConfig",
    "DailyRequest",
    "IngestPipelineConfig",
    "IngestRequest",
    "TrendRequest",
    "TrendsPipelineConfig",
    "load_check_inputs",
    "read_check",
    "read_daily",
    "read_ingest",
    "read_trends",
]


class DailyConfig(StepConfig):
    """Configuration of the daily report flow."""

    report: DailyReportConfig = DailyReportConfig()


class TrendsPipelineConfig(StepConfig):
    """Configuration of the trends flow."""

    trends: TrendsConfig = TrendsConfig()


@dataclass(frozen=True)
class DailyRequest:
    """One instrument's day (``YYYY-MM-DD``, UTC) on a products database (None: default)."""

    instrument: str
    day: str
    database_url: str | None = None
    points: int = 288


@dataclass(frozen=True)
class TrendRequest:
    """One instrument over a period ending at ``end`` (unix s UTC)."""

    instrument: str
    period: str
    end: float
    database_url: str | None = None
    points: int = 240


def _day_bounds(day: str) -> tuple[float, float]:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()
    return start, start + 86400.0


def read_daily(request: DailyRequest, calibration: CalibrationSet) -> DailyInputs:
    """Read the day's binned series, last values and alarms of an instrument from the store."""
    start, end = _day_bounds(request.day)
    params = []
    with Session(make_engine(request.database_url)) as s:
        for d in hk.parameters(s, request.instrument):
            ser = hk.series(s, d.instrument, d.name, start, end - 1e-6, max_points=request.points)
            t, v = hk.samples(s, d.instrument, d.name, max(start, end - 7 * 86400.0), end - 1e-6)
            params.append(
                ParamDay(
                    name=d.name,
                    unit=d.unit,
                    category=d.category,
                    description=d.description,
                    soft=(d.soft_low, d.soft_high),
                    hard=(d.hard_low, d.hard_high),
                    times=ser.times,
                    mean=ser.mean,
                    min=ser.min,
                    max=ser.max,
                    n_samples=int(ser.count.sum()),
                    last_value=float(v[-1]) if v.size else None,
                    last_time=float(t[-1]) if t.size else None,
                )
            )
        day_start = datetime.fromtimestamp(start, UTC)
        alarms = [
            AlarmInfo(
                id=int(a.id or 0),
                parameter=a.parameter,
                level=a.level,
                rule=a.rule,
                # the state as it was at the end of the day
                state="cleared"
                if a.cleared_at is not None and a.cleared_at.timestamp() < end
                else (
                    "acknowledged"
                    if a.acknowledged_at and a.acknowledged_at.timestamp() < end
                    else "raised"
                ),
                raised_at=a.raised_at.timestamp(),
                cleared_at=a.cleared_at.timestamp()
                if a.cleared_at is not None and a.cleared_at.timestamp() < end
                else None,
                value=a.value,
                message=a.message,
                acknowledged_by=a.acknowledged_by,
            )
            for a in reversed(hk.alarms(s, request.instrument, since=day_start))
            if a.raised_at.timestamp() < end
        ]
    return DailyInputs(
        request.instrument.upper(), request.day, start, end, tuple(params), tuple(alarms)
    )


def read_trends(request: TrendRequest, calibration: CalibrationSet) -> TrendInputs:
    """Read every parameter's binned series over the period from the store's rollups."""
    start = request.end - PERIODS[request.period] * 86400.0
    params = []
    with Session(make_engine(request.database_url)) as s:
        for d in hk.parameters(s, request.instrument):
            ser = hk.series(s, d.instrument, d.name, start, request.end, max_points=request.points)
            params.append(
                ParamTrend(
                    d.name,
                    d.unit,
                    ser.times,
                    ser.mean,
                    ser.min,
                    ser.max,
                    ser.count,
                    ser.resolution_s,
                )
            )
    return TrendInputs(
        request.instrument.upper(), request.period, start, request.end, tuple(params)
    )


def _observe_daily(request: DailyRequest) -> Observation:
    return Observation(instruments=(), time=f"{request.day}T00:00:00")


def _observe_trends(request: TrendRequest) -> Observation:
    return Observation(instruments=(), time=str(np.datetime64(int(request.end), "s")))


def _plan_daily(
    runner: Runner, inputs: DailyInputs, config: DailyConfig, calibration: CalibrationSet
) -> Product:
    return runner.run(daily_report, inputs, config=config.report)


def _plan_trends(
    runner: Runner, inputs: TrendInputs, config: TrendsPipelineConfig, calibration: CalibrationSet
) -> Product:
    return runner.run(trends, inputs, config=config.trends)


DAILY_PIPELINE: Pipeline[DailyRequest, DailyInputs, DailyConfig, Product] = Pipeline(
    flow_name="hk_daily_report",
    config=DailyConfig,
    steps=(daily_report,),
    observe=_observe_daily,
    read=read_daily,
    plan=_plan_daily,
)

TRENDS_PIPELINE: Pipeline[TrendRequest, TrendInputs, TrendsPipelineConfig, Product] = Pipeline(
    flow_name="hk_trends",
    config=TrendsPipelineConfig,
    steps=(trends,),
    observe=_observe_trends,
    read=read_trends,
    plan=_plan_trends,
)


# ---------------------------------------------------------------- ingest and check


class CheckPipelineConfig(StepConfig):
    """Configuration of the limit-check flow."""

    check: CheckConfig = CheckConfig()


class IngestPipelineConfig(StepConfig):
    """Configuration of the ingestion flow."""

    ingest: IngestConfig = IngestConfig()


@dataclass(frozen=True)
class CheckRequest:
    """Check one instrument's samples not checked yet, up to ``until`` (unix s; None: all)."""

    instrument: str
    database_url: str | None = None
    until: float | None = None


@dataclass(frozen=True)
class IngestRequest:
    """Housekeeping files to read, and the instruments with definitions."""

    files: tuple[str, ...]
    instruments: tuple[str, ...]


def load_check_inputs(session: Session, instrument: str, until: float | None = None) -> CheckInputs:
    """Return each parameter's rules, carried states and unchecked samples from the store."""
    t_end = math.inf if until is None else until
    params = []
    for d in hk.parameters(session, instrument):
        rules = rules_for(
            (d.soft_low, d.soft_high),
            (d.hard_low, d.hard_high),
            d.persistence,
            d.hysteresis,
            d.stuck_after,
        )
        if not rules:
            continue
        states = {
            st.kind: st
            for st in session.exec(select(hk.CheckState).where(hk.CheckState.param_id == d.id))
        }
        since = tuple(states[r.kind].checked_until if r.kind in states else None for r in rules)
        known = [x for x in since if x is not None]
        # from the earliest rule's last check (a rule never run: from the first sample)
        start = math.nextafter(min(known), math.inf) if len(known) == len(since) else -1e18
        t, v = hk.samples(session, d.instrument, d.name, start, min(t_end, 1e18))
        if not t.size:
            continue
        carries = tuple(
            Carry()
            if r.kind not in states
            else Carry(
                states[r.kind].streak,
                states[r.kind].clear_streak,
                states[r.kind].active,
                states[r.kind].last_value,
            )
            for r in rules
        )
        params.append(
            ParamCheckInput(int(d.id or 0), d.instrument, d.name, rules, carries, since, t, v)
        )
    return CheckInputs(instrument.upper(), tuple(params))


def read_check(request: CheckRequest, calibration: CalibrationSet) -> CheckInputs:
    """Read the check inputs of the request's instrument (see :func:`load_check_inputs`)."""
    with Session(make_engine(request.database_url)) as s:
        return load_check_inputs(s, request.instrument, request.until)


def read_ingest(request: IngestRequest, calibration: CalibrationSet) -> IngestBatch:
    """Read every file; those that cannot be read are listed with the reason."""
    read: list[HkFileData] = []
    failed: list[tuple[str, str]] = []
    for f in request.files:
        try:
            read.append(read_hk_file(f, request.instruments))
        except InputDataError as exc:
            failed.append((f, str(exc)))
    return IngestBatch(tuple(read), tuple(failed))


def _observe_check(request: CheckRequest) -> Observation:
    return Observation(instruments=(), time=datetime.now(UTC).isoformat())


def _observe_ingest(request: IngestRequest) -> Observation:
    return Observation(instruments=(), time=datetime.now(UTC).isoformat())


def _plan_check(
    runner: Runner, inputs: CheckInputs, config: CheckPipelineConfig, calibration: CalibrationSet
) -> CheckOutcome:
    return runner.run(check_limits, inputs, config=config.check)


def _plan_ingest(
    runner: Runner, inputs: IngestBatch, config: IngestPipelineConfig, calibration: CalibrationSet
) -> IngestBatch:
    return runner.run(prepare_ingest, inputs, config=config.ingest)


CHECK_PIPELINE: Pipeline[CheckRequest, CheckInputs, CheckPipelineConfig, CheckOutcome] = Pipeline(
    flow_name="hk_check",
    config=CheckPipelineConfig,
    steps=(check_limits,),
    observe=_observe_check,
    read=read_check,
    plan=_plan_check,
)

INGEST_PIPELINE: Pipeline[IngestRequest, IngestBatch, IngestPipelineConfig, IngestBatch] = Pipeline(
    flow_name="hk_ingest",
    config=IngestPipelineConfig,
    steps=(prepare_ingest,),
    observe=_observe_ingest,
    read=read_ingest,
    plan=_plan_ingest,
)
