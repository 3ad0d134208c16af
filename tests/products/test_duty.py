"""The duty roster: shifts, overlaps refused, who is on call, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session
from svomflow.products import duty
from svomflow.products.database import dispose_engines, make_engine

D0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    if request.param == "sqlite":
        with Session(make_engine(f"sqlite:///{tmp_path / 'products.db'}")) as s:
            yield s
        dispose_engines()
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"duty_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    with Session(make_engine(f"{base}{sep}options=-csearch_path%3D{schema}")) as s:
        yield s
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_on_call_primary_then_backup_with_half_open_periods(session: Session) -> None:
    week = timedelta(days=7)
    a = duty.add_shift(session, "eclairs", "primary", "Ada", D0, D0 + week, email="ada@ex.org")
    b = duty.add_shift(session, "ECLAIRS", "backup", "Bob", D0, D0 + week, email="bob@ex.org")
    c = duty.add_shift(session, "ECLAIRS", "primary", "Cy", D0 + week, D0 + 2 * week)
    duty.add_shift(session, "COLIBRI", "primary", "Dee", D0, D0 + 2 * week, webhook="http://x/y")
    assert [s.person for s in duty.on_call(session, "ECLAIRS", D0)] == ["Ada", "Bob"]
    # a shift covers [start, end): at the hand-over only the next primary is on call
    assert [s.id for s in duty.on_call(session, "ECLAIRS", D0 + week)] == [c.id]
    assert duty.on_call(session, "ECLAIRS", D0 - timedelta(seconds=1)) == []
    # an aware time in another zone is the same instant
    paris = timezone(timedelta(hours=2))
    got = duty.on_call(session, "ECLAIRS", (D0 + timedelta(hours=1)).astimezone(paris))
    assert [s.person for s in got] == ["Ada", "Bob"]
    assert got[0].start == D0 and got[0].start.tzinfo is not None
    assert [s.person for s in duty.on_call(session, "colibri", D0)] == ["Dee"]
    # the roster over a period, by start time
    listed = duty.shifts(session, "ECLAIRS", D0 + week - timedelta(hours=1), D0 + week)
    assert {s.id for s in listed} == {a.id, b.id}
    assert len(duty.shifts(session)) == 4


def test_overlaps_and_bad_shifts_refused(session: Session) -> None:
    day = timedelta(days=1)
    a = duty.add_shift(session, "ECLAIRS", "primary", "Ada", D0, D0 + 2 * day)
    with pytest.raises(duty.DutyError, match="overlaps Ada's"):
        duty.add_shift(session, "ECLAIRS", "primary", "Bob", D0 + day, D0 + 3 * day)
    # the same period in the other role or for the other instrument is fine
    duty.add_shift(session, "ECLAIRS", "backup", "Bob", D0 + day, D0 + 3 * day)
    duty.add_shift(session, "COLIBRI", "primary", "Bob", D0 + day, D0 + 3 * day)
    for kwargs, match in [
        ({"role": "chief"}, "role must be one of"),
        ({"end": D0 - day}, "is not after its start"),
        ({"person": " "}, "needs a person"),
        ({"email": "nobody"}, "not an e-mail"),
        ({"webhook": "ftp://x"}, "not an http"),
    ]:
        args = {
            "instrument": "ECLAIRS",
            "role": "primary",
            "person": "Zed",
            "start": D0 + 5 * day,
            "end": D0 + 6 * day,
        }
        args.update(kwargs)
        with pytest.raises(duty.DutyError, match=match):
            duty.add_shift(session, **args)
    # update: moving a shift onto another is refused, and nothing changes
    b = duty.add_shift(session, "ECLAIRS", "primary", "Cy", D0 + 4 * day, D0 + 5 * day)
    with pytest.raises(duty.DutyError, match="overlaps Ada's"):
        duty.update_shift(session, b.id, start=D0 + day)
    assert duty.shifts(session, "ECLAIRS")[-1].start == D0 + 4 * day
    # a shift may be edited over its own period
    moved = duty.update_shift(session, a.id, end=D0 + 3 * day, email="ada@ex.org")
    assert moved.end == D0 + 3 * day and moved.email == "ada@ex.org"
    with pytest.raises(duty.DutyError, match="cannot change id"):
        duty.update_shift(session, a.id, id=7)
    duty.delete_shift(session, a.id)
    assert duty.on_call(session, "ECLAIRS", D0) == []
    with pytest.raises(duty.DutyError, match=f"no duty shift with id {a.id}"):
        duty.delete_shift(session, a.id)
