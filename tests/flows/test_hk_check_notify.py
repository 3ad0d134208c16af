"""The scheduled check flow sends its alarms to the duty person itself, once per alarm.

A real SMTP receiver (aiosmtpd) and a real HTTP receiver on 127.0.0.1; the simulated
housekeeping has known anomalies, each raising alarms the flow records and sends.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from svomflow.flows import eic_monitoring as mon
from svomflow.products import duty
from svomflow.products import housekeeping as hk
from svomflow.products.database import dispose_engines, make_engine
from svomflow.products.notify import NotifySettings, _claim, notify_pending
from svomflow.simulation import housekeeping as sim


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox(smtp: tuple[int, list[Any]], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The local SMTP server's received mail, its address set in the environment."""
    port, received = smtp
    # the flow reads its transport from the environment, as a deployment's worker does
    monkeypatch.setenv("SVOMFLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SVOMFLOW_SMTP_PORT", str(port))
    return received


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'products.db'}"
    dispose_engines()


@pytest.mark.integration
def test_hk_check_flow_notifies_the_duty_person_once_per_alarm(
    prefect_harness: None, db: str, mailbox: list[Any], webhook: tuple[str, list, dict]
) -> None:
    url, posts, _ = webhook
    now = datetime.now(UTC)
    # the last 12 h of ECLAIRs housekeeping with anomalies (recent: the sender skips
    # alarms older than a day)
    stream = sim.simulate("ECLAIRS", now - timedelta(hours=12), 0.5, seed=21, anomalies_per_day=8)
    assert stream.anomalies
    with Session(make_engine(db)) as s:
        mon.sync_definitions(s)
        hk.ingest(s, stream.instrument, stream.times, stream.values)
        day = timedelta(days=1)
        duty.add_shift(s, "ECLAIRS", "primary", "Ada", now - day, now + day, email="ada@eic.test")
        duty.add_shift(s, "ECLAIRS", "backup", "Bob", now - day, now + day, webhook=url)
        # not on duty now: never told
        duty.add_shift(
            s, "ECLAIRS", "primary", "Old", now - 3 * day, now - day, email="old@eic.test"
        )
    out = mon.hk_check(instruments=["ECLAIRS"], database_url=db)
    raised = out["ECLAIRS"]["raised"]
    assert len(raised) >= len(stream.anomalies)  # every injected anomaly raised its alarm
    sent = out["notified"]["sent"]
    assert sorted(a for a, _ in sent) == sorted(raised)
    assert {who for _, who in sent} == {"Ada (primary), Bob (backup)"}
    # one e-mail and one webhook call per alarm, to the people on duty now
    assert len(mailbox) == len(raised) and len(posts) == len(raised)
    assert {tuple(m.rcpt_tos) for m in mailbox} == {("ada@eic.test",)}
    assert sorted(p["alarm"]["id"] for p in posts) == sorted(raised)
    # a second scheduled run, then the command's sender: nothing is sent twice
    again = mon.hk_check(instruments=["ECLAIRS"], database_url=db)
    assert again["ECLAIRS"]["raised"] == [] and again["notified"]["sent"] == []
    with Session(make_engine(db)) as s:
        assert notify_pending(s, NotifySettings.from_env()).sent == []
        assert all(a.notified_to == "Ada (primary), Bob (backup)" for a in hk.alarms(s))
    assert len(mailbox) == len(raised) and len(posts) == len(raised)


def test_two_senders_claim_an_alarm_once(db: str) -> None:
    """The watcher and the flow may send at the same time: one claim wins, a dead one expires."""
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    with Session(make_engine(db)) as a, Session(make_engine(db)) as b:
        hk.ensure_schema(a)
        alarm = hk.raise_alarm(a, "ECLAIRS", "T_DPIX", "hard", now, -9.5, limit=-10.0)
        seen_by_b = hk.alarms(b)[0]  # both senders read it pending
        assert _claim(a, alarm, now) is True
        assert _claim(b, seen_by_b, now) is False
        # the winner died before sending: after claim_timeout the alarm is pending again
        settings = NotifySettings(smtp_host="127.0.0.1", smtp_port=_free_port())
        report = notify_pending(b, settings, now=now + timedelta(minutes=5))
        assert report.sent == [] and report.failed == []  # still claimed
        report = notify_pending(b, settings, now=now + timedelta(minutes=11))
        assert report.nobody == [alarm.id]  # taken over (nobody on duty: marked, not sent)
