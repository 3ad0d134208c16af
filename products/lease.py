"""Leases of the products database: who holds a reserved product or a running status, and for how long.

A process that reserves a product version (a ``pending`` row) or records a processing state
``running`` writes its owner (``host:pid:start time``) and a lease expiry on the row, and a
daemon heartbeat thread of that process renews the lease of every row it owns. A row whose
owner is known to be dead (same host, process gone) or whose lease expired was left by a
killed run: the store reconciles it at its next use (:mod:`svomflow.products.store`).
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine

__all__ = [
    "LEASE_ENV",
    "expired",
    "keep_alive",
    "lease_expiry",
    "lease_seconds",
    "owner_alive",
    "owner_id",
]

LEASE_ENV = "SVOMFLOW_LEASE_SECONDS"
_DEFAULT_LEASE = 60.0


def lease_seconds() -> float:
    """Return the lease length in seconds (``$SVOMFLOW_LEASE_SECONDS``, default 60)."""
    try:
        return max(1.0, float(os.environ.get(LEASE_ENV, _DEFAULT_LEASE)))
    except ValueError:
        return _DEFAULT_LEASE


def lease_expiry() -> datetime:
    """Return the expiry of a lease taken or renewed now."""
    return datetime.now(UTC) + timedelta(seconds=lease_seconds())


def _start_time(pid: int) -> str | None:
    """Return the start time of process ``pid`` (clock ticks since boot), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count from the last ")"
    return stat.rsplit(")", 1)[1].split()[19]


def owner_id() -> str:
    """Return this process's owner string ``host:pid:start`` (the start time defeats pid reuse)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or 0}"


def owner_alive(owner: str | None) -> bool | None:
    """Return whether the process that wrote ``owner`` still runs; None when it cannot be told.

    Only a process on this host can be checked (through ``/proc``); for another host the
    lease alone decides.
    """
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or not os.path.isdir("/proc/self"):
        return None
    now_start = _start_time(int(pid_text))
    return now_start is not None and (start == "0" or now_start == start)


def _aware(t: datetime) -> datetime:
    # SQLite and "timestamp without time zone" columns give naive UTC times back
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def expired(owner: str | None, lease_until: datetime | None, since: datetime) -> bool:
    """Return whether a lease is over: its owner is dead, or its expiry has passed.

    ``since`` (when the row was written) stands in for a missing expiry (rows written
    before leases existed): such a lease lasts :func:`lease_seconds` from it.
    """
    alive = owner_alive(owner)
    if alive is not None:
        return not alive
    until = (
        _aware(lease_until) if lease_until else _aware(since) + timedelta(seconds=lease_seconds())
    )
    return datetime.now(UTC) > until


class _Heartbeat(threading.Thread):
    """Renew the leases this process holds in one database until it holds none."""

    def __init__(self, engine: Engine, owner: str) -> None:
        super().__init__(name="svomflow-lease-heartbeat", daemon=True)
        self.engine, self.owner = engine, owner
        self.poked = False

    def _renew(self) -> int:
        from svomflow.products.database import ProcessingStatus, ProductRow

        until = lease_expiry()
        with self.engine.begin() as conn:
            n = conn.execute(
                update(ProductRow)
                .where(ProductRow.owner == self.owner)  # type: ignore[arg-type]
                .values(lease_until=until)
            ).rowcount
            n += conn.execute(
                update(ProcessingStatus)
                .where(ProcessingStatus.owner == self.owner)  # type: ignore[arg-type]
                .values(lease_until=until)
            ).rowcount
        return int(n)

    def run(self) -> None:
        key = (os.getpid(), str(self.engine.url))
        while True:
            threading.Event().wait(lease_seconds() / 3)
            try:
                held = self._renew()
            except Exception:  # a database hiccup: try again at the next beat
                held = 1
            with _LOCK:
                if held == 0 and not self.poked:
                    _BEATS.pop(key, None)
                    return
                self.poked = False


_LOCK = threading.Lock()
_BEATS: dict[tuple[int, str], _Heartbeat] = {}


def keep_alive(engine: Engine) -> None:
    """Make sure this process renews the leases it holds in ``engine``'s database."""
    key = (os.getpid(), str(engine.url))
    with _LOCK:
        beat = _BEATS.get(key)
        if beat is not None and beat.is_alive():
            beat.poked = True
            return
        beat = _Heartbeat(engine, owner_id())
        _BEATS[key] = beat
        beat.start()
