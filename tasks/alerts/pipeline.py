"""The alert intake as a pipeline of one step: the notice becomes the burst's ALERT product.

The smallest pipeline of the package, and the worked example of ``docs/steps.md``: a
request, a step with its config and outputs, and a plan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import StepConfig
from svomflow.products.alert_messages import Alert
from svomflow.products.catalogue import Product, TextModel
from svomflow.tasks.step import Observation, Pipeline, Runner, step

__all__ = ["ALERT_PIPELINE", "AlertIngestConfig", "AlertRequest", "archive_alert"]

FLOW_NAME = "alert_ingest"


class AlertIngestConfig(StepConfig):
    """Configuration of the alert intake (nothing to choose yet: the notice is kept as is)."""


@dataclass(frozen=True)
class AlertRequest:
    """One alert to archive: the parsed notice, its text as received, where it came from."""

    burst_id: str
    alert: Alert
    payload: str
    instrument: str
    subject: str = ""


@step(name="archive-alert", config=AlertIngestConfig, outputs=("ALERT",))
def archive_alert(request: AlertRequest, *, config: AlertIngestConfig) -> Product:
    """Return the notice as the burst's ALERT product (XML or JSON, byte for byte).

    Its identity is the alert id and the payload's checksum: the same notice again is the
    same product, an updated notice for the same trigger is the next version.
    """
    alert = request.alert
    return Product(
        "ALERT",
        request.instrument,
        TextModel(request.payload, "xml" if alert.format == "voevent" else "json"),
        obs_id=request.burst_id,
        content={
            "alert_id": alert.alert_id,
            "role": alert.role,
            "format": alert.format,
            "subject": request.subject,
            "payload_sha256": hashlib.sha256(request.payload.encode("utf-8")).hexdigest(),
        },
    )


def _observe(request: AlertRequest) -> Observation:
    return Observation(instruments=(), time=request.alert.trigger_time.isoformat())


def _read(request: AlertRequest, calibration: CalibrationSet) -> AlertRequest:
    return request  # the notice arrives in the request: nothing to read


def _plan(
    runner: Runner, request: AlertRequest, config: AlertIngestConfig, calibration: CalibrationSet
) -> Product:
    return runner.run(archive_alert, request, config=config)


ALERT_PIPELINE: Pipeline[AlertRequest, AlertRequest, AlertIngestConfig, Product] = Pipeline(
    flow_name=FLOW_NAME,
    config=AlertIngestConfig,
    steps=(archive_alert,),
    observe=_observe,
    read=_read,
    plan=_plan,
)
