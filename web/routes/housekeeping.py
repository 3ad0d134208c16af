"""Housekeeping viewer: any parameter over a day, week, month or quarter, with limits and alarms.

The page draws the chosen parameters on one time axis (one panel per parameter, zoom shared,
Plotly.js); each panel shows the mean with the min-max envelope of each bucket, the soft and
hard limits and the alarms of the window. Zooming asks the API again for the zoomed window,
so detail returns down to the raw samples. The latest value of each parameter, with its
limit state, is on ``/housekeeping/latest`` (updated live when an alarm changes).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlmodel import Session, select
from svomflow.products import housekeeping as hk
from svomflow.web.auth import ANY_ROLE, CurrentUser, require_roles
from svomflow.web.db import SessionDep
from svomflow.web.templating import NavItem, render
from svomflow.web.times import QueryTime
from svomflow.web.visibility import can_see

__all__ = ["NAV", "PERIODS", "SeriesOut", "router"]

router = APIRouter()
NAV = (
    NavItem("/housekeeping", "Housekeeping", ANY_ROLE, order=30),
    NavItem("/housekeeping/latest", "Latest values", ANY_ROLE, order=31),
)
PERIODS: dict[str, timedelta] = {
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
    "quarter": timedelta(days=91),
}
MAX_PARAMETERS = 8


class Limits(BaseModel):
    """A parameter's limits (None: no limit on that side)."""

    soft_low: float | None
    soft_high: float | None
    hard_low: float | None
    hard_high: float | None


class AlarmSpan(BaseModel):
    """An alarm of the window: when it was raised and cleared, at which level."""

    id: int
    level: str
    state: str
    raised_at: datetime
    cleared_at: datetime | None
    value: float
    message: str


class SeriesOut(BaseModel):
    """A parameter over a window: times (unix ms, UTC), mean, min, max per point."""

    instrument: str
    parameter: str
    unit: str
    description: str
    resolution_s: float
    times_ms: list[float]
    mean: list[float | None]
    min: list[float | None]
    max: list[float | None]
    limits: Limits
    alarms: list[AlarmSpan]


class LatestOut(BaseModel):
    """The last value of a parameter and its limit state."""

    instrument: str
    parameter: str
    category: str
    unit: str
    time: datetime | None
    value: float | None
    state: str
    alarm_id: int | None
    alarm_level: str | None


def _instruments(session: Session, user: CurrentUser) -> list[str]:
    hk.ensure_schema(session)
    names = session.exec(select(hk.ParameterDef.instrument).distinct()).all()
    return sorted(n for n in names if can_see(user, n))


def _check_instrument(user: CurrentUser, instrument: str) -> str:
    if not can_see(user, instrument):
        raise HTTPException(403, "your role does not give access to this instrument")
    return instrument.upper()


def _window(period: str, end: datetime | None) -> tuple[datetime, datetime]:
    if period not in PERIODS:
        raise HTTPException(422, f"period must be one of {', '.join(PERIODS)}")
    stop = end or datetime.now(UTC)
    stop = stop if stop.tzinfo else stop.replace(tzinfo=UTC)
    return stop - PERIODS[period], stop


def _finite(a: np.ndarray) -> list[float | None]:
    return [float(x) if np.isfinite(x) else None for x in a]


@router.get("/housekeeping", response_class=HTMLResponse, include_in_schema=False)
def viewer(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    instrument: Annotated[str | None, Query(max_length=40)] = None,
    p: Annotated[list[str] | None, Query(max_length=100)] = None,
    period: Annotated[str, Query(pattern="^(day|week|month|quarter)$")] = "day",
    end: QueryTime | None = None,
) -> HTMLResponse:
    """Choose parameters and a period; the plot is drawn by the page from the API."""
    instruments = _instruments(session, user)
    chosen = instrument.upper() if instrument else (instruments[0] if instruments else None)
    if chosen is not None:
        _check_instrument(user, chosen)
    params = hk.parameters(session, chosen) if chosen else []
    selected = [x for x in (p or []) if any(d.name == x for d in params)][:MAX_PARAMETERS]
    if not selected and params:
        selected = [params[0].name]
    start, stop = _window(period, end)
    return render(
        request,
        "housekeeping.html",
        instruments=instruments,
        instrument=chosen,
        parameters=params,
        selected=selected,
        period=period,
        periods=list(PERIODS),
        start=start,
        end=stop,
        end_value=end.strftime("%Y-%m-%dT%H:%M") if end else "",
    )


