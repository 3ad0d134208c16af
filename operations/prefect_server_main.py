"""Prefect's ``prefect server start``, with its SQLite transactions taking the write lock first.

svomflow starts every local Prefect server (the home's, the tests', the benchmarks') as
``python -m svomflow.operations.prefect_server_main server start ...``
(:func:`svomflow.operations.local_server.launch_server`): Prefect's own command line, run
after the one change below. On PostgreSQL nothing changes.

**Why.** Prefect's server on SQLite opens a transaction with ``BEGIN DEFERRED`` (``BEGIN
IMMEDIATE`` only where it locks rows for an update). A deferred transaction that reads and
then writes, while another connection of the server committed in between (the event
persister, the task-run recorder, another request), cannot upgrade its read snapshot:
SQLite answers SQLITE_BUSY at once, without waiting for the busy timeout (waiting could not
help: the snapshot is stale for good). The API answers 503 and Prefect's client retries
after 2 s (± 20 %). Measured with Prefect 3.8.8 and its flow-run heartbeats on (the
default): short flow runs run back to back waited 1.7-2.2 s at every creation after the
first (on a fresh server as on the home's), and in ``bench_alert_latency`` one or two
alerts in 20 were claimed 1.7-2.4 s late (``docs/operations.md``).

**The change.** Every transaction of the server begins ``IMMEDIATE``: it takes SQLite's
write lock when it starts, so no upgrade is ever needed, and concurrent writers queue on
the busy timeout (60 s in Prefect) instead of failing. Reads outside a transaction (most
of the API's reads, the UI's polling) are unchanged, and readers never wait for a writer
in SQLite's WAL mode. The price is that transactions that only read now wait for a
writer too; Prefect's transactions are short (milliseconds), and the server has one
process. The change is made only where Prefect's ``begin_transaction`` still has the
shape it was written for (:func:`immediate_transactions`); otherwise the server starts
unchanged and says so on its log.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["immediate_transactions", "install", "main"]


def immediate_transactions(original: Callable[..., Any]) -> Callable[..., Any] | None:
    """Return ``begin_transaction`` that always begins ``IMMEDIATE`` (None: unknown shape).

    ``original`` is Prefect's ``AioSqliteConfiguration.begin_transaction(self, session,
    with_for_update=False)``, an async context manager that begins ``IMMEDIATE`` when
    ``with_for_update`` is true and ``DEFERRED`` otherwise.
    """
    try:
        params = list(inspect.signature(original).parameters)
    except (TypeError, ValueError):
        return None
    if params[:3] != ["self", "session", "with_for_update"] or getattr(
        original, "svomflow_immediate", False
    ):
        return None

    @contextlib.asynccontextmanager
    async def begin_immediate(
        self: Any, session: Any, with_for_update: bool = False
    ) -> AsyncIterator[Any]:
        async with original(self, session, with_for_update=True) as transaction:
            yield transaction

    begin_immediate.svomflow_immediate = True  # type: ignore[attr-defined]
    begin_immediate.__doc__ = original.__doc__
    return begin_immediate


def install() -> bool:
    """Make Prefect's SQLite configuration begin every transaction ``IMMEDIATE``; return whether it did."""
    from prefect.server.database.configurations import AioSqliteConfiguration

    changed = immediate_transactions(AioSqliteConfiguration.begin_transaction)
    if changed is None:
        return False
    AioSqliteConfiguration.begin_transaction = changed  # type: ignore[method-assign]
    return True


def main() -> None:
    """Run Prefect's command line (``server start ...``, from ``sys.argv``) after :func:`install`."""
    if not install():
        print(
            "svomflow: this Prefect's SQLite transactions have an unknown shape: "
            "left as they are (concurrent writes may answer 503 and be retried after 2 s)",
            file=sys.stderr,
            flush=True,
        )
    from prefect.cli import app

    app()


if __name__ == "__main__":
    main()
