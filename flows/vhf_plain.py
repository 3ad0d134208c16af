"""The VHF quick analysis without Prefect: its configuration, request, summary and plain run.

:func:`run_vhf_plain` runs :data:`~svomflow.tasks.vhf.pipeline.VHF_PIPELINE` in this process
(``svomflow vhf --no-prefect``, ``svomflow warm``) and returns what the flow
:func:`svomflow.flows.vhf.vhf_quick_analysis` returns; the flow builds its run with the
helpers here. Nothing here imports Prefect (a fresh ``--no-prefect`` process does not pay
its import: tests/flows/test_vhf_no_prefect.py checks it), so the flow lives in its own
module.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

# the previews' renderer (matplotlib's Figure and Agg canvas, about 0.35 s of CPU) loads with
# the flow rather than during its first run: a served or listening process pays it at start
import matplotlib.backends.backend_agg
import matplotlib.figure  # noqa: F401
from svomflow.config import load_config
from svomflow.config.loader import deep_merge, parse_set_overrides
from svomflow.errors import SvomflowError
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_flow_products,
    publish_summary,
    run_pipeline_plain,
)
from svomflow.flows.vhf_summary import key_numbers, summary_html, t0_utc
from svomflow.paths import safe_join
from svomflow.products.burst_events import peek_headers
from svomflow.products.catalogue import Product, TextModel
from svomflow.products.store import ProductRef
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.inputs import VHFRequest, instrument_names
from svomflow.tasks.vhf.outcome import VHFOutcome, summary
from svomflow.tasks.vhf.pipeline import FLOW_NAME, VHF_PIPELINE

__all__ = [
    "flow_result",
    "load_vhf_config",
    "load_vhf_config_for",
    "prepare_run",
    "publish_vhf_summary",
    "run_vhf_plain",
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


def prepare_run(
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


def flow_result(outcome: VHFOutcome, refs: Sequence[ProductRef], obs_id: str) -> dict[str, Any]:
    """Return the flow's result: the key numbers, ``obs_id``, ``products`` (code -> path)."""
    out = summary(outcome)
    out["obs_id"] = obs_id
    out["products"] = {f"{r.type_code}_{r.instrument}": r.path for r in refs}
    return out


def publish_vhf_summary(
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

    Same parameters and return value as :func:`svomflow.flows.vhf.vhf_quick_analysis` (``flow_run_id`` is
    None). A failure is recorded in the processing status here, as the flow's on_failure
    hook does for a flow run.
    """
    start = time.perf_counter()
    ctx = FlowContext(FLOW_NAME, obs_id, out_dir or str(default_output_root()), database_url)
    # running (leased) from the start: a run killed before its pipeline reads abandoned,
    # where "received" (no owner, no lease) would say the burst waits for ever
    ctx.status("running")
    try:
        request, cfg = prepare_run(event_files, obs_id, t0, band, config_files, overrides)
    except SvomflowError as exc:
        ctx.status("failed", str(exc)[:2000])
        raise
    run = run_pipeline_plain(VHF_PIPELINE, request, cfg, ctx, inputs=request.event_files)
    out = flow_result(run.outcome, run.refs, obs_id)
    extra = publish_vhf_summary(out, run.refs, obs_id, ctx, cfg, request.event_files)
    out["products"] |= {f"{r.type_code}_{r.instrument}": r.path for r in extra}
    ctx.status("done")
    out["timing_s"] = run.outcome.stage_seconds | {"total_in_flow": time.perf_counter() - start}
    out["flow_run_id"] = None
    return out
