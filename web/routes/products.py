"""Products: browse by burst/observation, instrument, type and version; a page per product.

A product page shows its provenance (inputs, calibration, software, flow run), its previews
inline (the PNG products of the same observation and instrument), a download link, the other
versions, and the link to its Prefect flow run. Only instruments the user's roles see are
listed; the JSON list at ``/api/products`` serves machine clients.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar
from svomflow.products.database import ProductRow
from svomflow.web.auth import ANY_ROLE, CurrentUser, require_roles
from svomflow.web.db import SessionDep
from svomflow.web.routes.files import serve_product_file
from svomflow.web.templating import NavItem, render
from svomflow.web.visibility import can_see, instrument_roles

__all__ = ["NAV", "ProductOut", "router"]

router = APIRouter()
NAV = (NavItem("/products", "Products", ANY_ROLE, order=10),)
PAGE = 100
PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif")


class ProductOut(BaseModel):
    """A product version as the API returns it."""

    id: str
    type_code: str
    instrument: str
    obs_id: str
    version: int
    superseded: bool
    created: datetime
    flow_name: str | None
    flow_run_id: str | None
    file_url: str


def _visible_instruments(session: Session, user: CurrentUser) -> list[str]:
    names = session.exec(select(ProductRow.instrument).distinct()).all()
    return sorted(n for n in names if can_see(user, n))


def _query(
    user_instruments: list[str],
    obs_id: str | None,
    instrument: str | None,
    type_code: str | None,
    version: int | None,
    superseded: bool,
) -> SelectOfScalar[ProductRow]:
    stmt = select(ProductRow).where(ProductRow.checksum != "pending")
    stmt = stmt.where(col(ProductRow.instrument).in_(user_instruments))
    if obs_id:
        stmt = stmt.where(ProductRow.obs_id == obs_id)
    if instrument:
        stmt = stmt.where(ProductRow.instrument == instrument)
    if type_code:
        stmt = stmt.where(ProductRow.type_code == type_code)
    if version is not None:
        stmt = stmt.where(ProductRow.version == version)
    if not superseded:
        stmt = stmt.where(ProductRow.superseded == False)  # noqa: E712 - SQL expression
    return stmt


def file_url(request: Request, row: ProductRow) -> str | None:
    """Return the site's ``/files`` address of a product, or None outside the products root."""
    root: Path = request.app.state.settings.products_root
    path = Path(row.path)
    if root not in path.parents:
        return None
    from urllib.parse import quote

    return "/files/" + quote(path.relative_to(root).as_posix())


@router.get("/products", response_class=HTMLResponse, include_in_schema=False)
def products_page(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    obs_id: str | None = None,
    instrument: str | None = None,
    type_code: str | None = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    superseded: bool = False,
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    """Browse the products (newest first) with filters."""
    visible = _visible_instruments(session, user)
    stmt = _query(visible, obs_id, instrument, type_code, version, superseded)
    total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
    rows = session.exec(
        stmt.order_by(col(ProductRow.created).desc()).offset(page * PAGE).limit(PAGE)
    ).all()
    types = session.exec(
        select(ProductRow.type_code)
        .where(col(ProductRow.instrument).in_(visible))
        .distinct()
        .order_by(ProductRow.type_code)
    ).all()
    recent_obs = session.exec(
        select(ProductRow.obs_id, func.max(ProductRow.created).label("last"))
        .where(col(ProductRow.instrument).in_(visible))
        .group_by(ProductRow.obs_id)
        .order_by(func.max(ProductRow.created).desc())
        .limit(50)
    ).all()
    return render(
        request,
        "products.html",
        rows=rows,
        total=total,
        page=page,
        page_size=PAGE,
        instruments=visible,
        types=types,
        observations=[o for o, _ in recent_obs],
        filters={
            "obs_id": obs_id or "",
            "instrument": instrument or "",
            "type_code": type_code or "",
            "version": version or "",
            "superseded": superseded,
        },
    )


@router.get("/api/products", response_model=list[ProductOut], tags=["products"])
def products_api(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
    obs_id: Annotated[str | None, Query(max_length=200)] = None,
    instrument: Annotated[str | None, Query(max_length=100)] = None,
    type_code: Annotated[str | None, Query(max_length=100)] = None,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    superseded: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[ProductOut]:
    """List products (newest first) that the caller's roles see."""
    visible = _visible_instruments(session, user)
    stmt = _query(visible, obs_id, instrument, type_code, version, superseded)
    rows = session.exec(
        stmt.order_by(col(ProductRow.created).desc()).offset(offset).limit(limit)
    ).all()
    return [
        ProductOut(
            id=r.id,
            type_code=r.type_code,
            instrument=r.instrument,
            obs_id=r.obs_id,
            version=r.version,
            superseded=r.superseded,
            created=r.created,
            flow_name=r.flow_name,
            flow_run_id=r.flow_run_id,
            file_url=f"/products/{r.id}/download",
        )
        for r in rows
    ]


def _get_visible(session: Session, user: CurrentUser, product_id: str) -> ProductRow:
    row = session.get(ProductRow, product_id)
    # someone else's instrument reads as missing: ids do not reveal what exists
    if row is None or row.checksum == "pending" or not can_see(user, row.instrument):
        raise HTTPException(404, "no such product")
    return row


@router.get("/products/{product_id}", response_class=HTMLResponse, include_in_schema=False)
def product_page(
    product_id: str,
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
) -> HTMLResponse:
    """One product: provenance, previews, versions, download, flow run."""
    row = _get_visible(session, user, product_id)
    siblings = session.exec(
        select(ProductRow)
        .where(ProductRow.obs_id == row.obs_id)
        .where(ProductRow.instrument == row.instrument)
        .where(ProductRow.superseded == False)  # noqa: E712 - SQL expression
        .where(ProductRow.checksum != "pending")
        .order_by(ProductRow.type_code)
    ).all()
    previews = [
        (s, file_url(request, s))
        for s in siblings
        if Path(s.path).suffix.lower() in PREVIEW_SUFFIXES and file_url(request, s)
    ]
    versions = session.exec(
        select(ProductRow)
        .where(ProductRow.obs_id == row.obs_id)
        .where(ProductRow.instrument == row.instrument)
        .where(ProductRow.type_code == row.type_code)
        .order_by(col(ProductRow.version).desc())
    ).all()
    flow_run = (
        f"{request.app.state.settings.prefect_ui_url}/runs/flow-run/{row.flow_run_id}"
        if row.flow_run_id
        else None
    )
    prov: dict[str, Any] = dict(row.provenance or {})
    return render(
        request,
        "product.html",
        row=row,
        provenance=prov,
        previews=previews,
        siblings=[s for s in siblings if s.id != row.id],
        versions=versions,
        flow_run=flow_run,
        file=file_url(request, row),
        roles=instrument_roles(row.instrument),
        exists=Path(row.path).is_file(),
    )


@router.get("/products/{product_id}/download", tags=["products"])
def download(
    product_id: str,
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
) -> FileResponse:
    """Download a product's file (only files under the products root are served)."""
    row = _get_visible(session, user, product_id)
    root: Path = request.app.state.settings.products_root
    path = Path(row.path).resolve()
    if root not in path.parents:
        raise HTTPException(403, "outside the products root")
    rel = path.relative_to(root).as_posix()
    from urllib.parse import quote

    return serve_product_file(request, quote(rel), user, session, attachment=True)
