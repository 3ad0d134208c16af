"""Observation plannings: REST API (record, read, delete) and the timeline page.

A planning is what one telescope/instrument observes over a span; its observations name a
strategy, resolved to a version when the planning is recorded. Coordinators record and
delete plannings; COLIBRI users and their machine clients (API token) read them. The
telescope's control software asks ``GET /api/observations`` for what to observe in a time
window, each observation with its strategy's content.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from svomflow.products import plannings as store
from svomflow.web.auth import COLIBRI_ROLES
from svomflow.web.routes.strategies import DbSession, Editor, Reader, announce, store_errors
from svomflow.web.templating import NavItem, render

__all__ = ["NAV", "ObservationOut", "PlanningOut", "ScheduledObservation", "router"]

router = APIRouter()
NAV = (NavItem("/planning", "Planning", COLIBRI_ROLES, order=70),)

PlanningId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="planning id")]
NameFilter = Annotated[str | None, Query(pattern=store.NAME_PATTERN)]
TimeParam = Annotated[datetime | None, Query(description="UTC (a time without zone is UTC)")]


class ObservationOut(BaseModel):
    """One observation of a planning."""

    target: str
    ra_deg: float
    dec_deg: float
    start: datetime
    end: datetime
    strategy: str
    strategy_version: int


class PlanningOut(BaseModel):
    """A recorded planning with its observations."""

    id: int
    telescope: str
    instrument: str
    title: str
    start: datetime
    end: datetime
    created: datetime
    created_by: str
    observations: list[ObservationOut]


class ScheduledObservation(ObservationOut):
    """An observation as the telescope executes it: with its planning and strategy content."""

    planning_id: int
    telescope: str
    instrument: str
    spec: store.StrategySpec


def _time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return store.utc(value)
    except OverflowError:
        raise HTTPException(422, f"time out of range: {value.isoformat()}") from None


def _observation_out(row: store.PlannedObservation) -> ObservationOut:
    return ObservationOut(
        target=row.target,
        ra_deg=row.ra_deg,
        dec_deg=row.dec_deg,
        start=store.utc(row.start),
        end=store.utc(row.end),
        strategy=row.strategy_name,
        strategy_version=row.strategy_version,
    )


def _planning_out(session: DbSession, plan: store.Planning) -> PlanningOut:
    assert plan.id is not None
    return PlanningOut(
        id=plan.id,
        telescope=plan.telescope,
        instrument=plan.instrument,
        title=plan.title,
        start=store.utc(plan.start),
        end=store.utc(plan.end),
        created=store.utc(plan.created),
        created_by=plan.created_by,
        observations=[_observation_out(o) for o in store.observations(session, plan.id)],
    )


@router.get("/api/plannings", tags=["plannings"])
def list_plannings(
    _user: Reader,
    session: DbSession,
    telescope: NameFilter = None,
    instrument: NameFilter = None,
    start: TimeParam = None,
    end: TimeParam = None,
) -> list[PlanningOut]:
    """List the plannings overlapping ``[start, end)`` (open ends when omitted), by start."""
    rows = store.plannings(
        session, telescope=telescope, instrument=instrument, start=_time(start), end=_time(end)
    )
    return [_planning_out(session, p) for p in rows]


@router.post("/api/plannings", status_code=201, tags=["plannings"])
def create_planning(
    body: store.PlanningDraft, user: Editor, session: DbSession, request: Request
) -> PlanningOut:
    """Record a planning; each observation's strategy is resolved to a version (409: overlap)."""
    with store_errors():
        out = _planning_out(session, store.create_planning(session, body, by=user.name))
    announce(request, "planning", id=out.id, instrument=out.instrument, change="added")
    return out


@router.get("/api/plannings/{planning_id}", tags=["plannings"])
def get_planning(planning_id: PlanningId, _user: Reader, session: DbSession) -> PlanningOut:
    """Return one planning with its observations."""
    with store_errors():
        return _planning_out(session, store.get_planning(session, planning_id))


@router.delete("/api/plannings/{planning_id}", status_code=204, tags=["plannings"])
def delete_planning(
    planning_id: PlanningId, _user: Editor, session: DbSession, request: Request
) -> Response:
    """Delete a planning and its observations."""
    with store_errors():
        instrument = store.get_planning(session, planning_id).instrument
        store.delete_planning(session, planning_id)
    announce(request, "planning", id=planning_id, instrument=instrument, change="deleted")
    return Response(status_code=204)


