"""The housekeeping store: parameter definitions, samples, rollups and alarms.

Tables live on the products database (:func:`svomflow.products.database.make_engine`, SQLite
by default, PostgreSQL in operations) and are created on first use under the same
cross-process schema lock. Every public function takes a SQLModel :class:`~sqlmodel.Session`
on that database; the functions that write commit.

Samples are stored as ``(parameter id, unix time in s UTC, value)``: a year of 50 parameters
at one sample per 10 s is 160 million rows, so the row is kept small. At ingestion the
min/sum/max/count of each 1 min, 10 min, 1 h and 1 day bucket are updated
(:class:`HkRollup`), and :func:`series` reads at most a few times ``max_points`` rows
whatever the length of the window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import Column, Float, Index, Integer, UniqueConstraint, func
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Field, Session, SQLModel, col, select
from svomflow.errors import SvomflowError
from svomflow.products.database import ensure_tables

__all__ = [
    "ALARM_STATES",
    "ROLLUP_LEVELS_S",
    "Alarm",
    "AlarmError",
    "CheckState",
    "HkRollup",
    "HkSample",
    "HkSeries",
    "HousekeepingError",
    "IngestResult",
    "LatestValue",
    "ParameterDef",
    "UTCDateTime",
    "acknowledge",
    "active_alarm",
    "alarms",
    "clear_alarm",
    "count_samples",
    "ensure_schema",
    "get_parameter",
    "ingest",
    "latest",
    "limit_state",
    "parameters",
    "prune_samples",
    "raise_alarm",
    "samples",
    "series",
    "to_unix",
    "upsert_parameters",
]

# bucket widths of the rollups, finest first
ROLLUP_LEVELS_S: tuple[int, ...] = (60, 600, 3600, 86400)
ALARM_STATES = ("raised", "acknowledged", "cleared")
AlarmLevel = Literal["soft", "hard"]
AlarmState = Literal["raised", "acknowledged", "cleared"]


class HousekeepingError(SvomflowError):
    """A request to the housekeeping store that cannot be met (unknown parameter, bad window)."""


class AlarmError(HousekeepingError):
    """An alarm transition that is not allowed (unknown alarm, acknowledged twice)."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always read back time-zone aware (UTC).

    SQLite keeps no time zone: without this, the same column would come back aware from
    PostgreSQL and naive from SQLite.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Convert an aware datetime to naive UTC (a naive one is taken as UTC)."""
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Attach UTC to the stored naive timestamp."""
        return None if value is None else value.replace(tzinfo=UTC)


def to_unix(at: datetime | float | np.datetime64) -> float:
    """Return unix seconds (UTC) of a datetime (naive = UTC), a datetime64 or a number."""
    if isinstance(at, datetime):
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    if isinstance(at, np.datetime64):
        return float(at.astype("datetime64[us]").astype(np.int64)) / 1e6
    return float(at)


