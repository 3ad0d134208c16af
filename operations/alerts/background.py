"""Run the alert listener in a background thread, and publish alerts (notebooks, tests, tools)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Sequence
from typing import Any

from svomflow.operations.alerts.listener import ListenerSettings, run_listener

__all__ = ["BackgroundListener", "publish_alert"]


class BackgroundListener:
    """The listener on its own event loop in a daemon thread, recording its events.

    The thread runs in a copy of the caller's context, so Prefect settings made with
    ``temporary_settings`` (the API URL of a test server, say) apply to it.
    """

    def __init__(self, settings: ListenerSettings):
        self.settings = settings
        self.events: list[tuple[str, dict[str, Any], float]] = []
        self._lock = threading.Lock()

    def _on_event(self, kind: str, info: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((kind, info, time.time()))

    def start(self, timeout: float = 15.0) -> BackgroundListener:
        """Start listening; return once the consumers are subscribed."""
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        ctx = contextvars.copy_context()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(
                run_listener(self.settings, self.stop_event, on_event=self._on_event)
            )

        self.thread = threading.Thread(target=ctx.run, args=(main,), daemon=True)
        self.thread.start()
        self.wait_for("ready", 1, timeout=timeout)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the consumers (durable consumers stay on the server) and join the thread."""
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=timeout)
        if self.thread.is_alive():
            raise RuntimeError("the listener did not stop")
        self.loop.close()

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Events of one kind so far ("submitted", "duplicate", "rejected", ...)."""
        with self._lock:
            return [info for k, info, _ in self.events if k == kind]

    def wait_for(self, kind: str, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until ``n`` events of ``kind`` happened; raise TimeoutError otherwise."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.of(kind)
            if len(got) >= n:
                return got
            if not self.thread.is_alive():
                raise RuntimeError(f"the listener stopped; events: {self.events}")
            time.sleep(0.05)
        raise TimeoutError(f"waited {timeout} s for {n} {kind!r} events; got {self.events}")


def publish_alert(
    servers: Sequence[str] | str,
    subject: str,
    payload: str | bytes,
    msg_id: str | None = None,
) -> None:
    """Publish an alert to JetStream (``msg_id`` sets ``Nats-Msg-Id`` for deduplication)."""

    async def go() -> None:
        import nats

        nc = await nats.connect(servers if isinstance(servers, str) else list(servers))
        try:
            data = payload.encode() if isinstance(payload, str) else payload
            headers = {"Nats-Msg-Id": msg_id} if msg_id else None
            await nc.jetstream().publish(subject, data, headers=headers)
        finally:
            await nc.close()

    asyncio.run(go())