@router.get("/api/observations", tags=["plannings"])
def scheduled_observations(
    _user: Reader,
    session: DbSession,
    telescope: NameFilter = None,
    instrument: NameFilter = None,
    start: TimeParam = None,
    end: TimeParam = None,
) -> list[ScheduledObservation]:
    """Return the observations in ``[start, end)`` (default: the next 24 h), with strategies."""
    lo = _time(start) or datetime.now(UTC)
    try:
        hi = _time(end) or lo + timedelta(hours=24)
    except OverflowError:  # a start at the end of time
        raise HTTPException(422, "start out of range") from None
    out: list[ScheduledObservation] = []
    with store_errors():
        for plan in store.plannings(
            session, telescope=telescope, instrument=instrument, start=lo, end=hi
        ):
            assert plan.id is not None
            for obs in store.observations(session, plan.id):
                if store.utc(obs.end) <= lo or store.utc(obs.start) >= hi:
                    continue
                version = store.get_version(session, obs.strategy_name, obs.strategy_version)
                out.append(
                    ScheduledObservation(
                        **_observation_out(obs).model_dump(),
                        planning_id=plan.id,
                        telescope=plan.telescope,
                        instrument=plan.instrument,
                        spec=version.content(),
                    )
                )
    return sorted(out, key=lambda o: o.start)


def timeline_figure(
    plans: list[PlanningOut], now: datetime, lo: datetime, hi: datetime
) -> dict[str, object]:
    """Return a Plotly figure (as JSON-able dict) of the observations, one row per planning.

    Each observation is a horizontal bar from its start to its end (Plotly's date axis
    takes the bar's ``base`` as the start and its length in milliseconds), coloured by
    strategy, over a pale bar for the planning's span; a dotted line marks now.
    """
    fmt = "%Y-%m-%d %H:%M"
    spans: dict[str, list[object]] = {"base": [], "x": [], "y": [], "customdata": []}
    by_strategy: dict[str, dict[str, list[object]]] = {}
    for plan in plans:
        row = f"#{plan.id} {plan.telescope}/{plan.instrument}"
        spans["base"].append(plan.start.isoformat())
        spans["x"].append((plan.end - plan.start).total_seconds() * 1000.0)
        spans["y"].append(row)
        spans["customdata"].append(
            f"{plan.title or row}<br>{plan.start:{fmt}} – {plan.end:{fmt}} UTC"
        )
        for obs in plan.observations:
            trace = by_strategy.setdefault(
                obs.strategy, {"base": [], "x": [], "y": [], "text": [], "customdata": []}
            )
            trace["base"].append(obs.start.isoformat())
            trace["x"].append((obs.end - obs.start).total_seconds() * 1000.0)
            trace["y"].append(row)
            trace["text"].append(f"{obs.target} ({obs.strategy} v{obs.strategy_version})")
            trace["customdata"].append(f"{obs.start:{fmt}} – {obs.end:{fmt}} UTC")
    data: list[dict[str, object]] = [
        {
            "type": "bar",
            "orientation": "h",
            "name": name,
            "textposition": "none",
            "hovertemplate": "%{text}<br>%{customdata}<extra></extra>",
            **trace,
        }
        for name, trace in sorted(by_strategy.items())
    ]
    data.append(
        {
            "type": "bar",
            "orientation": "h",
            "name": "planning span",
            "marker": {"color": "rgba(120, 120, 120, 0.15)"},
            "width": 0.9,
            "hovertemplate": "%{customdata}<extra></extra>",
            **spans,
        }
    )
    height = 140 + 50 * max(1, len(plans))
    layout = {
        "barmode": "overlay",
        "height": height,
        "margin": {"l": 200, "r": 20, "t": 20, "b": 40},
        "xaxis": {"type": "date", "range": [lo.isoformat(), hi.isoformat()]},
        "yaxis": {"autorange": "reversed", "type": "category"},
        "shapes": [
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": now.isoformat(),
                "x1": now.isoformat(),
                "y0": 0,
                "y1": 1,
                "line": {"color": "#c00", "dash": "dot"},
            }
        ],
        "legend": {"title": {"text": "strategy"}},
    }
    return {"data": data, "layout": layout}


@router.get("/planning", response_class=HTMLResponse, include_in_schema=False)
def planning_page(
    request: Request,
    _user: Reader,
    session: DbSession,
    telescope: NameFilter = None,
    instrument: NameFilter = None,
    days_back: Annotated[float, Query(ge=0, le=366)] = 2.0,
    days_ahead: Annotated[float, Query(ge=0, le=366)] = 3.0,
) -> HTMLResponse:
    """Show the plannings from ``days_back`` ago to ``days_ahead`` ahead as a timeline."""
    now = datetime.now(UTC)
    lo, hi = now - timedelta(days=days_back), now + timedelta(days=days_ahead)
    rows = store.plannings(session, telescope=telescope, instrument=instrument, start=lo, end=hi)
    plans = [_planning_out(session, p) for p in rows]
    figure = timeline_figure(plans, now, lo, hi)
    return render(
        request,
        "planning.html",
        plans=plans,
        figure=json.dumps(figure),
        height=figure["layout"]["height"],  # type: ignore[index]
        telescope=telescope or "",
        instrument=instrument or "",
        days_back=days_back,
        days_ahead=days_ahead,
        now=now,
    )