@router.get("/api/housekeeping/series", response_model=SeriesOut, tags=["housekeeping"])
def series_api(
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    instrument: Annotated[str, Query(max_length=40)],
    parameter: Annotated[str, Query(max_length=100)],
    start: QueryTime | None = None,
    end: QueryTime | None = None,
    period: Annotated[str, Query(pattern="^(day|week|month|quarter)$")] = "day",
    max_points: Annotated[int, Query(ge=10, le=20_000)] = 2000,
) -> SeriesOut:
    """Return a parameter over a window (``start``/``end``, else the ``period`` up to now).

    At most ``max_points`` points: raw samples when few enough, else min/mean/max per bucket.
    """
    instrument = _check_instrument(user, instrument)
    if start is None:
        start, end = _window(period, end)
    stop = end or datetime.now(UTC)
    try:
        s = hk.series(session, instrument, parameter, start, stop, max_points=max_points)
    except hk.HousekeepingError as exc:
        raise HTTPException(404 if "no housekeeping" in str(exc) else 422, str(exc)) from None
    d = s.definition
    spans = [
        AlarmSpan(
            id=a.id or 0,
            level=a.level,
            state=a.state,
            raised_at=a.raised_at,
            cleared_at=a.cleared_at,
            value=a.value,
            message=a.message,
        )
        for a in hk.alarms(session, instrument=instrument, parameter=parameter, since=start)
        if a.raised_at <= (stop if stop.tzinfo else stop.replace(tzinfo=UTC))
    ]
    return SeriesOut(
        instrument=d.instrument,
        parameter=d.name,
        unit=d.unit,
        description=d.description,
        resolution_s=s.resolution_s,
        times_ms=[float(t) * 1000.0 for t in s.times],
        mean=_finite(s.mean),
        min=_finite(s.min),
        max=_finite(s.max),
        limits=Limits(
            soft_low=d.soft_low, soft_high=d.soft_high, hard_low=d.hard_low, hard_high=d.hard_high
        ),
        alarms=spans,
    )


def _latest(session: Session, user: CurrentUser, instrument: str | None) -> list[LatestOut]:
    out = []
    for lv in hk.latest(session, instrument):
        d = lv.definition
        if not can_see(user, d.instrument):
            continue
        out.append(
            LatestOut(
                instrument=d.instrument,
                parameter=d.name,
                category=d.category,
                unit=d.unit,
                time=lv.time,
                value=lv.value,
                state=lv.state,
                alarm_id=lv.alarm.id if lv.alarm else None,
                alarm_level=lv.alarm.level if lv.alarm else None,
            )
        )
    return out


@router.get("/housekeeping/latest", response_class=HTMLResponse, include_in_schema=False)
def latest_page(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    instrument: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """Show the latest value of each parameter with its state (live on alarms)."""
    if instrument:
        _check_instrument(user, instrument)
    return render(
        request,
        "hk_latest.html",
        rows=_latest(session, user, instrument),
        instruments=_instruments(session, user),
        instrument=instrument.upper() if instrument else "",
    )


@router.get("/api/housekeeping/latest", response_model=list[LatestOut], tags=["housekeeping"])
def latest_api(
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    instrument: Annotated[str | None, Query(max_length=40)] = None,
) -> list[LatestOut]:
    """Return the latest value of every parameter the caller sees, with its limit state."""
    if instrument:
        _check_instrument(user, instrument)
    return _latest(session, user, instrument)
