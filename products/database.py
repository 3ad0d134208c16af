"""The products database (sqlmodel): products, versions, provenance and processing status.

SQLite under ``$SVOMFLOW_HOME/products.db`` by default, any SQLAlchemy URL (PostgreSQL in
operations) through ``SVOMFLOW_DATABASE_URL``. The schema carries a version number: a
database written by a newer, incompatible svomflow is refused with a clear message instead
of being corrupted, and an older compatible one is upgraded in place.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlmodel import Field, Session, SQLModel, create_engine, select
from svomflow.errors import SvomflowError
from svomflow.paths import data_home

__all__ = [
    "SCHEMA_VERSION",
    "IncompatibleDatabaseError",
    "ProcessingStatus",
    "ProductRow",
    "SchemaInfo",
    "database_url",
    "make_engine",
]

# Bump when a change is not backwards compatible; list upgrade steps in _MIGRATIONS.
SCHEMA_VERSION = 1


class IncompatibleDatabaseError(SvomflowError):
    """The database was written by a svomflow with a schema this version cannot use."""


def _now() -> datetime:
    return datetime.now(UTC)


class SchemaInfo(SQLModel, table=True):
    """One row: the schema version of this database."""

    __tablename__ = "svomflow_schema"

    id: int = Field(default=1, primary_key=True)
    version: int
    written_by: str
    updated: datetime = Field(default_factory=_now)


class ProductRow(SQLModel, table=True):
    """A product version: one file on disk with its provenance."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("type_code", "instrument", "obs_id", "version", name="uq_product_version"),
        UniqueConstraint("identity", name="uq_product_identity"),
    )

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True)
    type_code: str = Field(index=True)
    instrument: str = Field(index=True)
    obs_id: str = Field(index=True)
    version: int
    identity: str
    path: str
    checksum: str
    superseded: bool = Field(default=False, index=True)
    superseded_by: str | None = None
    flow_name: str | None = None
    flow_run_id: str | None = Field(default=None, index=True)
    provenance: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created: datetime = Field(default_factory=_now)


class ProcessingStatus(SQLModel, table=True):
    """Processing state of an input or product: received, running, done, failed, superseded."""

    __tablename__ = "processing_status"
    __table_args__ = (UniqueConstraint("key", "flow_name", name="uq_status_key_flow"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True, description="burst/observation id or input file")
    flow_name: str
    state: str = Field(index=True)
    reason: str | None = None
    flow_run_id: str | None = None
    updated: datetime = Field(default_factory=_now)


def database_url() -> str:
    """Return ``SVOMFLOW_DATABASE_URL`` or the default SQLite file under the data home."""
    url = os.environ.get("SVOMFLOW_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{data_home() / 'products.db'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # WAL lets readers and one writer work at once; busy_timeout waits instead of failing
    # when two pipelines record products at the same moment.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_ENGINES: dict[str, Engine] = {}
_ENGINE_LOCK = threading.Lock()


def make_engine(url: str | None = None) -> Engine:
    """Return an engine for ``url`` (default :func:`database_url`) with the schema checked.

    Creates the tables on a new database; refuses one whose schema version is newer than
    this svomflow understands.
    """
    url = url or database_url()
    # one engine per URL in a process: threads of one run (concurrent steps, the GP1
    # watcher) must not create the schema side by side
    with _ENGINE_LOCK:
        if url in _ENGINES:
            return _ENGINES[url]
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        _check_schema(engine)
        _ENGINES[url] = engine
        return engine


def _create_tables(engine: Engine) -> None:
    """Create the tables that are missing; another process may be creating them too."""
    tables = [
        SQLModel.metadata.tables[str(t.__tablename__)]
        for t in (SchemaInfo, ProductRow, ProcessingStatus)
    ]
    for attempt in range(5):
        try:
            SQLModel.metadata.create_all(engine, tables=tables)
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            # "already exists": the other process won the race; the next pass sees its
            # tables and creates only what is still missing
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


def _check_schema(engine: Engine) -> None:
    from sqlalchemy import inspect
    from svomflow import __version__

    existing = set(inspect(engine).get_table_names())
    if SchemaInfo.__tablename__ in existing:
        with Session(engine) as s:
            info = s.get(SchemaInfo, 1)
            found = info.version if info else None
        if found is not None and found > SCHEMA_VERSION:
            raise IncompatibleDatabaseError(
                f"the products database at {engine.url.render_as_string(hide_password=True)} has "
                f"schema version {found}, written by {info.written_by if info else '?'}; this "
                f"svomflow understands up to version {SCHEMA_VERSION}: upgrade svomflow or point "
                "SVOMFLOW_DATABASE_URL at another database"
            )
    elif existing & {ProductRow.__tablename__, ProcessingStatus.__tablename__}:
        raise IncompatibleDatabaseError(
            f"the database at {engine.url.render_as_string(hide_password=True)} has svomflow "
            "tables but no schema version: it was not made by svomflow; refusing to touch it"
        )
    _create_tables(engine)
    with Session(engine) as s:
        info = s.get(SchemaInfo, 1)
        if info is None:
            s.add(SchemaInfo(id=1, version=SCHEMA_VERSION, written_by=f"svomflow {__version__}"))
            try:
                s.commit()
            except IntegrityError:  # another process created the row at the same moment
                s.rollback()
        elif info.version < SCHEMA_VERSION:
            info.version = SCHEMA_VERSION
            info.written_by = f"svomflow {__version__}"
            info.updated = _now()
            s.add(info)
            s.commit()


def dispose_engines() -> None:
    """Close every cached engine (tests and long-running services that switch databases)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def select_products(
    session: Session,
    *,
    obs_id: str | None = None,
    type_code: str | None = None,
    instrument: str | None = None,
    include_superseded: bool = False,
) -> list[ProductRow]:
    """Return products matching the filters, newest version first."""
    stmt = select(ProductRow)
    if obs_id:
        stmt = stmt.where(ProductRow.obs_id == obs_id)
    if type_code:
        stmt = stmt.where(ProductRow.type_code == type_code)
    if instrument:
        stmt = stmt.where(ProductRow.instrument == instrument)
    if not include_superseded:
        stmt = stmt.where(ProductRow.superseded == False)  # noqa: E712 - SQL expression
    # rows whose file is still being written are not products yet
    stmt = stmt.where(ProductRow.checksum != "pending")
    stmt = stmt.order_by(ProductRow.obs_id, ProductRow.type_code, ProductRow.version.desc())  # type: ignore[attr-defined]
    return list(session.exec(stmt))
