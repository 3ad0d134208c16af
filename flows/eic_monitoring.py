"""Housekeeping monitoring flows: ingest and check, the daily status report, long-term trends.

* ``hk_ingest``: read housekeeping files (FITS/JSON), store their samples (with the
  definitions of ``config/housekeeping`` kept in the store), then check the limits;
* ``hk_check`` (every 5 minutes): apply the soft/hard/stuck rules to the samples not checked
  yet and record raised and cleared alarms;
* ``hk_daily_report`` (00:15 UTC): the previous day's status report per instrument (HKDAY);
* ``hk_trends`` (00:30 UTC): trends over the last day, week, month and quarter (HKTRND).

Alarms are recorded not-yet-notified (the outbox); ``hk_check`` and ``hk_ingest`` then send
them to whoever is on duty with the one sender, :func:`svomflow.products.notify.notify_pending`
(task ``send-alarms``), which ``svomflow hk watch`` and ``svomflow hk notify`` use too: each
alarm is claimed before it is sent, so one of them sends it, once.

The plain functions (:func:`ingest_file`, :func:`check_instrument`, :func:`make_daily_report`,
:func:`make_trends`) are what the flows run; the watcher and the command line call them too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.flows.adapter import (
    FlowContext,
    PipelineRun,
    default_output_root,
    publish_summary,
    record_failure,
    run_pipeline,
    run_pipeline_plain,
)
from svomflow.flows.prefect_flow import flow
from svomflow.products import housekeeping as hk
from svomflow.products.database import make_engine
from svomflow.products.store import ProductRef
from svomflow.tasks.monitoring.checks import (
    CheckConfig,
    CheckOutcome,
    IngestBatch,
    IngestConfig,
    check_limits,
    prepare_ingest,
)
from svomflow.tasks.monitoring.definitions import InstrumentHousekeeping, load_definitions, to_rows
from svomflow.tasks.monitoring.limits import CheckResult, LimitRule
from svomflow.tasks.monitoring.pipeline import (
    CHECK_PIPELINE,
    DAILY_PIPELINE,
    INGEST_PIPELINE,
    TRENDS_PIPELINE,
    CheckPipelineConfig,
    CheckRequest,
    DailyConfig,
    DailyRequest,
    IngestPipelineConfig,
    IngestRequest,
    TrendRequest,
    TrendsPipelineConfig,
    load_check_inputs,
    read_ingest,
)
from svomflow.tasks.monitoring.trends import PERIODS

__all__ = [
    "CheckSummary",
    "FileIngest",
    "check_instrument",
    "hk_check",
    "hk_daily_report",
    "hk_ingest",
    "hk_trends",
    "ingest_file",
    "ingest_files",
    "make_daily_report",
    "make_trends",
    "parse_day",
    "record_check",
    "store_batch",
    "sync_definitions",
]


# ---------------------------------------------------------------- plain functions


def sync_definitions(
    session: Session, definitions: dict[str, InstrumentHousekeeping] | None = None
) -> dict[str, InstrumentHousekeeping]:
    """Write the parameter definitions (default: the packaged ones) into the store."""
    definitions = definitions or load_definitions()
    for defs in definitions.values():
        hk.upsert_parameters(session, to_rows(defs))
    return definitions


@dataclass(frozen=True)
class FileIngest:
    """What ingesting one file stored."""

    path: str
    instrument: str
    inserted: int
    duplicates: int
    invalid: int
    created: tuple[str, ...]


def store_batch(session: Session, batch: IngestBatch) -> list[FileIngest]:
    """Store the samples of files read (and prepared); return what each file added."""
    out = []
    for data in batch.files:
        inserted = duplicates = invalid = 0
        created: list[str] = []
        # a wide table's columns share their times: one call, one transaction for the file
        shared = all(
            c.times is data.columns[0].times or np.array_equal(c.times, data.columns[0].times)
            for c in data.columns
        )
        groups = (
            [(data.columns[0].times, {c.name: c.values for c in data.columns})]
            if shared
            else [(c.times, {c.name: c.values}) for c in data.columns]
        )
        for times, values in groups:
            r = hk.ingest(session, data.instrument, times, values)
            inserted += r.total
            duplicates += r.duplicates
            invalid += r.invalid
            created += r.created
        out.append(
            FileIngest(data.source, data.instrument, inserted, duplicates, invalid, tuple(created))
        )
    return out


def ingest_files(
    session: Session,
    files: Sequence[str | Path],
    definitions: dict[str, InstrumentHousekeeping],
    config: IngestConfig | None = None,
) -> tuple[list[FileIngest], list[tuple[str, str]]]:
    """Read, prepare and store housekeeping files; return what was stored and what failed.

    Files of instruments without definitions are refused, as are unreadable ones.
    """
    request = IngestRequest(tuple(str(f) for f in files), tuple(definitions))
    batch = prepare_ingest.run(
        read_ingest(request, CalibrationSet()), config=config or IngestConfig()
    )
    return store_batch(session, batch), list(batch.failed)


def ingest_file(
    session: Session, path: str | Path, definitions: dict[str, InstrumentHousekeeping]
) -> FileIngest:
    """Ingest one file; raise :class:`~svomflow.errors.InputDataError` when it is refused."""
    done, failed = ingest_files(session, [path], definitions)
    if failed:
        raise InputDataError(failed[0][1])
    return done[0]


@dataclass
class CheckSummary:
    """Alarms raised and cleared by one check of an instrument."""

    instrument: str
    checked_samples: int = 0
    raised: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _claim_state(
    session: Session,
    param_id: int,
    rule: LimitRule,
    since: float | None,
    res: CheckResult,
    last: float,
) -> bool:
    """Move a rule's state from ``since`` to ``last`` (compare and set); False if moved already."""
    values = {
        "until": last,
        "streak": res.carry.streak,
        "clear": res.carry.clear_streak,
        "active": res.carry.active,
        "last": res.carry.last_value,
        "pid": param_id,
        "kind": rule.kind,
    }
    if since is None:
        try:
            with session.begin_nested():
                session.add(
                    hk.CheckState(
                        param_id=param_id,
                        kind=rule.kind,
                        checked_until=last,
                        streak=res.carry.streak,
                        clear_streak=res.carry.clear_streak,
                        active=res.carry.active,
                        last_value=res.carry.last_value,
                    )
                )
        except IntegrityError:
            return False
        return True
    # another checker (the watcher and the scheduled flow) may have done this batch: only
    # the one whose update finds the state it read records the alarms
    done = session.execute(
        text(
            "UPDATE hk_check_state SET checked_until = :until, streak = :streak, "
            "clear_streak = :clear, active = :active, last_value = :last "
            "WHERE param_id = :pid AND kind = :kind AND checked_until = :since"
        ),
        {**values, "since": since},
    )
    return bool(getattr(done, "rowcount", 0))


