"""Alarm notifications: a real SMTP receiver (aiosmtpd) and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from svomflow.products import duty
from svomflow.products import housekeeping as hk
from svomflow.products.database import dispose_engines, make_engine
from svomflow.products.notify import NotifySettings, notify_pending

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    with Session(make_engine(f"sqlite:///{tmp_path / 'products.db'}")) as s:
        yield s
    dispose_engines()


def test_alarm_goes_to_the_people_on_call_by_mail_and_webhook(
    session: Session, smtp: tuple[int, list[Any]], webhook: tuple[str, list, dict]
) -> None:
    port, mails = smtp
    url, posts, _ = webhook
    hk.upsert_parameters(
        session, [hk.ParameterDef(instrument="ECLAIRS", name="T_DPIX", unit="degC")]
    )
    day = timedelta(days=1)
    duty.add_shift(session, "ECLAIRS", "primary", "Ada", NOW - day, NOW + day, email="ada@eic.test")
    duty.add_shift(session, "ECLAIRS", "backup", "Bob", NOW - day, NOW + day, webhook=url)
    # yesterday's primary is not told
    duty.add_shift(
        session, "ECLAIRS", "primary", "Old", NOW - 3 * day, NOW - day, email="old@eic.test"
    )
    a = hk.raise_alarm(
        session,
        "ECLAIRS",
        "T_DPIX",
        "hard",
        NOW - timedelta(minutes=2),
        -9.5,
        limit=-10.0,
        message="-9.5 above hard limit -10 for 3 samples",
    )
    settings = NotifySettings(smtp_host="127.0.0.1", smtp_port=port, site_url="http://eic.test")
    report = notify_pending(session, settings, now=NOW)
    assert report.sent == [(a.id, "Ada (primary), Bob (backup)")] and not report.failed
    (mail,) = mails
    assert mail.rcpt_tos == ["ada@eic.test"]
    body = mail.content.decode()
    assert "Subject: [svomflow HARD] ECLAIRS T_DPIX: -9.5 degC" in body
    assert "http://eic.test/alarms" in body and "limit: -10" in body
    (post,) = posts
    assert post["alarm"]["id"] == a.id and post["alarm"]["level"] == "hard"
    assert [p["person"] for p in post["on_call"]] == ["Ada", "Bob"]
    stored = hk.alarms(session)[0]
    assert stored.notified_at == NOW and stored.notified_to == "Ada (primary), Bob (backup)"
    # notified once: a second pass sends nothing
    again = notify_pending(session, settings, now=NOW + timedelta(minutes=1))
    assert again.sent == [] and len(mails) == 1 and len(posts) == 1


def test_failed_transport_keeps_the_alarm_pending_until_it_works(
    session: Session, smtp: tuple[int, list[Any]], webhook: tuple[str, list, dict]
) -> None:
    port, mails = smtp
    url, posts, answer = webhook
    duty.add_shift(
        session,
        "COLIBRI",
        "primary",
        "Cy",
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=8),
        webhook=url,
    )
    a = hk.raise_alarm(session, "COLIBRI", "WIND_SPEED", "soft", NOW, 14.0, limit=12.0)
    settings = NotifySettings(smtp_host="127.0.0.1", smtp_port=port)
    answer["status"] = 503
    r1 = notify_pending(session, settings, now=NOW)
    assert r1.sent == [] and r1.failed[0][0] == a.id and "HTTP 503" in r1.failed[0][1]
    assert hk.alarms(session)[0].notified_at is None
    answer["status"] = 204
    r2 = notify_pending(session, settings, now=NOW + timedelta(minutes=1))
    assert r2.sent == [(a.id, "Cy (primary)")] and len(posts) == 2
    # an unreachable SMTP server fails clearly too
    dead = NotifySettings(smtp_host="127.0.0.1", smtp_port=_free_port(), timeout_s=2)
    duty.add_shift(
        session,
        "ECLAIRS",
        "primary",
        "Ada",
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=1),
        email="a@x.test",
    )
    b = hk.raise_alarm(session, "ECLAIRS", "HV", "soft", NOW, 1.0)
    r3 = notify_pending(session, dead, now=NOW)
    assert r3.failed[0][0] == b.id and "ConnectionRefusedError" in r3.failed[0][1]
    assert mails == []


def test_nobody_on_call_and_stale_alarms_are_marked_not_sent(
    session: Session, smtp: tuple[int, list[Any]]
) -> None:
    port, mails = smtp
    settings = NotifySettings(smtp_host="127.0.0.1", smtp_port=port)
    a = hk.raise_alarm(session, "ECLAIRS", "T_ELS", "soft", NOW, 31.0)
    old = hk.raise_alarm(session, "ECLAIRS", "T_ELS", "hard", NOW - timedelta(days=3), 36.0)
    r = notify_pending(session, settings, now=NOW)
    assert r.nobody == [a.id] and r.stale == [old.id] and mails == []
    rows = {x.id: x for x in hk.alarms(session)}
    assert rows[a.id].notified_to == "(nobody on call)"
    assert rows[old.id].notified_to == "(too old: not sent)"
