"""Observing strategies (immutable versions, one published) and plannings, on the products DB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session
from svomflow.products import plannings as pl
from svomflow.products.database import dispose_engines, make_engine

T0 = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """A session on a new SQLite file, or in a new schema of the test PostgreSQL server."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
        pl.ensure_schema(engine)
        with Session(engine) as s:
            yield s
        dispose_engines()
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"plannings_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    engine = make_engine(f"{base}{sep}options=-csearch_path%3D{schema}")
    pl.ensure_schema(engine)
    with Session(engine) as s:
        yield s
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _spec(exposure: float = 60.0, filters: str = "gri") -> pl.StrategySpec:
    return pl.StrategySpec(
        exposures=tuple(pl.ExposureStep(filter=f, exposure_s=exposure, count=3) for f in filters)
    )


def _strategy(session: Session, name: str = "grb-early", **kw: object) -> pl.StrategyVersion:
    return pl.create_strategy(
        session, name, telescope="COLIBRI", instrument="DDRAGO-B", spec=_spec(**kw), by="alice"
    )


def test_versions_are_immutable_and_only_changes_make_new_ones(session: Session) -> None:
    v1 = _strategy(session)
    assert v1.version == 1
    same, created = pl.add_version(session, "grb-early", _spec(), by="bob")
    assert (same.version, created) == (1, False)
    v2, created = pl.add_version(session, "grb-early", _spec(exposure=30.0), by="bob")
    assert (v2.version, created) == (2, True)
    assert v2.content().total_exposure_s() == pytest.approx(3 * 3 * 30.0)
    # going back to the first content is a change too: a third version, v1 untouched
    v3, created = pl.add_version(session, "grb-early", _spec(), by="bob")
    assert (v3.version, created, v3.digest) == (3, True, v1.digest)
    assert [v.version for v in pl.versions(session, "grb-early")] == [1, 2, 3]
    old = pl.get_version(session, "grb-early", 1)
    old.comment = "rewritten"
    session.add(old)
    with pytest.raises(pl.PlanningConflictError, match="immutable"):
        session.commit()
    session.rollback()
    assert pl.get_version(session, "grb-early", 1).comment == ""
    with pytest.raises(pl.PlanningConflictError, match="immutable"):
        session.delete(pl.get_version(session, "grb-early", 2))
        session.commit()
    session.rollback()


def test_one_published_version_at_a_time(session: Session) -> None:
    _strategy(session)
    pl.add_version(session, "grb-early", _spec(exposure=30.0), by="bob")
    with pytest.raises(pl.PlanningNotFoundError, match="no published"):
        pl.published_version(session, "grb-early")
    pl.publish(session, "grb-early", 1, by="carol")
    assert pl.published_version(session, "grb-early").version == 1
    strat = pl.publish(session, "grb-early", 2, by="carol")
    assert strat.published_version == 2
    assert pl.published_version(session, "grb-early").content().exposures[0].exposure_s == 30.0
    with pytest.raises(pl.PlanningNotFoundError, match="no version 7"):
        pl.publish(session, "grb-early", 7, by="carol")
    assert pl.get_strategy(session, "grb-early").published_version == 2
    pl.publish(session, "grb-early", None, by="carol")
    with pytest.raises(pl.PlanningNotFoundError):
        pl.published_version(session, "grb-early")


def test_names_are_unique_and_filters_come_from_the_instrument_definition(
    session: Session,
) -> None:
    _strategy(session)
    with pytest.raises(pl.PlanningConflictError, match="exists"):
        _strategy(session)
    # DDRAGO-B's YAML lists g, r, i: a z exposure is refused, for a new version too
    with pytest.raises(pl.PlanningError, match="no filter z"):
        _strategy(session, "other", filters="gz")
    with pytest.raises(pl.PlanningError, match="no filter z"):
        pl.add_version(session, "grb-early", _spec(filters="z"), by="bob")
    assert [v.version for v in pl.versions(session, "grb-early")] == [1]


def _obs(target: str, start_h: float, end_h: float, **kw: object) -> pl.ObservationDraft:
    return pl.ObservationDraft(
        target=target,
        ra_deg=10.0,
        dec_deg=-5.0,
        start=T0 + timedelta(hours=start_h),
        end=T0 + timedelta(hours=end_h),
        strategy="grb-early",
        **kw,
    )


def _draft(*obs: pl.ObservationDraft, **kw: object) -> pl.PlanningDraft:
    fields: dict[str, object] = {
        "telescope": "COLIBRI",
        "instrument": "DDRAGO-B",
        "start": T0,
        "end": T0 + timedelta(hours=10),
        "observations": list(obs),
    }
    fields.update(kw)
    return pl.PlanningDraft.model_validate(fields)


