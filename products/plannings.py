"""Observation plannings and versioned observing strategies of the follow-up telescope.

An **observing strategy** says how the telescope observes a target (exposures per filter,
dither, airmass limit, priority). It is created once under a unique name and then changed
only by adding a version: versions are immutable (the database refuses to update or delete
one), a change makes version N+1, re-submitting the content of the latest version makes
none, and exactly one version (or none) is *published*: the one the telescope's control
software uses when a planning names the strategy without a version.

A **planning** is what one telescope/instrument will observe (or observed) over a time
span: observations with a target, a time window and a strategy reference resolved to a
concrete version when the planning is recorded, so a later change of the strategy never
changes what an old planning says.

The tables live in the products database (:func:`svomflow.products.database.make_engine`),
created under the same cross-process schema lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import JSON, Column, UniqueConstraint, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, select
from svomflow.config.instrument import available_instruments, load_instrument
from svomflow.errors import SvomflowError
from svomflow.products.database import ensure_tables
from svomflow.products.housekeeping import UTCDateTime

__all__ = [
    "NAME_PATTERN",
    "TEXT_PATTERN",
    "ExposureStep",
    "ObservationDraft",
    "PlannedObservation",
    "Planning",
    "PlanningConflictError",
    "PlanningDraft",
    "PlanningError",
    "PlanningNotFoundError",
    "Strategy",
    "StrategySpec",
    "StrategyVersion",
    "add_version",
    "aware_utc",
    "check_filters",
    "create_planning",
    "create_strategy",
    "delete_planning",
    "ensure_schema",
    "get_planning",
    "get_strategy",
    "get_version",
    "instrument_filters",
    "observations",
    "overlapping_pairs",
    "plannings",
    "publish",
    "published_version",
    "spec_digest",
    "strategies",
    "utc",
    "versions",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# free text: anything but control characters (PostgreSQL refuses NUL in text columns)
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"


class PlanningError(SvomflowError):
    """A planning or strategy request that cannot be honoured as asked (bad reference, overlap)."""


class PlanningNotFoundError(PlanningError):
    """The planning, strategy or strategy version asked for does not exist."""


class PlanningConflictError(PlanningError):
    """The request clashes with what is recorded (name taken, observations overlapping)."""


def utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (naive values, as SQLite returns them, are UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def aware_utc(value: datetime) -> datetime:
    """Return an aware ``value`` in UTC; refuse a naive one or one UTC cannot hold."""
    if value.tzinfo is None:
        raise ValueError("give the time zone (e.g. 2026-12-05T01:00:00Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("time out of range") from None


# --- data objects (what the API and the pages exchange) -------------------------------------


class ExposureStep(BaseModel):
    """A block of identical exposures in one filter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filter: str = Field(pattern=NAME_PATTERN, max_length=16, description="filter name, e.g. 'r'")
    exposure_s: float = Field(gt=0, le=3600, description="exposure time of one frame [s]")
    count: int = Field(default=1, ge=1, le=1000, description="number of frames")


