"""The ``vhf_quick_analysis`` flow: burst event files -> TT, QCL, QPO, QLC, QPF, QT90, QHR, QSP, RSP, CRCLASS.

The flow builds the request and the layered configuration, runs
:data:`~svomflow.tasks.vhf.pipeline.VHF_PIPELINE` through the Prefect adapter (calibration
resolved in the first task, inputs read once, one task per step call, products published
through the catalogue) and returns the key numbers. :func:`run_vhf_plain` runs the same
pipeline without Prefect (``svomflow vhf --no-prefect``) and returns the same object.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import flow
from svomflow.config import load_config
from svomflow.config.loader import deep_merge, parse_set_overrides
from svomflow.errors import SvomflowError
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_flow_products,
    publish_summary,
    record_failure,
    run_pipeline,
    run_pipeline_plain,
)
from svomflow.flows.vhf_summary import key_numbers, summary_html, t0_utc
from svomflow.paths import safe_join
from svomflow.products.burst_events import peek_headers
from svomflow.products.catalogue import Product, TextModel
from svomflow.products.provenance import current_flow_run_id
from svomflow.products.store import ProductRef
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.inputs import VHFRequest, instrument_names
from svomflow.tasks.vhf.outcome import VHFOutcome, summary
from svomflow.tasks.vhf.pipeline import FLOW_NAME, VHF_PIPELINE

__all__ = [
    "FLOW_NAME",
    "load_vhf_config",
    "load_vhf_config_for",
    "run_vhf_plain",
    "vhf_quick_analysis",
]


def load_vhf_config(
    instruments: Sequence[str],
    config_files: list[str] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    band: tuple[float, float] | None = None,
) -> VHFConfig:
    """Merge code defaults, packaged defaults, instrument overrides, user files and ``--set``.

    ``instruments`` are definition names or ``INSTRUME`` values; those without a definition
    (foreign files) add no layer.
    """
    from svomflow.config import available_instruments

    known = set(available_instruments())
    cfg = load_config(
        VHFConfig,
        flow=FLOW_NAME,
        instruments=[n.lower() for n in instruments if n.lower() in known],
        files=config_files or [],
        overrides=overrides or [],
    )
    if band is not None:
        cfg.band_kev = (float(band[0]), float(band[1]))
    return cfg


def load_vhf_config_for(
    event_files: Sequence[str],
    config_files: list[str] | None = None,
    overrides: list[str] | None = None,
    band: tuple[float, float] | None = None,
    config: VHFConfig | Mapping[str, Any] | None = None,
) -> VHFConfig:
    """Return the merged configuration of a run on ``event_files`` (instrument layers from headers).

    ``config`` (the flow's typed parameter: the values a caller set, from the UI form or
    ``svomflow reprocess``) is merged over ``--set`` overrides, which are merged over files.
    """
    names = instrument_names(peek_headers(list(event_files)))
    layered: Mapping[str, Any] = deep_merge(
        parse_set_overrides(overrides or []), config_overrides(config)
    )
    return load_vhf_config(names, config_files, layered, band)


def _prepare(
    event_files: list[str],
    obs_id: str,
    t0: float | None,
    band: tuple[float, float] | None,
    config_files: list[str] | None,
    overrides: list[str] | None,
    config: VHFConfig | Mapping[str, Any] | None = None,
) -> tuple[VHFRequest, VHFConfig]:
    """Build the run's request and merged configuration (instrument layers from headers)."""
    request = VHFRequest.of(event_files, obs_id, t0)
    return request, load_vhf_config_for(request.event_files, config_files, overrides, band, config)


def _result(outcome: VHFOutcome, refs: Sequence[ProductRef], obs_id: str) -> dict[str, Any]:
    """Return the flow's result: the key numbers, ``obs_id``, ``products`` (code -> path)."""
    out = summary(outcome)
    out["obs_id"] = obs_id
    out["products"] = {f"{r.type_code}_{r.instrument}": r.path for r in refs}
    return out


