"""Calibration history per (instrument, calibration type, filter) over a day/week/month/quarter.

The QC figures of every candidate (Plotly: promoted as green dots, refused as red crosses),
the table of verdicts with the reason of each refusal, and for a chosen candidate its image
beside the master in use when it was judged (PNG previews), with the comparison map.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlmodel import Session, col, select
from svomflow.products.database import ProductRow
from svomflow.web import calhistory as ch
from svomflow.web.auth import ANY_ROLE, CurrentUser, require_roles
from svomflow.web.db import SessionDep
from svomflow.web.routes.housekeeping import PERIODS
from svomflow.web.routes.products import file_url
from svomflow.web.templating import NavItem, render
from svomflow.web.times import QueryTime
from svomflow.web.visibility import can_see

__all__ = ["NAV", "CandidateOut", "router"]

router = APIRouter()
NAV = (NavItem("/calibration", "Calibration", ANY_ROLE, order=40),)


class CandidateOut(BaseModel):
    """A judged calibration candidate."""

    time: _dt.datetime
    night: str
    key: str
    figures: dict[str, float]
    current: dict[str, float]
    units: dict[str, str]
    promoted: bool
    reason: str
    file: str


def _combo(user: CurrentUser, key: str | None, available: list[ch.Combo]) -> ch.Combo | None:
    if not key:
        return available[0] if available else None
    try:
        combo = ch.Combo.parse(key)
    except ValueError:
        raise HTTPException(404, "no such calibration history") from None
    if not can_see(user, combo.instrument):
        raise HTTPException(403, "your role does not give access to this instrument")
    if combo not in available:
        raise HTTPException(404, "no such calibration history")
    return combo


def _window(
    session: Session, combo: ch.Combo, period: str, end: _dt.datetime | None
) -> tuple[_dt.datetime, _dt.datetime]:
    """Return the period ending at ``end``, else at the newest candidate (histories age)."""
    if end is None:
        every = ch.candidates(session, combo, None, None)
        end = every[-1].time if every else _dt.datetime.now(_dt.UTC)
    end = end if end.tzinfo else end.replace(tzinfo=_dt.UTC)
    return end - PERIODS[period], end + _dt.timedelta(seconds=1)


def _plot(session: Session, combo: ch.Combo) -> ProductRow | None:
    """Return the newest history plot of the combination (``QCPLOT`` or ``CALQCP``)."""
    code = (
        f"{combo.instrument}-{combo.caltype}-{combo.filter}"
        if combo.source == "nightly"
        else f"{combo.instrument}-{combo.caltype}"
    )
    return session.exec(
        select(ProductRow)
        .where(col(ProductRow.type_code).in_(("QCPLOT", "CALQCP")))
        .where(ProductRow.instrument == code)
        .where(ProductRow.checksum != "pending")
        .order_by(col(ProductRow.created).desc())
    ).first()


@router.get("/calibration", response_class=HTMLResponse, include_in_schema=False)
def calibration_page(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    combo: Annotated[str | None, Query(max_length=200)] = None,
    period: Annotated[str, Query(pattern="^(day|week|month|quarter)$")] = "month",
    end: QueryTime | None = None,
    candidate: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """Show the history of one combination and one candidate beside the master it faced."""
    available = [c for c in ch.combos(session) if can_see(user, c.instrument)]
    chosen = _combo(user, combo, available)
    rows: list[ch.Candidate] = []
    start = stop = None
    compare = None
    plot = None
    if chosen is not None:
        start, stop = _window(session, chosen, period, end)
        rows = ch.candidates(session, chosen, start, stop)
        every = ch.candidates(session, chosen, None, None)
        picked = next((r for r in rows if f"{r.night}/{r.key}" == candidate), None)
        picked = picked or (rows[-1] if rows else None)
        if picked is not None:
            in_use = ch.master_in_use(every, picked)
            images = {}
            # images are the nightly masters'; a gate's candidates are tables (QC figures only)
            pairs = (
                (
                    ("candidate", picked, "MASTER-PREVIEW"),
                    ("master in use", in_use, "MASTER-PREVIEW"),
                    ("candidate - current", picked, "QC-PREVIEW"),
                )
                if chosen.source == "nightly"
                else ()
            )
            for label, who, code in pairs:
                row = ch.preview_of(session, who, code) if who is not None else None
                images[label] = (row, file_url(request, row) if row else None)
            compare = {"candidate": picked, "in_use": in_use, "images": images}
        plot_row = _plot(session, chosen)
        plot = (plot_row, file_url(request, plot_row)) if plot_row else None
    figures = sorted({f for r in rows for f in r.figures})
    return render(
        request,
        "calibration.html",
        combos=available,
        combo=chosen,
        rows=rows,
        figures=figures,
        period=period,
        periods=list(PERIODS),
        start=start,
        end=stop,
        compare=compare,
        plot=plot,
    )


@router.get("/api/calibration/history", response_model=list[CandidateOut], tags=["calibration"])
def history_api(
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    combo: Annotated[str, Query(min_length=1, max_length=200)],
    period: Annotated[str, Query(pattern="^(day|week|month|quarter)$")] = "month",
    end: QueryTime | None = None,
) -> list[CandidateOut]:
    """Return the judged candidates of one combination over a period (oldest first)."""
    available = [c for c in ch.combos(session) if can_see(user, c.instrument)]
    chosen = _combo(user, combo, available)
    if chosen is None:
        raise HTTPException(404, "no such calibration history")
    start, stop = _window(session, chosen, period, end)
    return [
        CandidateOut(
            time=c.time,
            night=c.night,
            key=c.key,
            figures=c.figures,
            current=c.current,
            units=c.units,
            promoted=c.promoted,
            reason=c.reason,
            file=c.file,
        )
        for c in ch.candidates(session, chosen, start, stop)
    ]
