"""Prefect's ``@flow`` for svomflow's flows, with the one change svomflow makes to its engine.

Every flow module imports ``flow`` from here rather than from ``prefect``, so that the
change below is in place before any of its flow runs starts (in a command, a served run's
process, the alert listener or a notebook).

**A flow run ends when its work ends.** Prefect (3.8) keeps a daemon thread beside each
flow run that emits its heartbeat events (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, 180 s by
default); the thread sleeps in one-second steps and a synchronous flow run joins it on exit,
so every run waits up to one more second (0.4-0.5 s measured on the VHF flow: a tenth of an
alert's latency budget). The asynchronous engine already leaves the thread without joining
it. Here the synchronous engine does the same: the heartbeats are unchanged, the thread sees
the stop at its next tick and returns without emitting, and as a daemon it never holds the
process. The change is made only where Prefect's function has the expected shape
(:func:`heartbeats_without_join`); otherwise Prefect is left as it is.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from prefect import flow
from prefect import flow_engine as _engine

__all__ = ["flow", "heartbeats_without_join"]


def heartbeats_without_join(original: Callable[..., Any]) -> Callable[..., Any] | None:
    """Return Prefect's heartbeat context with ``join_on_exit`` forced off (None: unknown shape)."""
    try:
        params = inspect.signature(original).parameters
    except (TypeError, ValueError):
        return None
    if "join_on_exit" not in params or getattr(original, "svomflow_no_join", False):
        return None

    @functools.wraps(original)
    @contextlib.contextmanager
    def no_join(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
        with original(engine, join_on_exit=False):
            yield

    no_join.svomflow_no_join = True  # type: ignore[attr-defined]
    return no_join


_original = getattr(_engine, "_send_heartbeats", None)
_changed = heartbeats_without_join(_original) if _original is not None else None
if _changed is not None:
    _engine._send_heartbeats = _changed
