"""The alert ledger's two-stage claims and the listener's retry rules (no NATS needed).

The defect of issue 15: a claim was a bare "received" row, so a listener killed between
claiming and recording the run left a claim that made the redelivered message look like a
duplicate. A claim now keeps the message until its run is recorded; only a recorded run
makes a duplicate, and pending claims can be listed, taken over and replayed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from svomflow.operations.alerts.ledger import AlertLedger, ledger_key
from svomflow.operations.alerts.listener import (
    ListenerSettings,
    Route,
    _Listener,
    _route_for,
    _subject_matches,
)
from svomflow.products.database import ProcessingStatus

FLOW = "alert_ingest"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AlertLedger:
    """A ledger on a new SQLite file, or on the test PostgreSQL database."""
    if request.param == "postgres":
        return AlertLedger(request.getfixturevalue("postgres_url"))
    return AlertLedger(f"sqlite:///{tmp_path / 'products.db'}")


@pytest.fixture
def uid() -> str:
    """A unique alert id prefix (the PostgreSQL database is shared between runs)."""
    return f"ivo://test#{uuid.uuid4().hex[:12]}"


def test_a_claim_without_a_run_is_not_a_duplicate(ledger: AlertLedger, uid: str) -> None:
    first = ledger.claim(uid, FLOW, "svom.alert.eclairs", '{"id": 1}')
    assert first.new and not first.submitted
    # the listener is killed here; the message comes back
    again = ledger.claim(uid, FLOW, "svom.alert.eclairs", '{"id": 1}')
    assert not again.new and not again.submitted  # dispatch again, do not drop
    (pending,) = [c for c in ledger.pending([FLOW]) if c.alert_id == uid]
    assert (pending.alert_id, pending.subject, pending.payload) == (
        uid,
        "svom.alert.eclairs",
        '{"id": 1}',
    )
    ledger.submitted(uid, FLOW, "run-1", "flow run run-1")
    dup = ledger.claim(uid, FLOW, "svom.alert.eclairs", '{"id": 1}')
    assert dup.submitted and dup.flow_run_id == "run-1"
    assert uid not in {c.alert_id for c in ledger.pending([FLOW])}
    ledger.release(uid, FLOW)  # a recorded run is never released
    assert ledger.get(uid, FLOW).flow_run_id == "run-1"


def test_an_expired_claim_is_taken_over_once(ledger: AlertLedger, uid: str) -> None:
    ledger.claim(uid, FLOW, "s", "p")
    assert not ledger.take_over(uid, FLOW, lease_s=60)  # fresh: its listener is alive
    with Session(ledger.engine) as s:  # the listener died 2 min ago
        row = ledger._get(s, uid, FLOW)
        row.updated = datetime.now(UTC) - timedelta(seconds=120)
        s.add(row)
        s.commit()
    assert uid in {c.alert_id for c in ledger.pending([FLOW], older_than_s=60)}
    assert ledger.take_over(uid, FLOW, lease_s=60)
    assert not ledger.take_over(uid, FLOW, lease_s=60)  # the second listener loses
    assert uid not in {c.alert_id for c in ledger.pending([FLOW], older_than_s=60)}


def test_claims_of_older_listeners_have_no_message(ledger: AlertLedger, uid: str) -> None:
    with Session(ledger.engine) as s:
        s.add(
            ProcessingStatus(key=ledger_key(uid), flow_name=FLOW, state="received", reason="via s")
        )
        s.commit()
    (claim,) = [c for c in ledger.pending([FLOW]) if c.alert_id == uid]
    # the listener's reconciliation releases it, so the message's redelivery runs it
    assert claim.payload is None and claim.subject is None


@pytest.mark.parametrize(
    ("pattern", "subject", "match"),
    [
        ("svom.alert.eclairs", "svom.alert.eclairs", True),
        ("svom.alert.*", "svom.alert.mxt", True),
        ("svom.alert.*", "svom.alert.mxt.x", False),
        ("svom.>", "svom.alert.mxt", True),
        ("svom.>", "svom", False),
        ("svom.alert.grm", "svom.alert.eclairs", False),
    ],
)
def test_subject_matching(pattern: str, subject: str, match: bool) -> None:
    assert _subject_matches(pattern, subject) is match


def test_route_for_a_replayed_claim() -> None:
    routes = [Route(subject="a.*", instrument="eclairs"), Route(subject="b", instrument="mxt")]
    assert _route_for(routes, "a.x", FLOW) is routes[0]
    assert _route_for(routes, "b", FLOW) is routes[1]
    assert _route_for(routes, "c", FLOW) is None and _route_for(routes, None, FLOW) is None


class _Msg:
    def __init__(self, n: int) -> None:
        self.metadata = type("M", (), {"num_delivered": n})()


def test_retry_delay_doubles_and_is_capped(tmp_path: Path) -> None:
    settings = ListenerSettings(
        database_url=f"sqlite:///{tmp_path / 'p.db'}", retry_delay_s=1, max_retry_delay_s=10
    )
    listener = _Listener(settings, None)
    assert [listener.retry_delay(_Msg(n)) for n in (1, 2, 3, 4, 5, 50)] == [1, 2, 4, 8, 10, 10]
    # the consumer never gives up on a message by default
    assert settings.max_deliver == -1


def test_direct_runs_do_not_starve_the_ledger_calls(tmp_path: Path) -> None:
    """Direct-mode runs have their own threads: with more runs going than asyncio's default
    executor has threads, the listener's own calls (claims, lease renewals) still run."""
    import asyncio
    import os
    import threading

    busy = min(32, (os.cpu_count() or 1) + 4) + 1  # more than the default executor holds
    settings = ListenerSettings(
        database_url=f"sqlite:///{tmp_path / 'p.db'}", direct_concurrency=busy
    )
    listener = _Listener(settings, None)
    release = threading.Event()
    assert listener.runs._max_workers == busy

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        runs = [loop.run_in_executor(listener.runs, release.wait) for _ in range(busy)]
        try:
            # a ledger-like call on the default executor while every run slot is taken
            return await asyncio.wait_for(asyncio.to_thread(lambda: 42), timeout=10)
        finally:
            release.set()
            await asyncio.gather(*runs)

    try:
        assert asyncio.run(scenario()) == 42
    finally:
        listener.runs.shutdown(wait=True)


def test_a_direct_run_executes_on_the_run_threads(tmp_path: Path, monkeypatch) -> None:
    """dispatch() in direct mode runs the flow on the listener's run threads, not asyncio's."""
    import asyncio
    import threading
    import uuid

    import prefect.flow_engine
    from svomflow.operations.alerts.dispatch import LocalRun
    from svomflow.operations.alerts.listener import DEFAULT_ROUTES

    settings = ListenerSettings(database_url=f"sqlite:///{tmp_path / 'p.db'}", mode="direct")
    listener = _Listener(settings, None)
    seen: list[str] = []
    run_id = uuid.uuid4()

    async def create_local_run(flow, params, **kw):
        return LocalRun(type("Run", (), {"id": run_id})(), finished=False)

    monkeypatch.setattr(listener.deployments, "create_local_run", create_local_run)
    monkeypatch.setattr(
        prefect.flow_engine,
        "run_flow",
        lambda *a, **k: seen.append(threading.current_thread().name),
    )
    alert = type("A", (), {"trigger_id": "sb1", "alert_id": "a1"})()
    try:
        got = asyncio.run(listener.dispatch(DEFAULT_ROUTES[0], alert, {}))
    finally:
        listener.runs.shutdown(wait=True)
    assert got == str(run_id)
    assert len(seen) == 1 and seen[0].startswith("svomflow-alert-run")