def _publish_summary(
    out: dict[str, Any],
    refs: Sequence[ProductRef],
    obs_id: str,
    ctx: FlowContext,
    cfg: VHFConfig,
    inputs: Sequence[str],
) -> list[ProductRef]:
    """Write the HTML summary product (QSUM) and attach the run's markdown artifact.

    Both show the key numbers with errors and units and T0 in UTC; the artifact embeds the
    previews and links the products (the summary included). Returns the QSUM reference.
    """
    numbers = key_numbers(out, t0_utc(inputs, out["t0"]))
    joint = next((r.instrument for r in refs if r.type_code == "CRCLASS"), None)
    instrument = joint or (refs[0].instrument if refs else "VHF")
    folder = safe_join(ctx.out_root, obs_id, instrument)
    listed = [(f"{r.type_code}_{r.instrument}", r.path) for r in refs]
    page = TextModel(summary_html(obs_id, numbers, listed, folder), "html")
    summary_refs = publish_flow_products(
        ctx, cfg, [Product("QSUM", instrument, page)], name="summary", inputs=inputs
    )
    publish_summary(
        title=f"VHF quick analysis {obs_id}",
        key=obs_id,
        refs=[*summary_refs, *refs],
        numbers=numbers,
        previews=[r.path for r in refs if r.path.endswith(".png")],
        artifact_key=f"vhf-{obs_id}",
    )
    return summary_refs


@flow(name=FLOW_NAME, flow_run_name="vhf-{obs_id}", on_failure=[record_failure])
def vhf_quick_analysis(
    event_files: list[str],
    obs_id: str,
    t0: float | None = None,
    band: tuple[float, float] | None = None,
    out_dir: str | None = None,
    config_files: list[str] | None = None,
    overrides: list[str] | None = None,
    database_url: str | None = None,
    config: VHFConfig | None = None,
) -> dict[str, Any]:
    """Quick analysis of a burst from its first event data (ECLAIRs, GRM, GBM-like files).

    Parameters
    ----------
    event_files
        Event files of any instruments (grouped by their ``INSTRUME`` keyword).
    obs_id
        Burst / observation id: names the run, the product folder and the processing status.
    t0
        Reference time (mission s); default: the imaging instrument's ``TRIGTIME``.
    band
        T90 / peak-flux band (keV) for every instrument; default: each instrument's.
    out_dir
        Product root (default ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``).
    config_files, overrides
        User configuration files and ``dotted.key=value`` overrides of :class:`VHFConfig`.
    database_url
        Products database (default SQLite under the data home).
    config
        Typed configuration (the form in the UI): the values set here win over
        ``overrides``, files and the packaged/instrument layers.

    Returns
    -------
    dict
        The key numbers (:func:`svomflow.tasks.vhf.outcome.summary`), ``products`` (type
        code -> path), ``timing_s`` (wall time per stage) and the flow-run id.
    """
    start = time.perf_counter()
    ctx = FlowContext(FLOW_NAME, obs_id, out_dir or str(default_output_root()), database_url)
    ctx.status("received")
    request, cfg = _prepare(event_files, obs_id, t0, band, config_files, overrides, config)
    run = run_pipeline(VHF_PIPELINE, request, cfg, ctx, inputs=request.event_files)
    out = _result(run.outcome, run.refs, obs_id)
    extra = _publish_summary(out, run.refs, obs_id, ctx, cfg, request.event_files)
    out["products"] |= {f"{r.type_code}_{r.instrument}": r.path for r in extra}
    ctx.status("done")
    out["timing_s"] = run.outcome.stage_seconds | {"total_in_flow": time.perf_counter() - start}
    out["flow_run_id"] = current_flow_run_id()
    return out


def run_vhf_plain(
    event_files: list[str],
    obs_id: str,
    *,
    t0: float | None = None,
    band: tuple[float, float] | None = None,
    out_dir: str | None = None,
    config_files: list[str] | None = None,
    overrides: list[str] | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Run the same pipeline without Prefect; products, status and result as the flow's.

    Same parameters and return value as :func:`vhf_quick_analysis` (``flow_run_id`` is
    None). A failure is recorded in the processing status here, as the flow's on_failure
    hook does for a flow run.
    """
    start = time.perf_counter()
    ctx = FlowContext(FLOW_NAME, obs_id, out_dir or str(default_output_root()), database_url)
    ctx.status("received")
    try:
        request, cfg = _prepare(event_files, obs_id, t0, band, config_files, overrides)
    except SvomflowError as exc:
        ctx.status("failed", str(exc)[:2000])
        raise
    run = run_pipeline_plain(VHF_PIPELINE, request, cfg, ctx, inputs=request.event_files)
    out = _result(run.outcome, run.refs, obs_id)
    extra = _publish_summary(out, run.refs, obs_id, ctx, cfg, request.event_files)
    out["products"] |= {f"{r.type_code}_{r.instrument}": r.path for r in extra}
    ctx.status("done")
    out["timing_s"] = run.outcome.stage_seconds | {"total_in_flow": time.perf_counter() - start}
    out["flow_run_id"] = None
    return out