class StrategySpec(BaseModel):
    """The content of one strategy version: how a target is observed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(
        default="", max_length=2000, pattern=TEXT_PATTERN, description="free text for people"
    )
    exposures: tuple[ExposureStep, ...] = Field(
        min_length=1, max_length=100, description="exposure blocks, observed in this order"
    )
    dither_arcsec: float = Field(default=0.0, ge=0, le=600, description="dither radius [arcsec]")
    max_airmass: float = Field(default=2.0, ge=1, le=10, description="observe below this airmass")
    priority: int = Field(default=0, ge=0, le=10, description="0 lowest, 10 highest")

    def total_exposure_s(self) -> float:
        """Return the summed exposure time of every frame [s]."""
        return sum(e.exposure_s * e.count for e in self.exposures)


def spec_digest(spec: StrategySpec) -> str:
    """Return a SHA-256 of the canonical JSON of ``spec`` (equal content, equal digest)."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ObservationDraft(BaseModel):
    """One observation of a planning as submitted: target, window, strategy reference."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(
        min_length=1, max_length=100, pattern=TEXT_PATTERN, description="target name"
    )
    ra_deg: float = Field(ge=0, lt=360, description="right ascension (ICRS) [deg]")
    dec_deg: float = Field(ge=-90, le=90, description="declination (ICRS) [deg]")
    start: datetime = Field(description="window start (UTC, with time zone)")
    end: datetime = Field(description="window end (UTC, with time zone)")
    strategy: str = Field(pattern=NAME_PATTERN, description="observing strategy name")
    strategy_version: int | None = Field(
        default=None, ge=1, description="strategy version; omitted = the published one"
    )

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return aware_utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> ObservationDraft:
        if self.end <= self.start:
            raise ValueError("the observation window must end after it starts")
        return self


class PlanningDraft(BaseModel):
    """A planning as submitted: telescope, instrument, span and observations."""

    model_config = ConfigDict(extra="forbid")

    telescope: str = Field(pattern=NAME_PATTERN, description="telescope, e.g. COLIBRI")
    instrument: str = Field(pattern=NAME_PATTERN, description="instrument, e.g. DDRAGO-B")
    title: str = Field(default="", max_length=200, pattern=TEXT_PATTERN)
    start: datetime = Field(description="planning span start (UTC, with time zone)")
    end: datetime = Field(description="planning span end (UTC, with time zone)")
    observations: list[ObservationDraft] = Field(default_factory=list, max_length=2000)

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return aware_utc(value)

    @model_validator(mode="after")
    def _inside(self) -> PlanningDraft:
        if self.end <= self.start:
            raise ValueError("the planning must end after it starts")
        for i, obs in enumerate(self.observations):
            if obs.start < self.start or obs.end > self.end:
                raise ValueError(f"observation {i} ({obs.target}) is outside the planning span")
        return self


def instrument_filters(telescope: str, instrument: str) -> tuple[str, ...] | None:
    """Return the filters of the packaged instrument ``telescope``/``instrument`` (None: unknown).

    Instruments are data: the filter names come from ``config/instruments/*.yaml``.
    """
    for name in available_instruments():
        definition = load_instrument(name)
        if (definition.telescope, definition.instrument) == (telescope, instrument):
            filters = definition.get("filters", None)
            return tuple(str(f) for f in filters) if filters is not None else None
    return None


def check_filters(spec: StrategySpec, telescope: str, instrument: str) -> None:
    """Raise :class:`PlanningError` if ``spec`` uses a filter the instrument does not have."""
    known = instrument_filters(telescope, instrument)
    if known is None:
        return
    unknown = sorted({e.filter for e in spec.exposures} - set(known))
    if unknown:
        raise PlanningError(
            f"{telescope}/{instrument} has no filter {', '.join(unknown)}; "
            f"its filters: {', '.join(known)}"
        )


def overlapping_pairs(windows: Sequence[tuple[datetime, datetime]]) -> list[tuple[int, int]]:
    """Return the index pairs ``(i, j)``, ``i < j``, of windows that overlap in time.

    Windows touching end to start do not overlap (one telescope observes one target at a
    time; the next may start when the previous ends).
    """
    order = sorted(range(len(windows)), key=lambda k: windows[k][0])
    pairs: list[tuple[int, int]] = []
    active: list[int] = []
    for k in order:
        start = windows[k][0]
        active = [a for a in active if windows[a][1] > start]
        pairs.extend((min(a, k), max(a, k)) for a in active)
        active.append(k)
    return sorted(pairs)


# --- tables ---------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


class Strategy(SQLModel, table=True):
    """An observing strategy: its name, instrument and which version is published."""

    __tablename__ = "observing_strategies"

    id: int | None = SQLField(default=None, primary_key=True)
    name: str = SQLField(index=True, unique=True)
    telescope: str
    instrument: str = SQLField(index=True)
    published_version: int | None = None
    published_at: datetime | None = SQLField(default=None, sa_column=Column(UTCDateTime()))
    published_by: str | None = None
    created: datetime = SQLField(default_factory=_now, sa_column=Column(UTCDateTime()))
    created_by: str


class StrategyVersion(SQLModel, table=True):
    """One immutable version of a strategy's content."""

    __tablename__ = "observing_strategy_versions"
    __table_args__ = (UniqueConstraint("strategy_id", "version", name="uq_strategy_version"),)

    id: int | None = SQLField(default=None, primary_key=True)
    strategy_id: int = SQLField(foreign_key="observing_strategies.id", index=True)
    version: int
    spec: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))
    digest: str
    comment: str = ""
    created: datetime = SQLField(default_factory=_now, sa_column=Column(UTCDateTime()))
    created_by: str

    def content(self) -> StrategySpec:
        """Return the version's content as a :class:`StrategySpec`."""
        return StrategySpec.model_validate(self.spec)


class Planning(SQLModel, table=True):
    """A planning: what one telescope/instrument observes over a time span."""

    __tablename__ = "observation_plannings"

    id: int | None = SQLField(default=None, primary_key=True)
    telescope: str = SQLField(index=True)
    instrument: str = SQLField(index=True)
    title: str = ""
    start: datetime = SQLField(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    end: datetime = SQLField(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    created: datetime = SQLField(default_factory=_now, sa_column=Column(UTCDateTime()))
    created_by: str


class PlannedObservation(SQLModel, table=True):
    """One observation of a planning, its strategy resolved to a version."""

    __tablename__ = "planned_observations"

    id: int | None = SQLField(default=None, primary_key=True)
    planning_id: int = SQLField(foreign_key="observation_plannings.id", index=True)
    target: str
    ra_deg: float
    dec_deg: float
    start: datetime = SQLField(sa_column=Column(UTCDateTime(), nullable=False))
    end: datetime = SQLField(sa_column=Column(UTCDateTime(), nullable=False))
    strategy_name: str
    strategy_version: int


_TABLES = (Strategy, StrategyVersion, Planning, PlannedObservation)


def _immutable(_mapper: Any, _conn: Connection, target: StrategyVersion) -> None:
    raise PlanningConflictError(
        f"strategy versions are immutable (version {target.version}): add a new version instead"
    )


# a published version may be the one a telescope is executing: never rewrite one in place
event.listen(StrategyVersion, "before_update", _immutable)
event.listen(StrategyVersion, "before_delete", _immutable)


def ensure_schema(engine: Engine) -> None:
    """Create the planning and strategy tables if missing, under the products schema lock."""
    ensure_tables(engine, [SQLModel.metadata.tables[str(t.__tablename__)] for t in _TABLES])


# --- strategies -----------------------------------------------------------------------------


def strategies(
    session: Session, *, telescope: str | None = None, instrument: str | None = None
) -> list[Strategy]:
    """Return the strategies, by name, optionally of one telescope/instrument."""
    stmt = select(Strategy)
    if telescope:
        stmt = stmt.where(Strategy.telescope == telescope)
    if instrument:
        stmt = stmt.where(Strategy.instrument == instrument)
    return list(session.exec(stmt.order_by(Strategy.name)))


def get_strategy(session: Session, name: str) -> Strategy:
    """Return the strategy called ``name``; raise :class:`PlanningNotFoundError` if none."""
    row = session.exec(select(Strategy).where(Strategy.name == name)).first()
    if row is None:
        raise PlanningNotFoundError(f"no observing strategy named {name!r}")
    return row


def versions(session: Session, name: str) -> list[StrategyVersion]:
    """Return every version of strategy ``name``, oldest first."""
    strat = get_strategy(session, name)
    stmt = (
        select(StrategyVersion)
        .where(StrategyVersion.strategy_id == strat.id)
        .order_by(StrategyVersion.version)  # type: ignore[arg-type]
    )
    return list(session.exec(stmt))


def get_version(session: Session, name: str, version: int) -> StrategyVersion:
    """Return version ``version`` of strategy ``name``; raise if either does not exist."""
    strat = get_strategy(session, name)
    row = session.exec(
        select(StrategyVersion)
        .where(StrategyVersion.strategy_id == strat.id)
        .where(StrategyVersion.version == version)
    ).first()
    if row is None:
        raise PlanningNotFoundError(f"observing strategy {name!r} has no version {version}")
    return row


def published_version(session: Session, name: str) -> StrategyVersion:
    """Return the published version of strategy ``name``; raise if none is published."""
    strat = get_strategy(session, name)
    if strat.published_version is None:
        raise PlanningNotFoundError(f"observing strategy {name!r} has no published version")
    return get_version(session, name, strat.published_version)


def create_strategy(
    session: Session,
    name: str,
    *,
    telescope: str,
    instrument: str,
    spec: StrategySpec,
    by: str,
    comment: str = "",
    at: datetime | None = None,
) -> StrategyVersion:
    """Record a new strategy with ``spec`` as its version 1 (unpublished); commit.

    Raises
    ------
    PlanningConflictError
        If a strategy of that name exists.
    """
    if session.exec(select(Strategy).where(Strategy.name == name)).first() is not None:
        raise PlanningConflictError(f"an observing strategy named {name!r} exists")
    check_filters(spec, telescope, instrument)
    at = utc(at or _now())
    strat = Strategy(
        name=name, telescope=telescope, instrument=instrument, created=at, created_by=by
    )
    try:
        session.add(strat)
        session.flush()
        assert strat.id is not None
        row = _new_version(strat.id, 1, spec, by, comment, at)
        session.add(row)
        session.commit()
    except IntegrityError:  # another writer took the name between the check and now
        session.rollback()
        raise PlanningConflictError(f"an observing strategy named {name!r} exists") from None
    session.refresh(row)
    return row


def _new_version(
    strategy_id: int, version: int, spec: StrategySpec, by: str, comment: str, at: datetime
) -> StrategyVersion:
    return StrategyVersion(
        strategy_id=strategy_id,
        version=version,
        spec=spec.model_dump(mode="json"),
        digest=spec_digest(spec),
        comment=comment,
        created=at,
        created_by=by,
    )


def add_version(
    session: Session,
    name: str,
    spec: StrategySpec,
    *,
    by: str,
    comment: str = "",
    at: datetime | None = None,
) -> tuple[StrategyVersion, bool]:
    """Record ``spec`` as the next version of strategy ``name``; commit.

    Returns
    -------
    tuple of (StrategyVersion, bool)
        The version holding ``spec`` and whether it was created: when ``spec`` equals the
        latest version's content, that version is returned and nothing is written.
    """
    strat = get_strategy(session, name)
    check_filters(spec, strat.telescope, strat.instrument)
    latest = versions(session, name)[-1]
    if latest.digest == spec_digest(spec):
        return latest, False
    row = _new_version(latest.strategy_id, latest.version + 1, spec, by, comment, utc(at or _now()))
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # two editors at once: the other one's version got this number
        session.rollback()
        raise PlanningConflictError(
            f"version {latest.version + 1} of {name!r} was just added by someone else: "
            "reload and apply your change to it"
        ) from None
    session.refresh(row)
    return row, True


def publish(
    session: Session,
    name: str,
    version: int | None,
    *,
    by: str,
    at: datetime | None = None,
) -> Strategy:
    """Make ``version`` the one published version of strategy ``name`` (None: withdraw); commit."""
    strat = get_strategy(session, name)
    if version is not None:
        get_version(session, name, version)  # raises when it does not exist
    strat.published_version = version
    strat.published_at = utc(at or _now())
    strat.published_by = by
    session.add(strat)
    session.commit()
    session.refresh(strat)
    return strat


# --- plannings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resolved:
    strategy: str
    version: int


def _resolve(session: Session, draft: PlanningDraft) -> list[_Resolved]:
    """Resolve each observation's strategy reference to a version, checking the instrument."""
    out = []
    for i, obs in enumerate(draft.observations):
        strat = get_strategy(session, obs.strategy)
        if (strat.telescope, strat.instrument) != (draft.telescope, draft.instrument):
            raise PlanningError(
                f"observation {i} ({obs.target}): strategy {obs.strategy!r} is for "
                f"{strat.telescope}/{strat.instrument}, the planning for "
                f"{draft.telescope}/{draft.instrument}"
            )
        if obs.strategy_version is None:
            version = published_version(session, obs.strategy).version
        else:
            version = get_version(session, obs.strategy, obs.strategy_version).version
        out.append(_Resolved(obs.strategy, version))
    return out


def create_planning(
    session: Session, draft: PlanningDraft, *, by: str, at: datetime | None = None
) -> Planning:
    """Record ``draft`` with its strategy references resolved to versions; commit.

    Raises
    ------
    PlanningConflictError
        If two observations overlap in time (the telescope observes one target at a time).
    PlanningNotFoundError
        If a referenced strategy or version does not exist, or none is published.
    """
    pairs = overlapping_pairs([(o.start, o.end) for o in draft.observations])
    if pairs:
        i, j = pairs[0]
        raise PlanningConflictError(
            f"observations {i} ({draft.observations[i].target}) and {j} "
            f"({draft.observations[j].target}) overlap in time"
        )
    resolved = _resolve(session, draft)
    plan = Planning(
        telescope=draft.telescope,
        instrument=draft.instrument,
        title=draft.title,
        start=draft.start,
        end=draft.end,
        created=utc(at or _now()),
        created_by=by,
    )
    session.add(plan)
    session.flush()
    assert plan.id is not None
    for obs, ref in zip(draft.observations, resolved, strict=True):
        session.add(
            PlannedObservation(
                planning_id=plan.id,
                target=obs.target,
                ra_deg=obs.ra_deg,
                dec_deg=obs.dec_deg,
                start=obs.start,
                end=obs.end,
                strategy_name=ref.strategy,
                strategy_version=ref.version,
            )
        )
    session.commit()
    session.refresh(plan)
    return plan


def get_planning(session: Session, planning_id: int) -> Planning:
    """Return planning ``planning_id``; raise :class:`PlanningNotFoundError` if none."""
    row = session.get(Planning, planning_id)
    if row is None:
        raise PlanningNotFoundError(f"no planning with id {planning_id}")
    return row


def observations(session: Session, planning_id: int) -> list[PlannedObservation]:
    """Return the observations of planning ``planning_id`` in time order."""
    stmt = (
        select(PlannedObservation)
        .where(PlannedObservation.planning_id == planning_id)
        .order_by(PlannedObservation.start)  # type: ignore[arg-type]
    )
    return list(session.exec(stmt))


def plannings(
    session: Session,
    *,
    telescope: str | None = None,
    instrument: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Planning]:
    """Return the plannings overlapping ``[start, end)`` (open when None), by start time."""
    stmt = select(Planning)
    if telescope:
        stmt = stmt.where(Planning.telescope == telescope)
    if instrument:
        stmt = stmt.where(Planning.instrument == instrument)
    if start is not None:
        stmt = stmt.where(Planning.end > utc(start))
    if end is not None:
        stmt = stmt.where(Planning.start < utc(end))
    return list(session.exec(stmt.order_by(Planning.start, Planning.id)))  # type: ignore[arg-type]


def delete_planning(session: Session, planning_id: int) -> None:
    """Delete planning ``planning_id`` and its observations; commit."""
    plan = get_planning(session, planning_id)
    for obs in observations(session, planning_id):
        session.delete(obs)
    session.delete(plan)
    session.commit()
