"""Processing status: what is received, running, done or failed (with the reason), per key, live."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import Session, col, select
from svomflow.products.database import ProcessingStatus
from svomflow.web.auth import ANY_ROLE, CurrentUser, require_roles
from svomflow.web.db import SessionDep
from svomflow.web.templating import NavItem, render

__all__ = ["NAV", "StatusOut", "router"]

router = APIRouter()
NAV = (NavItem("/status", "Processing", ANY_ROLE, order=20),)
STATES = ("received", "running", "done", "failed", "superseded")


class StatusOut(BaseModel):
    """The processing state of one key in one flow."""

    key: str
    flow_name: str
    state: str
    reason: str | None
    flow_run_id: str | None
    updated: datetime


def _rows(
    session: Session, state: str | None, key: str | None, limit: int
) -> list[ProcessingStatus]:
    stmt = select(ProcessingStatus)
    if state:
        stmt = stmt.where(ProcessingStatus.state == state)
    if key:
        stmt = stmt.where(col(ProcessingStatus.key).contains(key))
    return list(session.exec(stmt.order_by(col(ProcessingStatus.updated).desc()).limit(limit)))


@router.get("/status", response_class=HTMLResponse, include_in_schema=False)
def status_page(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=20)] = None,
    key: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """Per-key processing states, newest first, with counts per state (updated live)."""
    counts = dict(
        session.exec(
            select(ProcessingStatus.state, func.count()).group_by(ProcessingStatus.state)
        ).all()
    )
    return render(
        request,
        "status.html",
        rows=_rows(session, state, key, 500),
        counts=counts,
        states=STATES,
        state=state or "",
        key=key or "",
    )


@router.get("/api/status", response_model=list[StatusOut], tags=["status"])
def status_api(
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=20)] = None,
    key: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[StatusOut]:
    """Return the processing states per key, newest first."""
    return [
        StatusOut(
            key=r.key,
            flow_name=r.flow_name,
            state=r.state,
            reason=r.reason,
            flow_run_id=r.flow_run_id,
            updated=r.updated,
        )
        for r in _rows(session, state, key, limit)
    ]