def record_check(session: Session, outcome: CheckOutcome) -> CheckSummary:
    """Record the alarms raised and cleared by a check and the rules' new states.

    One transaction per parameter: its alarms and states are committed together, so a
    check killed half way neither loses nor repeats an alarm, and of two checks of the same
    samples running at once only one records them.
    """
    summary = CheckSummary(outcome.instrument, outcome.n_samples)
    for pr in outcome.parameters:
        p = pr.param
        new: list[hk.Alarm] = []
        cleared: list[hk.Alarm] = []
        claimed = True
        for rule, since, res in zip(p.rules, p.checked_until, pr.results, strict=True):
            if res is None:
                continue
            if not _claim_state(session, p.param_id, rule, since, res, pr.last_time):
                claimed = False
                break
            for tr in res.transitions:
                at = datetime.fromtimestamp(tr.time, UTC)
                if tr.action == "raise":
                    alarm = hk.Alarm(
                        instrument=p.instrument,
                        parameter=p.name,
                        level=rule.level,
                        rule=rule.alarm_rule,
                        state="raised",
                        raised_at=at,
                        value=tr.value,
                        limit_value=tr.limit,
                        message=tr.message,
                    )
                    session.add(alarm)
                    new.append(alarm)
                    continue
                # the rule's open alarm: raised earlier in this batch, or by an earlier check
                open_alarm = next(
                    (
                        a
                        for a in reversed(new)
                        if (a.level, a.rule) == (rule.level, rule.alarm_rule)
                        and a.state != "cleared"
                    ),
                    None,
                ) or hk.active_alarm(session, p.instrument, p.name, rule.level, rule.alarm_rule)
                if open_alarm is None:
                    continue  # cleared by hand meanwhile
                open_alarm.state = "cleared"
                open_alarm.cleared_at = at
                session.add(open_alarm)
                cleared.append(open_alarm)
        if not claimed:
            session.rollback()
            summary.skipped.append(p.name)
            continue
        session.commit()
        summary.raised += [int(a.id or 0) for a in new]
        summary.cleared += [int(a.id or 0) for a in cleared]
    return summary


def check_instrument(
    session: Session,
    instrument: str,
    *,
    until: datetime | float | None = None,
    config: CheckConfig | None = None,
) -> CheckSummary:
    """Check every parameter's samples not checked yet (up to ``until``); record the alarms.

    Each rule resumes where it stopped (its carried streaks in ``hk_check_state``). Samples
    older than a rule's last checked time (late files) are stored but not checked.
    """
    inputs = load_check_inputs(session, instrument, None if until is None else hk.to_unix(until))
    outcome = check_limits.run(inputs, config=config or CheckConfig())
    return record_check(session, outcome)


