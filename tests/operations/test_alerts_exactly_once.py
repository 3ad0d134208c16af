"""Alerts exactly once under SIGKILL and a Prefect outage (issue 15, "Alerts").

A stream of alerts — unique valid ones, re-sent duplicates (new ``Nats-Msg-Id``, so JetStream
lets them through and the ledger must catch them) and malformed ones — is published to the
real NATS JetStream on 127.0.0.1:4222 while ``svomflow listen`` runs as a child process in
deployment mode against a real ``prefect server``. The listener is SIGKILLed at random
moments while a backlog waits, and (long version) the Prefect API is stopped for longer
than the old retry window (``max_deliver x retry delay`` = 5 x 5 s). Afterwards every valid
alert must have exactly one flow run, every malformed one exactly one dead letter, and the
ledger no claim without a run.

The deployment is a cheap stand-in: ``alert_ingest/alert`` registered without a worker, so
its runs stay scheduled; what is measured is the creation of the runs, and the latency is
from publishing to the run's creation time on the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import server_env

pytestmark = [pytest.mark.nats, pytest.mark.integration]

NATS = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class Message:
    """One published message: its payload, its ``Nats-Msg-Id`` and its trigger if valid."""

    payload: bytes
    msg_id: str
    trigger: str | None


def corpus(prefix: str, n_valid: int, n_dup: int, n_bad: int, seed: int) -> list[Message]:
    """Return the messages in publishing order (each duplicate after its original)."""
    rng = random.Random(seed)
    valid = []
    for i in range(n_valid):
        trig = f"{prefix}n{i:04d}"
        doc = {
            "id": f"svom-json-{trig}",
            "trigger_id": trig,
            "trigger_time": "2026-11-23T04:00:00Z",
            "ra_deg": round(rng.uniform(0, 360), 3),
            "dec_deg": round(rng.uniform(-90, 90), 3),
            "error_deg": 0.2,
        }
        valid.append(Message(json.dumps(doc).encode(), f"{trig}-0", trig))
    bad_kinds = [
        lambda i: b'{"id": "broken-' + str(i).encode(),  # truncated JSON
        lambda i: json.dumps(
            {"id": f"bad-{prefix}-{i}", "trigger_id": f"x{i}", "trigger_time": "2026-11-23"}
            | {"dec_deg": 123.0}
        ).encode(),  # declination out of range
        lambda i: json.dumps({"id": f"bad-{prefix}-{i}", "trigger_id": f"x{i}"}).encode(),
        lambda i: b"\xff\xfe not utf-8 " + str(i).encode(),
        lambda i: b"<VOEvent><Who>broken " + str(i).encode(),
    ]
    bad = [
        Message(bad_kinds[i % len(bad_kinds)](i), f"{prefix}-bad-{i}", None) for i in range(n_bad)
    ]
    order: list[Message] = valid + bad
    rng.shuffle(order)
    for k in range(n_dup):  # re-sent later under a new message id
        original = valid[rng.randrange(n_valid)]
        at = order.index(original) + 1 + rng.randrange(len(order) - order.index(original))
        order.insert(at, Message(original.payload, f"{original.trigger}-dup{k}", original.trigger))
    return order


class Publisher(threading.Thread):
    """Publish the corpus at a steady pace, recording when each trigger was first sent."""

    def __init__(self, subject: str, messages: list[Message], pace_s: float):
        super().__init__(daemon=True)
        self.subject, self.messages, self.pace_s = subject, messages, pace_s
        self.sent_at: dict[str, float] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._go())
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _go(self) -> None:
        import nats

        nc = await nats.connect(NATS)
        js = nc.jetstream()
        try:
            for m in self.messages:
                t = time.time()
                await js.publish(self.subject, m.payload, headers={"Nats-Msg-Id": m.msg_id})
                if m.trigger is not None:
                    self.sent_at.setdefault(m.trigger, t)
                await asyncio.sleep(self.pace_s)
        finally:
            await nc.close()


class ListenerProcess:
    """``svomflow listen --config`` as a child process in its own session."""

    def __init__(self, config: Path, env: dict[str, str], log: Path):
        self.config, self.env, self.log = config, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.faults: list[tuple[float, float]] = []  # (killed, listening again)
        self._killed_at: float | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start it and wait until it listens."""
        self.starts += 1
        out = open(self.log, "a")
        out.write(f"\n=== start {self.starts} ===\n")
        out.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "svomflow.cli.main", "listen", "--config", str(self.config)],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.time() + timeout
        while self.log.read_text().count("listening on") < self.starts:
            if self.proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"the listener did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        if self._killed_at is not None:
            self.faults.append((self._killed_at, time.time()))
            self._killed_at = None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        assert self.proc is not None
        self._killed_at = time.time()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGINT and wait (a graceful stop)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@dataclass
