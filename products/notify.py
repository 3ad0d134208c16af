"""Alarm notifications to whoever is on duty: e-mail (SMTP) and webhooks.

The limit checks record alarms in the housekeeping store with ``notified_at`` empty: that is
the outbox. :func:`notify_pending` sends each pending alarm to the people on call for its
instrument at that moment (:func:`svomflow.products.duty.on_call`: the primary first, then
the backup), by e-mail to their addresses and as a JSON POST to their webhooks, and records
who was notified. A transport that fails (SMTP server down, webhook refusing) leaves the alarm
pending, so the next call retries it; an alarm is marked notified only once every recipient
got it.

It is the one sender, used by the scheduled flows (``hk_check``, ``hk_ingest``: right after
they record alarms), by ``svomflow hk watch`` (after every ingested file and every few
seconds) and by ``svomflow hk notify``. Several of them may run at once: each alarm is
claimed before it is sent (a compare-and-set on ``notified_at``), so only one sender sends
it. A sender killed between the claim and the send leaves the claim; after
``claim_timeout`` another sender takes the alarm over (at most one duplicate, only then).

It lives with the store it reads (products layer) so that flows and operations both use it.

Settings come from the environment: ``SVOMFLOW_SMTP_HOST`` (default ``localhost``),
``SVOMFLOW_SMTP_PORT`` (25), ``SVOMFLOW_SMTP_FROM``, ``SVOMFLOW_SMTP_USER`` /
``SVOMFLOW_SMTP_PASSWORD`` (login, with STARTTLS when ``SVOMFLOW_SMTP_STARTTLS=1``) and
``SVOMFLOW_SITE_URL`` (the web site, for links in the messages).
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import or_, update
from sqlmodel import Session, col, select
from svomflow.errors import SvomflowError
from svomflow.products import housekeeping as hk
from svomflow.products.duty import DutyShift, on_call

__all__ = [
    "NotificationError",
    "NotifyReport",
    "NotifySettings",
    "alarm_payload",
    "alarm_text",
    "notify_pending",
    "send_email",
    "send_webhook",
]

log = logging.getLogger("svomflow.notify")

#: ``notified_to`` of an alarm a sender has claimed and is sending
SENDING = "(sending)"


class NotificationError(SvomflowError):
    """A notification could not be delivered (the alarm stays pending)."""


class NotifySettings(BaseModel):
    """Where and how notifications are sent."""

    model_config = ConfigDict(extra="forbid")

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_from: str = "svomflow@localhost"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    timeout_s: float = Field(default=10.0, gt=0)
    site_url: str | None = None
    max_age: timedelta = Field(
        default=timedelta(days=1), description="older pending alarms are marked, not sent"
    )
    claim_timeout: timedelta = Field(
        default=timedelta(minutes=10),
        description="a claim older than this (its sender died) is taken over",
    )

    @classmethod
    def from_env(cls) -> NotifySettings:
        """Return the settings from ``SVOMFLOW_SMTP_*`` and ``SVOMFLOW_SITE_URL``."""
        env = os.environ
        password = env.get("SVOMFLOW_SMTP_PASSWORD")
        return cls(
            smtp_host=env.get("SVOMFLOW_SMTP_HOST", "localhost"),
            smtp_port=int(env.get("SVOMFLOW_SMTP_PORT", "25")),
            smtp_from=env.get("SVOMFLOW_SMTP_FROM", "svomflow@localhost"),
            smtp_user=env.get("SVOMFLOW_SMTP_USER") or None,
            smtp_password=SecretStr(password) if password else None,
            smtp_starttls=env.get("SVOMFLOW_SMTP_STARTTLS", "") in ("1", "true", "yes"),
            site_url=env.get("SVOMFLOW_SITE_URL") or None,
        )


def _fmt(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def alarm_text(alarm: hk.Alarm, unit: str = "", site_url: str | None = None) -> tuple[str, str]:
    """Return the subject and plain-text body of an alarm's notification."""
    subject = (
        f"[svomflow {alarm.level.upper()}] {alarm.instrument} {alarm.parameter}: "
        f"{alarm.value:g} {unit}".rstrip()
    )
    lines = [
        f"{alarm.instrument} {alarm.parameter} raised a {alarm.level} alarm "
        f"({alarm.rule}) at {_fmt(alarm.raised_at)}.",
        "",
        f"value: {alarm.value:g} {unit}".rstrip(),
        f"limit: {'-' if alarm.limit_value is None else f'{alarm.limit_value:g}'}",
        f"message: {alarm.message}",
        f"state: {alarm.state}"
        + (f" (cleared {_fmt(alarm.cleared_at)})" if alarm.cleared_at else ""),
    ]
    if site_url:
        lines += ["", f"Acknowledge: {site_url.rstrip('/')}/alarms"]
    return subject, "\n".join(lines) + "\n"


def alarm_payload(
    alarm: hk.Alarm, shifts: Sequence[DutyShift], unit: str = "", site_url: str | None = None
) -> dict[str, object]:
    """Return the JSON document POSTed to webhooks for an alarm."""
    subject, text = alarm_text(alarm, unit, site_url)
    return {
        "kind": "svomflow.alarm",
        "subject": subject,
        "text": text,
        "alarm": {
            "id": alarm.id,
            "instrument": alarm.instrument,
            "parameter": alarm.parameter,
            "level": alarm.level,
            "rule": alarm.rule,
            "state": alarm.state,
            "raised_at": alarm.raised_at.isoformat(),
            "value": alarm.value,
            "unit": unit,
            "limit": alarm.limit_value,
            "message": alarm.message,
        },
        "on_call": [{"person": s.person, "role": s.role} for s in shifts],
    }


