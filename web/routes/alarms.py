"""Alarms: current and past, acknowledged by the person on duty (name and time), the report.

Who may acknowledge: the person on call now for the alarm's instrument (their duty-roster
name is their user name), or a coordinator or admin standing in. The acknowledgement is
recorded with the user's name and the time, and reaches the other open pages live.
The report (``/alarms/report``) sums a period up per parameter and level: how many alarms,
how long open, how fast acknowledged, and which are still unacknowledged (HTML or CSV).
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlmodel import Session
from svomflow.products import duty
from svomflow.products import housekeeping as hk
from svomflow.web.auth import ANY_ROLE, CurrentUser, Role, require_roles
from svomflow.web.db import RowId, SessionDep
from svomflow.web.events import publish
from svomflow.web.routes.housekeeping import PERIODS
from svomflow.web.templating import NavItem, render
from svomflow.web.times import QueryTime
from svomflow.web.visibility import can_see

__all__ = ["NAV", "AlarmOut", "ReportRow", "alarm_report", "may_acknowledge", "router"]

router = APIRouter()
NAV = (NavItem("/alarms", "Alarms", ANY_ROLE, order=35),)


class AlarmOut(BaseModel):
    """An alarm as the API returns it."""

    id: int
    instrument: str
    parameter: str
    level: str
    state: str
    raised_at: datetime
    cleared_at: datetime | None
    value: float
    limit_value: float | None
    message: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None


def _out(a: hk.Alarm) -> AlarmOut:
    return AlarmOut(
        id=a.id or 0,
        instrument=a.instrument,
        parameter=a.parameter,
        level=a.level,
        state=a.state,
        raised_at=a.raised_at,
        cleared_at=a.cleared_at,
        value=a.value,
        limit_value=a.limit_value,
        message=a.message,
        acknowledged_by=a.acknowledged_by,
        acknowledged_at=a.acknowledged_at,
    )


def may_acknowledge(session: Session, user: CurrentUser, instrument: str, at: datetime) -> bool:
    """Return whether ``user`` may acknowledge an alarm of ``instrument`` now.

    The person on call (primary or backup; roster name = user name, case ignored), or a
    coordinator or admin.
    """
    if user.has(Role.coordinator):
        return True
    on_call = duty.on_call(session, instrument, at)
    return any(s.person.strip().lower() == user.name.lower() for s in on_call)


def _visible(user: CurrentUser, alarms: list[hk.Alarm]) -> list[hk.Alarm]:
    return [a for a in alarms if can_see(user, a.instrument)]


@router.get("/alarms", response_class=HTMLResponse, include_in_schema=False)
def alarms_page(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    instrument: Annotated[str | None, Query(max_length=40)] = None,
    period: Annotated[str, Query(pattern="^(day|week|month|quarter)$")] = "week",
) -> HTMLResponse:
    """Show the current alarms (acknowledge buttons for the person on duty) and past ones."""
    now = datetime.now(UTC)
    current = _visible(user, hk.alarms(session, instrument=instrument, active=True))
    past = _visible(
        user,
        hk.alarms(session, instrument=instrument, active=False, since=now - PERIODS[period]),
    )[:500]
    ack = {
        inst: may_acknowledge(session, user, inst, now) for inst in {a.instrument for a in current}
    }
    ack.update(
        {
            inst: may_acknowledge(session, user, inst, now)
            for inst in {a.instrument for a in past if a.acknowledged_by is None}
            if inst not in ack
        }
    )
    return render(
        request,
        "alarms.html",
        current=current,
        past=past,
        may_ack=ack,
        instrument=instrument or "",
        period=period,
        periods=list(PERIODS),
    )


@router.post("/alarms/{alarm_id}/acknowledge", include_in_schema=False)
def acknowledge_form(
    alarm_id: RowId,
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
) -> Response:
    """Acknowledge an alarm from the page (form post), then back to the alarms."""
    _acknowledge(request, session, user, alarm_id)
    return RedirectResponse("/alarms", status_code=303)


@router.post("/api/alarms/{alarm_id}/acknowledge", response_model=AlarmOut, tags=["alarms"])
def acknowledge_api(
    alarm_id: RowId,
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
) -> AlarmOut:
    """Acknowledge an alarm as the caller (who must be on duty for its instrument)."""
    return _out(_acknowledge(request, session, user, alarm_id))


def _acknowledge(request: Request, session: Session, user: CurrentUser, alarm_id: int) -> hk.Alarm:
    hk.ensure_schema(session)
    alarm = session.get(hk.Alarm, alarm_id)
    if alarm is None or not can_see(user, alarm.instrument):
        raise HTTPException(404, "no such alarm")
    now = datetime.now(UTC)
    if not may_acknowledge(session, user, alarm.instrument, now):
        raise HTTPException(403, "only the person on duty (or a coordinator) acknowledges")
    try:
        alarm = hk.acknowledge(session, alarm_id, by=user.name, at=now)
    except hk.AlarmError as exc:
        raise HTTPException(409, str(exc)) from None
    publish(
        "alarm",
        {
            "id": alarm.id,
            "instrument": alarm.instrument,
            "parameter": alarm.parameter,
            "level": alarm.level,
            "state": alarm.state,
            "acknowledged_by": alarm.acknowledged_by,
        },
        engine=request.app.state.engine,
    )
    return alarm


@router.get("/api/alarms", response_model=list[AlarmOut], tags=["alarms"])
def alarms_api(
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    instrument: Annotated[str | None, Query(max_length=40)] = None,
    state: Annotated[str | None, Query(pattern="^(raised|acknowledged|cleared)$")] = None,
    since: QueryTime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AlarmOut]:
    """Return alarms (newest first) of the instruments the caller sees."""
    rows = hk.alarms(session, instrument=instrument, state=state, since=since)
    return [_out(a) for a in _visible(user, rows)[:limit]]


@dataclass(frozen=True)
class ReportRow:
    """One line of the alarm report: a parameter at one level over the period."""

    instrument: str
    parameter: str
    level: str
    count: int
    open_now: int
    unacknowledged: int
    hours_open: float
    median_ack_minutes: float | None
    first: datetime
    last: datetime


def alarm_report(alarms: list[hk.Alarm], start: datetime, end: datetime) -> list[ReportRow]:
    """Sum alarms up per (instrument, parameter, level) over ``[start, end]``.

    Time open counts only the part of each alarm inside the period; an alarm still open
    counts up to ``end``.
    """
    groups: dict[tuple[str, str, str], list[hk.Alarm]] = {}
    for a in alarms:
        if a.raised_at <= end and (a.cleared_at is None or a.cleared_at >= start):
            groups.setdefault((a.instrument, a.parameter, a.level), []).append(a)
    rows = []
    for (inst, param, level), group in sorted(groups.items()):
        open_s = sum(
            (min(a.cleared_at or end, end) - max(a.raised_at, start)).total_seconds() for a in group
        )
        acks = [
            (a.acknowledged_at - a.raised_at).total_seconds() / 60
            for a in group
            if a.acknowledged_at is not None
        ]
        rows.append(
            ReportRow(
                instrument=inst,
                parameter=param,
                level=level,
                count=len(group),
                open_now=sum(a.state != "cleared" for a in group),
                unacknowledged=sum(a.acknowledged_by is None for a in group),
                hours_open=open_s / 3600,
                median_ack_minutes=statistics.median(acks) if acks else None,
                first=min(a.raised_at for a in group),
                last=max(a.raised_at for a in group),
            )
        )
    return rows


@router.get("/alarms/report", include_in_schema=False)
def report_page(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    period: Annotated[str, Query(pattern="^(day|week|month|quarter)$")] = "week",
    instrument: Annotated[str | None, Query(max_length=40)] = None,
    format: Annotated[str, Query(pattern="^(html|csv)$")] = "html",
) -> Response:
    """Show the alarm report of a period: per parameter and level (HTML, or CSV to download)."""
    end = datetime.now(UTC)
    start = end - PERIODS[period]
    rows = alarm_report(
        _visible(user, hk.alarms(session, instrument=instrument, since=start)), start, end
    )
    if format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(
            [
                "instrument",
                "parameter",
                "level",
                "count",
                "open_now",
                "unacknowledged",
                "hours_open",
                "median_ack_minutes",
                "first_utc",
                "last_utc",
            ]
        )
        for r in rows:
            w.writerow(
                [
                    r.instrument,
                    r.parameter,
                    r.level,
                    r.count,
                    r.open_now,
                    r.unacknowledged,
                    f"{r.hours_open:.3f}",
                    "" if r.median_ack_minutes is None else f"{r.median_ack_minutes:.1f}",
                    r.first.isoformat(),
                    r.last.isoformat(),
                ]
            )
        return Response(
            buf.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="alarm-report-{period}.csv"'},
        )
    return render(
        request,
        "alarm_report.html",
        rows=rows,
        start=start,
        end=end,
        period=period,
        periods=list(PERIODS),
        instrument=instrument or "",
        timedelta=timedelta,
    )