class Outcome:
    """What came out of a scenario."""

    published: int
    valid: int
    runs: dict[str, list[Any]] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)
    faults: list[tuple[float, float]] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Valid alerts without a run."""
        return sum(1 for r in self.runs.values() if not r)

    @property
    def duplicates(self) -> int:
        """Runs beyond the first of an alert."""
        return sum(max(0, len(r) - 1) for r in self.runs.values())

    def latencies(self, undisturbed: bool = False) -> list[float]:
        """Publish -> run created, in s (``undisturbed``: alerts that met no fault)."""
        out = []
        for t, rs in self.runs.items():
            if not rs:
                continue
            sent, made = self.sent_at[t], rs[0].created.timestamp()
            if undisturbed and any(a < made and sent < b for a, b in self.faults):
                continue
            out.append(made - sent)
        return sorted(out)

    def summary(self) -> str:
        """One line of figures."""

        def stats(lat: list[float]) -> str:
            if not lat:
                return "none"
            p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
            return f"median {statistics.median(lat):.2f} s, p95 {p95:.2f} s (n={len(lat)})"

        made = sum(len(r) for r in self.runs.values())
        return (
            f"published {self.published}, valid {self.valid}, runs created {made}, "
            f"lost {self.lost}, duplicates {self.duplicates}; latency publish->run created: "
            f"all {stats(self.latencies())}; alerts that met no fault "
            f"{stats(self.latencies(undisturbed=True))}"
        )


def ensure_deployment(api_url: str) -> None:
    """Register the stand-in ``alert_ingest/alert`` deployment (no worker: runs stay put)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as c:
        try:
            c.read_deployment_by_name("alert_ingest/alert")
        except Exception:
            flow_id = c.create_flow_from_name("alert_ingest")
            c.create_deployment(flow_id=flow_id, name="alert")


def runs_by_name(api_url: str, prefix: str) -> list[Any]:
    """Flow runs whose name starts with ``alert-<prefix>`` (this test's triggers only)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    flt = FlowRunFilter(name=FlowRunFilterName(like_=f"alert-{prefix}n"))
    out: list[Any] = []
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as c:
        while True:
            page = c.read_flow_runs(
                flow_run_filter=flt, sort=FlowRunSort.ID_DESC, limit=200, offset=len(out)
            )
            out.extend(page)
            if len(page) < 200:
                return out


def delete_runs(api_url: str, runs: list[Any]) -> None:
    """Remove this test's runs from a shared server (a later serve test would run them)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as c:
        for r in runs:
            c.delete_flow_run(r.id)


def dead_letters(stream: str, subject: str) -> list[bytes]:
    """Every message on the dead-letter subject."""

    async def go() -> list[bytes]:
        import nats
        from nats.errors import TimeoutError as NatsTimeout

        nc = await nats.connect(NATS)
        try:
            sub = await nc.jetstream().pull_subscribe(subject, durable=None, stream=stream)
            got: list[bytes] = []
            while True:
                try:
                    msgs = await sub.fetch(batch=100, timeout=1)
                except (TimeoutError, NatsTimeout):
                    return got
                got.extend(m.data for m in msgs)
        finally:
            await nc.close()

    return asyncio.run(go())


