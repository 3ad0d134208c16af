"""The duty roster: who is on call for an instrument (primary, backup) and when.

Shifts live on the products database beside the housekeeping store; the alarm notifications
(:mod:`svomflow.products.notify`) go to :func:`on_call`, the web site shows and edits the
roster. Functions that write commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column
from sqlalchemy.engine import Connection
from sqlmodel import Field, Session, SQLModel, col, select
from svomflow.errors import SvomflowError
from svomflow.products.database import ensure_tables
from svomflow.products.housekeeping import UTCDateTime

__all__ = [
    "ROLES",
    "DutyError",
    "DutyShift",
    "add_shift",
    "delete_shift",
    "ensure_schema",
    "on_call",
    "shifts",
    "update_shift",
]

ROLES = ("primary", "backup")


class DutyError(SvomflowError):
    """A shift that cannot be stored (bad role, empty period, overlap) or is not there."""


class DutyShift(SQLModel, table=True):
    """One person on call for one instrument in one role over ``[start, end)`` (UTC).

    ``email`` and ``webhook`` are where alarm notifications go (either may be empty).
    """

    __tablename__ = "duty_shifts"

    id: int | None = Field(default=None, primary_key=True)
    instrument: str = Field(index=True)
    role: str = Field(description="primary or backup")
    person: str
    email: str = ""
    webhook: str = ""
    start: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    end: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


_TABLES = (SQLModel.metadata.tables["duty_shifts"],)


def ensure_schema(session: Session) -> None:
    """Create the duty table on the session's database if it is missing."""
    bind = session.get_bind()
    ensure_tables(bind.engine if isinstance(bind, Connection) else bind, _TABLES)


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def shifts(
    session: Session,
    instrument: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[DutyShift]:
    """Return the shifts (of one instrument) overlapping ``[start, end)``, by start time."""
    ensure_schema(session)
    stmt = select(DutyShift)
    if instrument:
        stmt = stmt.where(DutyShift.instrument == instrument.upper())
    if start is not None:
        stmt = stmt.where(DutyShift.end > _utc(start))
    if end is not None:
        stmt = stmt.where(DutyShift.start < _utc(end))
    stmt = stmt.order_by(col(DutyShift.start), col(DutyShift.instrument), col(DutyShift.role))
    return list(session.exec(stmt))


def on_call(session: Session, instrument: str, at: datetime) -> list[DutyShift]:
    """Return who is on call for ``instrument`` at ``at``: the primary first, then backups."""
    ensure_schema(session)
    at = _utc(at)
    found = session.exec(
        select(DutyShift).where(
            DutyShift.instrument == instrument.upper(),
            DutyShift.start <= at,
            DutyShift.end > at,
        )
    )
    return sorted(found, key=lambda s: (ROLES.index(s.role), s.start))


def _validate(session: Session, shift: DutyShift) -> None:
    if shift.role not in ROLES:
        raise DutyError(f"role must be one of {', '.join(ROLES)}, not {shift.role!r}")
    if not shift.person.strip():
        raise DutyError("a shift needs a person")
    if not shift.instrument.strip():
        raise DutyError("a shift needs an instrument")
    if not _utc(shift.end) > _utc(shift.start):
        raise DutyError(f"shift end {shift.end} is not after its start {shift.start}")
    if shift.email and "@" not in shift.email:
        raise DutyError(f"{shift.email!r} is not an e-mail address")
    if shift.webhook and not shift.webhook.startswith(("http://", "https://")):
        raise DutyError(f"webhook {shift.webhook!r} is not an http(s) URL")
    # one primary and one backup at a time: two people in the same role would both think
    # the other one answers
    clash = [
        s
        for s in shifts(session, shift.instrument, shift.start, shift.end)
        if s.role == shift.role and s.id != shift.id
    ]
    if clash:
        c = clash[0]
        raise DutyError(
            f"{shift.instrument} {shift.role} shift overlaps {c.person}'s "
            f"({c.start:%Y-%m-%d %H:%M} to {c.end:%Y-%m-%d %H:%M} UTC, id {c.id})"
        )


def add_shift(
    session: Session,
    instrument: str,
    role: str,
    person: str,
    start: datetime,
    end: datetime,
    *,
    email: str = "",
    webhook: str = "",
) -> DutyShift:
    """Add a shift (refused if it overlaps another of the same instrument and role); commit."""
    ensure_schema(session)
    shift = DutyShift(
        instrument=instrument.upper(),
        role=role,
        person=person.strip(),
        email=email.strip(),
        webhook=webhook.strip(),
        start=_utc(start),
        end=_utc(end),
    )
    _validate(session, shift)
    session.add(shift)
    session.commit()
    session.refresh(shift)
    return shift


def _get(session: Session, shift_id: int) -> DutyShift:
    ensure_schema(session)
    shift = session.get(DutyShift, shift_id)
    if shift is None:
        raise DutyError(f"no duty shift with id {shift_id}")
    return shift


_EDITABLE = ("instrument", "role", "person", "email", "webhook", "start", "end")


def update_shift(session: Session, shift_id: int, **changes: Any) -> DutyShift:
    """Change fields of a shift (same checks as :func:`add_shift`); commit; return it."""
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise DutyError(f"cannot change {', '.join(sorted(unknown))} of a shift")
    shift = _get(session, shift_id)
    candidate = DutyShift(**{f: getattr(shift, f) for f in _EDITABLE}, id=shift.id)
    for key, value in changes.items():
        if key in ("start", "end"):
            value = _utc(value)
        elif key == "instrument":
            value = str(value).upper()
        setattr(candidate, key, value)
    _validate(session, candidate)
    for key in _EDITABLE:
        setattr(shift, key, getattr(candidate, key))
    session.add(shift)
    session.commit()
    session.refresh(shift)
    return shift


def delete_shift(session: Session, shift_id: int) -> None:
    """Delete a shift; commit."""
    session.delete(_get(session, shift_id))
    session.commit()