def parse_day(day: str, today: date | None = None) -> str:
    """Return ``YYYY-MM-DD`` for ``yesterday``, ``today`` or an ISO date (UTC)."""
    today = today or datetime.now(UTC).date()
    if day == "yesterday":
        return (today - timedelta(days=1)).isoformat()
    if day == "today":
        return today.isoformat()
    try:
        return date.fromisoformat(day).isoformat()
    except ValueError:
        raise InputDataError(f"day {day!r} is not YYYY-MM-DD, 'today' or 'yesterday'") from None


def _instruments(session: Session, instruments: Sequence[str] | None) -> list[str]:
    if instruments:
        return [i.upper() for i in instruments]
    return sorted({p.instrument for p in hk.parameters(session)})


def make_daily_report(
    instrument: str,
    day: str,
    *,
    out_dir: str | None = None,
    database_url: str | None = None,
    config: DailyConfig | None = None,
    prefect: bool = False,
) -> PipelineRun[Any]:
    """Build and publish one instrument's daily report (``prefect``: inside a flow run)."""
    config = config or DailyConfig()
    day = parse_day(day)
    ctx = FlowContext(
        "hk_daily_report", f"hk-{day}", out_dir or str(default_output_root()), database_url
    )
    request = DailyRequest(instrument.upper(), day, database_url, config.report.points)
    run = (run_pipeline if prefect else run_pipeline_plain)(DAILY_PIPELINE, request, config, ctx)
    ctx.status("done")
    return run


def make_trends(
    instrument: str,
    period: str,
    end: datetime | None = None,
    *,
    out_dir: str | None = None,
    database_url: str | None = None,
    config: TrendsPipelineConfig | None = None,
    prefect: bool = False,
) -> PipelineRun[Any]:
    """Build and publish one instrument's trends over a period ending at ``end`` (now)."""
    if period not in PERIODS:
        raise InputDataError(f"period {period!r} is not one of {', '.join(PERIODS)}")
    config = config or TrendsPipelineConfig()
    end_t = hk.to_unix(end or datetime.now(UTC))
    # whole days: the product of a day is the same whenever in the next day it is made
    end_t = math.floor(end_t / 86400.0) * 86400.0 if end is None else end_t
    day = datetime.fromtimestamp(end_t, UTC).date()
    ctx = FlowContext(
        "hk_trends",
        f"hktrend-{period}-{day}",
        out_dir or str(default_output_root()),
        database_url,
    )
    request = TrendRequest(instrument.upper(), period, end_t, database_url, config.trends.points)
    run = (run_pipeline if prefect else run_pipeline_plain)(TRENDS_PIPELINE, request, config, ctx)
    ctx.status("done")
    return run


# ---------------------------------------------------------------- Prefect flows


@task(name="record-check")
def _record_task(outcome: CheckOutcome, database_url: str | None) -> CheckSummary:
    with Session(make_engine(database_url)) as s:
        return record_check(s, outcome)


@task(name="send-alarms")
def _notify_task(database_url: str | None) -> dict[str, list[Any]]:
    """Send the alarms not notified yet to who is on duty (``SVOMFLOW_SMTP_*``, webhooks)."""
    from svomflow.products.notify import notify_pending

    with Session(make_engine(database_url)) as s:
        r = notify_pending(s)
    return {"sent": r.sent, "failed": r.failed, "nobody": r.nobody, "stale": r.stale}


@task(name="store-samples", retries=2, retry_delay_seconds=[1, 5])
def _store_task(batch: IngestBatch, database_url: str | None) -> list[FileIngest]:
    with Session(make_engine(database_url)) as s:
        return store_batch(s, batch)


def _check_in_flow(
    instrument: str, database_url: str | None, config: CheckPipelineConfig
) -> CheckSummary:
    ctx = FlowContext(
        "hk_check", f"hk-check-{instrument}", str(default_output_root()), database_url
    )
    run = run_pipeline(CHECK_PIPELINE, CheckRequest(instrument, database_url), config, ctx)
    summary = _record_task(run.outcome, database_url)
    ctx.status("done", f"{summary.checked_samples} samples, {len(summary.raised)} alarm(s) raised")
    return summary


