"""``svomflow eic saa``: the SAA contour (measure and promote, export for the operations centre)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from svomflow.cli._common import (
    CaldbDir,
    ConfigFiles,
    ProductsRoot,
    SetOverrides,
    flow_server,
    user_errors,
    user_errors_printed_once,
)

__all__ = ["app"]

app = typer.Typer(
    help="SAA contour: measure it from the count rates along the orbit, promote it into the "
    "CALDB through the gate, export it as XML for the operations centre.",
    no_args_is_help=True,
)


@app.command("build")
@user_errors
def build(
    rate_files: Annotated[
        list[Path] | None, typer.Argument(help="Orbit-rate files (ORBRATE FITS).")
    ] = None,
    rates_dir: Annotated[
        Path | None,
        typer.Option(
            "--rates-dir", help="Folder of rate files (default $SVOMFLOW_HOME/eic/orbit_rates)."
        ),
    ] = None,
    caldb: CaldbDir = None,
    out: ProductsRoot = None,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Measure the SAA contour, judge it against the current one, promote and export it (eic_saa)."""
    from svomflow.config import load_config
    from svomflow.errors import InputDataError
    from svomflow.tasks.eic.saa_pipeline import EicSaaConfig

    for f in rate_files or []:
        if not f.is_file():
            raise InputDataError(f"{f}: no such file")
    if rates_dir is not None and not rates_dir.is_dir():
        raise InputDataError(f"--rates-dir {rates_dir}: not a directory")
    cfg = load_config(EicSaaConfig, files=config or [], overrides=set_ or [])
    from svomflow.flows.eic_saa import eic_saa

    # only the values set (a mapping Prefect validates): the packaged defaults fill the rest
    settings: Any = cfg.model_dump(mode="json", exclude_unset=True)
    with flow_server(quiet=as_json), user_errors_printed_once():
        summary = eic_saa(
            rate_files=[str(f.resolve()) for f in rate_files] if rate_files else None,
            rates_dir=str(rates_dir.resolve()) if rates_dir else None,
            out_dir=str(out.resolve()) if out else None,
            caldb_root=caldb,
            config=settings,
        )
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    if summary["status"] == "empty":
        typer.echo(summary["message"])
        return
    p = summary["promotion"]
    typer.echo(
        f"{summary['key']}: {summary['n_samples']} rate samples, {summary['polygons']} polygon(s)"
    )
    for name, value in p["figures"].items():
        typer.echo(f"  {name}: {value:.6g}")
    if p["promoted"]:
        typer.echo(f"promoted into the CALDB: {p['caldb_path']}")
        typer.echo(f"XML for the operations centre: {summary['xml']}")
    else:
        typer.echo("refused by the gate: " + "; ".join(p["reasons"]))
        typer.echo(f"the current contour stays: {p['current_path']}")
    typer.echo(f"QC history: {p['qc_history']}")


@app.command("export")
@user_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="XML file to write.")],
    time: Annotated[
        str | None, typer.Option("--time", help="Contour in force at this UTC time (default now).")
    ] = None,
    caldb: CaldbDir = None,
) -> None:
    """Write the CALDB's SAA contour in force at --time as the operations centre's XML (validated)."""
    import datetime as _dt

    from svomflow.atomic import atomic_write_bytes
    from svomflow.calibration.caldb import open_caldb
    from svomflow.config import load_config
    from svomflow.products.eic_saa_files import read_saa_contour
    from svomflow.tasks.eic.saa import saa_export
    from svomflow.tasks.eic.saa_pipeline import FLOW_NAME, EicSaaConfig

    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "")
    entry = open_caldb(caldb).select("SAACONT", instrument="ECLAIRS", time=time or now)
    export = saa_export.run(
        read_saa_contour(entry.path),
        Path(entry.path).name,
        str(entry.valid_from).replace("+00:00", ""),
        now,
        config=load_config(EicSaaConfig, flow=FLOW_NAME).export,
    )
    atomic_write_bytes(out, export.text.encode("utf-8"))
    typer.echo(f"{out}: contour {Path(entry.path).name} (valid from {entry.valid_from})")
