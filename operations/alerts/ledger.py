"""The alert ledger in the products database: each alert starts its flow at most once.

JetStream drops duplicates published with the same ``Nats-Msg-Id`` inside its duplicate
window; the ledger catches the rest (re-sent alerts hours later, redeliveries after a crash
between submitting and acknowledging). A claim is a ``processing_status`` row keyed
``alert:<alert id>`` for the target flow: the unique (key, flow) constraint makes the claim
atomic across listeners and processes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from svomflow.products.database import ProcessingStatus, make_engine

__all__ = ["AlertLedger", "ledger_key"]


def ledger_key(alert_id: str) -> str:
    """Return the processing-status key of an alert."""
    return f"alert:{alert_id}"


class AlertLedger:
    """Claims and records of alerts in the products database (``database_url`` or default)."""

    def __init__(self, database_url: str | None = None):
        self.engine = make_engine(database_url)

    def claim(self, alert_id: str, flow_name: str, reason: str | None = None) -> bool:
        """Record the alert as received for ``flow_name``; False if it already was."""
        row = ProcessingStatus(
            key=ledger_key(alert_id),
            flow_name=flow_name,
            state="received",
            reason=reason,
            updated=datetime.now(UTC),
        )
        with Session(self.engine) as s:
            s.add(row)
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                return False
        return True

    def release(self, alert_id: str, flow_name: str) -> None:
        """Forget a claim whose run could not be submitted (so a redelivery can retry)."""
        with Session(self.engine) as s:
            row = self._get(s, alert_id, flow_name)
            if row is not None:
                s.delete(row)
                s.commit()

    def submitted(self, alert_id: str, flow_name: str, flow_run_id: str | None, note: str) -> None:
        """Attach the flow run that the alert started to its claim."""
        with Session(self.engine) as s:
            row = self._get(s, alert_id, flow_name)
            if row is None:
                return
            row.flow_run_id = flow_run_id
            row.reason = note[:2000]
            row.updated = datetime.now(UTC)
            s.add(row)
            s.commit()

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
