"""``svomflow eic pixels``: bad pixels, uniformity map and dead time of ECLAIRs (run and show)."""

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
    help="ECLAIRs pixel calibration: dead, noisy and intermittent pixels (BADPIX), the "
    "uniformity map (UNIFMAP) and the module dead times (DEADTIME) from a period's count "
    "rates, promoted into the CALDB through the gate.",
    no_args_is_help=True,
)


def _iso(value: str | None, option: str) -> str | None:
    import datetime as _dt

    from svomflow.errors import ConfigError

    if value is None:
        return None
    try:
        _dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r}: expected an ISO UTC time (2026-12-01T00:00:00)"
        ) from None
    return value


@app.command("run")
@user_errors
def run(
    data_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of pixel count histories and dead-time rates (default "
            "$SVOMFLOW_HOME/eic/pixels)."
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Start of the period (ISO UTC).")
    ] = None,
    stop: Annotated[str | None, typer.Option("--stop", help="End of the period (ISO UTC).")] = None,
    last_days: Annotated[
        float | None,
        typer.Option("--last-days", help="Without --start: the period is the last N days."),
    ] = None,
    caldb: CaldbDir = None,
    out: ProductsRoot = None,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Flag bad pixels, map the uniformity and fit the dead time; promote what passes the gate."""
    from svomflow.config import load_config
    from svomflow.errors import ConfigError, InputDataError
    from svomflow.tasks.eic.pixels_pipeline import EicPixelsConfig

    if data_dir is not None and not data_dir.is_dir():
        raise InputDataError(f"{data_dir}: not a directory")
    if last_days is not None and last_days <= 0:
        raise ConfigError("--last-days must be positive")
    start, stop = _iso(start, "--start"), _iso(stop, "--stop")
    cfg = load_config(EicPixelsConfig, flow="eic_pixels", files=config or [], overrides=set_ or [])
    from svomflow.flows.eic_pixels import eic_pixel_calibration

    settings: Any = cfg.model_dump(mode="json", exclude_unset=True)
    with flow_server(quiet=as_json), user_errors_printed_once():
        summary = eic_pixel_calibration(
            data_dir=str(data_dir.resolve()) if data_dir else None,
            start=start,
            stop=stop,
            last_days=last_days,
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
    c = summary["counts"]
    typer.echo(
        f"{summary['obs_id']}: {len(summary['history_files'])} count-history file(s); "
        f"{c['DEAD']} dead, {c['NOISY']} noisy, {c['INTERMIT']} intermittent pixels"
    )
    for code, p in summary["promotions"].items():
        figs = ", ".join(f"{k} {v:.4g}" for k, v in p["figures"].items())
        typer.echo(f"  {code}: {figs}")
        if p["promoted"]:
            typer.echo(f"    promoted into the CALDB: {p['caldb_path']}")
        else:
            typer.echo("    refused by the gate: " + "; ".join(p["reasons"]))
            if p["current_path"]:
                typer.echo(f"    the current file stays: {p['current_path']}")
        typer.echo(f"    QC history: {p['qc_history']}")


@app.command("show")
@user_errors
def show(
    time: Annotated[
        str | None, typer.Option("--time", help="Files in force at this UTC time (default now).")
    ] = None,
    caldb: CaldbDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Print the BADPIX, UNIFMAP and DEADTIME files of ECLAIRs in force at --time."""
    import datetime as _dt

    from svomflow.calibration.caldb import open_caldb
    from svomflow.errors import CalibrationNotFoundError
    from svomflow.flows.eic_pixels import measure_badpix, measure_deadtime, measure_unifmap

    when = _iso(time, "--time") or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", ""
    )
    db = open_caldb(caldb)
    out: dict[str, Any] = {}
    for code, measure in (
        ("BADPIX", measure_badpix),
        ("UNIFMAP", measure_unifmap),
        ("DEADTIME", measure_deadtime),
    ):
        try:
            entry = db.select(code, instrument="ECLAIRS", time=when)
        except CalibrationNotFoundError:
            out[code] = None
            continue
        out[code] = {
            "path": str(entry.path),
            "valid_from": str(entry.valid_from),
            "figures": {f.name: f.value for f in measure(Path(entry.path))},
        }
    if as_json:
        typer.echo(json.dumps(out, default=str))
        return
    for code, info in out.items():
        if info is None:
            typer.echo(f"{code}: none in the CALDB at {when}")
            continue
        typer.echo(f"{code}: {info['path']} (valid from {info['valid_from']})")
        for k, v in info["figures"].items():
            typer.echo(f"  {k}: {v:.6g}")
