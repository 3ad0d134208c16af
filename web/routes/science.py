"""The science database: what was delivered (validated versions) and what was refused.

The page ``/science`` and the JSON endpoints ``/api/science/delivered`` and
``/api/science/refused`` read the science database (``$SVOMFLOW_SCIENCE_DATABASE_URL``,
:mod:`svomflow.products.science_db`); users see only the instruments their roles allow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlmodel import Session
from svomflow.products.science_db import delivered, make_science_engine, refused
from svomflow.web.auth import ANY_ROLE, CurrentUser, require_roles
from svomflow.web.templating import NavItem, render
from svomflow.web.visibility import can_see

__all__ = ["NAV", "DeliveredOut", "RefusedOut", "router"]

router = APIRouter()
NAV = (NavItem("/science", "Science DB", ANY_ROLE, order=15),)


class DeliveredOut(BaseModel):
    """A delivered product version as the API returns it."""

    product_id: str
    type_code: str
    instrument: str
    obs_id: str
    version: int
    superseded: bool
    ra_deg: float | None
    dec_deg: float | None
    error_radius_deg: float | None
    error_confidence: float | None
    key_values: dict[str, Any]
    flags: list[str]
    url: str
    delivered_at: datetime


class RefusedOut(BaseModel):
    """A refused product version with the reasons."""

    product_id: str
    type_code: str
    instrument: str
    obs_id: str
    version: int
    reasons: list[str]
    refused_at: datetime


Obs = Annotated[str | None, Query(max_length=200)]
Type = Annotated[str | None, Query(max_length=100)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _delivered(
    user: CurrentUser, obs_id: str | None, type_code: str | None, superseded: bool, limit: int
) -> list[DeliveredOut]:
    with Session(make_science_engine()) as s:
        rows = delivered(
            s, obs_id=obs_id, type_code=type_code, include_superseded=superseded, limit=limit
        )
        return [
            DeliveredOut.model_validate(r, from_attributes=True)
            for r in rows
            if can_see(user, r.instrument)
        ]


def _refused(
    user: CurrentUser, obs_id: str | None, type_code: str | None, limit: int
) -> list[RefusedOut]:
    with Session(make_science_engine()) as s:
        rows = refused(s, obs_id=obs_id, type_code=type_code, limit=limit)
        return [
            RefusedOut.model_validate(r, from_attributes=True)
            for r in rows
            if can_see(user, r.instrument)
        ]


@router.get("/api/science/delivered", response_model=list[DeliveredOut], tags=["science"])
def delivered_api(
    user: Annotated[CurrentUser, Depends(require_roles())],
    obs_id: Obs = None,
    type_code: Type = None,
    superseded: bool = False,
    limit: Limit = 200,
) -> list[DeliveredOut]:
    """List validated versions in the science database, newest delivery first."""
    return _delivered(user, obs_id, type_code, superseded, limit)


@router.get("/api/science/refused", response_model=list[RefusedOut], tags=["science"])
def refused_api(
    user: Annotated[CurrentUser, Depends(require_roles())],
    obs_id: Obs = None,
    type_code: Type = None,
    limit: Limit = 200,
) -> list[RefusedOut]:
    """List versions the validation gate refused, with the reasons, newest first."""
    return _refused(user, obs_id, type_code, limit)


@router.get("/science", response_class=HTMLResponse, include_in_schema=False)
def science_page(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    obs_id: Obs = None,
    type_code: Type = None,
    superseded: bool = False,
) -> HTMLResponse:
    """Delivered and refused versions, filtered by burst and type."""
    return render(
        request,
        "science.html",
        delivered=_delivered(user, obs_id, type_code, superseded, 200),
        refused=_refused(user, obs_id, type_code, 200),
        filters={"obs_id": obs_id or "", "type_code": type_code or "", "superseded": superseded},
    )
