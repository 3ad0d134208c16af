"""The site's database access: the products database's engine, with the site's tables added.

Users, API tokens and published events live in the products database (SQLite by default,
PostgreSQL through ``SVOMFLOW_DATABASE_URL``), so one URL names everything the site shows.
The site's tables (like the housekeeping store's) are created on first use under the
products database's cross-process schema lock (:func:`products.database.ensure_tables`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel
from svomflow.products import duty, housekeeping
from svomflow.products.database import ensure_tables, make_engine
from svomflow.web.models import TABLES

__all__ = ["RowId", "SessionDep", "engine_for", "get_session"]


def engine_for(url: str | None) -> Engine:
    """Return the engine of the products database at ``url`` with the site's tables in it.

    The housekeeping, alarm and duty tables the pages read are created too, so a fresh
    home shows empty pages rather than errors.
    """
    engine = make_engine(url)
    ensure_tables(engine, [SQLModel.metadata.tables[str(m.__tablename__)] for m in TABLES])
    with Session(engine) as s:
        housekeeping.ensure_schema(s)
        duty.ensure_schema(s)
    return engine


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: a session on the site's database, closed after the request."""
    engine: Engine = request.app.state.engine
    with Session(engine) as session:
        yield session


#: A route parameter receiving a session on the site's database.
SessionDep = Annotated[Session, Depends(get_session)]
#: A row id in a URL path: a positive 64-bit integer (larger ones are 422, not a database error).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
