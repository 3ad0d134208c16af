"""Observing strategies: REST API for the telescope's control software, and their pages.

Coordinators create a strategy, add versions (immutable: each change is a new version,
re-sending the latest content makes none) and publish one version at a time; the telescope
control software reads them with an API token of a COLIBRI user
(``GET /api/strategies/{name}/published``). The pages list the strategies and show each
one's versions side by side with the publish buttons.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session
from svomflow.products import plannings as store
from svomflow.web.auth import COLIBRI_ROLES, CurrentUser, Role, require_roles
from svomflow.web.db import get_session
from svomflow.web.templating import NavItem, render

__all__ = [
    "NAV",
    "PublishBody",
    "StrategyChange",
    "StrategyCreate",
    "StrategyOut",
    "StrategyVersionOut",
    "planning_session",
    "router",
    "store_errors",
]

router = APIRouter()
NAV = (NavItem("/strategies", "Strategies", COLIBRI_ROLES, order=72),)

# who reads (COLIBRI users, their machine clients, coordinators) and who edits
readers = require_roles(*COLIBRI_ROLES)
editors = require_roles(Role.coordinator)
Reader = Annotated[CurrentUser, Depends(readers)]
Editor = Annotated[CurrentUser, Depends(editors)]
Name = Annotated[str, PathParam(pattern=store.NAME_PATTERN, description="strategy name")]
VersionNumber = Annotated[int, PathParam(ge=1, le=1_000_000, description="version number")]


def planning_session(session: Annotated[Session, Depends(get_session)]) -> Session:
    """FastAPI dependency: the site's session with the planning and strategy tables present."""
    bind = session.get_bind()
    store.ensure_schema(bind)  # type: ignore[arg-type]  # an Engine: the site binds no Connection
    return session


DbSession = Annotated[Session, Depends(planning_session)]


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Turn the store's errors into HTTP answers: 404 not found, 409 conflict, 422 invalid."""
    try:
        yield
    except store.PlanningNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except store.PlanningConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    except store.PlanningError as exc:
        raise HTTPException(422, str(exc)) from None


def announce(request: Request, kind: str, **data: str | int | None) -> None:
    """Tell the open pages (server-sent events) that a strategy or planning changed."""
    from svomflow.web.events import publish

    publish(kind, data, engine=request.app.state.engine)


def refused(request: Request, exc: HTTPException, back: str) -> RedirectResponse:
    """Send a refused form back to its page, which shows why (kept in the session once)."""
    request.session["flash"] = str(exc.detail)
    return RedirectResponse(back, status_code=303)


def flashed(request: Request) -> str | None:
    """Return (and forget) the reason a form of this session was refused, if any."""
    message = request.session.pop("flash", None)
    return str(message) if message else None


# --- API models -----------------------------------------------------------------------------


class StrategyCreate(BaseModel):
    """A new strategy and the content of its version 1."""

    name: str = Field(pattern=store.NAME_PATTERN, description="unique name")
    telescope: str = Field(pattern=store.NAME_PATTERN, description="telescope, e.g. COLIBRI")
    instrument: str = Field(pattern=store.NAME_PATTERN, description="instrument, e.g. DDRAGO-B")
    spec: store.StrategySpec
    comment: str = Field(default="", max_length=500, pattern=store.TEXT_PATTERN)


class StrategyChange(BaseModel):
    """The content of a new version."""

    spec: store.StrategySpec
    comment: str = Field(default="", max_length=500, pattern=store.TEXT_PATTERN)


class PublishBody(BaseModel):
    """Which version to publish (null withdraws the published one)."""

    version: int | None = Field(ge=1, le=1_000_000)


class StrategyVersionOut(BaseModel):
    """One version of a strategy."""

    strategy: str
    version: int
    spec: store.StrategySpec
    digest: str = Field(description="SHA-256 of the canonical JSON of spec")
    comment: str
    created: datetime
    created_by: str
    published: bool
    total_exposure_s: float


class StrategyOut(BaseModel):
    """A strategy with its published and latest version numbers."""

    name: str
    telescope: str
    instrument: str
    published_version: int | None
    published_at: datetime | None
    published_by: str | None
    latest_version: int
    created: datetime
    created_by: str


