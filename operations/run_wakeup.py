"""Start a served run as soon as it is scheduled, not at the runner's next poll.

Prefect's runner (``svomflow serve``) finds the runs to start by polling the API every
``query_seconds`` (with a 30 % jitter): a run created by an alert waits half a poll interval
on average before its process starts. The Prefect server also publishes an event for each
state a flow run enters (``prefect.flow-run.Scheduled`` when an alert, the UI or a schedule
creates one) on its events stream. :func:`serve_with_wakeup` runs the runner with one more
task that listens to that stream and makes the runner poll at once when a run is scheduled.

The polling stays: it is what finds the runs if the stream is down (a server without it,
a dropped connection while it reconnects), so a missed event costs one poll interval, never
a run. The poll this triggers is the runner's own (``ScheduledRunPoller``): the same query,
the same concurrency limit, the same guard against submitting one run twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["SCHEDULED_EVENT", "serve_with_wakeup", "wake_on_scheduled"]

SCHEDULED_EVENT = "prefect.flow-run.Scheduled"
"""The event the Prefect server emits when a flow run enters the Scheduled state."""


def _poll_now(runner: Any) -> Callable[[], Awaitable[None]] | None:
    """Return the runner's own poll-and-submit coroutine function (None before it started)."""
    # Prefect 3.x internals: the runner's poller exists once ``Runner.start`` entered its
    # context; ``_get_and_submit_flow_runs`` is the workload of its polling loop
    poller = getattr(runner, "_scheduled_run_poller", None)
    if poller is None or not getattr(runner, "started", False):
        return None
    poll = getattr(poller, "_get_and_submit_flow_runs", None)
    return poll if callable(poll) else None


async def wake_on_scheduled(runner: Any, say: Callable[[str], None]) -> None:
    """Make ``runner`` poll each time the server says a flow run was scheduled.

    Runs until cancelled. If the events stream cannot be read (or the runner has no poller
    of the expected shape), ``say`` is told once and the runner keeps its polling alone.
    """
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    poll = _poll_now(runner)
    while poll is None:  # the runner enters its context in the same event loop
        await asyncio.sleep(0.05)
        poll = _poll_now(runner)
    scheduled = EventFilter(event=EventNameFilter(name=[SCHEDULED_EVENT]))
    try:
        async with get_events_subscriber(filter=scheduled, reconnection_attempts=10**6) as events:
            say("runs start when scheduled (Prefect events stream), polling kept as fallback")
            async for _event in events:
                await poll()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the stream is an accelerator: polling still finds every run
        say(f"no Prefect events stream ({type(exc).__name__}: {exc}); runs start at each poll")


async def serve_with_wakeup(runner: Any, say: Callable[[str], None]) -> None:
    """Run ``runner.start()`` with :func:`wake_on_scheduled` beside it; return when it stops."""
    waker = asyncio.ensure_future(wake_on_scheduled(runner, say))
    try:
        await runner.start()
    finally:
        waker.cancel()
        await asyncio.gather(waker, return_exceptions=True)