def write_config(tmp_path: Path, prefix: str, db: str | None = None) -> tuple[Path, str]:
    """Listener settings of the test; returns (path, ledger/products database URL).

    ``db``: the database of the ledger and products (default an SQLite file in ``tmp_path``).
    """
    db = db or f"sqlite:///{tmp_path / 'products.db'}"
    settings = {
        "servers": [NATS],
        "stream": f"S_{prefix}",
        "durable": f"d_{prefix}",
        "routes": [
            {
                "subject": f"{prefix}.svom.alert.eclairs",
                "instrument": "eclairs",
                "parameters": {"out_dir": str(tmp_path / "products"), "database_url": db},
            }
        ],
        "dead_letter_subject": f"{prefix}.svom.deadletter",
        "mode": "deployment",
        "database_url": db,
        "ack_wait_s": 5.0,
        "retry_delay_s": 0.5,
        "max_retry_delay_s": 2.0,
        "reconcile_every_s": 5.0,
    }
    path = tmp_path / "listener.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path, db


def publish_with_a_kill(listener: ListenerProcess, pub: Publisher, rng: random.Random) -> None:
    """Publish, SIGKILL the listener 0.5-1.5 s in, let the backlog grow 1 s, restart it."""
    pub.start()
    time.sleep(rng.uniform(0.5, 1.5))
    listener.kill()
    time.sleep(1.0)  # the backlog grows while it is down
    listener.start()
    pub.join(timeout=60)
    assert pub.error is None


def collect(
    api_url: str,
    prefix: str,
    messages: list[Message],
    pub: Publisher,
    timeout: float,
    faults: list[tuple[float, float]],
) -> Outcome:
    """Wait until every valid alert has a run (or the timeout), then tally."""
    triggers = {m.trigger for m in messages if m.trigger}
    deadline = time.time() + timeout
    while True:
        runs = runs_by_name(api_url, prefix)
        if len({r.name for r in runs}) >= len(triggers) or time.time() > deadline:
            break
        time.sleep(1.0)
    time.sleep(6.0)  # past the ack wait: a late redelivery would show as a second run
    runs = runs_by_name(api_url, prefix)
    out = Outcome(len(messages), len(triggers), sent_at=pub.sent_at, faults=faults)
    out.runs = {t: [r for r in runs if r.name == f"alert-{t}"] for t in triggers}
    return out


def check(out: Outcome, messages: list[Message], db: str, prefix: str, tmp_path: Path) -> None:
    """The exactly-once properties, and the dead letters and ledger that go with them."""
    from svomflow.operations.alerts.ledger import AlertLedger

    print(out.summary())
    assert out.lost == 0, [t for t, r in out.runs.items() if not r]
    assert out.duplicates == 0, {t: len(r) for t, r in out.runs.items() if len(r) > 1}
    # the ledger names each alert's one run, and no claim is left without a run
    ledger = AlertLedger(db)
    assert ledger.pending(["alert_ingest"]) == []
    for t, (run,) in out.runs.items():
        row = ledger.get(f"svom-json-{t}", "alert_ingest")
        assert row is not None and row.flow_run_id == str(run.id)
    # each malformed message is in the dead-letter subject exactly once
    bad = Counter(m.payload for m in messages if m.trigger is None)
    dead = Counter(dead_letters(f"S_{prefix}", f"{prefix}.svom.deadletter"))
    assert dead == bad


def test_alerts_exactly_once_with_a_sigkill(
    prefect_server: str, nats_prefix: str, tmp_path: Path
) -> None:
    """40 valid, 8 duplicates, 8 malformed; one SIGKILL with a backlog waiting."""
    rng = random.Random(15)
    messages = corpus(nats_prefix, 40, 8, 8, seed=15)
    ensure_deployment(prefect_server)
    config, db = write_config(tmp_path, nats_prefix)
    env = server_env(tmp_path / "client_home", prefect_server)
    env["SVOMFLOW_HOME"] = str(tmp_path / "home")
    listener = ListenerProcess(config, env, tmp_path / "listener.log")
    listener.start()
    pub = Publisher(f"{nats_prefix}.svom.alert.eclairs", messages, pace_s=0.04)
    out = None
    try:
        publish_with_a_kill(listener, pub, rng)
        out = collect(prefect_server, nats_prefix, messages, pub, 60, listener.faults)
    finally:
        listener.stop()
        if out is not None:
            delete_runs(prefect_server, [r for rs in out.runs.values() for r in rs])
    check(out, messages, db, nats_prefix, tmp_path)


