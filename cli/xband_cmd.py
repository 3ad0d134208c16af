"""``svomflow xband``: run the X-band analysis flow on ECLAIRs and GRM event files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from svomflow.cli._common import (
    ConfigFiles,
    SetOverrides,
    flow_server,
    user_errors,
    user_errors_printed_once,
)

__all__ = ["xband"]


def _default_obs_id(events: list[str]) -> str:
    from astropy.io import fits

    for p in events:
        try:
            with fits.open(p, memmap=False) as hdul:
                for h in hdul:
                    v = h.header.get("TRIGID")
                    if v:
                        return str(v).strip()
        except OSError:
            continue
    return Path(events[0]).stem


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return obj


@user_errors
def xband(
    events: Annotated[
        list[str], typer.Option("--events", "-e", help="ECLAIRs and/or GRM L1 event file (repeat).")
    ],
    t0: Annotated[
        float | None, typer.Option("--t0", help="Reference time (mission s); default TRIGTIME.")
    ] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Product root directory.")] = None,
    obs_id: Annotated[
        str | None, typer.Option("--obs-id", help="Observation id (default: TRIGID of the files).")
    ] = None,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as one JSON object.")
    ] = False,
) -> None:
    """Refined burst products (PO, T90, SP, FLUENCE, LC, PF, HR, LAG, RSP) from X-band events."""
    if as_json:  # keep stdout to the one JSON object
        import os

        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from svomflow.config import load_config
    from svomflow.tasks.xband.config import XbandAnalysisConfig
    from svomflow.tasks.xband.inputs import check_event_files

    check_event_files(events)  # fail fast, before a flow run starts, on files we cannot use
    from svomflow.flows.xband import xband_analysis

    cfg = load_config(
        XbandAnalysisConfig, flow="xband_analysis", files=config or [], overrides=set_ or []
    )
    from svomflow.paths import safe_component

    oid = safe_component(obs_id or _default_obs_id(events), what="observation id")
    with flow_server(quiet=as_json), user_errors_printed_once():
        result = xband_analysis(events=list(events), obs_id=oid, t0=t0, out_dir=out, config=cfg)
    if as_json:
        typer.echo(json.dumps(_clean(result)))
        return
    typer.echo(f"obs_id {oid}: {len(result['products'])} products")
    for name, row in result["t90"].items():
        if "t90" in row:
            typer.echo(f"  T90 {name}: {row['t90']:.2f} +- {row['t90_err']:.2f} s")
    for code, fl in result["fits"].items():
        main = next((f for f in fl if f["label"] == "main"), None)
        if main:
            pars = ", ".join(
                f"{k}={v['value']:.4g}" for k, v in main["parameters"].items() if not v["frozen"]
            )
            typer.echo(f"  SP_{code} main ({main['model']}): {pars}")
    for p in result["products"]:
        typer.echo(f"  {p['type']}_{p['instrument']} v{p['version']}: {p['path']}")
