"""Announcements reach JetStream exactly once per product version under kill -9 (real NATS).

Publishers and relays run as subprocesses and are killed with SIGKILL at the worst moments
(after the commit and before the send; after the send and before the row is marked sent) and
at random moments of a relay sending a backlog. Afterwards a relay sends what is left and
the stream is read back: every committed version appears once, none is missing, none is
extra. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session, col, func, select
from svomflow.products.announcements import BusSettings, parse_announcement
from svomflow.products.database import OutboxRow, ProductRow, dispose_engines
from svomflow.products.provenance import Provenance
from svomflow.products.store import ProductStore

pytestmark = pytest.mark.nats

NATS = "nats://127.0.0.1:4222"

# A child that publishes products argv[3]..argv[4] (one batch of 2 per obs id). "commit":
# killed right after its first commit, before any send; "send": killed right after its
# first message is in JetStream, before the row is marked; "run": publishes them all,
# sending after each commit (the parent kills it at random).
_PUBLISHER = """
import os, sys
from svomflow.products import announcements
from svomflow.products.store import ProductStore, PublishRequest
from svomflow.products.provenance import Provenance
from svomflow.products.ogip import primary_hdu

out, url, first, last, moment = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def die(*a, **k):
    os.kill(os.getpid(), 9)
if moment == "commit":
    announcements.send_soon = die
if moment == "send":
    announcements._mark_sent = die
store = ProductStore(out, url)
for k in range(first, last):
    store.publish_many([
        PublishRequest([primary_hdu(telescope="SVOM", instrument="ECLAIRS")], code, "ECL",
                       f"sb{k:03d}", Provenance.start(config={"k": k}, flow_name="kill9"))
        for code in ("QPO", "QT90")
    ])
    print(k, flush=True)
