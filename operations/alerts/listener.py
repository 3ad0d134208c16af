"""``svomflow listen``: NATS JetStream alerts -> flow runs, each valid alert exactly once.

One durable pull consumer per routed subject: alerts published while the listener is down
wait in the stream and are delivered when it comes back. For each message: parse and
validate (VOEvent or JSON); a malformed one is logged, copied to the dead-letter subject
with the reason and terminated (never redelivered, never crashes the loop). A valid one is
claimed in the ledger and its flow run is created with the alert's identity as idempotency
key (a repeated dispatch returns the same run): in ``deployment`` mode a run of the served
deployment, which the serving process executes in a fresh interpreter; in ``direct`` mode a
run executed here, in a worker thread of this long-lived process whose imports and numba
kernels stay loaded (the warm path: docs/operations.md, "Alert latency"). The run is
recorded with the claim, and only then is the message acknowledged.

Exactly once, under kills and outages:

* a claim that already has its run makes the message a duplicate (acknowledged, no run);
* a claim without a run (the listener was killed between claim and record) is dispatched
  again when the message comes back — idempotent in deployment mode; in direct mode only
  after the claim's lease, renewed while a run goes on, expired, and then the same run is
  executed again unless it had finished;
* a failed submission (Prefect API down) is negatively acknowledged with a delay that
  doubles up to ``max_retry_delay_s``; the consumer never gives up on a message
  (``max_deliver = -1``), so an outage of any length loses nothing;
* at start, and then every ``reconcile_every_s``, the claims left without a run are
  replayed from the message kept in the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from svomflow.errors import ConfigError
from svomflow.flows.registry import get_spec
from svomflow.operations.alerts.dispatch import DeploymentDispatcher
from svomflow.operations.alerts.ledger import AlertLedger
from svomflow.products.alert_messages import Alert, AlertFormatError, parse_alert

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
    max_deliver: int = Field(
        default=-1,
        description="deliveries of a message before JetStream gives up (-1: never; a finite"
        " value can drop alerts while the Prefect API is down)",
    )
    retry_delay_s: float = Field(default=2.0, gt=0, description="first retry delay (doubles)")
    max_retry_delay_s: float = Field(default=60.0, gt=0, description="cap of the retry delay")
    claim_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="direct mode: a claim not renewed for this long is taken over",
    )
    dispatch_concurrency: int = Field(default=4, ge=1, description="run creations in flight")
    direct_concurrency: int = Field(
        default=2,
        ge=1,
        description="direct mode: flow runs executing at once in this process (one per core)",
    )
    reconcile_every_s: float = Field(
        default=60.0, gt=0, description="how often claims without a run are replayed"
    )
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


def _subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, tok in enumerate(want):
        if tok == ">":
            return len(have) > i
        if i >= len(have) or (tok != "*" and tok != have[i]):
            return False
    return len(want) == len(have)


def _route_for(routes: list[Route], subject: str | None, flow_name: str) -> Route | None:
    """Return the route that sent ``subject`` to the flow ``flow_name``, if any."""
    for route in routes:
        if subject and _subject_matches(route.subject, subject):
            if get_spec(route.flow).name == flow_name:
                return route
    return None


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
        self.deployments = DeploymentDispatcher(settings.dispatch_concurrency)
        # direct runs get their own threads: on asyncio's default executor (a few threads)
        # long flow runs would starve the ledger calls (claims, lease renewals, acks)
        self.runs = ThreadPoolExecutor(
            settings.direct_concurrency, thread_name_prefix="svomflow-alert-run"
        )

    async def dispatch(self, route: Route, alert: Alert, params: dict[str, Any]) -> str | None:
        spec = get_spec(route.flow)
        run_name = f"{spec.alias}-{alert.trigger_id}"
        key = f"alert:{alert.alert_id}:{spec.name}"
        if self.settings.mode == "deployment":
            return await self.deployments.create_run(
                spec.deployment_name,
                params,
                name=run_name,
                idempotency_key=key,
                tags=["alert", route.instrument],
            )
        # direct: the run is created under the same key, then executed in this process,
        # warm (imports and compiled kernels loaded), as one tracked Prefect flow run
        from prefect.flow_engine import run_flow

        flow = spec.load()
        local = await self.deployments.create_local_run(
            flow,
            params,
            name=run_name,
            idempotency_key=key,
            tags=["alert", route.instrument],
        )
        if not local.finished:
            run = functools.partial(
                run_flow, flow, flow_run=local.flow_run, parameters=params, return_type="state"
            )
            # in the caller's context, as asyncio.to_thread would
            await asyncio.get_running_loop().run_in_executor(
                self.runs, contextvars.copy_context().run, run
            )
        return local.id

    def retry_delay(self, msg: Any) -> float:
        """Delay before a failed message comes back: doubles per delivery, capped."""
        try:
            n = int(msg.metadata.num_delivered)
        except (AttributeError, TypeError, ValueError):  # a message without JetStream metadata
            n = 1
        base = self.settings.retry_delay_s * 2 ** min(max(n - 1, 0), 10)
        return float(min(self.settings.max_retry_delay_s, base))

    async def handle(self, msg: Any, route: Route) -> None:
        received = time.time()
        payload_bytes = bytes(msg.data)
        try:
            alert = parse_alert(payload_bytes)
            if alert.role not in self.settings.accept_roles:
                raise AlertFormatError(f"role {alert.role!r} is not accepted by this listener")
            payload = payload_bytes.decode("utf-8")
            params = flow_parameters(route, alert, payload, msg.subject)
        except (AlertFormatError, ConfigError, UnicodeDecodeError) as exc:
            await self.reject(msg, str(exc))
            return
        spec = get_spec(route.flow)
        claim = await asyncio.to_thread(
            self.ledger.claim, alert.alert_id, spec.name, msg.subject, payload
        )
        if claim.submitted:
            log.info(
                "alert %s already ran for %s (flow run %s): duplicate ignored",
                alert.alert_id,
                spec.name,
                claim.flow_run_id,
            )
            await msg.ack()
            self.on_event(
                "duplicate", {"alert_id": alert.alert_id, "flow_run_id": claim.flow_run_id}
            )
            return
        if not claim.new and not await self.may_redispatch(alert.alert_id, spec.name):
            # direct mode: a live listener is running this alert; look again later
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.retry_delay(msg))
            self.on_event("busy", {"alert_id": alert.alert_id})
            return
        try:
            run_id = await self.dispatch_and_record(route, alert, params, msg)
        except Exception as exc:  # API down, deployment missing: retry later, never drop
            delay = self.retry_delay(msg)
            log.error(
                "could not start %s for alert %s (retrying in %.0f s): %s",
                spec.name,
                alert.alert_id,
                delay,
                exc,
            )
            if self.settings.mode == "direct":  # our lease ends here: a redelivery reclaims
                await asyncio.to_thread(self.ledger.release, alert.alert_id, spec.name)
            with contextlib.suppress(Exception):
                await msg.nak(delay=delay)
            self.on_event("dispatch_failed", {"alert_id": alert.alert_id, "error": str(exc)})
            return
        await msg.ack()
        latency = time.time() - received
        log.info("alert %s -> %s run %s (%.3f s)", alert.alert_id, spec.name, run_id, latency)
        self.on_event(
            "submitted",
            {
                "alert_id": alert.alert_id,
                "flow_run_id": run_id,
                "latency_s": latency,
                "redispatched": not claim.new,
            },
        )

    async def may_redispatch(self, alert_id: str, flow_name: str) -> bool:
        """Whether a pending claim (no run recorded) may be dispatched again by us.

        In deployment mode always: the idempotency key makes Prefect return the run that a
        killed listener may already have created. In direct mode only once the claim's
        lease expired (its listener is gone), and then by one listener only.
        """
        if self.settings.mode == "deployment":
            return True
        lease = self.settings.claim_lease_s
        return await asyncio.to_thread(self.ledger.take_over, alert_id, flow_name, lease)

    async def dispatch_and_record(
        self, route: Route, alert: Alert, params: dict[str, Any], msg: Any | None
    ) -> str | None:
        """Start the alert's run and record it in the ledger (renewing the lease meanwhile)."""
        spec = get_spec(route.flow)

        async def heartbeat() -> None:
            period = max(self.settings.claim_lease_s / 3, 0.1)
            while True:
                await asyncio.sleep(period)
                await asyncio.to_thread(self.ledger.renew, alert.alert_id, spec.name)
                if msg is not None:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

        beat = asyncio.create_task(heartbeat())
        try:
            run_id = await self.dispatch(route, alert, params)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        await asyncio.to_thread(
            self.ledger.submitted, alert.alert_id, spec.name, run_id, f"flow run {run_id}"
        )
        return run_id

    async def reconcile(self, min_age_s: float = 0.0) -> int:
        """Dispatch the claims left without a run (a listener killed mid-way); return how many.

        Claims of older listeners that did not keep the message are released, so the
        message's redelivery starts the run.
        """
        flows = sorted({get_spec(r.flow).name for r in self.settings.routes})
        pending = await asyncio.to_thread(self.ledger.pending, flows, min_age_s)
        done = 0
        for claim in pending:
            route = _route_for(self.settings.routes, claim.subject, claim.flow_name)
            if claim.payload is None or route is None:
                log.warning(
                    "claim of alert %s for %s has no message to replay: released",
                    claim.alert_id,
                    claim.flow_name,
                )
                await asyncio.to_thread(self.ledger.release, claim.alert_id, claim.flow_name)
                continue
            if not await self.may_redispatch(claim.alert_id, claim.flow_name):
                continue
            try:
                alert = parse_alert(claim.payload.encode("utf-8"))
                params = flow_parameters(route, alert, claim.payload, claim.subject or "")
                run_id = await self.dispatch_and_record(route, alert, params, None)
            except Exception as exc:  # left pending: the next pass or a redelivery retries
                log.error("could not replay the claim of alert %s: %s", claim.alert_id, exc)
                continue
            done += 1
            log.info("replayed alert %s -> %s run %s", claim.alert_id, claim.flow_name, run_id)
            self.on_event("recovered", {"alert_id": claim.alert_id, "flow_run_id": run_id})
        return done

    async def reconcile_forever(self, stop: asyncio.Event) -> None:
        """Reconcile at start, then every ``reconcile_every_s`` until ``stop``.

        At start every pending claim is replayed (direct mode: once its lease expired);
        later passes take the claims older than the acknowledgement wait, whose message
        JetStream should have redelivered by then.
        """
        age = 0.0
        while not stop.is_set():
            try:
                await self.reconcile(age)
            except Exception as exc:  # the database may be briefly unavailable
                log.error("alert reconciliation failed: %s", exc)
            age = max(self.settings.ack_wait_s, self.settings.claim_lease_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.reconcile_every_s)

    async def reject(self, msg: Any, reason: str) -> None:
        log.warning("rejected message on %s: %s", msg.subject, reason)
        headers = {"Svomflow-Reason": reason[:500], "Svomflow-Subject": msg.subject}
        with contextlib.suppress(Exception):
            # a redelivery (listener killed before term) is copied once, not twice
            meta = msg.metadata
            headers["Nats-Msg-Id"] = f"dead:{meta.stream}:{meta.sequence.stream}"
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
        await self.update_consumer(sub, config)
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

    async def update_consumer(self, sub: Any, config: Any) -> None:
        """Bring a durable consumer made by an older listener to our delivery settings."""
        try:
            info = await sub.consumer_info()
            if (info.config.max_deliver or -1) == config.max_deliver and (
                info.config.ack_wait == config.ack_wait
            ):
                return
            info.config.max_deliver = config.max_deliver
            info.config.ack_wait = config.ack_wait
            await self.js.add_consumer(self.settings.stream, config=info.config)
            log.info("consumer %s updated (max_deliver %s)", info.name, config.max_deliver)
        except Exception as exc:
            log.warning("could not update the consumer's delivery settings: %s", exc)

    async def _safe_handle(self, msg: Any, route: Route) -> None:
        try:
            await self.handle(msg, route)
        except Exception as exc:  # never let one message stop the listener
            log.exception("unexpected error on a message of %s", msg.subject)
            self.on_event("error", {"subject": msg.subject, "error": str(exc)})

    async def run(self, stop: asyncio.Event) -> None:
        import nats

        if self.settings.mode == "direct":
            # the flows run in this process: import them before the first alert does
            await asyncio.to_thread(lambda: [get_spec(r.flow).load() for r in self.settings.routes])
        self.nc = await nats.connect(
            servers=self.settings.servers, max_reconnect_attempts=-1, reconnect_time_wait=1
        )
        self.js = self.nc.jetstream()
        try:
            await self.ensure_stream()
            if self.settings.max_deliver > 0:
                log.warning(
                    "max_deliver=%d: an alert is dropped if its run cannot be created in %d"
                    " deliveries",
                    self.settings.max_deliver,
                    self.settings.max_deliver,
                )
            consumers = [asyncio.create_task(self.consume(r, stop)) for r in self.settings.routes]
            consumers.append(asyncio.create_task(self.reconcile_forever(stop)))
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
            await self.deployments.close()
            self.runs.shutdown(wait=False)


async def run_listener(
    settings: ListenerSettings,
    stop: asyncio.Event | None = None,
    on_event: Callable[[str, dict], None] | None = None,
) -> None:
    """Listen until ``stop`` is set (forever when None).

    ``on_event(kind, info)`` is called on "ready", "submitted", "duplicate", "rejected",
    "dispatch_failed", "busy" (a direct-mode claim held by a live listener), "recovered" (a
    claim without a run replayed by the reconciliation) and "error" (for status displays
    and tests).
    """
    for route in settings.routes:
        get_spec(route.flow)  # unknown flows fail at start, not on the first alert
    # one line per HTTP request to the Prefect API drowns the listener's own log
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    await _Listener(settings, on_event).run(stop or asyncio.Event())
