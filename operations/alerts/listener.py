"""``svomflow listen``: NATS JetStream alerts -> flow runs, each alert at most once.

One durable pull consumer per routed subject: alerts published while the listener is down
wait in the stream and are delivered when it comes back. For each message: parse and
validate (VOEvent or JSON); a malformed one is logged, copied to the dead-letter subject
with the reason and terminated (never redelivered, never crashes the loop). A valid one is
claimed in the ledger (duplicates stop here), its flow run is submitted — a deployment run
(``run_deployment`` with ``timeout=0``: a served deployment or a worker executes it) or,
in ``direct`` mode, the flow itself in a worker thread — and only then acknowledged. If the
submission fails the claim is released and the message is redelivered after a delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field
from svomflow.errors import ConfigError
from svomflow.flows.registry import get_spec
from svomflow.operations.alerts.ledger import AlertLedger
from svomflow.products.alert_messages import Alert, AlertFormatError, parse_alert

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

__all__ = [
    "DEFAULT_ROUTES",
    "ListenerSettings",
    "Route",
    "flow_parameters",
    "load_listener_settings",
    "run_listener",
]

log = logging.getLogger("svomflow.operations.alerts")

# Values of Route.parameter_map that are not Alert fields.
_SPECIAL = {"@alert", "@payload", "@subject", "@instrument"}
_INGEST_MAP = {
    "burst_id": "trigger_id",
    "alert": "@alert",
    "payload": "@payload",
    "instrument": "@instrument",
    "subject": "@subject",
}


class Route(BaseModel):
    """Which flow an alert subject starts, and how alert fields become flow parameters."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(description="NATS subject (wildcards allowed)")
    flow: str = Field(default="alert", description="registered flow name or alias")
    instrument: str = Field(description="instrument that sends these alerts")
    parameter_map: dict[str, str] = Field(
        default_factory=lambda: dict(_INGEST_MAP),
        description="flow parameter -> Alert field, or @alert/@payload/@subject/@instrument",
    )
    parameters: dict[str, Any] = Field(default_factory=dict, description="fixed parameters")


DEFAULT_ROUTES = (
    Route(subject="svom.alert.eclairs", instrument="eclairs"),
    Route(subject="svom.alert.grm", instrument="grm"),
    Route(subject="svom.alert.mxt", instrument="mxt"),
)


class ListenerSettings(BaseModel):
    """Settings of the alert listener (YAML file, command-line options)."""

    model_config = ConfigDict(extra="forbid")

    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    stream: str = "SVOM_ALERTS"
    durable: str = "svomflow-listener"
    routes: list[Route] = Field(default_factory=lambda: [r.model_copy() for r in DEFAULT_ROUTES])
    dead_letter_subject: str = "svom.deadletter"
    mode: Literal["deployment", "direct"] = "deployment"
    accept_roles: list[str] = Field(default_factory=lambda: ["observation", "test"])
    database_url: str | None = None
    ack_wait_s: float = 120.0
    max_deliver: int = 5
    retry_delay_s: float = 5.0
    duplicate_window_s: float = 120.0


def load_listener_settings(path: str | Path | None = None, **overrides: Any) -> ListenerSettings:
    """Read listener settings from a YAML file (optional) with keyword overrides on top."""
    data: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: listener settings must be a mapping")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ListenerSettings.model_validate(data)
    except Exception as exc:
        raise ConfigError(f"invalid listener settings: {exc}") from None


def flow_parameters(route: Route, alert: Alert, payload: str, subject: str) -> dict[str, Any]:
    """Build the flow parameters of an alert from the route's mapping."""
    specials = {
        "@alert": alert.model_dump(mode="json"),
        "@payload": payload,
        "@subject": subject,
        "@instrument": route.instrument,
    }
    params: dict[str, Any] = {}
    for name, source in route.parameter_map.items():
        if source in _SPECIAL:
            params[name] = specials[source]
        elif source in Alert.model_fields:
            value = getattr(alert, source)
            params[name] = value.isoformat() if hasattr(value, "isoformat") else value
        else:
            raise ConfigError(f"route {route.subject}: unknown alert field {source!r}")
    params.update(route.parameters)
    return params


def _durable_name(base: str, subject: str) -> str:
    return f"{base}-{re.sub(r'[^A-Za-z0-9_-]', '_', subject)}"[:120]


Dispatcher = Callable[[Route, Alert, dict[str, Any]], Any]