def test_a_planning_keeps_the_version_it_was_made_with(session: Session) -> None:
    _strategy(session)
    with pytest.raises(pl.PlanningNotFoundError, match="no published"):
        pl.create_planning(session, _draft(_obs("GRB A", 1, 2)), by="alice")
    pl.publish(session, "grb-early", 1, by="alice")
    plan = pl.create_planning(
        session, _draft(_obs("GRB A", 1, 2), _obs("GRB B", 2, 3, strategy_version=1)), by="alice"
    )
    pl.add_version(session, "grb-early", _spec(exposure=10.0), by="bob")
    pl.publish(session, "grb-early", 2, by="bob")
    assert plan.id is not None
    obs = pl.observations(session, plan.id)
    assert [(o.target, o.strategy_version) for o in obs] == [("GRB A", 1), ("GRB B", 1)]
    later = pl.create_planning(session, _draft(_obs("GRB C", 4, 5)), by="alice")
    assert later.id is not None
    assert pl.observations(session, later.id)[0].strategy_version == 2
    # times come back as aware UTC whatever the database stores
    assert obs[0].start == T0 + timedelta(hours=1) and obs[0].start.tzinfo is not None
    pl.delete_planning(session, plan.id)
    with pytest.raises(pl.PlanningNotFoundError):
        pl.get_planning(session, plan.id)
    assert pl.observations(session, plan.id) == []


def test_plannings_refuse_overlaps_wrong_instrument_and_times_outside(session: Session) -> None:
    _strategy(session)
    pl.publish(session, "grb-early", 1, by="alice")
    with pytest.raises(pl.PlanningConflictError, match="overlap"):
        pl.create_planning(session, _draft(_obs("A", 1, 3), _obs("B", 2.5, 4)), by="alice")
    # end to start is not an overlap
    pl.create_planning(session, _draft(_obs("A", 1, 3), _obs("B", 3, 4)), by="alice")
    with pytest.raises(pl.PlanningError, match="is for COLIBRI/DDRAGO-B"):
        pl.create_planning(session, _draft(_obs("A", 1, 2), instrument="CAGIRE"), by="alice")
    with pytest.raises(ValueError, match="outside the planning span"):
        _draft(_obs("A", 9, 11))
    with pytest.raises(ValueError, match="time zone"):
        pl.ObservationDraft(
            target="A",
            ra_deg=1,
            dec_deg=1,
            start=datetime(2026, 1, 1),
            end=datetime(2026, 1, 2),
            strategy="grb-early",
        )
    with pytest.raises(ValueError, match="end after"):
        _obs("A", 2, 1)


def test_overlapping_pairs_matches_brute_force() -> None:
    rng = np.random.default_rng(18)
    for _ in range(200):
        n = int(rng.integers(0, 12))
        starts = rng.integers(0, 50, n)
        lengths = rng.integers(1, 10, n)
        windows = [
            (T0 + timedelta(minutes=int(s)), T0 + timedelta(minutes=int(s + d)))
            for s, d in zip(starts, lengths, strict=True)
        ]
        expected = sorted(
            (i, j)
            for i in range(n)
            for j in range(i + 1, n)
            if windows[i][0] < windows[j][1] and windows[j][0] < windows[i][1]
        )
        assert pl.overlapping_pairs(windows) == expected


def test_plannings_window_query_matches_brute_force(session: Session) -> None:
    _strategy(session)
    rng = np.random.default_rng(5)
    spans = []
    for k in range(30):
        start = T0 + timedelta(hours=int(rng.integers(-200, 200)))
        end = start + timedelta(hours=int(rng.integers(1, 48)))
        telescope_instrument = ("COLIBRI", "DDRAGO-B") if k % 3 else ("COLIBRI", "CAGIRE")
        pl.create_planning(
            session,
            pl.PlanningDraft(
                telescope=telescope_instrument[0],
                instrument=telescope_instrument[1],
                start=start,
                end=end,
                title=f"p{k}",
            ),
            by="alice",
        )
        spans.append((f"p{k}", start, end, telescope_instrument[1]))
    lo, hi = T0 - timedelta(hours=24), T0 + timedelta(hours=72)
    got = {p.title for p in pl.plannings(session, instrument="DDRAGO-B", start=lo, end=hi)}
    want = {t for t, s, e, inst in spans if inst == "DDRAGO-B" and e > lo and s < hi}
    assert got == want and want
    assert len(pl.plannings(session)) == 30


def test_two_editors_adding_a_version_at_once_one_is_told_to_reload(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _strategy(session)
    stale = pl.versions(session, "grb-early")  # what the second editor read: up to v1
    engine = session.get_bind()
    with Session(engine) as other:  # the first editor saves version 2 meanwhile
        pl.add_version(other, "grb-early", _spec(exposure=30.0), by="bob")
    monkeypatch.setattr(pl, "versions", lambda _s, _n: stale)
    with pytest.raises(pl.PlanningConflictError, match="version 2 of 'grb-early' was just added"):
        pl.add_version(session, "grb-early", _spec(exposure=45.0), by="carol")
    monkeypatch.undo()
    got = [(v.version, v.created_by) for v in pl.versions(session, "grb-early")]
    assert got == [(1, "alice"), (2, "bob")]
