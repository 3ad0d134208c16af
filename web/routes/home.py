"""The home page: latest products, processing states, current alarms at a glance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func
from sqlmodel import col, select
from svomflow.products import housekeeping as hk
from svomflow.products.database import ProcessingStatus, ProductRow
from svomflow.web.auth import ANY_ROLE, CurrentUser, require_roles
from svomflow.web.db import SessionDep
from svomflow.web.templating import NavItem, render
from svomflow.web.visibility import can_see

__all__ = ["NAV", "router"]

router = APIRouter()
NAV = (NavItem("/", "Home", ANY_ROLE, order=0),)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
) -> HTMLResponse:
    """Show the latest products, the count of keys per processing state, open alarms."""
    latest = [
        r
        for r in session.exec(
            select(ProductRow)
            .where(ProductRow.checksum != "pending")
            .order_by(col(ProductRow.created).desc())
            .limit(60)
        )
        if can_see(user, r.instrument)
    ][:15]
    states = dict(
        session.exec(
            select(ProcessingStatus.state, func.count()).group_by(ProcessingStatus.state)
        ).all()
    )
    open_alarms = [
        a for a in hk.alarms(session, active=True, limit=200) if can_see(user, a.instrument)
    ]
    return render(request, "home.html", latest=latest, states=states, alarms=open_alarms)
