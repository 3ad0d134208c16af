"""Live updates: server-sent events at ``/events`` from the database, whoever wrote it.

Pages subscribe with ``EventSource("/events")`` (``static/app.js``) and refresh their live
part when an event of a kind they show arrives. The stream polls the database about once a
second, so a product, a processing status or an alarm written by ANOTHER process (a flow,
the housekeeping ingester) reaches open pages as well as what this server does:

- ``product``: a new product version (``products`` table, once its file is complete);
- ``status``: a processing state change (``processing_status``);
- ``alarm``: an alarm raised, acknowledged or cleared (``products.housekeeping``);
- any kind given to :func:`publish` (``web_events`` table), e.g. ``duty`` or ``strategy``.

Each poll looks back a short window and remembers what it sent, so rows committed a little
after their timestamp (a long write) are not lost, and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from svomflow.products.database import ProcessingStatus, ProductRow
from svomflow.web.auth import CurrentUser, require_roles
from svomflow.web.db import engine_for
from svomflow.web.models import WebEvent

__all__ = ["Event", "WebEvent", "poll_events", "publish", "router"]

router = APIRouter()

# how far back each poll looks for rows committed after their timestamp
LOOKBACK = timedelta(minutes=15)
HEARTBEAT_S = 15.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One server-sent event: its kind, JSON payload and the instrument it concerns."""

    kind: str
    data: dict[str, Any]
    instrument: str | None = None

    def encode(self) -> str:
        """Return the event in the text/event-stream format."""
        return f"event: {self.kind}\ndata: {json.dumps(self.data, default=str)}\n\n"


def publish(
    kind: str,
    data: BaseModel | Mapping[str, Any],
    database_url: str | None = None,
    engine: Engine | None = None,
) -> None:
    """Send an event of ``kind`` to every open page, from any process.

    Parameters
    ----------
    kind
        Event name (letters, digits, ``_``); pages listen by kind.
    data
        Payload: a pydantic model or a JSON-able mapping. An ``instrument`` key limits the
        event to users who see that instrument.
    database_url, engine
        Where to write (default: the products database).
    """
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else dict(data)
    payload = json.loads(json.dumps(payload, default=str))
    engine = engine or engine_for(database_url)
    with Session(engine) as s:
        s.add(WebEvent(kind=kind, data=payload))
        # a day is plenty for pages that poll every second
        old = s.exec(select(WebEvent).where(WebEvent.created < _now() - timedelta(days=1)))
        for row in old:
            s.delete(row)
        s.commit()


Source = Callable[[Session, datetime], list[tuple[Any, Event]]]


def _products(s: Session, since: datetime) -> list[tuple[Any, Event]]:
    rows = s.exec(
        select(ProductRow)
        .where(ProductRow.created >= since)
        .where(ProductRow.checksum != "pending")
    )
    return [
        (
            ("p", r.id),
            Event(
                "product",
                {
                    "id": r.id,
                    "type_code": r.type_code,
                    "instrument": r.instrument,
                    "obs_id": r.obs_id,
                    "version": r.version,
                },
                r.instrument,
            ),
        )
        for r in rows
    ]


def _statuses(s: Session, since: datetime) -> list[tuple[Any, Event]]:
    rows = s.exec(select(ProcessingStatus).where(ProcessingStatus.updated >= since))
    return [
        (
            ("s", r.id, r.state, str(r.updated)),
            Event(
                "status",
                {"key": r.key, "flow_name": r.flow_name, "state": r.state, "reason": r.reason},
            ),
        )
        for r in rows
    ]


def _published(s: Session, since: datetime) -> list[tuple[Any, Event]]:
    rows = s.exec(select(WebEvent).where(WebEvent.created >= since).order_by(col(WebEvent.id)))
    return [(("e", r.id), Event(r.kind, dict(r.data), r.data.get("instrument"))) for r in rows]


def _alarms(s: Session, since: datetime) -> list[tuple[Any, Event]]:
    from sqlalchemy import or_
    from svomflow.products.housekeeping import Alarm

    rows = s.exec(
        select(Alarm).where(
            or_(
                col(Alarm.raised_at) >= since,
                col(Alarm.acknowledged_at) >= since,
                col(Alarm.cleared_at) >= since,
            )
        )
    )
    return [
        (
            ("a", r.id, r.state),
            Event(
                "alarm",
                {
                    "id": r.id,
                    "instrument": r.instrument,
                    "parameter": r.parameter,
                    "level": r.level,
                    "state": r.state,
                    "message": r.message,
                },
                r.instrument,
            ),
        )
        for r in rows
    ]


SOURCES: tuple[Source, ...] = (_products, _statuses, _alarms, _published)


@dataclass
class _Cursor:
    """What one stream has seen: signatures of rows inside the look-back window."""

    seen: dict[Any, float] = field(default_factory=dict)


def poll_events(engine: Engine, cursor: _Cursor, emit: bool = True) -> list[Event]:
    """Return the events not yet sent on this cursor (and remember them).

    ``emit=False`` only records what is there (a new stream starts from now).
    """
    since = _now() - LOOKBACK
    fresh: list[Event] = []
    now = time.time()
    with Session(engine) as s:
        for source in SOURCES:
            for sig, event in source(s, since):
                if sig not in cursor.seen:
                    cursor.seen[sig] = now
                    if emit:
                        fresh.append(event)
    horizon = now - 2 * LOOKBACK.total_seconds()
    for sig in [k for k, t in cursor.seen.items() if t < horizon]:
        del cursor.seen[sig]
    return fresh


@router.get("/events", include_in_schema=False)
async def events(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    max_s: Annotated[float | None, Query(gt=0, le=3600, description="end the stream after")] = None,
) -> StreamingResponse:
    """Stream the site's live events (text/event-stream) to a signed-in page."""
    from svomflow.web.visibility import can_see

    engine: Engine = request.app.state.engine
    poll_s: float = request.app.state.settings.events_poll_s
    cursor = _Cursor()
    await anyio.to_thread.run_sync(lambda: poll_events(engine, cursor, emit=False))

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        started = last_beat = time.monotonic()
        while True:
            if await request.is_disconnected():
                return
            fresh = await anyio.to_thread.run_sync(lambda: poll_events(engine, cursor))
            for event in fresh:
                if event.instrument is None or can_see(user, event.instrument):
                    yield event.encode()
            if time.monotonic() - last_beat > HEARTBEAT_S:
                last_beat = time.monotonic()
                yield ": ping\n\n"
            if max_s is not None and time.monotonic() - started > max_s:
                return
            await asyncio.sleep(poll_s)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
