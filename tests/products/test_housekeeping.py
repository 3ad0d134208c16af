"""The housekeeping store: ingestion, rollups against a NumPy reference, queries, alarms.

Runs on SQLite and on PostgreSQL (a unique schema per test) when SVOMFLOW_TEST_POSTGRES_URL
is set.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session
from svomflow.products import housekeeping as hk
from svomflow.products.database import dispose_engines, make_engine

T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'products.db'}"
        dispose_engines()
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"hk_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    with Session(make_engine(db_url)) as s:
        yield s


def _define(session: Session) -> None:
    hk.upsert_parameters(
        session,
        [
            hk.ParameterDef(
                instrument="ECLAIRS",
                name="T_DPIX",
                unit="degC",
                category="temperature",
                soft_low=-25.0,
                soft_high=-15.0,
                hard_low=-30.0,
                hard_high=-10.0,
                persistence=3,
                hysteresis=0.5,
            ),
            hk.ParameterDef(instrument="ECLAIRS", name="HV", unit="V"),
        ],
    )


def _reference(t: np.ndarray, v: np.ndarray, width: float) -> dict[int, tuple]:
    """Per-bucket (n, mean, min, max) by plain Python grouping."""
    out: dict[int, list[float]] = {}
    for a, b in zip(t, v, strict=True):
        out.setdefault(int(np.floor(a / width)), []).append(b)
    return {k: (len(x), np.mean(x), min(x), max(x)) for k, x in out.items()}


def test_ingest_in_shuffled_batches_matches_reference_rollups(session: Session) -> None:
    _define(session)
    rng = np.random.default_rng(1)
    n = 30_000  # ~3.5 days at 10 s
    t = T0 + 10.0 * np.arange(n) + rng.uniform(0, 2, n)
    v = -20 + 2 * np.sin(t / 5400.0) + rng.normal(0, 0.3, n)
    # batches in random order, overlapping (a re-sent file): rollups must not double count
    order = rng.permutation(n)
    batches = np.array_split(order, 7)
    batches.append(order[:5000])
    total = dup = 0
    for idx in batches:
        r = hk.ingest(session, "eclairs", t[idx], {"T_DPIX": v[idx]})
        total += r.total
        dup += r.duplicates
    assert total == n and dup == 5000
    assert hk.count_samples(session, "ECLAIRS") == n
    # raw read back exactly
    tt, vv = hk.samples(session, "ECLAIRS", "T_DPIX", T0, T0 + 1e6)
    np.testing.assert_array_equal(tt, np.sort(t))
    np.testing.assert_array_equal(vv, v[np.argsort(t)])
    # a three-day window at 1000 points: the 10-min rollup merged by 3 -> 30 min points
    start, end = T0 + 3600.0, T0 + 3 * 86400.0 + 3600.0
    s = hk.series(session, "ECLAIRS", "T_DPIX", start, end, max_points=200)
    assert len(s) <= 200 and s.resolution_s >= 600
    inside = (t >= np.floor(start / s.resolution_s) * s.resolution_s) & (t < end)
    ref = _reference(t[inside] - 0.0, v[inside], s.resolution_s)
    assert len(ref) >= len(s) - 1
    for tc, mean, lo, hi, cnt in zip(s.times, s.mean, s.min, s.max, s.count, strict=True):
        key = int(np.floor((tc - s.resolution_s / 2) / s.resolution_s))
        if key not in ref:  # the last partial bucket reaches past `end`
            continue
        rn, rmean, rlo, rhi = ref[key]
        if int(cnt) != rn:
            # only the bucket cut by the window's end may hold more samples than the window
            assert tc + s.resolution_s / 2 > end
            continue
        assert rmean == pytest.approx(mean, abs=1e-9)
        assert (rlo, rhi) == (lo, hi)
    # the mean over the whole window is the sample-weighted mean of the points
    full = hk.series(session, "ECLAIRS", "T_DPIX", T0 - 10, T0 + 20 * 86400, max_points=50)
    assert int(full.count.sum()) == n
    assert np.sum(full.mean * full.count) / n == pytest.approx(v.mean(), rel=1e-12)
    assert full.min.min() == v.min() and full.max.max() == v.max()


def test_short_window_returns_raw_samples_and_datetimes(session: Session) -> None:
    _define(session)
    t = T0 + 10.0 * np.arange(100)
    hk.ingest(session, "ECLAIRS", t.astype("datetime64[s]"), {"HV": np.linspace(0, 99, 100)})
    s = hk.series(
        session,
        "ECLAIRS",
        "HV",
        datetime.fromtimestamp(T0 + 95, UTC),
        datetime.fromtimestamp(T0 + 505, UTC),
    )
    assert s.resolution_s == 0.0
    np.testing.assert_array_equal(s.mean, np.arange(10, 51, dtype=float))
    assert s.datetimes[0] == np.datetime64(int((T0 + 100) * 1000), "ms")
    with pytest.raises(hk.HousekeepingError, match="empty window"):
        hk.series(session, "ECLAIRS", "HV", T0 + 10, T0)


def test_undefined_parameters_are_kept_and_nan_skipped(session: Session) -> None:
    _define(session)
    r = hk.ingest(
        session,
        "ECLAIRS",
        [T0, T0 + 10, T0 + 20],
        {"T_DPIX": [-20.0, np.nan, -19.0], "I_NEW": [1.0, 2.0, 3.0]},
    )
    assert r.inserted == {"T_DPIX": 2, "I_NEW": 3} and r.invalid == 1
    assert r.created == ("I_NEW",)
    new = hk.get_parameter(session, "ECLAIRS", "I_NEW")
    assert not new.defined and new.soft_high is None
    with pytest.raises(hk.HousekeepingError, match=r"no housekeeping parameter 'NOPE'.*T_DPIX"):
        hk.get_parameter(session, "ECLAIRS", "NOPE")
    with pytest.raises(hk.HousekeepingError, match="2 values for 3 times"):
        hk.ingest(session, "ECLAIRS", [T0, T0 + 1, T0 + 2], {"HV": [1.0, 2.0]})


def test_latest_state_and_alarm_lifecycle(session: Session) -> None:
    _define(session)
    hk.ingest(session, "ECLAIRS", [T0, T0 + 10], {"T_DPIX": [-20.0, -12.0], "HV": [100, 101]})
    at = datetime.fromtimestamp(T0 + 10, UTC)
    soft = hk.raise_alarm(
        session, "ECLAIRS", "T_DPIX", "soft", at, -12.0, limit=-15.0, message="above soft high"
    )
    got = {lv.definition.name: lv for lv in hk.latest(session, "ECLAIRS")}
    assert got["T_DPIX"].state == "soft" and got["T_DPIX"].value == -12.0
    assert got["T_DPIX"].time == at and got["T_DPIX"].alarm is not None
    assert got["T_DPIX"].alarm.id == soft.id
    assert got["HV"].state == "ok" and got["HV"].alarm is None
    hard = hk.raise_alarm(session, "ECLAIRS", "T_DPIX", "hard", at, -9.0, limit=-10.0)
    assert hk.latest(session, "ECLAIRS")[1].alarm.id == hard.id  # the most severe shows
    assert hk.active_alarm(session, "ECLAIRS", "T_DPIX", "soft").id == soft.id
    # acknowledge: recorded with name and time, once
    ack_at = at + timedelta(minutes=5)
    a = hk.acknowledge(session, soft.id, "Ada Duty", ack_at)
    assert (a.state, a.acknowledged_by, a.acknowledged_at) == ("acknowledged", "Ada Duty", ack_at)
    with pytest.raises(hk.AlarmError, match="already acknowledged by Ada Duty"):
        hk.acknowledge(session, soft.id, "Bob", ack_at)
    with pytest.raises(hk.AlarmError, match="no alarm with id 9999"):
        hk.acknowledge(session, 9999, "Bob", ack_at)
    c = hk.clear_alarm(session, hard.id, at + timedelta(hours=1))
    assert c.state == "cleared" and c.cleared_at == at + timedelta(hours=1)
    with pytest.raises(hk.AlarmError, match="already cleared"):
        hk.clear_alarm(session, hard.id, at + timedelta(hours=2))
    # a cleared alarm nobody acknowledged keeps its state but records the acknowledgement
    c2 = hk.acknowledge(session, hard.id, "Bob", at + timedelta(hours=3))
    assert c2.state == "cleared" and c2.acknowledged_by == "Bob"
    assert [x.id for x in hk.alarms(session, "ECLAIRS", active=True)] == [soft.id]
    assert [x.id for x in hk.alarms(session, state="cleared")] == [hard.id]
    assert hk.alarms(session, "COLIBRI") == []
    # since: alarms cleared before it are left out, open ones kept
    later = at + timedelta(hours=2)
    assert [x.id for x in hk.alarms(session, since=later)] == [soft.id]
    with pytest.raises(hk.HousekeepingError, match="unknown alarm state"):
        hk.alarms(session, state="open")


def test_schema_created_by_concurrent_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'products.db'}"
    code = (
        "import sys\n"
        "from sqlmodel import Session\n"
        "from svomflow.products import housekeeping as hk, duty\n"
        "from svomflow.products.database import make_engine\n"
        "with Session(make_engine(sys.argv[1])) as s:\n"
        "    hk.ingest(s, 'COLIBRI', [float(sys.argv[2])], {'WIND': [3.0]})\n"
        "    duty.shifts(s)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url, str(T0 + i)], stderr=subprocess.PIPE)
        for i in range(4)
    ]
    errs = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errs
    engine = create_engine(url)
    names = set(inspect(engine).get_table_names())
    assert {"hk_parameters", "hk_samples", "hk_rollups", "hk_alarms", "duty_shifts"} <= names
    with Session(engine) as s:
        assert hk.count_samples(s, "COLIBRI") == 4
        assert len(hk.parameters(s, "COLIBRI")) == 1  # one definition, not one per process
    engine.dispose()


def test_rollups_only_history_and_pruned_raw_samples_still_plot(session: Session) -> None:
    _define(session)
    rng = np.random.default_rng(4)
    t = T0 + 10.0 * np.arange(20_000)
    v = rng.normal(-20, 1, t.size)
    # the first half loaded as rollups only (bulk history), the second half raw
    r = hk.ingest(session, "ECLAIRS", t[:10_000], {"T_DPIX": v[:10_000]}, keep_raw=False)
    assert r.total == 10_000 and hk.count_samples(session) == 0
    hk.ingest(session, "ECLAIRS", t[10_000:], {"T_DPIX": v[10_000:]})
    # a 2-hour window of the history: 720 samples, no raw ones: 1-min bins from the rollups
    s = hk.series(session, "ECLAIRS", "T_DPIX", T0, T0 + 7200 - 1)
    assert s.resolution_s == 60 and int(s.count.sum()) == 720
    assert s.mean[0] == pytest.approx(v[:6].mean(), abs=1e-12)
    # the same window in the raw half: the samples themselves
    late = T0 + 100_000 * 1.5
    assert hk.series(session, "ECLAIRS", "T_DPIX", late, late + 7200).resolution_s == 0
    # pruning the raw samples before `late` keeps the whole series in the rollups
    assert hk.prune_samples(session, late) == int((t[10_000:] < late).sum())
    full = hk.series(session, "ECLAIRS", "T_DPIX", T0, T0 + 3 * 86400, max_points=100)
    assert int(full.count.sum()) == t.size
    assert np.sum(full.mean * full.count) / t.size == pytest.approx(v.mean(), rel=1e-12)
