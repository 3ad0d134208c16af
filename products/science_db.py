"""The science database: validated product versions delivered for the scientists.

A database of its own (``$SVOMFLOW_SCIENCE_DATABASE_URL``; by default the SQLite file
``$SVOMFLOW_HOME/science.db``; PostgreSQL in operations), separate from svomflow's products
database. A product version enters it only after the validation gate
(:mod:`svomflow.tasks.validation`); a refused version is recorded with its reasons and stays
only in svomflow's store. Delivery is idempotent (a version is delivered once, keyed on its
product id) and versioned (a new version of the same product supersedes the older one,
which stays).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, create_engine, select
from svomflow.paths import data_home
from svomflow.products.database import ensure_tables

__all__ = [
    "SCIENCE_DB_ENV",
    "DeliveredProduct",
    "Outcome",
    "RefusedProduct",
    "delivered",
    "dispose_science_engines",
    "lookup",
    "make_science_engine",
    "record_delivery",
    "record_refusal",
    "refused",
    "science_database_url",
]

SCIENCE_DB_ENV = "SVOMFLOW_SCIENCE_DATABASE_URL"


def _now() -> datetime:
    return datetime.now(UTC)


class DeliveredProduct(SQLModel, table=True):
    """A validated product version in the science database."""

    __tablename__ = "science_products"
    __table_args__ = (
        UniqueConstraint("product_id", name="uq_science_product"),
        UniqueConstraint("type_code", "instrument", "obs_id", "version", name="uq_science_version"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(description="the version's id in svomflow's products database")
    type_code: str = Field(index=True)
    instrument: str = Field(index=True)
    obs_id: str = Field(index=True)
    version: int
    checksum: str
    url: str
    ra_deg: float | None = None
    dec_deg: float | None = None
    error_radius_deg: float | None = None
    error_confidence: float | None = None
    key_values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    superseded: bool = Field(default=False, index=True)
    created: datetime = Field(description="when svomflow recorded the version")
    delivered_at: datetime = Field(default_factory=_now)


class RefusedProduct(SQLModel, table=True):
    """A product version the validation gate refused, with the reasons."""

    __tablename__ = "science_refusals"
    __table_args__ = (UniqueConstraint("product_id", name="uq_science_refusal"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: str
    type_code: str = Field(index=True)
    instrument: str
    obs_id: str = Field(index=True)
    version: int
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    refused_at: datetime = Field(default_factory=_now)


def science_database_url() -> str:
    """Return ``$SVOMFLOW_SCIENCE_DATABASE_URL`` or the SQLite file ``science.db`` of the home."""
    return os.environ.get(SCIENCE_DB_ENV) or f"sqlite:///{data_home() / 'science.db'}"


_ENGINES: dict[str, Engine] = {}


def make_science_engine(url: str | None = None) -> Engine:
    """Return an engine on the science database with its tables created (once per process)."""
    url = url or science_database_url()
    if url in _ENGINES:
        return _ENGINES[url]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    else:
        engine = create_engine(url, pool_pre_ping=True)
    # created under the products database's cross-process schema lock (safe first use)
    ensure_tables(
        engine,
        [SQLModel.metadata.tables[t] for t in ("science_products", "science_refusals")],
    )
    _ENGINES[url] = engine
    return engine


def dispose_science_engines() -> None:
    """Close every cached science-database engine (tests, services switching databases)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


@dataclass(frozen=True)
class Outcome:
    """What recording a verdict did: ``delivered``, ``refused`` or ``already`` (no change)."""

    product_id: str
    result: str


def lookup(session: Session, product_id: str) -> DeliveredProduct | RefusedProduct | None:
    """Return the delivered or refused record of a product version (None if never judged)."""
    row = session.exec(
        select(DeliveredProduct).where(DeliveredProduct.product_id == product_id)
    ).first()
    if row is not None:
        return row
    return session.exec(
        select(RefusedProduct).where(RefusedProduct.product_id == product_id)
    ).first()


def record_delivery(engine: Engine, product: DeliveredProduct) -> Outcome:
    """Deliver a validated version once; older delivered versions become superseded.

    A version refused earlier (rules changed since) loses its refusal record.
    """
    pid = product.product_id
    with Session(engine) as s:
        if s.exec(
            select(DeliveredProduct.id).where(DeliveredProduct.product_id == product.product_id)
        ).first():
            return Outcome(product.product_id, "already")
        older = s.exec(
            select(DeliveredProduct).where(
                DeliveredProduct.type_code == product.type_code,
                DeliveredProduct.instrument == product.instrument,
                DeliveredProduct.obs_id == product.obs_id,
                DeliveredProduct.version < product.version,
                col(DeliveredProduct.superseded).is_(False),
            )
        ).all()
        newer = s.exec(
            select(DeliveredProduct.id).where(
                DeliveredProduct.type_code == product.type_code,
                DeliveredProduct.instrument == product.instrument,
                DeliveredProduct.obs_id == product.obs_id,
                DeliveredProduct.version > product.version,
            )
        ).first()
        product.superseded = newer is not None  # delivered late: an older version
        for old in older:
            old.superseded = True
            s.add(old)
        for ref in s.exec(
            select(RefusedProduct).where(RefusedProduct.product_id == product.product_id)
        ).all():
            s.delete(ref)
        s.add(product)
        try:
            s.commit()
        except IntegrityError:  # another delivery of the same version won the race
            s.rollback()
            return Outcome(pid, "already")
    return Outcome(pid, "delivered")


def record_refusal(engine: Engine, refusal: RefusedProduct) -> Outcome:
    """Record a refused version with its reasons (updated when judged again)."""
    pid = refusal.product_id
    with Session(engine) as s:
        if s.exec(
            select(DeliveredProduct.id).where(DeliveredProduct.product_id == refusal.product_id)
        ).first():
            return Outcome(refusal.product_id, "already")
        old = s.exec(
            select(RefusedProduct).where(RefusedProduct.product_id == refusal.product_id)
        ).first()
        if old is not None:
            if list(old.reasons) == list(refusal.reasons):
                return Outcome(refusal.product_id, "already")
            old.reasons, old.refused_at = list(refusal.reasons), _now()
            s.add(old)
        else:
            s.add(refusal)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            return Outcome(pid, "already")
    return Outcome(pid, "refused")


def delivered(
    session: Session,
    *,
    obs_id: str | None = None,
    type_code: str | None = None,
    include_superseded: bool = False,
    limit: int = 500,
) -> list[DeliveredProduct]:
    """Return delivered versions, most recent delivery first."""
    stmt = select(DeliveredProduct)
    if obs_id:
        stmt = stmt.where(DeliveredProduct.obs_id == obs_id)
    if type_code:
        stmt = stmt.where(DeliveredProduct.type_code == type_code)
    if not include_superseded:
        stmt = stmt.where(col(DeliveredProduct.superseded).is_(False))
    stmt = stmt.order_by(col(DeliveredProduct.delivered_at).desc(), col(DeliveredProduct.id).desc())
    return list(session.exec(stmt.limit(limit)))


def refused(
    session: Session,
    *,
    obs_id: str | None = None,
    type_code: str | None = None,
    limit: int = 500,
) -> list[RefusedProduct]:
    """Return refused versions with their reasons, most recent first."""
    stmt = select(RefusedProduct)
    if obs_id:
        stmt = stmt.where(RefusedProduct.obs_id == obs_id)
    if type_code:
        stmt = stmt.where(RefusedProduct.type_code == type_code)
    stmt = stmt.order_by(col(RefusedProduct.refused_at).desc(), col(RefusedProduct.id).desc())
    return list(session.exec(stmt.limit(limit)))