"""


def _env(bus: BusSettings, home: Path, *, send: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SVOMFLOW_HOME=str(home),
        SVOMFLOW_ANNOUNCE_PREFIX=bus.prefix,
        SVOMFLOW_ANNOUNCE_STREAM=bus.stream,
    )
    env.pop("SVOMFLOW_NATS_SERVERS", None)
    if send:
        env["SVOMFLOW_NATS_SERVERS"] = NATS
    return env


@pytest.fixture
def bus(nats_prefix: str) -> BusSettings:
    # the fixture deletes the stream S_<prefix> afterwards
    return BusSettings(servers=(NATS,), stream=f"S_{nats_prefix}", prefix=f"{nats_prefix}.product")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'products.db'}"
        dispose_engines()
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _publish(
    tmp: Path, url: str, bus: BusSettings, first: int, last: int, moment: str, *, send: bool = True
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _PUBLISHER, str(tmp / "out"), url, str(first), str(last), moment],
        env=_env(bus, tmp / "home", send=send),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    """Wait for a child (closing its pipes); return its exit code and standard error."""
    _, err = child.communicate(timeout=timeout)
    return child.returncode, err or ""


def _relay_cmd(url: str, bus: BusSettings, *extra: str) -> list[str]:
    exe = Path(sys.executable).with_name("svomflow")
    return [
        str(exe),
        "announce",
        "--server",
        NATS,
        "--stream",
        bus.stream,
        "--prefix",
        bus.prefix,
        "--database-url",
        url,
        *extra,
    ]


def _relay_once(tmp: Path, url: str, bus: BusSettings) -> str:
    res = subprocess.run(
        _relay_cmd(url, bus, "--once"),
        env=_env(bus, tmp / "home", send=False),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def _stream_ids(bus: BusSettings) -> list[str]:
    """Every announcement id in the stream, in stream order (checked against the schema)."""

    async def read() -> list[str]:
        import nats

        nc = await nats.connect(NATS, connect_timeout=2, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            info = await js.stream_info(bus.stream)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(bus.stream, seq)
                ann = parse_announcement(msg.data or b"")
                assert msg.subject == ann.subject
                assert msg.headers and msg.headers["Nats-Msg-Id"] == ann.announcement_id
                out.append(ann.announcement_id)
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def _committed(url: str) -> set[str]:
    dispose_engines()
    store = ProductStore("/nonexistent-not-written", url)
    with Session(store.engine) as s:
        rows = s.exec(select(ProductRow).where(ProductRow.checksum != "pending")).all()
        return {f"{r.id}:{r.version}" for r in rows}


def _pending(url: str) -> int:
    store = ProductStore("/nonexistent-not-written", url)
    with Session(store.engine) as s:
        return int(
            s.exec(
                select(func.count()).select_from(OutboxRow).where(col(OutboxRow.sent_at).is_(None))
            ).one()
        )


def _assert_exactly_once(url: str, bus: BusSettings) -> int:
    seen = _stream_ids(bus)
    dup = [k for k, n in Counter(seen).items() if n > 1]
    committed = _committed(url)
    assert not dup, f"{len(dup)} version(s) announced twice"
    assert set(seen) == committed, (
        f"missing {len(committed - set(seen))}, extra {len(set(seen) - committed)}"
    )
    assert _pending(url) == 0
    return len(seen)


def test_killed_after_commit_before_send(tmp_path: Path, db_url: str, bus: BusSettings) -> None:
    child = _publish(tmp_path, db_url, bus, 0, 3, "commit")
    rc, err = _finish(child)
    assert rc == -signal.SIGKILL, err
    # the first batch was committed with its outbox rows, and nothing was sent
    assert len(_committed(db_url)) == 2 and _pending(db_url) == 2
    assert "sent 2 announcement(s)" in _relay_once(tmp_path, db_url, bus)
    assert _assert_exactly_once(db_url, bus) == 2


def test_killed_after_send_before_mark(tmp_path: Path, db_url: str, bus: BusSettings) -> None:
    child = _publish(tmp_path, db_url, bus, 0, 3, "send")
    rc, err = _finish(child)
    assert rc == -signal.SIGKILL, err
    # one message is in the stream but its row is still pending: the relay resends it
    assert len(_stream_ids(bus)) == 1 and _pending(db_url) == 2
    assert "sent 2 announcement(s)" in _relay_once(tmp_path, db_url, bus)
    assert _assert_exactly_once(db_url, bus) == 2


@pytest.mark.parametrize(
    ("publishers", "backlog", "relays"),
    [(2, 10, 2), pytest.param(6, 60, 8, marks=pytest.mark.slow)],
    ids=["fast", "long"],
)
def test_publishers_and_relays_killed_at_random_moments(
    tmp_path: Path, db_url: str, bus: BusSettings, publishers: int, backlog: int, relays: int
) -> None:
    rng = random.Random(19 + publishers)
    # publishers sending after each commit, killed after a random number of batches
    first = 0
    for _ in range(publishers):
        child = _publish(tmp_path, db_url, bus, first, first + 30, "run")
        assert child.stdout is not None
        stop_after = rng.randint(2, 8)
        for _ in range(stop_after):
            if not child.stdout.readline():
                pytest.fail(_finish(child)[1])
        time.sleep(rng.uniform(0.0, 0.05))  # somewhere inside the next batch
        child.send_signal(signal.SIGKILL)
        _finish(child)
        first += 30
    # a backlog published with no bus, then relays killed while sending it
    quiet = _publish(tmp_path, db_url, bus, first, first + backlog, "run", send=False)
    rc, err = _finish(quiet, 300)
    assert rc == 0, err
    kills = 0
    for _ in range(relays):
        before = _pending(db_url)
        if before < 4:
            break
        relay = subprocess.Popen(
            _relay_cmd(db_url, bus, "--poll", "0.05"),
            env=_env(bus, tmp_path / "home", send=False),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        target = before - rng.randint(1, max(1, before // 2))
        deadline = time.monotonic() + 120
        while _pending(db_url) > target and time.monotonic() < deadline:
            time.sleep(0.005)
        relay.send_signal(signal.SIGKILL)
        _finish(relay)
        kills += 1
    assert kills >= 2
    _relay_once(tmp_path, db_url, bus)
    n = _assert_exactly_once(db_url, bus)
    # at least two batches of two per killed publisher, and the whole backlog
    assert n >= 2 * (2 * publishers + backlog)


def test_the_relay_sends_new_versions_as_they_are_committed(
    tmp_path: Path, db_url: str, bus: BusSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = subprocess.Popen(
        _relay_cmd(db_url, bus, "--poll", "0.05"),
        env=_env(bus, tmp_path / "home", send=False),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None
        assert "0 pending at start" in relay.stdout.readline()
        monkeypatch.delenv("SVOMFLOW_NATS_SERVERS", raising=False)
        store = ProductStore(tmp_path / "out", db_url)
        from svomflow.products.ogip import primary_hdu

        monkeypatch.setenv("SVOMFLOW_ANNOUNCE_PREFIX", bus.prefix)
        ref = store.publish(
            [primary_hdu(telescope="SVOM", instrument="ECLAIRS")],
            type_code="QPO",
            instrument="ECL",
            obs_id="sbR",
            provenance=Provenance.start(config={}, flow_name="t"),
        )
        deadline = time.monotonic() + 60
        while _pending(db_url) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _stream_ids(bus) == [f"{ref.id}:1"]
    finally:
        relay.send_signal(signal.SIGTERM)
        rc, err = _finish(relay, 30)
        assert rc == 0, err
    payload = json.loads(_announcement_payload(db_url, ref.id))
    assert payload["subject"] == f"{bus.prefix}.QPO.ECL"


def _announcement_payload(url: str, product_id: str) -> str:
    store = ProductStore("/nonexistent-not-written", url)
    with Session(store.engine) as s:
        row = s.exec(select(OutboxRow).where(OutboxRow.product_id == product_id)).one()
        assert row.sent_at is not None
        return row.payload