def _version_out(strategy: store.Strategy, row: store.StrategyVersion) -> StrategyVersionOut:
    spec = row.content()
    return StrategyVersionOut(
        strategy=strategy.name,
        version=row.version,
        spec=spec,
        digest=row.digest,
        comment=row.comment,
        created=store.utc(row.created),
        created_by=row.created_by,
        published=strategy.published_version == row.version,
        total_exposure_s=spec.total_exposure_s(),
    )


def _strategy_out(session: Session, strategy: store.Strategy) -> StrategyOut:
    latest = store.versions(session, strategy.name)[-1].version
    return StrategyOut(
        name=strategy.name,
        telescope=strategy.telescope,
        instrument=strategy.instrument,
        published_version=strategy.published_version,
        published_at=store.utc(strategy.published_at) if strategy.published_at else None,
        published_by=strategy.published_by,
        latest_version=latest,
        created=store.utc(strategy.created),
        created_by=strategy.created_by,
    )


# --- REST API -------------------------------------------------------------------------------


@router.get("/api/strategies", tags=["strategies"])
def list_strategies(
    _user: Reader,
    session: DbSession,
    telescope: Annotated[str | None, Query(pattern=store.NAME_PATTERN)] = None,
    instrument: Annotated[str | None, Query(pattern=store.NAME_PATTERN)] = None,
) -> list[StrategyOut]:
    """List the observing strategies (optionally of one telescope/instrument)."""
    rows = store.strategies(session, telescope=telescope, instrument=instrument)
    return [_strategy_out(session, r) for r in rows]


@router.post("/api/strategies", status_code=201, tags=["strategies"])
def create_strategy(
    user: Editor,
    session: DbSession,
    body: StrategyCreate,
    request: Request,
) -> StrategyVersionOut:
    """Create a strategy; its content becomes version 1 (not published)."""
    with store_errors():
        row = store.create_strategy(
            session,
            body.name,
            telescope=body.telescope,
            instrument=body.instrument,
            spec=body.spec,
            by=user.name,
            comment=body.comment,
        )
        out = _version_out(store.get_strategy(session, body.name), row)
    announce(request, "strategy", name=out.strategy, version=1, instrument=body.instrument)
    return out


@router.get("/api/strategies/{name}", tags=["strategies"])
def get_strategy(
    _user: Reader,
    session: DbSession,
    name: Name,
) -> StrategyOut:
    """Return one strategy."""
    with store_errors():
        return _strategy_out(session, store.get_strategy(session, name))


@router.get("/api/strategies/{name}/versions", tags=["strategies"])
def list_versions(
    _user: Reader,
    session: DbSession,
    name: Name,
) -> list[StrategyVersionOut]:
    """Return every version of a strategy, oldest first."""
    with store_errors():
        strategy = store.get_strategy(session, name)
        return [_version_out(strategy, v) for v in store.versions(session, name)]


@router.post(
    "/api/strategies/{name}/versions",
    status_code=201,
    tags=["strategies"],
    responses={200: {"description": "the content equals the latest version: nothing written"}},
)
def add_version(
    user: Editor,
    session: DbSession,
    name: Name,
    body: StrategyChange,
    response: Response,
    request: Request,
) -> StrategyVersionOut:
    """Add a version with new content (201); the latest's content again changes nothing (200)."""
    with store_errors():
        row, created = store.add_version(
            session, name, body.spec, by=user.name, comment=body.comment
        )
        strategy = store.get_strategy(session, name)
    if created:
        announce(
            request, "strategy", name=name, version=row.version, instrument=strategy.instrument
        )
    else:
        response.status_code = 200
    return _version_out(strategy, row)


@router.get("/api/strategies/{name}/versions/{version}", tags=["strategies"])
def get_version(
    _user: Reader,
    session: DbSession,
    name: Name,
    version: VersionNumber,
) -> StrategyVersionOut:
    """Return one version of a strategy."""
    with store_errors():
        return _version_out(
            store.get_strategy(session, name), store.get_version(session, name, version)
        )


@router.get("/api/strategies/{name}/published", tags=["strategies"])
def get_published(
    _user: Reader,
    session: DbSession,
    name: Name,
) -> StrategyVersionOut:
    """Return the published version of a strategy (404 when none is published)."""
    with store_errors():
        return _version_out(
            store.get_strategy(session, name), store.published_version(session, name)
        )


@router.put("/api/strategies/{name}/published", tags=["strategies"])
def set_published(
    user: Editor,
    session: DbSession,
    name: Name,
    body: PublishBody,
    request: Request,
) -> StrategyOut:
    """Publish one version (the previously published one is no longer); null withdraws."""
    with store_errors():
        strategy = store.publish(session, name, body.version, by=user.name)
    announce(request, "strategy", name=name, published=body.version, instrument=strategy.instrument)
    return _strategy_out(session, strategy)