@pytest.fixture
def postgres_ledger(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the alert ledger and products, dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text

    name = f"alerts_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.mark.postgres
def test_alerts_exactly_once_on_postgres_with_sigint_and_sigkill(
    prefect_server: str, nats_prefix: str, postgres_ledger: str, tmp_path: Path
) -> None:
    """The ledger on PostgreSQL; a graceful stop (SIGINT) mid-stream, then a SIGKILL."""
    rng = random.Random(1516)
    messages = corpus(nats_prefix, 40, 8, 8, seed=1516)
    ensure_deployment(prefect_server)
    config, db = write_config(tmp_path, nats_prefix, postgres_ledger)
    env = server_env(tmp_path / "client_home", prefect_server)
    env["SVOMFLOW_HOME"] = str(tmp_path / "home")
    listener = ListenerProcess(config, env, tmp_path / "listener.log")
    listener.start()
    pub = Publisher(f"{nats_prefix}.svom.alert.eclairs", messages, pace_s=0.04)
    out = None
    try:
        pub.start()
        time.sleep(rng.uniform(0.5, 1.0))
        listener.stop()  # SIGINT while messages keep arriving
        time.sleep(0.5)
        listener.start()
        time.sleep(rng.uniform(0.5, 1.0))
        listener.kill()
        time.sleep(0.5)
        listener.start()
        pub.join(timeout=60)
        assert pub.error is None
        out = collect(prefect_server, nats_prefix, messages, pub, 60, listener.faults)
    finally:
        listener.stop()
        if out is not None:
            delete_runs(prefect_server, [r for rs in out.runs.values() for r in rs])
    check(out, messages, db, nats_prefix, tmp_path)


@pytest.mark.slow
def test_alerts_exactly_once_with_kills_and_prefect_outage(
    nats_prefix: str, tmp_path: Path
) -> None:
    """200 alerts (150 valid, 25 duplicates, 25 malformed); two SIGKILLs; API down 30 s."""
    from svomflow.operations.local_server import (
        free_port,
        launch_server,
        stop_process,
        wait_healthy,
    )

    rng = random.Random(1515)
    messages = corpus(nats_prefix, 150, 25, 25, seed=1515)
    home = tmp_path / "prefect_home"
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server_log = open(tmp_path / "server.log", "a")

    def start_server() -> subprocess.Popen[bytes]:
        proc = launch_server("127.0.0.1", port, server_env(home), server_log)
        wait_healthy(proc, api_url, 120, str(tmp_path / "server.log"))
        return proc

    server = start_server()
    config, db = write_config(tmp_path, nats_prefix)
    env = server_env(tmp_path / "client_home", api_url)
    env["SVOMFLOW_HOME"] = str(tmp_path / "home")
    listener = ListenerProcess(config, env, tmp_path / "listener.log")
    try:
        ensure_deployment(api_url)
        listener.start()
        pub = Publisher(f"{nats_prefix}.svom.alert.eclairs", messages, pace_s=0.1)
        pub.start()
        # kill 1 in the first third of the stream, back 2-4 s later with a backlog
        time.sleep(rng.uniform(2.0, 6.0))
        listener.kill()
        time.sleep(rng.uniform(2.0, 4.0))
        listener.start()
        # the Prefect API down for 32 s (the old retry window was 5 x 5 s = 25 s) ...
        time.sleep(rng.uniform(1.0, 3.0))
        down_at = time.time()
        stop_process(server)
        time.sleep(rng.uniform(5.0, 10.0))
        listener.kill()  # ... and kill 2 while alerts wait for the API
        time.sleep(rng.uniform(1.0, 3.0))
        listener.start()
        time.sleep(max(0.0, down_at + 32.0 - time.time()))
        server = start_server()
        outage = (down_at, time.time())
        pub.join(timeout=120)
        assert pub.error is None
        faults = [*listener.faults, outage]
        out = collect(api_url, nats_prefix, messages, pub, 180, faults)
    finally:
        listener.stop()
        stop_process(server)
        server_log.close()
    check(out, messages, db, nats_prefix, tmp_path)
    log = (tmp_path / "listener.log").read_text()
    assert "could not start alert_ingest" in log  # the outage was seen, and survived
