"""The products database (sqlmodel): products, versions, provenance and processing status.

SQLite under ``$SVOMFLOW_HOME/products.db`` by default, any SQLAlchemy URL (PostgreSQL in
operations) through ``SVOMFLOW_DATABASE_URL``. The schema carries a version number: a
database written by a newer, incompatible svomflow is refused with a clear message instead
of being corrupted, and an older one is upgraded in place by the steps of ``_MIGRATIONS``.

Creating or migrating the schema is one step under a lock that holds across processes (an
advisory lock on PostgreSQL, a file lock beside an SQLite file), so any number of runs may
open a new database at the same moment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Table, UniqueConstraint, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select
from svomflow.errors import SvomflowError
from svomflow.paths import data_home

__all__ = [
    "SCHEMA_VERSION",
    "IncompatibleDatabaseError",
    "OutboxRow",
    "ProcessingStatus",
    "ProductRow",
    "SchemaInfo",
    "database_url",
    "ensure_tables",
    "make_engine",
]

# Bump with every schema change, and add the step from the previous version to _MIGRATIONS.
SCHEMA_VERSION = 3


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
    owner: str | None = Field(
        default=None, description="host:pid:start of the writer, while pending"
    )
    lease_until: datetime | None = None


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
    owner: str | None = Field(default=None, description="host:pid:start of the run, while running")
    lease_until: datetime | None = None


class OutboxRow(SQLModel, table=True):
    """An announcement of a product version, written in the transaction that records it.

    ``sent_at`` stays empty until the message is in JetStream (svomflow.products.announcements).
    """

    __tablename__ = "product_outbox"
    __table_args__ = (UniqueConstraint("product_id", name="uq_outbox_product"),)

    id: int | None = Field(default=None, primary_key=True)  # commit order: sending order
    product_id: str = Field(index=True)
    msg_id: str = Field(description="JetStream de-duplication id: '<product id>:<version>'")
    subject: str
    payload: str = Field(description="the announcement (JSON)")
    created: datetime = Field(default_factory=_now)
    sent_at: datetime | None = Field(default=None, index=True)
    attempts: int = 0
    last_error: str | None = None


def database_url() -> str:
    """Return ``SVOMFLOW_DATABASE_URL`` or the default SQLite file under the data home."""
    url = os.environ.get("SVOMFLOW_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{data_home() / 'products.db'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # busy_timeout first: switching a new file to WAL needs a lock another first user may
    # hold. WAL lets readers and one writer work at once; busy_timeout waits instead of
    # failing when two pipelines record products at the same moment.
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_ENGINES: dict[str, Engine] = {}
_ENGINE_LOCK = threading.Lock()
# any 64-bit number of our own: the PostgreSQL advisory lock that serialises schema changes
_PG_LOCK_KEY = 0x5F0D_F10E_5C4E_0001 - (1 << 63)


def make_engine(url: str | None = None) -> Engine:
    """Return an engine for ``url`` (default :func:`database_url`) with the schema checked.

    Creates the tables on a new database and migrates an older one, under a lock that holds
    across processes; refuses one whose schema version is newer than this svomflow
    understands.
    """
    url = url or database_url()
    # one engine per URL in a process: threads of one run (concurrent steps, the GP1
    # watcher) share it and the schema is checked once
    with _ENGINE_LOCK:
        if url in _ENGINES:
            return _ENGINES[url]
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        with _schema_lock(engine) as conn:
            _check_schema(conn)
        _ENGINES[url] = engine
        return engine


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """Yield a connection in a transaction that holds the schema lock of the database.

    PostgreSQL: a transaction-scoped advisory lock (released at commit or when a killed
    process's connection drops). SQLite: ``flock`` on ``<database>.lock`` (released when the
    file is closed or the process dies); an in-memory database needs none.
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            yield conn
        return
    db = engine.url.database
    if engine.dialect.name != "sqlite" or not db or db == ":memory:":
        with engine.begin() as conn:
            yield conn
        return
    lock_path = Path(db).with_name(Path(db).name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _add_column(conn: Connection, table: str, column: str) -> None:
    """Add ``column`` of the current model of ``table`` to an existing table, unless it is there."""
    # SQLite runs DDL outside the transaction: a migration killed half way is resumed
    if column in {c["name"] for c in inspect(conn).get_columns(table)}:
        return
    col = SQLModel.metadata.tables[table].columns[column]
    kind = col.type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))


