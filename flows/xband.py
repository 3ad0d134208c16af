"""The ``xband_analysis`` flow: ECLAIRs + GRM event data -> refined burst products.

The flow builds the request and the configuration and runs
:data:`svomflow.tasks.xband.pipeline.XBAND_PIPELINE` through the Prefect adapter
(:func:`svomflow.flows.adapter.run_pipeline`): the calibration (CALDB) is resolved in the
first task, the event files are read once, each step call is a task and its products are
published through the catalogue (atomic, versioned, idempotent for identical inputs,
configuration and calibration). It then writes the summary artifact and the status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
    run_pipeline,
)
from svomflow.flows.prefect_flow import flow
from svomflow.flows.vhf_summary import t0_utc
from svomflow.tasks.xband.config import XbandAnalysisConfig
from svomflow.tasks.xband.inputs import XbandRequest
from svomflow.tasks.xband.pipeline import FLOW_NAME, XBAND_PIPELINE

__all__ = ["FLOW_NAME", "xband_analysis"]


def _fmt(v: Any, digits: int = 4) -> str:
    try:
        return f"{float(v):.{digits}g}"
    except (TypeError, ValueError):
        return str(v)


@flow(name=FLOW_NAME, flow_run_name="xband-{obs_id}", on_failure=[record_failure])
def xband_analysis(
    events: list[str],
    obs_id: str,
    t0: float | None = None,
    out_dir: str | None = None,
    database_url: str | None = None,
    config: XbandAnalysisConfig | None = None,
) -> dict[str, Any]:
    """Refined ECLAIRs + GRM burst products from X-band event files.

    Parameters
    ----------
    events
        ECLAIRs and/or GRM L1 event files (recognised by their INSTRUME keyword).
    obs_id
        Observation (burst) identifier: products are filed and versioned under it.
    t0
        Reference time (mission s); default the ECLAIRs (else GRM) TRIGTIME.
    out_dir
        Product root (default ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``).
    database_url
        Products database (default SQLite under the data directory).
    config
        The analysis configuration (every section has defaults).
    """
    cfg = config or XbandAnalysisConfig()
    ctx = FlowContext(FLOW_NAME, obs_id, out_dir or str(default_output_root()), database_url)
    files = [str(Path(p).resolve()) for p in events]
    run = run_pipeline(XBAND_PIPELINE, XbandRequest(tuple(files), t0), cfg, ctx, inputs=files)
    refs = run.refs
    res = run.outcome.summary({r.instrument: r.path for r in refs if r.type_code == "RSP"})
    publish_summary(
        title="X-band analysis",
        key=obs_id,
        refs=refs,
        numbers={"T0 (UTC)": t0_utc(files, float(res["t0"])) or "n/a", **_numbers(res)},
        previews=[r.path for r in refs if r.path.endswith(".png")],
        artifact_key=f"xband-{obs_id}",
    )
    ctx.status("done")
    return {
        "obs_id": obs_id,
        **res,
        "warnings": run.warnings,
        "products": [
            {
                "type": r.type_code,
                "instrument": r.instrument,
                "version": r.version,
                "path": r.path,
                "new": r.created_new,
            }
            for r in refs
        ],
    }


def _numbers(res: dict[str, Any]) -> dict[str, str]:
    """Format the key numbers of the summary artifact."""
    numbers: dict[str, str] = {"T0 (mission s)": _fmt(res["t0"], 12)}
    for name, row in res["t90"].items():
        if "t90" in row:
            numbers[f"T90 {name} {row['band_lo']:g}-{row['band_hi']:g} keV (s)"] = (
                f"{_fmt(row['t90'])} ± {_fmt(row['t90_err'], 2)}"
            )
        else:
            numbers[f"T90 {name} {row['band_lo']:g}-{row['band_hi']:g} keV (s)"] = (
                f"not measured ({row.get('quality', 'NOT_MEASURED')})"
            )
    loc = res["positions"]
    if "eclairs" in loc:
        e = loc["eclairs"]
        numbers["PO_ECL RA, Dec (deg), r90"] = (
            f"{e['ra_deg']:.4f}, {e['dec_deg']:.4f}, {e['r90_arcmin']:.1f} arcmin"
        )
    if "grm" in loc:
        g = loc["grm"]
        numbers["PO_GRM RA, Dec (deg), r90"] = (
            f"{g['ra_deg']:.2f}, {g['dec_deg']:.2f}, {g['error_radius_90_deg']:.1f} deg"
        )
    for code, fl in res["fits"].items():
        main = next((f for f in fl if f["label"] == "main"), None)
        if main is None:
            continue
        p = main["parameters"]
        shape = ", ".join(
            f"{k}={_fmt(v['value'])}" for k, v in p.items() if not v["frozen"] and k != "K"
        )
        numbers[f"SP_{code} main {main['model']}"] = shape
        for key, fx in main["fluxes"].items():
            if key.startswith("fluence"):
                numbers[f"FLUENCE_{code} {key[8:]} keV (erg/cm2)"] = (
                    f"{fx['value']:.3e} (-{abs(fx['error_low']):.1e} +{fx['error_high']:.1e})"
                )
    for name, rows in res["peak_fluxes"].items():
        for r in rows:
            numbers[f"PF {name} {r['timescale']:g} s (ph/cm2/s)"] = (
                f"{_fmt(r['photon_flux'])} ± {_fmt(r['photon_flux_err'], 2)}"
            )
    for code, v in res["hardness_lag"].items():
        numbers[f"HR_{code}"] = f"{_fmt(v['hr']['ratio'])} ± {_fmt(v['hr']['ratio_err'], 2)}"
        numbers[f"LAG_{code} (s)"] = f"{_fmt(v['lag']['lag'])} ± {_fmt(v['lag']['lag_err'], 2)}"
    return numbers
