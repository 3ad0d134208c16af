"""The alert ledger in the products database: each alert starts its flow exactly once.

JetStream drops duplicates published with the same ``Nats-Msg-Id`` inside its duplicate
window; the ledger catches the rest (re-sent alerts hours later, redeliveries after a crash
between submitting and acknowledging). A claim is a ``processing_status`` row keyed
``alert:<alert id>`` for the target flow: the unique (key, flow) constraint makes the claim
atomic across listeners and processes.

A claim (state ``received``) has two stages. *Pending* (no flow run yet): its ``reason``
holds the message (subject and payload, as JSON) so that a listener restarted after a crash
can dispatch it again even if the message itself never comes back. *Submitted*:
``flow_run_id`` names the run. Only a submitted claim makes a message a
duplicate; a pending one is dispatched again, which is safe because the dispatch is
idempotent (Prefect returns the run already created under the alert's idempotency key) or,
in direct mode, guarded by a lease that a live listener keeps renewing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from svomflow.products.database import ProcessingStatus, make_engine

__all__ = ["AlertLedger", "Claim", "PendingClaim", "ledger_key"]

_PREFIX = "alert:"
_STATE = "received"


def ledger_key(alert_id: str) -> str:
    """Return the processing-status key of an alert."""
    return f"{_PREFIX}{alert_id}"


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming an alert for a flow.

    Attributes
    ----------
    new
        True when this call created the claim.
    flow_run_id
        The run already recorded for the alert (a duplicate), else ``None``.
    updated
        When the claim was created or its lease last renewed (UTC).
    """

    new: bool
    flow_run_id: str | None
    updated: datetime

    @property
    def submitted(self) -> bool:
        """True when the alert already has its flow run."""
        return self.flow_run_id is not None


@dataclass(frozen=True)
class PendingClaim:
    """A claim without a flow run, with the message needed to dispatch it again."""

    alert_id: str
    flow_name: str
    subject: str | None
    payload: str | None
    updated: datetime


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes for what was written as UTC
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class AlertLedger:
    """Claims and records of alerts in the products database (``database_url`` or default)."""

    def __init__(self, database_url: str | None = None):
        self.engine = make_engine(database_url)

    def claim(
        self, alert_id: str, flow_name: str, subject: str | None = None, payload: str = ""
    ) -> Claim:
        """Claim the alert for ``flow_name`` (or return the claim that already exists).

        The message (``subject``, ``payload``) is kept with a new claim until its run is
        recorded, so the start-up reconciliation can dispatch it.
        """
        now = datetime.now(UTC)
        row = ProcessingStatus(
            key=ledger_key(alert_id),
            flow_name=flow_name,
            state=_STATE,
            reason=json.dumps({"subject": subject, "payload": payload}),
            updated=now,
        )
        with Session(self.engine) as s:
            s.add(row)
            try:
                s.commit()
                return Claim(new=True, flow_run_id=None, updated=now)
            except IntegrityError:
                s.rollback()
            existing = self._get(s, alert_id, flow_name)
        if existing is None:  # released between our insert and read: claim again
            return self.claim(alert_id, flow_name, subject, payload)
        return Claim(False, existing.flow_run_id, _utc(existing.updated))

    def take_over(self, alert_id: str, flow_name: str, lease_s: float) -> bool:
        """Take a pending claim whose lease (``lease_s`` since its last renewal) expired.

        A conditional update: of several listeners finding the same expired claim, exactly
        one gets it (the first renewal makes the claim fresh for the others).
        """
        limit = datetime.now(UTC) - timedelta(seconds=lease_s)
        with Session(self.engine) as s:
            stmt = (
                update(ProcessingStatus)
                .where(
                    col(ProcessingStatus.key) == ledger_key(alert_id),
                    col(ProcessingStatus.flow_name) == flow_name,
                    col(ProcessingStatus.flow_run_id).is_(None),
                    col(ProcessingStatus.updated) <= limit,
                )
                .values(updated=datetime.now(UTC))
            )
            done = s.execute(stmt).rowcount  # type: ignore[attr-defined]
            s.commit()
        return bool(done)

    def renew(self, alert_id: str, flow_name: str) -> None:
        """Extend the lease of a pending claim (a direct-mode run still going)."""
        with Session(self.engine) as s:
            s.execute(
                update(ProcessingStatus)
                .where(
                    col(ProcessingStatus.key) == ledger_key(alert_id),
                    col(ProcessingStatus.flow_name) == flow_name,
                    col(ProcessingStatus.flow_run_id).is_(None),
                )
                .values(updated=datetime.now(UTC))
            )
            s.commit()

    def release(self, alert_id: str, flow_name: str) -> None:
        """Forget a pending claim whose run could not be submitted (a redelivery retries)."""
        with Session(self.engine) as s:
            row = self._get(s, alert_id, flow_name)
            if row is not None and row.flow_run_id is None:
                s.delete(row)
                s.commit()

    def submitted(self, alert_id: str, flow_name: str, flow_run_id: str | None, note: str) -> None:
        """Attach the flow run that the alert started to its claim."""
        with Session(self.engine) as s:
            row = self._get(s, alert_id, flow_name)
            if row is None:
                return
            row.flow_run_id = flow_run_id or "unknown"
            row.reason = note[:2000]
            row.updated = datetime.now(UTC)
            s.add(row)
            s.commit()

    def pending(self, flow_names: list[str], older_than_s: float = 0.0) -> list[PendingClaim]:
        """Return the claims of these flows that have no run, oldest first."""
        limit = datetime.now(UTC) - timedelta(seconds=older_than_s)
        with Session(self.engine) as s:
            rows = s.exec(
                select(ProcessingStatus)
                .where(
                    col(ProcessingStatus.key).startswith(_PREFIX),
                    col(ProcessingStatus.flow_name).in_(flow_names),
                    col(ProcessingStatus.flow_run_id).is_(None),
                )
                .order_by(col(ProcessingStatus.updated))
            ).all()
        out = []
        for r in rows:
            if _utc(r.updated) > limit:
                continue
            subject, payload = _message_of(r.reason)
            out.append(
                PendingClaim(r.key[len(_PREFIX) :], r.flow_name, subject, payload, _utc(r.updated))
            )
        return out

    def get(self, alert_id: str, flow_name: str) -> ProcessingStatus | None:
        """Return the ledger row of an alert for a flow, if any."""
        with Session(self.engine) as s:
            return self._get(s, alert_id, flow_name)

    @staticmethod
    def _get(s: Session, alert_id: str, flow_name: str) -> ProcessingStatus | None:
        return s.exec(
            select(ProcessingStatus).where(
                ProcessingStatus.key == ledger_key(alert_id),
                ProcessingStatus.flow_name == flow_name,
            )
        ).first()


def _message_of(reason: str | None) -> tuple[str | None, str | None]:
    """Return the (subject, payload) kept in a pending claim (None for older claims)."""
    try:
        data = json.loads(reason or "")
    except ValueError:
        return None, None
    if not isinstance(data, dict) or not data.get("payload"):
        return None, None
    return data.get("subject"), str(data["payload"])
