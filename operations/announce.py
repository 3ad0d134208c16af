"""``svomflow announce``: the relay that sends the announcement outbox to NATS JetStream.

Every product version committed in the products database has its announcement in the
outbox (written in the same transaction, :mod:`svomflow.products.announcements`). Flows send
it right after the commit when ``$SVOMFLOW_NATS_SERVERS`` is set; this relay is the long-running
guarantee: at start it sends whatever a crash or a NATS outage left pending, then it polls
the outbox and sends new rows as they are committed. A resent message (a process killed
between the send and the mark) carries the same ``Nats-Msg-Id`` and is dropped by JetStream,
so each version reaches a consumer once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select
from svomflow.products.announcements import (
    BusSettings,
    connect_bus,
    send_pending,
    send_pending_async,
)
from svomflow.products.database import OutboxRow, make_engine

__all__ = ["OutboxCounts", "RelaySettings", "outbox_counts", "relay_once", "run_relay"]

log = logging.getLogger("svomflow.operations.announce")


@dataclass(frozen=True)
class RelaySettings:
    """Settings of the relay: the bus, the products database and how often to look."""

    bus: BusSettings = field(default_factory=BusSettings)
    database_url: str | None = None
    poll_s: float = 0.5
    retry_s: float = 2.0


@dataclass(frozen=True)
class OutboxCounts:
    """How many announcements are pending and sent, and the oldest pending one's time."""

    pending: int
    sent: int
    oldest_pending: datetime | None
    last_error: str | None


def outbox_counts(database_url: str | None = None) -> OutboxCounts:
    """Return the state of the outbox of a products database."""
    engine = make_engine(database_url)
    with Session(engine) as s:
        pending = s.exec(
            select(func.count(), func.min(OutboxRow.created)).where(
                col(OutboxRow.sent_at).is_(None)
            )
        ).one()
        sent = s.exec(
            select(func.count()).select_from(OutboxRow).where(col(OutboxRow.sent_at).is_not(None))
        ).one()
        err = s.exec(
            select(OutboxRow.last_error)
            .where(col(OutboxRow.sent_at).is_(None), col(OutboxRow.last_error).is_not(None))
            .order_by(col(OutboxRow.id).desc())
        ).first()
    return OutboxCounts(int(pending[0]), int(sent), pending[1], err)


def relay_once(settings: RelaySettings) -> int:
    """Send every pending announcement once; return how many were sent (raises on failure)."""
    return send_pending(make_engine(settings.database_url), settings.bus)


async def run_relay(
    settings: RelaySettings,
    stop: asyncio.Event | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> None:
    """Send pending announcements until ``stop`` is set (forever when None).

    ``on_event(kind, info)`` is called with "ready" (connected; ``pending`` rows found at
    start), "sent" (``count`` rows in one pass) and "error" (a pass failed; retried after
    ``retry_s``).
    """
    stop = stop or asyncio.Event()
    notify = on_event or (lambda kind, info: None)
    engine = make_engine(settings.database_url)
    nc: Any = None
    first = True
    try:
        while not stop.is_set():
            delay = settings.poll_s
            try:
                if nc is None or nc.is_closed:
                    nc = await connect_bus(settings.bus)
                if first:
                    counts = await asyncio.to_thread(outbox_counts, settings.database_url)
                    notify("ready", {"pending": counts.pending, "stream": settings.bus.stream})
                    first = False
                n = await send_pending_async(engine, settings.bus, nc.jetstream())
                if n:
                    log.info("sent %d announcement(s)", n)
                    notify("sent", {"count": n})
            except Exception as exc:  # NATS or the database briefly away: rows stay pending
                log.error(
                    "announcements left pending (retrying in %.0f s): %s", settings.retry_s, exc
                )
                notify("error", {"error": str(exc) or type(exc).__name__})
                delay = settings.retry_s
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()
                    nc = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
