"""The ``vhf_quick_analysis`` flow: burst event files -> TT, QCL, QPO, QLC, QPF, QT90, QHR, QSP, RSP, CRCLASS.

The flow builds the request and the layered configuration, runs
:data:`~svomflow.tasks.vhf.pipeline.VHF_PIPELINE` through the Prefect adapter (calibration
resolved in the first task, inputs read once, one task per step call, products published
through the catalogue) and returns the key numbers. :func:`run_vhf_plain` runs the same
pipeline without Prefect (``svomflow vhf --no-prefect``) and returns the same object.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prefect import flow
from svomflow.config import load_config
from svomflow.errors import SvomflowError
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
    run_pipeline,
    run_pipeline_plain,
)
from svomflow.products.burst_events import peek_headers
from svomflow.products.provenance import current_flow_run_id
from svomflow.products.store import ProductRef
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.inputs import VHFRequest, instrument_names
from svomflow.tasks.vhf.outcome import VHFOutcome, summary
from svomflow.tasks.vhf.pipeline import FLOW_NAME, VHF_PIPELINE

__all__ = ["FLOW_NAME", "load_vhf_config", "run_vhf_plain", "vhf_quick_analysis"]


def load_vhf_config(
    instruments: Sequence[str],
    config_files: list[str] | None = None,
    overrides: list[str] | None = None,
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


def _prepare(
    event_files: list[str],
    obs_id: str,
    t0: float | None,
    band: tuple[float, float] | None,
    config_files: list[str] | None,
    overrides: list[str] | None,
) -> tuple[VHFRequest, VHFConfig]:
    """Build the run's request and merged configuration (instrument layers from headers)."""
    request = VHFRequest.of(event_files, obs_id, t0)
    names = instrument_names(peek_headers(request.event_files))
    return request, load_vhf_config(names, config_files, overrides, band)


def _result(outcome: VHFOutcome, refs: Sequence[ProductRef], obs_id: str) -> dict[str, Any]:
    """Return the flow's result: the key numbers, ``obs_id``, ``products`` (code -> path)."""
    out = summary(outcome)
    out["obs_id"] = obs_id
    out["products"] = {f"{r.type_code}_{r.instrument}": r.path for r in refs}
    return out


def _publish_summary(out: dict[str, Any], refs: Sequence[ProductRef], obs_id: str) -> None:
    """Attach the run's markdown artifact: T0, T90, class, position and the products."""
    band = out["t90_band_kev"]
    numbers = {
        "T0 (mission s)": f"{out['t0']:.3f}",
        f"T90 ({out['t90_instrument']}, {band[0]:g}-{band[1]:g} keV)": (
            "n/a"
            if out["t90"] is None
            else f"{out['t90']:.2f} ± {out['t90_err'] or float('nan'):.2f} s"
        ),
        "class": "n/a"
        if out["classification"] is None
        else f"{out['classification']['class']} (p_short {out['classification']['p_short']:.3f})",
    }
    if out["position"]:
        p = out["position"]
        numbers["position"] = (
            f"RA {p['ra_deg']:.3f} Dec {p['dec_deg']:.3f} r90 {p['r90_arcmin']:.1f}' "
            f"({p['instrument']})"
        )
    publish_summary(
        title=f"VHF quick analysis {obs_id}",
        key=obs_id,
        refs=refs,
        numbers=numbers,
        previews=[r.path for r in refs if r.path.endswith(".png")],
        artifact_key=f"vhf-{obs_id}",
    )


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

    Returns
    -------
    dict
        The key numbers (:func:`svomflow.tasks.vhf.outcome.summary`), ``products`` (type
        code -> path), ``timing_s`` (wall time per stage) and the flow-run id.
    """
    start = time.perf_counter()
    ctx = FlowContext(FLOW_NAME, obs_id, out_dir or str(default_output_root()), database_url)
    ctx.status("received")
    request, cfg = _prepare(event_files, obs_id, t0, band, config_files, overrides)
    run = run_pipeline(VHF_PIPELINE, request, cfg, ctx, inputs=request.event_files)
    out = _result(run.outcome, run.refs, obs_id)
    _publish_summary(out, run.refs, obs_id)
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
    _publish_summary(out, run.refs, obs_id)
    ctx.status("done")
    out["timing_s"] = run.outcome.stage_seconds | {"total_in_flow": time.perf_counter() - start}
    out["flow_run_id"] = None
    return out
