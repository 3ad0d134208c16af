"""Prefect flow ``alert_ingest``: archive an incoming alert as a product and record the burst.

The first thing that happens to a burst: the alert (VOEvent XML or JSON, exactly as
received) becomes an ``ALERT`` product of the burst, versioned like every product — the same
alert again is the same product; an updated notice for the same trigger is version N+1 and
supersedes the previous one — and the burst is recorded as received in the processing
status. Fast (well under a second of work), so it is also what the alert tests run.
"""

from __future__ import annotations

from typing import Any

from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
    run_pipeline,
)
from svomflow.flows.prefect_flow import flow
from svomflow.products.alert_messages import Alert
from svomflow.tasks.alerts.pipeline import ALERT_PIPELINE, AlertIngestConfig, AlertRequest

__all__ = ["alert_ingest"]


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
        The validated alert (see :class:`svomflow.products.alert_messages.Alert`).
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
    request = AlertRequest(burst_id, alert, payload, instrument, subject)
    run = run_pipeline(ALERT_PIPELINE, request, AlertIngestConfig(), ctx)
    (ref,) = run.refs
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
