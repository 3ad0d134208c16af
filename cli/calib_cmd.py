"""``svomflow calib``: calibration flows from the command line (``calib nightly``)."""

from __future__ import annotations

import json
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

__all__ = ["app"]

app = typer.Typer(help="Calibration flows: nightly master bias/dark/flat.", no_args_is_help=True)


@app.command("nightly")
@user_errors
def nightly(
    night: Annotated[
        str, typer.Option("--night", help="Night (YYYY-MM-DD, date of the evening) or 'last'.")
    ],
    raw: Annotated[Path, typer.Option("--raw", help="Directory of the raw calibration frames.")],
    caldb: Annotated[
        str | None,
        typer.Option("--caldb", help="CALDB directory or URL (default $SVOMFLOW_CALDB)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Working area and products root (default under $SVOMFLOW_HOME)."
        ),
    ] = None,
    instrument: Annotated[
        str, typer.Option("--instrument", help="Camera definition name.")
    ] = "colibri_ddrago_b",
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Build, validate and promote the night's master calibrations (nightly_master_calibration)."""
    import datetime as _dt

    from svomflow.config import load_config
    from svomflow.errors import ConfigError, InputDataError
    from svomflow.tasks.masters.config import NightlyCalibrationConfig

    if night.strip().lower() != "last":
        try:
            _dt.date.fromisoformat(night)
        except ValueError:
            raise ConfigError(f"--night {night!r}: expected YYYY-MM-DD or 'last'") from None
    if not raw.is_dir():
        raise InputDataError(f"--raw {raw}: not a directory")
    # the camera name becomes a folder and selects a definition file: refuse it before
    # anything starts; likewise a configuration typo
    from svomflow.config import available_instruments
    from svomflow.paths import safe_component

    safe_component(instrument, what="--instrument")
    if instrument not in available_instruments():
        raise ConfigError(
            f"--instrument {instrument!r}: no such camera definition "
            f"(known: {', '.join(sorted(available_instruments()))})"
        )
    cfg = load_config(NightlyCalibrationConfig, files=config or [], overrides=set_ or [])
    from svomflow.flows.nightly_calibration import nightly_master_calibration

    # only the values set (a mapping Prefect validates): the camera fills the others
    settings: Any = cfg.model_dump(mode="json", exclude_unset=True)

    from svomflow.cli._progress import flow_progress

    with (
        flow_server(quiet=as_json),
        user_errors_printed_once(),
        flow_progress(f"calib nightly {night}", quiet=as_json),
    ):
        summary = nightly_master_calibration(
            night,
            str(raw.resolve()),
            out_dir=str(out.resolve()) if out else None,
            caldb_root=caldb,
            instrument=instrument,
            config=settings,
        )
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    if summary["status"] == "empty":
        typer.echo(summary["message"])
        return
    typer.echo(f"night {summary['night']} ({summary['camera']}):")
    for g in summary["groups"]:
        verdict = "promoted" if g["passed"] else "rejected: " + "; ".join(g["reasons"])
        typer.echo(f"  {g['group']}: {verdict}")
    for r in summary["refused"]:
        typer.echo(f"  {r['group']}: refused: {r['reason']}")
    typer.echo(f"{len(summary['products'])} products recorded")
