"""GP1's position feed: announcements on JetStream -> the burst's best position -> GP1 runs.

The NATS tests need a server with JetStream on 127.0.0.1:4222 (skipped otherwise); each uses
its own stream and subject prefix.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.operations.position_feed import (
    FeedSettings,
    FeedThread,
    PositionFeed,
    guided_processor,
    position_from_announcement,
)
from svomflow.products.announcements import Position, ProductAnnouncement, payload_json
from svomflow.tasks.gp1.config import GP1Config

NATS_URL = "nats://127.0.0.1:4222"
BURST = "sb26120402"


def _ann(type_code: str, inst: str, r_deg: float, *, version: int = 1, burst: str = BURST,
         prefix: str = "svomflow.product", conf: float = 0.9) -> ProductAnnouncement:  # fmt: skip
    pid = f"{type_code}-{inst}-{burst}"
    return ProductAnnouncement(
        announcement_id=f"{pid}:{version}",
        product_id=pid,
        type_code=type_code,
        instrument=inst,
        obs_id=burst,
        version=version,
        subject=f"{prefix}.{type_code}.{inst}",
        created=datetime(2026, 12, 4, 23, 0, version, tzinfo=UTC),
        file_name=f"{pid}.fits",
        url=f"file:///products/{pid}.fits",
        checksum="0" * 64,
        position=Position(
            ra_deg=150.0, dec_deg=20.0, error_radius_deg=r_deg, error_confidence=conf
        ),
    )


def test_announcements_become_the_bursts_best_position(tmp_path: Path) -> None:
    state = tmp_path / "positions.json"
    feed = PositionFeed(state_file=state)
    assert feed.offer_announcement(_ann("QPO", "ECL", 10 / 60))
    assert not feed.offer_announcement(_ann("QPO", "GRM", 8.0))  # GRM: degrees, worse
    assert not feed.offer_announcement(_ann("OTPO", "DDRAGO-B", 1e-4))  # GP1's own result
    assert feed.offer_announcement(_ann("SRCLIST", "MXT", 1.5 / 60))
    best = feed.best(BURST)
    assert best is not None and best.source == "SRCLIST_MXT"
    assert best.error_radius_arcmin == pytest.approx(1.5)
    assert best.link == "file:///products/SRCLIST-MXT-sb26120402.fits"
    # a restarted feed reads the state back
    again = PositionFeed(state_file=state)
    assert again.best(BURST) == best
    assert again.best("other") is None
    cfg = again.configure(GP1Config(), BURST)
    assert cfg.alert_position == best
    assert position_from_announcement(_ann("QPO", "ECL", 0.0)) is None  # no usable radius


def test_the_guided_processor_gives_each_image_its_bursts_position(tmp_path: Path) -> None:
    feed = PositionFeed()
    feed.offer_announcement(_ann("QPO", "ECL", 10 / 60))
    seen: list[object] = []

    def processor(path: Path, cfg: GP1Config) -> None:
        seen.append(cfg.alert_position)

    run = guided_processor(processor, feed)
    for name, trig in (("a.fits", BURST), ("b.fits", "other"), ("c.fits", None)):
        h = fits.Header()
        if trig:
            h["TRIGID"] = trig
        fits.PrimaryHDU(np.zeros((4, 4), np.float32), header=h).writeto(tmp_path / name)
        run(tmp_path / name, GP1Config())
    assert seen[0] == feed.best(BURST) and seen[1] is None and seen[2] is None
    feed.offer_announcement(_ann("SRCLIST", "MXT", 1.5 / 60))
    run(tmp_path / "a.fits", GP1Config())  # the next image of the sequence: the better one
    assert getattr(seen[3], "source", None) == "SRCLIST_MXT"


def _nats_up() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 4222)) == 0


@pytest.fixture
def stream():
    """A unique stream and subject prefix on the local JetStream (skip without one)."""
    if not _nats_up():
        pytest.skip("no NATS server on 127.0.0.1:4222")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    name = f"S_{prefix}"

    async def setup() -> bool:
        import nats
        from nats.js.api import StreamConfig

        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await nc.jetstream().add_stream(StreamConfig(name=name, subjects=[f"{prefix}.>"]))
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    if not asyncio.run(setup()):
        pytest.skip("the NATS server on 127.0.0.1:4222 has no JetStream")
    yield prefix, name

    async def cleanup() -> None:
        import nats

        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()

    asyncio.run(cleanup())


def _publish(anns: list[ProductAnnouncement], name: str) -> None:
    async def go() -> None:
        import nats

        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for a in anns:
            await js.publish(
                a.subject, payload_json(a).encode(), stream=name,
                headers={"Nats-Msg-Id": a.announcement_id},
            )  # fmt: skip
        await nc.publish(anns[0].subject, b"not an announcement")
        await nc.flush()
        await nc.close()

    asyncio.run(go())


def _wait(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.nats
def test_the_feed_follows_jetstream_across_a_restart(stream, tmp_path: Path) -> None:
    prefix, name = stream
    settings = FeedSettings(
        servers=(NATS_URL,), stream=name, subject=f"{prefix}.*.*", durable=f"d_{prefix}"
    )
    state = tmp_path / "positions.json"
    changes: list[str] = []
    feed = PositionFeed(state_file=state, on_change=lambda p: changes.append(p.source))
    thread = FeedThread(feed, settings).start()
    try:
        _publish([_ann("QPO", "ECL", 10 / 60, prefix=prefix)], name)
        assert _wait(lambda: feed.best(BURST) is not None)
        assert feed.best(BURST).source == "QPO_ECL"  # type: ignore[union-attr]
    finally:
        thread.stop()
    # published while the feed is down: delivered at restart; the QPO is not delivered again
    _publish(
        [
            _ann("SRCLIST", "MXT", 1.5 / 60, prefix=prefix),
            _ann("QPO", "ECL", 12 / 60, version=2, prefix=prefix),
        ],
        name,
    )
    feed2 = PositionFeed(state_file=state, on_change=lambda p: changes.append(p.source))
    assert feed2.best(BURST).source == "QPO_ECL"  # type: ignore[union-attr]
    thread = FeedThread(feed2, settings).start()
    try:
        assert _wait(lambda: len(feed2.bursts[BURST].history) >= 3)
        best = feed2.best(BURST)
        assert best is not None and best.source == "SRCLIST_MXT"
        assert feed2.bursts[BURST].current["QPO_ECL"].version == 2
    finally:
        thread.stop()
    assert changes == ["QPO_ECL", "SRCLIST_MXT"]


@pytest.mark.nats
def test_a_feed_without_a_server_says_so() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = FeedSettings(servers=(f"nats://127.0.0.1:{port}",), connect_timeout_s=0.5)
    with pytest.raises(Exception, match=r"(?i)connect|refused|no servers"):
        FeedThread(PositionFeed(), settings).start()
