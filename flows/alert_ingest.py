"""Prefect flow ``alert_ingest``: archive an incoming alert as a product and record the burst.

The first thing that happens to a burst: the alert (VOEvent XML or JSON, exactly as
received) becomes an ``ALERT`` product of the burst, versioned like every product — the same
alert again is the same product; an updated notice for the same trigger is version N+1 and
supersedes the previous one — and the burst is recorded as received in the processing
status. Fast (well under a second of work), so it is also what the alert tests run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from svomflow.alerts.messages import Alert
from svomflow.flows._support import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
    transient_error,
)
from svomflow.products.provenance import Provenance
from svomflow.products.store import ProductRef

__all__ = ["alert_ingest"]


@task(
    name="archive-alert",
    retries=3,
    retry_delay_seconds=[1, 2, 4],
    retry_condition_fn=transient_error,
    task_run_name="archive-{burst_id}",
)
def archive_alert(
    ctx: FlowContext, burst_id: str, alert: Alert, payload: str, instrument: str, subject: str
) -> ProductRef:
    """Publish the alert text as the burst's ALERT product (retried: database, file system)."""
    prov = Provenance.start(
        config={
            "alert_id": alert.alert_id,
            "role": alert.role,
            "format": alert.format,
            "subject": subject,
        },
        flow_name=ctx.flow_name,
    )
    data = payload.encode("utf-8")

    def write(path: Path) -> None:
        path.write_bytes(data)

    return ctx.store().publish(
        write,
        type_code="ALERT",
        instrument=instrument,
        obs_id=burst_id,
        provenance=prov,
        ext="xml" if alert.format == "voevent" else "json",
    )


@flow(
    name="alert_ingest",
    flow_run_name="alert-{burst_id}",
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def alert_ingest(
    burst_id: str,
    alert: Alert,
    payload: str,
    instrument: str,
    subject: str = "",
    out_dir: str | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Archive an alert as the burst's ALERT product and mark the burst received.

    Parameters
    ----------
    burst_id
        Trigger / burst identifier (the product's observation id).
    alert
        The validated alert (see :class:`svomflow.alerts.messages.Alert`).
    payload
        The message exactly as received (VOEvent XML or JSON text).
    instrument
        Instrument that sent the alert (from the listener's route).
    subject
        NATS subject the alert came on.
    out_dir, database_url
        Product root and products database (defaults: ``$SVOMFLOW_PRODUCTS`` or the data
        home, ``$SVOMFLOW_DATABASE_URL`` or SQLite).
    """
    ctx = FlowContext("alert_ingest", burst_id, out_dir or str(default_output_root()), database_url)
    ctx.status("running")
    ref = archive_alert(ctx, burst_id, alert, payload, instrument, subject)
    ctx.status("done")
    ctx.store().set_status(burst_id, "burst", "received", reason=f"alert {alert.alert_id}")
    publish_summary(
        title=f"Alert {burst_id}",
        key=burst_id,
        refs=[ref],
        numbers={
            "trigger time (UTC)": alert.trigger_time.isoformat(),
            "RA, Dec (deg)": f"{alert.ra_deg}, {alert.dec_deg}",
            "error (deg)": alert.error_deg,
            "role": alert.role,
        },
        artifact_key=f"alert-{burst_id}",
    )
    return {"product_id": ref.id, "path": ref.path, "version": ref.version, "new": ref.created_new}