class _Listener:
    def __init__(self, settings: ListenerSettings, on_event: Callable[[str, dict], None] | None):
        self.settings = settings
        self.ledger = AlertLedger(settings.database_url)
        self.on_event = on_event or (lambda kind, info: None)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.subs: list[Any] = []

    async def dispatch(self, route: Route, alert: Alert, params: dict[str, Any]) -> str | None:
        spec = get_spec(route.flow)
        run_name = f"{spec.alias}-{alert.trigger_id}"
        if self.settings.mode == "deployment":
            from prefect.client.orchestration import get_client
            from prefect.deployments import run_deployment

            # an explicit client, closed here: the listener's loop may end before the
            # process does (a cached one would leak its connection)
            async with get_client() as client:
                # in a running loop Prefect's dual sync/async call returns a coroutine
                flow_run = await cast(
                    "Awaitable[FlowRun]",
                    run_deployment(
                        spec.deployment_name,
                        client=client,
                        parameters=params,
                        timeout=0,
                        flow_run_name=run_name,
                        idempotency_key=f"alert:{alert.alert_id}:{spec.name}",
                        tags=["alert", route.instrument],
                        as_subflow=False,
                    ),
                )
            return str(flow_run.id)
        flow = spec.load().with_options(flow_run_name=run_name)
        state = await asyncio.to_thread(flow, **params, return_state=True)
        run_id = getattr(state, "state_details", None)
        return str(run_id.flow_run_id) if run_id is not None else None

    async def handle(self, msg: Any, route: Route) -> None:
        received = time.time()
        payload_bytes = bytes(msg.data)
        try:
            alert = parse_alert(payload_bytes)
            if alert.role not in self.settings.accept_roles:
                raise AlertFormatError(f"role {alert.role!r} is not accepted by this listener")
            params = flow_parameters(route, alert, payload_bytes.decode("utf-8"), msg.subject)
        except (AlertFormatError, ConfigError, UnicodeDecodeError) as exc:
            await self.reject(msg, str(exc))
            return
        spec = get_spec(route.flow)
        claimed = await asyncio.to_thread(
            self.ledger.claim, alert.alert_id, spec.name, f"via {msg.subject}"
        )
        if not claimed:
            log.info(
                "alert %s already handled for %s: duplicate ignored", alert.alert_id, spec.name
            )
            await msg.ack()
            self.on_event("duplicate", {"alert_id": alert.alert_id})
            return
        try:
            run_id = await self.dispatch(route, alert, params)
        except Exception as exc:  # API down, deployment missing: retry later
            log.error("could not start %s for alert %s: %s", spec.name, alert.alert_id, exc)
            await asyncio.to_thread(self.ledger.release, alert.alert_id, spec.name)
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.settings.retry_delay_s)
            self.on_event("dispatch_failed", {"alert_id": alert.alert_id, "error": str(exc)})
            return
        await asyncio.to_thread(
            self.ledger.submitted, alert.alert_id, spec.name, run_id, f"flow run {run_id}"
        )
        await msg.ack()
        latency = time.time() - received
        log.info("alert %s -> %s run %s (%.3f s)", alert.alert_id, spec.name, run_id, latency)
        self.on_event(
            "submitted",
            {"alert_id": alert.alert_id, "flow_run_id": run_id, "latency_s": latency},
        )

    async def reject(self, msg: Any, reason: str) -> None:
        log.warning("rejected message on %s: %s", msg.subject, reason)
        headers = {"Svomflow-Reason": reason[:500], "Svomflow-Subject": msg.subject}
        try:
            await self.js.publish(self.settings.dead_letter_subject, msg.data, headers=headers)
        except Exception as exc:
            log.error("could not copy a rejected message to the dead-letter subject: %s", exc)
        with contextlib.suppress(Exception):
            await msg.term()
        self.on_event("rejected", {"subject": msg.subject, "reason": reason})

    async def ensure_stream(self) -> None:
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        subjects = [r.subject for r in self.settings.routes] + [self.settings.dead_letter_subject]
        config = StreamConfig(
            name=self.settings.stream,
            subjects=subjects,
            duplicate_window=self.settings.duplicate_window_s,
        )
        try:
            info = await self.js.stream_info(self.settings.stream)
        except NotFoundError:
            await self.js.add_stream(config)
            return
        have = set(info.config.subjects or [])
        if not set(subjects) <= have:
            info.config.subjects = sorted(have | set(subjects))
            await self.js.update_stream(info.config)

    async def consume(self, route: Route, stop: asyncio.Event) -> None:
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait_s,
            max_deliver=self.settings.max_deliver,
        )
        sub = await self.js.pull_subscribe(
            route.subject,
            durable=_durable_name(self.settings.durable, route.subject),
            stream=self.settings.stream,
            config=config,
        )
        self.subs.append(sub)
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch=10, timeout=0.5)
            except (TimeoutError, NatsTimeout):
                continue
            for msg in msgs:
                # each message in its own task: a slow direct-mode run does not hold others
                task = asyncio.create_task(self._safe_handle(msg, route))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _safe_handle(self, msg: Any, route: Route) -> None:
        try:
            await self.handle(msg, route)
        except Exception as exc:  # never let one message stop the listener
            log.exception("unexpected error on a message of %s", msg.subject)
            self.on_event("error", {"subject": msg.subject, "error": str(exc)})

    async def run(self, stop: asyncio.Event) -> None:
        import nats

        self.nc = await nats.connect(
            servers=self.settings.servers, max_reconnect_attempts=-1, reconnect_time_wait=1
        )
        self.js = self.nc.jetstream()
        try:
            await self.ensure_stream()
            consumers = [asyncio.create_task(self.consume(r, stop)) for r in self.settings.routes]
            self.on_event("ready", {"subjects": [r.subject for r in self.settings.routes]})
            await stop.wait()
            await asyncio.gather(*consumers, return_exceptions=True)
            if self.tasks:  # let submitted work finish its acknowledgement
                await asyncio.gather(*list(self.tasks), return_exceptions=True)
        finally:
            # unsubscribing keeps the durable consumers (they live in the server); drain()
            # would wait for the pull requests still pending and time out
            for sub in self.subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await self.nc.close()


async def run_listener(
    settings: ListenerSettings,
    stop: asyncio.Event | None = None,
    on_event: Callable[[str, dict], None] | None = None,
) -> None:
    """Listen until ``stop`` is set (forever when None).

    ``on_event(kind, info)`` is called on "ready", "submitted", "duplicate", "rejected",
    "dispatch_failed" and "error" (for status displays and tests).
    """
    for route in settings.routes:
        get_spec(route.flow)  # unknown flows fail at start, not on the first alert
    await _Listener(settings, on_event).run(stop or asyncio.Event())
