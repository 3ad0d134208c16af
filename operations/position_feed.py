"""GP1's position feed: the burst's position announcements, the best one at each moment, to GP1.

A JetStream durable pull consumer reads the position announcements
(``svomflow.product.<TYPE>.<INSTRUMENT>``, :mod:`svomflow.products.announcements`): the
ECLAIRs quick position ``QPO``, the X-band ``PO``, the MXT ``SRCLIST``, and any position
product declared later. Each becomes an
:class:`~svomflow.tasks.gp1.alert_position.AlertPosition` of its burst (the announcement's
``obs_id``), offered to that burst's :class:`~svomflow.tasks.gp1.alert_position.BestPosition`.
The state is written to a JSON file before the message is acknowledged, so a restarted feed
has every position it acknowledged and JetStream re-delivers the others: none is lost.

GP1 takes the best position between images: :func:`guided_processor` wraps a GP1 watcher
processor (:mod:`svomflow.operations.gp1_watch`) so that each image's run gets the best
position of the image's burst (its ``TRIGID``) in ``GP1Config.alert_position``; the bench
and scripts call :meth:`PositionFeed.configure` the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from svomflow.products.announcements import (
    STREAM,
    ProductAnnouncement,
    parse_announcement,
    subject_filter,
)
from svomflow.products.ccd_frames import read_image_header
from svomflow.tasks.gp1.alert_position import AlertPosition, BestPosition
from svomflow.tasks.gp1.config import GP1Config

__all__ = [
    "FeedSettings",
    "FeedThread",
    "FlowStages",
    "PositionFeed",
    "guided_processor",
    "position_from_announcement",
    "run_feed",
]

log = logging.getLogger("svomflow.operations.position_feed")

#: GP1's own transient position is a result of the follow-up, not a position to guide it.
_OWN_TYPES = ("OTPO",)


def position_from_announcement(
    ann: ProductAnnouncement, exclude_types: tuple[str, ...] = _OWN_TYPES
) -> AlertPosition | None:
    """Return the position an announcement carries, or None (no position, or GP1's own)."""
    pos = ann.position
    if pos is None or ann.type_code in exclude_types or pos.error_radius_deg <= 0:
        return None
    return AlertPosition(
        burst_id=ann.obs_id,
        ra_deg=pos.ra_deg,
        dec_deg=pos.dec_deg,
        error_radius_arcmin=pos.error_radius_deg * 60.0,
        confidence=min(pos.error_confidence, 0.999999),
        source=f"{ann.type_code}_{ann.instrument}",
        product_id=ann.product_id,
        version=ann.version,
        link=ann.url,
        issued=ann.created,
    )


@dataclass
class PositionFeed:
    """The best position of every burst seen, kept in memory and in a JSON state file.

    Thread-safe: the subscription thread offers positions, GP1 runs read them.
    """

    state_file: Path | None = None
    exclude_types: tuple[str, ...] = _OWN_TYPES
    bursts: dict[str, BestPosition] = field(default_factory=dict)
    on_change: Callable[[AlertPosition], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.state_file is not None and Path(self.state_file).is_file():
            doc = json.loads(Path(self.state_file).read_text())
            for burst, items in doc.get("bursts", {}).items():
                best = self.bursts.setdefault(burst, BestPosition(burst))
                for item in items:
                    best.update(AlertPosition.model_validate(item))

    def offer(self, position: AlertPosition) -> bool:
        """Take a position of a burst into account; return whether its best one changed."""
        with self._lock:
            best = self.bursts.setdefault(position.burst_id, BestPosition(position.burst_id))
            changed = best.update(position)
            self._save()
        if changed:
            log.info("best position of %s: %s", position.burst_id, position.label())
            if self.on_change is not None:
                self.on_change(position)
        return changed

    def offer_announcement(self, ann: ProductAnnouncement) -> bool:
        """Offer the position an announcement carries (none: nothing changes)."""
        pos = position_from_announcement(ann, self.exclude_types)
        return False if pos is None else self.offer(pos)

    def best(self, burst_id: str) -> AlertPosition | None:
        """Return the best position of a burst so far (None before any)."""
        with self._lock:
            b = self.bursts.get(burst_id)
            return None if b is None else b.best

    def configure(self, cfg: GP1Config, burst_id: str) -> GP1Config:
        """Return ``cfg`` with the burst's best position as its ``alert_position`` (if any)."""
        pos = self.best(burst_id)
        if pos is None or pos == cfg.alert_position:
            return cfg
        return cfg.model_copy(update={"alert_position": pos})

    def _save(self) -> None:
        if self.state_file is None:
            return
        path = Path(self.state_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "bursts": {
                b: [p.model_dump(mode="json") for p in best.current.values()]
                for b, best in self.bursts.items()
            }
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, path)  # atomic: a killed feed leaves the old state or the new


def guided_processor(
    processor: Callable[[Path, GP1Config], Any], feed: PositionFeed
) -> Callable[[Path, GP1Config], Any]:
    """Wrap a GP1 watcher processor: each image runs with its burst's best position so far.

    The burst is the image's alert keyword (``TRIGID``); an image without one, or of a
    burst without a position yet, runs with the configuration as it is.
    """

    def process(path: Path, cfg: GP1Config) -> Any:
        try:
            trig = str(read_image_header(path).get(cfg.alert_keyword, "")).strip()
        except Exception:  # the processor reports an unreadable image itself
            trig = ""
        return processor(path, feed.configure(cfg, trig) if trig else cfg)

    return process


@dataclass(frozen=True)
class FeedSettings:
    """Where the feed listens: NATS servers, the stream, the subjects and its durable name."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str = STREAM
    subject: str = subject_filter()
    durable: str = "svomflow-gp1-positions"
    connect_timeout_s: float = 2.0
    #: only announcements sent after the consumer is made (a bench run); else all of them
    new_only: bool = False


async def run_feed(
    feed: PositionFeed,
    settings: FeedSettings,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    """Consume position announcements into ``feed`` until ``stop`` is set.

    The durable consumer delivers every announcement of the stream it has not acknowledged
    (all of them the first time); each is acknowledged after the feed's state is saved. A
    message that is not an announcement is acknowledged and logged (it would never parse).
    """
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    async def quiet(_exc: Exception) -> None:  # the caller reports a failure once
        return None

    # no reconnection: a lost server ends the call (FeedThread starts it again), and a
    # server that is not there fails at once instead of being retried for ever
    nc = await nats.connect(
        servers=list(settings.servers),
        connect_timeout=settings.connect_timeout_s,
        allow_reconnect=False,
        max_reconnect_attempts=1,  # 0 would retry the first connection for ever
        error_cb=quiet,
    )
    try:
        js = nc.jetstream()
        durable = re.sub(r"[^A-Za-z0-9_-]", "_", settings.durable)[:120]
        sub = await js.pull_subscribe(
            settings.subject,
            durable=durable,
            stream=settings.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW if settings.new_only else DeliverPolicy.ALL,
                ack_wait=30,
            ),
        )
        if ready is not None:
            ready.set()
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch=50, timeout=0.3)
            except (TimeoutError, NatsTimeout):
                continue
            for msg in msgs:
                try:
                    ann = parse_announcement(msg.data)
                except ValidationError as exc:
                    log.warning("%s: not a product announcement: %s", msg.subject, exc)
                else:
                    await asyncio.to_thread(feed.offer_announcement, ann)
                await msg.ack()
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


class FeedThread:
    """Run :func:`run_feed` in a background thread (the watcher's and the bench's way)."""

    def __init__(self, feed: PositionFeed, settings: FeedSettings | None = None) -> None:
        self.feed = feed
        self.settings = settings or FeedSettings()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name="svomflow-position-feed", daemon=True
        )

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready = asyncio.Event()
            task = asyncio.create_task(run_feed(self.feed, self.settings, self._stop, ready))
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # subscribed; a failure to connect is raised below
                self._ready.set()
            waiter.cancel()
            while True:
                try:
                    await task
                    return
                except Exception as exc:
                    if not self._ready.is_set():
                        raise
                    # the connection was lost: the durable consumer resumes where it was
                    log.warning("position feed interrupted (%s); reconnecting", exc)
                    await asyncio.sleep(1.0)
                    if self._stop.is_set():
                        return
                    task = asyncio.create_task(run_feed(self.feed, self.settings, self._stop))

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            self._ready.set()

    def start(self, timeout_s: float = 10.0) -> FeedThread:
        """Start the thread and wait until the consumer is subscribed (raises its error)."""
        self._thread.start()
        self._ready.wait(timeout_s)
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop consuming and wait for the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)


class FlowStages:
    """The links of the bench's alert loop (:mod:`svomflow.operations.alert_loop`), as flows.

    VHF and MXT run as Prefect flows whose products are announced on the bus (the products
    store sends its outbox after each commit when ``$SVOMFLOW_NATS_SERVERS`` is set; this sets
    it); a :class:`PositionFeed` subscribed from the start (new announcements only) holds the
    burst's best position; GP1 runs image by image with it (flow runs named after the burst);
    the products then go to the science database when its delivery flow is installed.

    Parameters
    ----------
    servers
        NATS servers (default ``$SVOMFLOW_NATS_SERVERS`` or ``nats://127.0.0.1:4222``).
    out_dir, database_url
        Products root and database (defaults: the home's).
    """

    def __init__(
        self,
        *,
        servers: tuple[str, ...] | None = None,
        out_dir: str | None = None,
        database_url: str | None = None,
    ) -> None:
        env = os.environ.get("SVOMFLOW_NATS_SERVERS", "").strip()
        self.servers = (
            servers or tuple(x for x in env.split(",") if x) or ("nats://127.0.0.1:4222",)
        )
        self.out_dir = out_dir
        self.database_url = database_url
        self.feed = PositionFeed()
        self.thread: FeedThread | None = None
        self.api_url: str | None = None

    @contextlib.contextmanager
    def _server(self) -> Any:
        """Run the flows inside on the one long-lived Prefect server."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        if self.api_url is None:
            yield
            return
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            yield

    def start(self, burst_id: str) -> None:
        """Point the products store at the bus, make the stream, subscribe the feed."""
        import uuid

        from prefect.settings import PREFECT_API_URL
        from svomflow.operations.prefect_server import ensure_server
        from svomflow.products.announcements import BusSettings, ensure_stream

        if not PREFECT_API_URL.value():  # one long-lived server, as every command uses
            self.api_url = ensure_server().api_url
        os.environ["SVOMFLOW_NATS_SERVERS"] = ",".join(self.servers)
        bus = BusSettings(servers=self.servers)

        async def stream() -> None:
            import nats

            nc = await nats.connect(
                servers=list(self.servers), connect_timeout=2, allow_reconnect=False,
                max_reconnect_attempts=1,
            )  # fmt: skip
            try:
                await ensure_stream(nc.jetstream(), bus)
            finally:
                await nc.close()

        asyncio.run(stream())
        settings = FeedSettings(
            servers=self.servers,
            stream=bus.stream,
            durable=f"gp1-bench-{burst_id}-{uuid.uuid4().hex[:8]}",
            new_only=True,
        )
        self.thread = FeedThread(self.feed, settings).start()

    def vhf(self, event_files: list[str], burst_id: str) -> dict[str, Any]:
        """Run ``vhf_quick_analysis`` (run ``vhf-<burst>``)."""
        from svomflow.flows.vhf import vhf_quick_analysis

        with self._server():
            return vhf_quick_analysis(
                event_files=event_files,
                obs_id=burst_id,
                out_dir=self.out_dir,
                database_url=self.database_url,
            )

    def mxt(self, files: dict[str, Any], mxt_dir: Path, burst_id: str) -> dict[str, Any]:
        """Run ``mxt_analysis`` on the simulated passes (run named after the burst)."""
        from svomflow.flows.mxt import mxt_analysis

        flow = mxt_analysis.with_options(flow_run_name=f"mxt-{burst_id}")
        with self._server():
            return flow(
                l1_files=[str(mxt_dir / f) for f in files["l1"]],
                attitude_file=str(mxt_dir / files["attitude"]),
                saa_file=str(mxt_dir / files["saa"]),
                obs_id=burst_id,
                out_dir=self.out_dir,
                database_url=self.database_url,
            )

    def wait_position(self, burst_id: str, source_prefix: str, timeout_s: float) -> Any:
        """Wait until the feed holds a position of the burst from ``source_prefix``."""
        import time

        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self.feed._lock:
                best = self.feed.bursts.get(burst_id)
                held = [] if best is None else list(best.current.items())
            got = [p for key, p in held if key.startswith(source_prefix)]
            if got:
                return got[-1]
            time.sleep(0.1)
        return None

    def gp1(self, image: str, truth: dict[str, Any], index: int) -> dict[str, Any]:
        """Run ``gp1_reduction`` on one image with the burst's best position (run ``gp1-<burst>-<n>``)."""
        from svomflow.flows.adapter import default_output_root
        from svomflow.flows.gp1 import gp1_reduction

        loop = truth["alert_loop"]
        burst = loop["burst_id"]
        cfg = GP1Config(
            output_dir=self.out_dir or str(default_output_root()),
            trigger_time=loop["trigger_time"],
        )
        cfg.steps.astrometry.reference_catalog = loop["refcat_dir"]
        masters = loop["masters"]
        cfg.steps.reduction.override_bias = masters["BIAS"]
        cfg.steps.reduction.override_dark = masters["DARK"]
        cfg.steps.reduction.override_flat = masters["FLAT"]
        cfg = self.feed.configure(cfg, burst)
        flow = gp1_reduction.with_options(flow_run_name=f"gp1-{burst}-{index + 1}")
        settings: Any = cfg.model_dump(mode="json")  # as the watcher passes it
        with self._server():
            return flow(images=[image], config=settings, database_url=self.database_url)

    def deliver(self, burst_id: str) -> dict[str, Any] | None:
        """Deliver the burst's products (its own and its GP1 sequences') to the science database.

        None when the delivery flow is not installed.
        """
        try:
            from svomflow.flows import science_delivery
        except ImportError:
            return None
        from svomflow.flows.adapter import default_output_root
        from svomflow.products import ProductStore

        store = ProductStore(self.out_dir or default_output_root(), self.database_url)
        # the burst's products and its GP1 sequences' (<burst>_<filter>, <burst>_<filter>_<image>)
        obs_ids = sorted({r.obs_id for r in store.list() if r.obs_id.startswith(burst_id)})
        total: dict[str, Any] = {}
        for i, obs in enumerate(obs_ids):
            flow = science_delivery.science_delivery.with_options(
                flow_run_name=f"science-{burst_id}-{i + 1}"
            )
            with self._server():
                out = flow(obs_id=obs, database_url=self.database_url)
            for key, value in out.items():
                if isinstance(value, dict):
                    total.setdefault(key, {}).update(value)
                elif isinstance(value, list | tuple):
                    total.setdefault(key, []).extend(value)
                elif isinstance(value, int):
                    total[key] = total.get(key, 0) + value
        return total

    def stop(self) -> None:
        """Stop the feed and remove its throw-away consumer from the server."""
        if self.thread is None:
            return
        self.thread.stop()
        settings = self.thread.settings

        async def drop() -> None:
            import nats

            nc = await nats.connect(
                servers=list(settings.servers), connect_timeout=2, allow_reconnect=False,
                max_reconnect_attempts=1,
            )  # fmt: skip
            try:
                await nc.jetstream().delete_consumer(settings.stream, settings.durable)
            finally:
                await nc.close()

        try:
            asyncio.run(drop())
        except Exception as exc:  # the consumer expires with the stream's limits anyway
            log.warning("could not remove the consumer %s: %s", settings.durable, exc)