@flow(name="hk_ingest", flow_run_name="hk-ingest-{key}", on_failure=[record_failure])
def hk_ingest(
    files: list[str],
    key: str = "files",
    config: IngestPipelineConfig | None = None,
    check: CheckPipelineConfig | None = None,
    database_url: str | None = None,
    notify: bool = True,
) -> dict[str, Any]:
    """Ingest housekeeping files (FITS/JSON), check the limits of their instruments, notify.

    Parameters
    ----------
    files
        Paths of the housekeeping files.
    key
        Name of this batch in the processing status.
    config, check
        Ingestion and limit-check configuration.
    database_url
        Products database (default ``$SVOMFLOW_DATABASE_URL`` or SQLite in the home).
    notify
        Send the alarms not notified yet to who is on duty (``svomflow.products.notify``).
    """
    config = config or IngestPipelineConfig()
    ctx = FlowContext("hk_ingest", key, str(default_output_root()), database_url)
    with Session(make_engine(database_url)) as s:
        defs = sync_definitions(s)
    request = IngestRequest(tuple(files), tuple(defs))
    run = run_pipeline(INGEST_PIPELINE, request, config, ctx, inputs=files)
    done = _store_task(run.outcome, database_url)
    checks = [
        _check_in_flow(i, database_url, check or CheckPipelineConfig())
        for i in sorted({d.instrument for d in done})
    ]
    failed = dict(run.outcome.failed)
    sent = _notify_task(database_url) if notify else None
    ctx.status("failed" if failed and not done else "done", "; ".join(failed.values()) or None)
    return {
        "ingested": {d.path: d.inserted for d in done},
        "failed": failed,
        "raised": [a for c in checks for a in c.raised],
        "cleared": [a for c in checks for a in c.cleared],
        "notified": sent,
    }


@flow(name="hk_check", flow_run_name="hk-check", on_failure=[record_failure])
def hk_check(
    instruments: list[str] | None = None,
    config: CheckPipelineConfig | None = None,
    database_url: str | None = None,
    notify: bool = True,
) -> dict[str, Any]:
    """Check the housekeeping limits of the samples not checked yet; record and send alarms.

    Parameters
    ----------
    instruments
        Instruments to check (default: every one with definitions in the store).
    config
        Limit-check configuration.
    database_url
        Products database (default ``$SVOMFLOW_DATABASE_URL`` or SQLite in the home).
    notify
        Send the alarms not notified yet (these and any earlier) to who is on duty.

    Returns
    -------
    dict
        Per instrument the samples checked and the alarms raised and cleared; under
        ``"notified"`` what the sender did (``sent``: alarm id and recipients).
    """
    with Session(make_engine(database_url)) as s:
        sync_definitions(s)
        names = _instruments(s, instruments)
    out: dict[str, Any] = {}
    for name in names:
        c = _check_in_flow(name, database_url, config or CheckPipelineConfig())
        out[name] = {"samples": c.checked_samples, "raised": c.raised, "cleared": c.cleared}
    if notify:
        out["notified"] = _notify_task(database_url)
    return out


@flow(
    name="hk_daily_report",
    flow_run_name="hk-daily-{day}",
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def hk_daily_report(
    day: str = "yesterday",
    instruments: list[str] | None = None,
    config: DailyConfig | None = None,
    out_dir: str | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Publish the daily housekeeping status report (HKDAY) of each instrument.

    Parameters
    ----------
    day
        ``YYYY-MM-DD`` (UTC), ``yesterday`` or ``today``.
    instruments
        Default: every instrument with definitions.
    config
        Report configuration (points per plot, plots per row).
    out_dir, database_url
        Product root and products database (defaults: the home's).
    """
    with Session(make_engine(database_url)) as s:
        sync_definitions(s)
        names = _instruments(s, instruments)
    refs: list[ProductRef] = []
    for name in names:
        refs += make_daily_report(
            name, day, out_dir=out_dir, database_url=database_url, config=config, prefect=True
        ).refs
    d = parse_day(day)
    publish_summary(
        title=f"Housekeeping {d}", key=f"hk-{d}", refs=refs, artifact_key=f"hk-daily-{d}"
    )
    return {r.type_code + ":" + r.instrument: r.path for r in refs}


@flow(
    name="hk_trends",
    flow_run_name="hk-trends",
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def hk_trends(
    periods: list[str] | None = None,
    instruments: list[str] | None = None,
    config: TrendsPipelineConfig | None = None,
    out_dir: str | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Publish housekeeping trends (HKTRND) up to the start of today (UTC).

    Parameters
    ----------
    periods
        Any of ``day``, ``week``, ``month``, ``quarter`` (default all four).
    instruments
        Default: every instrument with definitions.
    config
        Trend configuration (bins per parameter).
    out_dir, database_url
        Product root and products database (defaults: the home's).
    """
    with Session(make_engine(database_url)) as s:
        sync_definitions(s)
        names = _instruments(s, instruments)
    refs: list[ProductRef] = []
    for name in names:
        for period in periods or list(PERIODS):
            refs += make_trends(
                name,
                period,
                out_dir=out_dir,
                database_url=database_url,
                config=config,
                prefect=True,
            ).refs
    publish_summary(
        title="Housekeeping trends", key="hk-trends", refs=refs, artifact_key="hk-trends"
    )
    return {f"{r.instrument}:{r.obs_id}": r.path for r in refs}
