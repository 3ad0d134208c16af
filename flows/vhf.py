"""The ``vhf_quick_analysis`` flow: burst event files -> TT, QCL, QPO, QLC, QPF, QT90, QHR, QSP, RSP, CRCLASS.

The flow builds the request and the layered configuration, runs
:data:`~svomflow.tasks.vhf.pipeline.VHF_PIPELINE` through the Prefect adapter (calibration
resolved in the first task, inputs read once, one task per step call, products published
through the catalogue) and returns the key numbers. :func:`run_vhf_plain` runs the same
pipeline without Prefect (``svomflow vhf --no-prefect``) and returns the same object; it
lives with the flow's helpers in :mod:`svomflow.flows.vhf_plain`, which does not import
Prefect (this module does, for ``@flow``), and is re-exported here.
"""

from __future__ import annotations

import time
from typing import Any

from svomflow.flows.adapter import FlowContext, default_output_root, record_failure, run_pipeline
from svomflow.flows.prefect_flow import flow
from svomflow.flows.vhf_plain import (
    flow_result,
    load_vhf_config,
    load_vhf_config_for,
    prepare_run,
    publish_vhf_summary,
    run_vhf_plain,
)
from svomflow.products.provenance import current_flow_run_id
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.pipeline import FLOW_NAME, VHF_PIPELINE

__all__ = [
    "FLOW_NAME",
    "load_vhf_config",
    "load_vhf_config_for",
    "run_vhf_plain",
    "vhf_quick_analysis",
]


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
    # running (leased) from the start: a run killed before its pipeline reads abandoned
    ctx.status("running")
    request, cfg = prepare_run(event_files, obs_id, t0, band, config_files, overrides, config)
    run = run_pipeline(VHF_PIPELINE, request, cfg, ctx, inputs=request.event_files)
    out = flow_result(run.outcome, run.refs, obs_id)
    extra = publish_vhf_summary(out, run.refs, obs_id, ctx, cfg, request.event_files)
    out["products"] |= {f"{r.type_code}_{r.instrument}": r.path for r in extra}
    ctx.status("done")
    out["timing_s"] = run.outcome.stage_seconds | {"total_in_flow": time.perf_counter() - start}
    out["flow_run_id"] = current_flow_run_id()
    return out
