"""svomflow's Prefect server: SQLite transactions take the write lock first, no 503 on creation.

Prefect's deferred SQLite transactions fail at once (SQLITE_BUSY, the API answers 503, the
client waits 2 s) when another connection commits between their read and their write;
:mod:`svomflow.operations.prefect_server_main` begins them ``IMMEDIATE``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from svomflow.operations import prefect_server_main
from svomflow.operations.local_server import SERVER_MODULE


def _read_then_write(db: Path, begin: Any) -> tuple[int, bool]:
    """Run transaction A (read, another connection writes, then A writes).

    Returns the rows at the end and whether the other writer had committed before A wrote
    (it is given up to 2 s). Raises what A's write raises when SQLite refuses to upgrade
    A's stale snapshot.
    """
    import sqlalchemy as sa
    from prefect.server.database.configurations import AioSqliteConfiguration

    async def scenario() -> tuple[int, bool]:
        config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{db}")
        engine = await config.engine()
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        first, second = await config.session(engine), await config.session(engine)

        async def other_writer() -> None:
            async with begin(config, second):
                await second.execute(sa.text("INSERT INTO t VALUES (2)"))

        try:
            async with begin(config, first):
                await first.execute(sa.text("SELECT count(*) FROM t"))  # A's snapshot
                writer = asyncio.create_task(other_writer())
                # deferred: the other commits now; immediate: it waits for A's lock
                await asyncio.wait({writer}, timeout=2.0)
                before = writer.done()
                await first.execute(sa.text("INSERT INTO t VALUES (1)"))
            await writer
            async with engine.connect() as conn:
                rows = (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one()
            return int(rows), before
        finally:
            await first.close()
            await second.close()
            await engine.dispose()

    return asyncio.run(scenario())


def test_prefect_deferred_transaction_fails_on_a_stale_snapshot(tmp_path: Path) -> None:
    """The failure the change removes, as Prefect leaves it (guards the test's premise)."""
    import sqlalchemy as sa
    from prefect.server.database.configurations import AioSqliteConfiguration

    with pytest.raises(sa.exc.OperationalError, match="database is locked"):
        _read_then_write(tmp_path / "deferred.db", AioSqliteConfiguration.begin_transaction)


def test_immediate_transactions_queue_instead_of_failing(tmp_path: Path) -> None:
    from prefect.server.database.configurations import AioSqliteConfiguration

    begin = prefect_server_main.immediate_transactions(AioSqliteConfiguration.begin_transaction)
    assert begin is not None
    rows, other_first = _read_then_write(tmp_path / "immediate.db", begin)
    # both transactions committed: the other writer waited for A's lock (busy timeout)
    assert (rows, other_first) == (2, False)


def test_unknown_shapes_are_left_alone() -> None:
    from prefect.server.database.configurations import AioSqliteConfiguration

    assert prefect_server_main.immediate_transactions(lambda session: session) is None
    once = prefect_server_main.immediate_transactions(AioSqliteConfiguration.begin_transaction)
    assert once is not None
    assert prefect_server_main.immediate_transactions(once) is None  # never wrapped twice


def test_the_local_server_runs_through_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from svomflow.operations import local_server

    seen: dict[str, Any] = {}

    class FakePopen:
        def __init__(self, cmd: list[str], **kw: Any) -> None:
            seen["cmd"] = cmd

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    local_server.launch_server("127.0.0.1", 4317, {"PATH": "/bin"}, None)
    assert seen["cmd"][1:5] == ["-m", SERVER_MODULE, "server", "start"]
    assert SERVER_MODULE == prefect_server_main.__name__


def test_flow_runs_back_to_back_are_created_without_a_retry(use_prefect_server: str) -> None:
    """On the real server: no 503 (and no 2 s wait) when flow runs follow each other.

    With Prefect's flow-run heartbeats on, as users run flows (the test session turns them
    off): against Prefect's own server, each run after the first was created after a 503.
    """
    from prefect import task
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from svomflow.flows.prefect_flow import flow

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow(name="svomflow-test-back-to-back")
    def small(n: int) -> int:
        return sum(double(i) for i in range(n))

    retried: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "retryable" in record.getMessage():
                retried.append(record.getMessage())

    log = logging.getLogger("prefect.client")
    handler, level = Catch(logging.DEBUG), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 180}):
            assert [small(k) for k in (3, 4, 5, 6)] == [6, 12, 20, 30]
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        # the runs' logs reach the server before the session's server stops
        APILogWorker.drain_all(timeout=10)
    assert retried == []
