"""Delivery of validated products to the science database (flow ``science_delivery``).

Runs :data:`~svomflow.tasks.validation.pipeline.SCIENCE_PIPELINE` through the adapter: read
the current versions of the types that have rules in
``config/pipelines/science_validation.yaml`` and that the science database has not judged
yet (with their announced key values and the positions of their bursts), judge them in one
pure step, then record each as delivered (idempotent, versioned) or refused with its reasons.
A refused product stays in svomflow's store, untouched. ``svomflow science deliver`` runs
the same pipeline in this process (:func:`deliver_plain`); ``svomflow serve`` runs the flow
every five minutes.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from svomflow.flows.adapter import FlowContext, default_output_root, record_failure, run_pipeline
from svomflow.flows.prefect_flow import flow
from svomflow.tasks.step import run_plain
from svomflow.tasks.validation.pipeline import (
    SCIENCE_PIPELINE,
    DeliveryReport,
    DeliveryRequest,
    Judgement,
    ScienceDeliveryConfig,
    load_delivery_config,
    record_verdicts,
)

__all__ = ["deliver_plain", "science_delivery"]


def _request(
    config: ScienceDeliveryConfig,
    obs_id: str | None,
    database_url: str | None,
    science_database_url: str | None,
    rejudge_refused: bool,
) -> DeliveryRequest:
    return DeliveryRequest(
        types=tuple(sorted(config.validation.types)),
        obs_id=obs_id,
        database_url=database_url,
        science_database_url=science_database_url,
        rejudge_refused=rejudge_refused,
    )


def deliver_plain(
    config: ScienceDeliveryConfig,
    *,
    obs_id: str | None = None,
    database_url: str | None = None,
    science_database_url: str | None = None,
    rejudge_refused: bool = False,
) -> DeliveryReport:
    """Judge and record every version not judged yet, in this process (no Prefect)."""
    request = _request(config, obs_id, database_url, science_database_url, rejudge_refused)
    judgement, _ = run_plain(SCIENCE_PIPELINE, request, config)
    return record_verdicts(judgement, science_database_url)


@task(name="record-deliveries", retries=2, retry_delay_seconds=[1, 3], cache_policy=NO_CACHE)
def _record_task(judgement: Judgement, science_database_url: str | None) -> DeliveryReport:
    return record_verdicts(judgement, science_database_url)


@flow(name="science_delivery", flow_run_name="science-delivery", on_failure=[record_failure])
def science_delivery(
    obs_id: str | None = None,
    config: dict[str, Any] | None = None,
    database_url: str | None = None,
    science_database_url: str | None = None,
) -> dict[str, Any]:
    """Deliver the validated products not judged yet to the science database.

    Parameters
    ----------
    obs_id
        Only this burst/observation (default: all).
    config
        Overrides of the configuration (``{"validation": {"types": {...}}}``).
    database_url, science_database_url
        The products database and the science database (defaults: the environment's).

    Returns
    -------
    dict
        ``delivered`` (product ids), ``flagged`` and ``refused`` (id -> reasons), ``already``.
    """
    cfg = load_delivery_config(overrides=config or {})
    request = _request(cfg, obs_id, database_url, science_database_url, False)
    ctx = FlowContext("science_delivery", obs_id or "all", str(default_output_root()), database_url)
    run = run_pipeline(SCIENCE_PIPELINE, request, cfg, ctx)
    report = _record_task(run.outcome, science_database_url)
    ctx.status("done", report.summary())
    return {
        "delivered": report.delivered,
        "flagged": report.flagged,
        "refused": report.refused,
        "already": report.already,
    }