def _to_v2(conn: Connection) -> None:
    """Version 2: owner and lease of reserved products and running statuses."""
    for table in (ProductRow.__tablename__, ProcessingStatus.__tablename__):
        for column in ("owner", "lease_until"):
            _add_column(conn, str(table), column)


def _to_v3(conn: Connection) -> None:
    """Version 3: the outbox of product announcements (older products are not announced)."""
    SQLModel.metadata.create_all(
        conn, tables=[SQLModel.metadata.tables[OutboxRow.__tablename__]], checkfirst=True
    )


# step from version N-1 to N, for every N above 1 (a new database is created at the latest)
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _to_v2, 3: _to_v3}


def _check_schema(conn: Connection) -> None:
    """Create, migrate or refuse the schema (the caller holds the schema lock)."""
    from svomflow import __version__

    url = conn.engine.url.render_as_string(hide_password=True)
    existing = set(inspect(conn).get_table_names())
    found: int | None = None
    if SchemaInfo.__tablename__ in existing:
        row = conn.execute(
            text(f"SELECT version, written_by FROM {SchemaInfo.__tablename__} WHERE id = 1")
        ).first()
        if row is not None:
            found = int(row[0])
            if found > SCHEMA_VERSION:
                raise IncompatibleDatabaseError(
                    f"the products database at {url} has schema version {found}, written by "
                    f"{row[1]}; this svomflow understands up to version {SCHEMA_VERSION}: "
                    "upgrade svomflow or point SVOMFLOW_DATABASE_URL at another database"
                )
    elif existing & {ProductRow.__tablename__, ProcessingStatus.__tablename__}:
        raise IncompatibleDatabaseError(
            f"the database at {url} has svomflow tables but no schema version: it was not made "
            "by svomflow; refusing to touch it"
        )
    if found == SCHEMA_VERSION:
        return
    if found is None:  # a new database: the latest schema at once
        SQLModel.metadata.create_all(
            conn,
            tables=[
                SQLModel.metadata.tables[str(t.__tablename__)]
                for t in (SchemaInfo, ProductRow, ProcessingStatus, OutboxRow)
            ],
        )
    else:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            _MIGRATIONS[version](conn)
    conn.execute(text(f"DELETE FROM {SchemaInfo.__tablename__}"))
    conn.execute(
        text(
            f"INSERT INTO {SchemaInfo.__tablename__} (id, version, written_by, updated) "
            "VALUES (1, :v, :w, :u)"
        ),
        {"v": SCHEMA_VERSION, "w": f"svomflow {__version__}", "u": _now()},
    )


def dispose_engines() -> None:
    """Close every cached engine (tests and long-running services that switch databases)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()
    _ENSURED.clear()


# per engine, the names of the tables already checked in this process
_ENSURED: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()


def ensure_tables(engine: Engine, tables: Sequence[Table]) -> None:
    """Create those of ``tables`` missing from the database, under the schema lock.

    For the tables of other stores on the products database (housekeeping, alarms, duty
    roster): they are created on first use, by any number of processes at once, without
    changing the schema version of the products tables. Checked once per engine.
    """
    names = {t.name for t in tables}
    if names <= _ENSURED.get(engine, set()):
        return
    with _ENGINE_LOCK, _schema_lock(engine) as conn:
        SQLModel.metadata.create_all(conn, tables=list(tables), checkfirst=True)
        _ENSURED.setdefault(engine, set()).update(names)


def select_products(
    session: Session,
    *,
    obs_id: str | None = None,
    type_code: str | None = None,
    instrument: str | None = None,
    include_superseded: bool = False,
    require_file: bool = True,
) -> list[ProductRow]:
    """Return products matching the filters, newest version first.

    Rows still being written (checksum ``pending``) are never returned, nor, unless
    ``require_file`` is false, versions whose file is not on disk.
    """
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
    rows = list(session.exec(stmt))
    return [r for r in rows if Path(r.path).is_file()] if require_file else rows