def send_email(settings: NotifySettings, to: Sequence[str], subject: str, text: str) -> None:
    """Send a plain-text e-mail through the configured SMTP server."""
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(text)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout_s) as s:
            if settings.smtp_starttls:
                s.starttls()
            if settings.smtp_user and settings.smtp_password is not None:
                s.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            s.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise NotificationError(
            f"e-mail to {', '.join(to)} via {settings.smtp_host}:{settings.smtp_port} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def send_webhook(url: str, payload: dict[str, object], timeout_s: float = 10.0) -> None:
    """POST ``payload`` as JSON to ``url``; any answer but 2xx is a failure."""
    if not url.startswith(("http://", "https://")):
        # urllib also opens file:// and ftp:// URLs: a webhook is http(s) only
        raise NotificationError(f"webhook {url!r} is not an http(s) URL")
    req = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "svomflow-notify"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        raise NotificationError(f"webhook {url} failed: {type(exc).__name__}: {exc}") from exc
    if not 200 <= status < 300:
        raise NotificationError(f"webhook {url} answered HTTP {status}")


@dataclass
class NotifyReport:
    """What :func:`notify_pending` did.

    ``sent`` holds ``(alarm id, recipients)``; ``failed`` ``(alarm id, reason)`` for alarms
    left pending; ``nobody`` the alarms raised while nobody was on call (marked, not sent);
    ``stale`` those older than ``max_age`` (marked, not sent).
    """

    sent: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    nobody: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)


def notify_pending(
    session: Session,
    settings: NotifySettings | None = None,
    *,
    now: datetime | None = None,
) -> NotifyReport:
    """Send every alarm not yet notified to whoever is on call; record it; return a report."""
    settings = settings or NotifySettings.from_env()
    now = now or datetime.now(UTC)
    hk.ensure_schema(session)
    abandoned = now - settings.claim_timeout
    pending = list(
        session.exec(
            select(hk.Alarm)
            .where(
                or_(
                    col(hk.Alarm.notified_at).is_(None),
                    (col(hk.Alarm.notified_to) == SENDING)
                    & (col(hk.Alarm.notified_at) < abandoned),
                )
            )
            .order_by(col(hk.Alarm.raised_at), col(hk.Alarm.id))
        )
    )
    units = {(p.instrument, p.name): p.unit for p in hk.parameters(session)}
    report = NotifyReport()
    for alarm in pending:
        assert alarm.id is not None
        if not _claim(session, alarm, now):
            continue  # another sender has it
        if now - alarm.raised_at > settings.max_age:
            _mark(session, alarm, now, "(too old: not sent)")
            report.stale.append(alarm.id)
            continue
        # who is on duty now: the person who can act on it, not whoever was at raise time
        shifts = on_call(session, alarm.instrument, now)
        if not shifts:
            log.warning(
                "alarm %s (%s %s): nobody on call", alarm.id, alarm.instrument, alarm.parameter
            )
            _mark(session, alarm, now, "(nobody on call)")
            report.nobody.append(alarm.id)
            continue
        unit = units.get((alarm.instrument, alarm.parameter), "")
        subject, text = alarm_text(alarm, unit, settings.site_url)
        emails = list(dict.fromkeys(s.email for s in shifts if s.email))
        hooks = list(dict.fromkeys(s.webhook for s in shifts if s.webhook))
        try:
            if emails:
                send_email(settings, emails, subject, text)
            payload = alarm_payload(alarm, shifts, unit, settings.site_url)
            for url in hooks:
                send_webhook(url, payload, settings.timeout_s)
        except NotificationError as exc:
            log.warning("alarm %s: %s (stays pending)", alarm.id, exc)
            report.failed.append((alarm.id, str(exc)))
            _release(session, alarm)
            continue
        people = ", ".join(f"{s.person} ({s.role})" for s in shifts)
        _mark(session, alarm, now, people)
        report.sent.append((alarm.id, people))
    return report


def _claim(session: Session, alarm: hk.Alarm, now: datetime) -> bool:
    """Claim a pending alarm for this sender (compare and set); False if another has it."""
    was = alarm.notified_at
    cond = (
        col(hk.Alarm.notified_at).is_(None)
        if was is None
        else (col(hk.Alarm.notified_at) == was) & (col(hk.Alarm.notified_to) == SENDING)
    )
    done = session.execute(
        update(hk.Alarm)
        .where(col(hk.Alarm.id) == alarm.id, cond)
        .values(notified_at=now, notified_to=SENDING)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(alarm)
    return bool(getattr(done, "rowcount", 0))


def _release(session: Session, alarm: hk.Alarm) -> None:
    """Give a claimed alarm back to the outbox (its sending failed: retried next time)."""
    alarm.notified_at = None
    alarm.notified_to = None
    session.add(alarm)
    session.commit()


def _mark(session: Session, alarm: hk.Alarm, now: datetime, to: str) -> None:
    alarm.notified_at = now
    alarm.notified_to = to
    session.add(alarm)
    session.commit()