def _from_unix(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class ParameterDef(SQLModel, table=True):
    """Definition of one housekeeping parameter: unit, limits, persistence, hysteresis.

    ``None`` for a limit means no limit on that side. ``persistence`` is the number of
    consecutive samples beyond a limit before an alarm is raised; ``hysteresis`` the margin
    (in the parameter's unit) by which the value must come back inside the limit to clear it.
    """

    __tablename__ = "hk_parameters"
    __table_args__ = (UniqueConstraint("instrument", "name", name="uq_hk_parameter"),)

    id: int | None = Field(default=None, primary_key=True)
    instrument: str = Field(index=True)
    name: str
    unit: str = ""
    description: str = ""
    category: str = Field(default="", description="group shown together (temperature, weather)")
    soft_low: float | None = None
    soft_high: float | None = None
    hard_low: float | None = None
    hard_high: float | None = None
    persistence: int = 1
    hysteresis: float = 0.0
    stuck_after: int | None = Field(
        default=None, description="this many identical consecutive samples mean a frozen sensor"
    )
    defined: bool = Field(
        default=True, description="False when created by ingestion, absent from the config"
    )


class HkSample(SQLModel, table=True):
    """One raw sample: parameter, unix time (s, UTC) and value."""

    __tablename__ = "hk_samples"
    __table_args__ = {"sqlite_with_rowid": False}

    param_id: int = Field(primary_key=True, foreign_key="hk_parameters.id")
    t: float = Field(sa_column=Column(Float(precision=53), primary_key=True))
    value: float = Field(sa_column=Column(Float(precision=53), nullable=False))


class HkRollup(SQLModel, table=True):
    """Count, sum, min and max of a parameter's samples in one bucket of one width.

    ``bucket`` is ``floor(t / level)``; the bucket covers ``[bucket*level, (bucket+1)*level)``.
    """

    __tablename__ = "hk_rollups"
    __table_args__ = {"sqlite_with_rowid": False}

    param_id: int = Field(primary_key=True, foreign_key="hk_parameters.id")
    level: int = Field(primary_key=True, description="bucket width in seconds")
    bucket: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    n: int
    total: float = Field(sa_column=Column(Float(precision=53), nullable=False))
    vmin: float = Field(sa_column=Column(Float(precision=53), nullable=False))
    vmax: float = Field(sa_column=Column(Float(precision=53), nullable=False))


class Alarm(SQLModel, table=True):
    """An alarm on one parameter at one level: raised, then acknowledged and/or cleared."""

    __tablename__ = "hk_alarms"
    __table_args__ = (Index("ix_hk_alarms_param_state", "instrument", "parameter", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    instrument: str = Field(index=True)
    parameter: str
    level: str = Field(description="soft or hard")
    rule: str = Field(default="limit", description="limit (value beyond a limit) or stuck")
    state: str = Field(index=True, description="raised, acknowledged or cleared")
    raised_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    cleared_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    value: float = Field(description="the value that raised the alarm")
    limit_value: float | None = Field(default=None, description="the limit it crossed")
    message: str = ""
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    notified_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    notified_to: str | None = Field(default=None, description="who was notified, comma separated")


class CheckState(SQLModel, table=True):
    """Where one check (soft, hard, stuck) of a parameter stopped, to resume across runs."""

    __tablename__ = "hk_check_state"

    param_id: int = Field(primary_key=True, foreign_key="hk_parameters.id")
    kind: str = Field(primary_key=True, description="soft, hard or stuck")
    checked_until: float = Field(sa_column=Column(Float(precision=53), nullable=False))
    streak: int = Field(default=0, description="consecutive samples beyond the limit")
    clear_streak: int = Field(default=0, description="consecutive samples back inside")
    active: bool = False
    last_value: float | None = Field(default=None, sa_column=Column(Float(precision=53)))


_TABLES = tuple(
    SQLModel.metadata.tables[str(t.__tablename__)]
    for t in (ParameterDef, HkSample, HkRollup, Alarm, CheckState)
)


def ensure_schema(session: Session) -> None:
    """Create the housekeeping tables on the session's database if they are missing."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    ensure_tables(engine, _TABLES)


# ---------------------------------------------------------------- definitions


def parameters(session: Session, instrument: str | None = None) -> list[ParameterDef]:
    """Return the parameter definitions (of one instrument), by instrument, category, name."""
    ensure_schema(session)
    stmt = select(ParameterDef)
    if instrument:
        stmt = stmt.where(ParameterDef.instrument == instrument.upper())
    stmt = stmt.order_by(
        col(ParameterDef.instrument), col(ParameterDef.category), col(ParameterDef.name)
    )
    return list(session.exec(stmt))


def get_parameter(session: Session, instrument: str, name: str) -> ParameterDef:
    """Return one parameter definition, or raise :class:`HousekeepingError`."""
    ensure_schema(session)
    row = session.exec(
        select(ParameterDef).where(
            ParameterDef.instrument == instrument.upper(), ParameterDef.name == name
        )
    ).first()
    if row is None:
        known = ", ".join(p.name for p in parameters(session, instrument)) or "none"
        raise HousekeepingError(
            f"no housekeeping parameter {name!r} for {instrument.upper()} (known: {known})"
        )
    return row


_DEF_FIELDS = (
    "unit",
    "description",
    "category",
    "soft_low",
    "soft_high",
    "hard_low",
    "hard_high",
    "persistence",
    "hysteresis",
    "stuck_after",
)


def upsert_parameters(session: Session, defs: Sequence[ParameterDef]) -> list[ParameterDef]:
    """Insert or update definitions by (instrument, name); commit; return the stored rows."""
    ensure_schema(session)
    try:
        return _upsert_parameters(session, defs)
    except IntegrityError:
        # another process created one of them between our read and our insert: now it is
        # there and the second pass updates it
        session.rollback()
        return _upsert_parameters(session, defs)


def _upsert_parameters(session: Session, defs: Sequence[ParameterDef]) -> list[ParameterDef]:
    out = []
    for d in defs:
        row = session.exec(
            select(ParameterDef).where(
                ParameterDef.instrument == d.instrument.upper(), ParameterDef.name == d.name
            )
        ).first()
        if row is None:
            row = ParameterDef(instrument=d.instrument.upper(), name=d.name)
        for f in _DEF_FIELDS:
            setattr(row, f, getattr(d, f))
        row.defined = d.defined
        session.add(row)
        out.append(row)
    session.commit()
    for row in out:
        session.refresh(row)
    return out


# ---------------------------------------------------------------- ingestion


@dataclass(frozen=True)
class IngestResult:
    """What one call of :func:`ingest` stored.

    Attributes
    ----------
    inserted
        New samples stored, per parameter.
    duplicates
        Samples already in the store (same parameter and time), skipped.
    invalid
        Samples with a non-finite value or time, skipped.
    created
        Parameters not in the definitions, created without limits (``defined=False``).
    """

    instrument: str
    inserted: dict[str, int]
    duplicates: int
    invalid: int
    created: tuple[str, ...]
    start: float | None
    end: float | None

    @property
    def total(self) -> int:
        """Number of new samples over all parameters."""
        return sum(self.inserted.values())


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _fetch(conn: Connection, sql: str, params: tuple[Any, ...], ncol: int) -> np.ndarray:
    """Run a query on the DB-API cursor and return its rows as a float array (n, ncol).

    Plain tuples straight from the driver: building SQLAlchemy rows for a quarter of samples
    costs more than the query.
    """
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(sql, params)
        rows = cur.fetchall()
    finally:
        cur.close()
    return np.array(rows, dtype=np.float64).reshape(-1, ncol)


def _rollup_rows(
    param_id: int, t: np.ndarray, v: np.ndarray, level: int
) -> list[tuple[int, int, int, int, float, float, float]]:
    """Per-bucket (param, level, bucket, n, sum, min, max) of time-sorted samples."""
    b = np.floor(t / level).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    n = np.diff(np.r_[starts, b.size])
    total = np.add.reduceat(v, starts)
    vmin = np.minimum.reduceat(v, starts)
    vmax = np.maximum.reduceat(v, starts)
    return [
        (param_id, level, int(bb), int(nn), float(s), float(lo), float(hi))
        for bb, nn, s, lo, hi in zip(b[starts], n, total, vmin, vmax, strict=True)
    ]


def ingest(
    session: Session,
    instrument: str,
    times: np.ndarray | Sequence[float],
    values: Mapping[str, np.ndarray | Sequence[float]],
    *,
    keep_raw: bool = True,
) -> IngestResult:
    """Store samples of several parameters at common times and update the rollups; commit.

    Parameters
    ----------
    times
        Unix seconds (UTC), one per row (``datetime64`` accepted).
    values
        ``{parameter name: values}``, each as long as ``times``; NaN marks a missing value.

    keep_raw
        False: update the rollups only (a long history loaded in bulk; plots of it are then
        binned at 1 min at best). Such a load is not idempotent: nothing records which
        samples the rollups hold.

    Samples already stored (same parameter and time) are skipped, so ingesting a file
    twice changes nothing. Parameters without a definition are created without limits.
    """
    try:
        return _ingest(session, instrument, times, values, keep_raw)
    except IntegrityError:
        # another writer stored some of these samples meanwhile: the retry skips them
        session.rollback()
        return _ingest(session, instrument, times, values, keep_raw)


def _ingest(
    session: Session,
    instrument: str,
    times: np.ndarray | Sequence[float],
    values: Mapping[str, np.ndarray | Sequence[float]],
    keep_raw: bool,
) -> IngestResult:
    ensure_schema(session)
    instrument = instrument.upper()
    t_all = np.asarray(times)
    if np.issubdtype(t_all.dtype, np.datetime64):
        t_all = t_all.astype("datetime64[us]").astype(np.int64) / 1e6
    t_all = np.asarray(t_all, dtype=np.float64)
    defs = {p.name: p for p in parameters(session, instrument)}
    created = [name for name in values if name not in defs]
    if created:
        for row in upsert_parameters(
            session,
            [
                ParameterDef(
                    instrument=instrument,
                    name=name,
                    description="not in the housekeeping definitions",
                    defined=False,
                )
                for name in created
            ],
        ):
            defs[row.name] = row
    conn = session.connection()
    ph = _placeholder(conn)
    inserted: dict[str, int] = {}
    duplicates = invalid = 0
    t_lo: float | None = None
    t_hi: float | None = None
    for name, raw in values.items():
        v = np.asarray(raw, dtype=np.float64)
        if v.shape != t_all.shape:
            raise HousekeepingError(f"{instrument} {name}: {v.size} values for {t_all.size} times")
        ok = np.isfinite(v) & np.isfinite(t_all)
        invalid += int((~ok).sum())
        t, v = t_all[ok], v[ok]
        # one sample per time: the first of duplicates within the batch wins
        t, first = np.unique(t, return_index=True)
        duplicates += int(v.size - t.size)
        v = v[first]
        pid = defs[name].id
        assert pid is not None
        if t.size and keep_raw:
            existing = _fetch(
                conn,
                f"SELECT t FROM hk_samples WHERE param_id = {ph} AND t >= {ph} AND t <= {ph}",
                (pid, float(t[0]), float(t[-1])),
                1,
            )[:, 0]
            if existing.size:
                new = ~np.isin(t, existing)
                duplicates += int((~new).sum())
                t, v = t[new], v[new]
        inserted[name] = int(t.size)
        if not t.size:
            continue
        t_lo = float(t[0]) if t_lo is None else min(t_lo, float(t[0]))
        t_hi = float(t[-1]) if t_hi is None else max(t_hi, float(t[-1]))
        if keep_raw:
            conn.exec_driver_sql(
                f"INSERT INTO hk_samples (param_id, t, value) VALUES ({ph}, {ph}, {ph})",
                [(pid, float(a), float(b)) for a, b in zip(t, v, strict=True)],
            )
        for level in ROLLUP_LEVELS_S:
            conn.exec_driver_sql(
                "INSERT INTO hk_rollups (param_id, level, bucket, n, total, vmin, vmax) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}) "
                "ON CONFLICT (param_id, level, bucket) DO UPDATE SET "
                "n = hk_rollups.n + excluded.n, total = hk_rollups.total + excluded.total, "
                "vmin = CASE WHEN excluded.vmin < hk_rollups.vmin THEN excluded.vmin "
                "ELSE hk_rollups.vmin END, "
                "vmax = CASE WHEN excluded.vmax > hk_rollups.vmax THEN excluded.vmax "
                "ELSE hk_rollups.vmax END",
                _rollup_rows(pid, t, v, level),
            )
    session.commit()
    return IngestResult(
        instrument=instrument,
        inserted=inserted,
        duplicates=duplicates,
        invalid=invalid,
        created=tuple(created),
        start=t_lo,
        end=t_hi,
    )


# ---------------------------------------------------------------- queries


@dataclass(frozen=True)
class HkSeries:
    """A parameter's values over a window, raw or as min/mean/max per bucket.

    Attributes
    ----------
    times
        Unix seconds (UTC): sample times, or bucket centres.
    mean, min, max
        Per point; equal for raw samples.
    count
        Samples per point (1 for raw samples).
    resolution_s
        Bucket width in seconds, 0 for raw samples.
    """

    definition: ParameterDef
    times: np.ndarray
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray
    resolution_s: float

    @property
    def datetimes(self) -> np.ndarray:
        """The times as ``datetime64[ms]`` (UTC)."""
        return (np.round(self.times * 1000.0)).astype("datetime64[ms]")

    def __len__(self) -> int:
        """Return the number of points."""
        return int(self.times.size)


def samples(
    session: Session,
    instrument: str,
    parameter: str,
    start: datetime | float,
    end: datetime | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the raw ``(times, values)`` of a parameter in ``[start, end]``, time-ordered."""
    pid = get_parameter(session, instrument, parameter).id
    conn = session.connection()
    ph = _placeholder(conn)
    arr = _fetch(
        conn,
        f"SELECT t, value FROM hk_samples WHERE param_id = {ph} AND t >= {ph} AND t <= {ph} "
        "ORDER BY t",
        (pid, to_unix(start), to_unix(end)),
        2,
    )
    return arr[:, 0].copy(), arr[:, 1].copy()


def series(
    session: Session,
    instrument: str,
    parameter: str,
    start: datetime | float,
    end: datetime | float,
    max_points: int = 2000,
) -> HkSeries:
    """Return a parameter over ``[start, end]`` in at most ``max_points`` points.

    Raw samples when there are few enough, else min/mean/max per bucket of the finest
    rollup that fits, merged by an integer factor down to ``max_points``.
    """
    if max_points < 1:
        raise HousekeepingError("max_points must be at least 1")
    definition = get_parameter(session, instrument, parameter)
    t0, t1 = to_unix(start), to_unix(end)
    if not t1 > t0:
        raise HousekeepingError(f"empty window: end {end} is not after start {start}")
    pid = definition.id
    conn = session.connection()
    ph = _placeholder(conn)
    window = t1 - t0
    finest = ROLLUP_LEVELS_S[0]
    if window / finest <= 8 * max_points:
        # count the raw samples from the finest rollup (a few thousand rows at most)
        n_raw = conn.exec_driver_sql(
            f"SELECT COALESCE(SUM(n), 0) FROM hk_rollups WHERE param_id = {ph} AND level = {ph} "
            f"AND bucket >= {ph} AND bucket <= {ph}",
            (pid, finest, math.floor(t0 / finest), math.floor(t1 / finest)),
        ).scalar_one()
        if int(n_raw) <= max_points:
            # over the whole buckets counted, to compare with their count
            lo = math.floor(t0 / finest) * finest
            hi = math.nextafter((math.floor(t1 / finest) + 1) * finest, -math.inf)
            t, v = samples(session, instrument, parameter, lo, hi)
            # raw samples pruned or never kept (bulk history): the rollups still hold them
            if t.size >= int(n_raw):
                keep = (t >= t0) & (t <= t1)
                t, v = t[keep], v[keep]
                ones = np.ones(t.size, np.int64)
                return HkSeries(definition, t, v, v.copy(), v.copy(), ones, 0.0)
    level = next((lv for lv in ROLLUP_LEVELS_S if window / lv <= 8 * max_points), None)
    if level is None:
        level = ROLLUP_LEVELS_S[-1]
    b0, b1 = math.floor(t0 / level), math.floor(t1 / level)
    arr = _fetch(
        conn,
        f"SELECT bucket, n, total, vmin, vmax FROM hk_rollups WHERE param_id = {ph} "
        f"AND level = {ph} AND bucket >= {ph} AND bucket <= {ph} ORDER BY bucket",
        (pid, level, b0, b1),
        5,
    )
    bucket = arr[:, 0].astype(np.int64)
    factor = max(1, math.ceil((b1 - b0 + 1) / max_points))
    if factor > 1 and bucket.size:
        group = (bucket - b0) // factor
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        n = np.add.reduceat(arr[:, 1], starts)
        total = np.add.reduceat(arr[:, 2], starts)
        vmin = np.minimum.reduceat(arr[:, 3], starts)
        vmax = np.maximum.reduceat(arr[:, 4], starts)
        left = (b0 + group[starts] * factor) * float(level)
    else:
        n, total, vmin, vmax = arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4]
        left = bucket * float(level)
    width = float(level * factor)
    return HkSeries(
        definition,
        left + width / 2.0,
        total / np.maximum(n, 1),
        vmin.copy(),
        vmax.copy(),
        n.astype(np.int64),
        width,
    )


def limit_state(definition: ParameterDef, value: float | None) -> str:
    """Return ``"hard"``, ``"soft"`` or ``"ok"`` for a value (``"nodata"`` for None/NaN)."""
    if value is None or not math.isfinite(value):
        return "nodata"

    def outside(low: float | None, high: float | None) -> bool:
        return (low is not None and value < low) or (high is not None and value > high)

    if outside(definition.hard_low, definition.hard_high):
        return "hard"
    if outside(definition.soft_low, definition.soft_high):
        return "soft"
    return "ok"


@dataclass(frozen=True)
class LatestValue:
    """The last sample of a parameter, its limit state and its open alarm (if any).

    ``state`` is ``"ok"``, ``"soft"``, ``"hard"`` (where the last value lies) or
    ``"nodata"``; ``alarm`` the most severe raised or acknowledged alarm.
    """

    definition: ParameterDef
    time: datetime | None
    value: float | None
    state: str
    alarm: Alarm | None


def latest(session: Session, instrument: str | None = None) -> list[LatestValue]:
    """Return the latest value of every parameter (of one instrument) with its state."""
    defs = parameters(session, instrument)
    conn = session.connection()
    ph = _placeholder(conn)
    open_alarms: dict[tuple[str, str], Alarm] = {}
    for a in alarms(session, instrument=instrument, active=True):
        key = (a.instrument, a.parameter)
        if key not in open_alarms or a.level == "hard":
            open_alarms[key] = a
    out = []
    for d in defs:
        row = conn.exec_driver_sql(
            f"SELECT t, value FROM hk_samples WHERE param_id = {ph} ORDER BY t DESC LIMIT 1",
            (d.id,),
        ).first()
        t = None if row is None else _from_unix(float(row[0]))
        v = None if row is None else float(row[1])
        out.append(LatestValue(d, t, v, limit_state(d, v), open_alarms.get((d.instrument, d.name))))
    return out


# ---------------------------------------------------------------- alarms


def alarms(
    session: Session,
    instrument: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
    *,
    parameter: str | None = None,
    active: bool | None = None,
    limit: int | None = None,
) -> list[Alarm]:
    """Return alarms, newest first.

    Parameters
    ----------
    state
        Only alarms in this state (``raised``, ``acknowledged``, ``cleared``).
    since
        Only alarms still open at or after this time (raised after it, or not cleared
        before it).
    active
        True: only alarms not cleared; False: only cleared ones.
    """
    ensure_schema(session)
    if state is not None and state not in ALARM_STATES:
        raise HousekeepingError(f"unknown alarm state {state!r}; one of {', '.join(ALARM_STATES)}")
    stmt = select(Alarm)
    if instrument:
        stmt = stmt.where(Alarm.instrument == instrument.upper())
    if parameter:
        stmt = stmt.where(Alarm.parameter == parameter)
    if state:
        stmt = stmt.where(Alarm.state == state)
    if active is True:
        stmt = stmt.where(Alarm.state != "cleared")
    elif active is False:
        stmt = stmt.where(Alarm.state == "cleared")
    if since is not None:
        stmt = stmt.where((col(Alarm.cleared_at).is_(None)) | (col(Alarm.cleared_at) >= since))
    stmt = stmt.order_by(col(Alarm.raised_at).desc(), col(Alarm.id).desc())
    if limit:
        stmt = stmt.limit(limit)
    return list(session.exec(stmt))


def active_alarm(
    session: Session, instrument: str, parameter: str, level: str, rule: str = "limit"
) -> Alarm | None:
    """Return the open (raised or acknowledged) alarm of a parameter's rule and level."""
    ensure_schema(session)
    return session.exec(
        select(Alarm).where(
            Alarm.instrument == instrument.upper(),
            Alarm.parameter == parameter,
            Alarm.level == level,
            Alarm.rule == rule,
            Alarm.state != "cleared",
        )
    ).first()


def raise_alarm(
    session: Session,
    instrument: str,
    parameter: str,
    level: str,
    at: datetime,
    value: float,
    *,
    limit: float | None = None,
    message: str = "",
    rule: str = "limit",
) -> Alarm:
    """Record a new raised alarm and commit; return it (with its id).

    ``rule`` says what raised it: ``limit`` (a value beyond a soft or hard limit) or
    ``stuck`` (a frozen sensor, raised at level ``soft``).
    """
    ensure_schema(session)
    if level not in ("soft", "hard"):
        raise AlarmError(f"alarm level must be soft or hard, not {level!r}")
    if rule not in ("limit", "stuck"):
        raise AlarmError(f"alarm rule must be limit or stuck, not {rule!r}")
    alarm = Alarm(
        instrument=instrument.upper(),
        parameter=parameter,
        level=level,
        rule=rule,
        state="raised",
        raised_at=at,
        value=value,
        limit_value=limit,
        message=message,
    )
    session.add(alarm)
    session.commit()
    session.refresh(alarm)
    return alarm


def _get_alarm(session: Session, alarm_id: int) -> Alarm:
    ensure_schema(session)
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        raise AlarmError(f"no alarm with id {alarm_id}")
    return alarm


def acknowledge(session: Session, alarm_id: int, by: str, at: datetime) -> Alarm:
    """Record who acknowledged an alarm and when; commit; return the alarm.

    A raised alarm becomes ``acknowledged``; a cleared one nobody acknowledged keeps its
    state and records the acknowledgement. Acknowledging twice is an :class:`AlarmError`.
    """
    alarm = _get_alarm(session, alarm_id)
    if not by.strip():
        raise AlarmError("an acknowledgement needs the name of who acknowledges")
    if alarm.acknowledged_by is not None:
        raise AlarmError(
            f"alarm {alarm_id} was already acknowledged by {alarm.acknowledged_by} "
            f"at {alarm.acknowledged_at:%Y-%m-%d %H:%M:%S} UTC"
        )
    alarm.acknowledged_by = by.strip()
    alarm.acknowledged_at = at
    if alarm.state == "raised":
        alarm.state = "acknowledged"
    session.add(alarm)
    session.commit()
    session.refresh(alarm)
    return alarm


def clear_alarm(session: Session, alarm_id: int, at: datetime, *, message: str = "") -> Alarm:
    """Mark an alarm cleared at ``at`` (the value is back within limits); commit."""
    alarm = _get_alarm(session, alarm_id)
    if alarm.state == "cleared":
        raise AlarmError(f"alarm {alarm_id} is already cleared")
    alarm.state = "cleared"
    alarm.cleared_at = at
    if message:
        alarm.message = f"{alarm.message}; {message}" if alarm.message else message
    session.add(alarm)
    session.commit()
    session.refresh(alarm)
    return alarm


def prune_samples(session: Session, before: datetime | float) -> int:
    """Delete raw samples older than ``before`` (the rollups keep them binned); commit.

    Returns the number of samples deleted. Plots of that period are then binned at 1 min at
    best, and re-ingesting its files adds their samples to the rollups again.
    """
    ensure_schema(session)
    conn = session.connection()
    ph = _placeholder(conn)
    res = conn.exec_driver_sql(f"DELETE FROM hk_samples WHERE t < {ph}", (to_unix(before),))
    session.commit()
    return int(res.rowcount or 0)


def count_samples(session: Session, instrument: str | None = None) -> int:
    """Return the number of raw samples stored (of one instrument)."""
    ensure_schema(session)
    stmt = select(func.count()).select_from(HkSample)
    if instrument:
        stmt = stmt.join(ParameterDef).where(ParameterDef.instrument == instrument.upper())
    return int(session.exec(stmt).one())