# --- pages ----------------------------------------------------------------------------------


@router.get("/strategies", response_class=HTMLResponse, include_in_schema=False)
def strategies_page(
    user: Reader,
    session: DbSession,
    request: Request,
) -> HTMLResponse:
    """Show the strategies, with the form that creates one (coordinators)."""
    rows = [_strategy_out(session, r) for r in store.strategies(session)]
    return render(
        request,
        "strategies.html",
        strategies=rows,
        can_edit=user.has(Role.coordinator),
        example=json.dumps(_EXAMPLE.model_dump(mode="json"), indent=2),
        error=flashed(request),
    )


_EXAMPLE = store.StrategySpec(
    description="GRB afterglow, first hour",
    exposures=(
        store.ExposureStep(filter="r", exposure_s=60.0, count=5),
        store.ExposureStep(filter="i", exposure_s=60.0, count=5),
    ),
    dither_arcsec=10.0,
    max_airmass=2.0,
    priority=8,
)


def _form_spec(spec_json: str) -> store.StrategySpec:
    try:
        return store.StrategySpec.model_validate_json(spec_json)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "content"
        raise HTTPException(422, f"strategy content, {where}: {first['msg']}") from None


@router.post("/strategies", include_in_schema=False)
def strategies_create_form(
    user: Editor,
    session: DbSession,
    name: Annotated[str, Form(pattern=store.NAME_PATTERN)],
    telescope: Annotated[str, Form(pattern=store.NAME_PATTERN)],
    instrument: Annotated[str, Form(pattern=store.NAME_PATTERN)],
    spec_json: Annotated[str, Form(max_length=20_000)],
    request: Request,
    comment: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse:
    """Create a strategy from the page's form (CSRF checked by the role dependency)."""
    try:
        with store_errors():
            store.create_strategy(
                session,
                name,
                telescope=telescope,
                instrument=instrument,
                spec=_form_spec(spec_json),
                by=user.name,
                comment=comment,
            )
    except HTTPException as exc:
        return refused(request, exc, "/strategies")
    announce(request, "strategy", name=name, version=1, instrument=instrument)
    return RedirectResponse(f"/strategies/{name}", status_code=303)


@router.get("/strategies/{name}", response_class=HTMLResponse, include_in_schema=False)
def strategy_page(
    user: Reader,
    session: DbSession,
    request: Request,
    name: Name,
) -> HTMLResponse:
    """Show one strategy: versions (newest first), publish buttons, the new-version form."""
    with store_errors():
        strategy = store.get_strategy(session, name)
        rows = [_version_out(strategy, v) for v in reversed(store.versions(session, name))]
    return render(
        request,
        "strategies_detail.html",
        strategy=_strategy_out(session, strategy),
        versions=rows,
        can_edit=user.has(Role.coordinator),
        latest_json=json.dumps(rows[0].spec.model_dump(mode="json"), indent=2),
        error=flashed(request),
    )


@router.post("/strategies/{name}/versions", include_in_schema=False)
def strategy_version_form(
    user: Editor,
    session: DbSession,
    name: Name,
    spec_json: Annotated[str, Form(max_length=20_000)],
    request: Request,
    comment: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse:
    """Add a version from the page's form."""
    try:
        with store_errors():
            row, created = store.add_version(
                session, name, _form_spec(spec_json), by=user.name, comment=comment
            )
            instrument = store.get_strategy(session, name).instrument
    except HTTPException as exc:
        return refused(request, exc, f"/strategies/{name}")
    if created:
        announce(request, "strategy", name=name, version=row.version, instrument=instrument)
    return RedirectResponse(f"/strategies/{name}", status_code=303)


@router.post("/strategies/{name}/publish", include_in_schema=False)
def strategy_publish_form(
    user: Editor,
    session: DbSession,
    name: Name,
    version: Annotated[int, Form(ge=0, le=1_000_000)],
    request: Request,
) -> RedirectResponse:
    """Publish a version from the page's form (version 0 withdraws the published one)."""
    with store_errors():
        strategy = store.publish(session, name, version or None, by=user.name)
    announce(request, "strategy", name=name, published=version, instrument=strategy.instrument)
    return RedirectResponse(f"/strategies/{name}", status_code=303)
