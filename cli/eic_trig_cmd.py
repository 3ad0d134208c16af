"""``svomflow eic triggers``: on-board trigger monitoring (compare, threshold tables, catalogues)."""

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
    help="On-board trigger monitoring: ground re-analysis of the rate stream vs the on-board "
    "trigger log; the threshold tables (TRIGTHR) and known-source catalogues (OBSRCCAT).",
    no_args_is_help=True,
)


@app.command("compare")
@user_errors
def compare(
    stream: Annotated[Path | None, typer.Argument(help="Rate stream (<name>_stream.fits).")] = None,
    log: Annotated[Path | None, typer.Argument(help="On-board log (<name>_triglog.fits).")] = None,
    inbox: Annotated[
        Path | None,
        typer.Option(
            "--inbox", help="Folder of stream/log pairs (default $SVOMFLOW_HOME/eic/triggers)."
        ),
    ] = None,
    caldb: CaldbDir = None,
    out: ProductsRoot = None,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Re-run the rate trigger on STREAM with the on-board thresholds and compare with LOG."""
    from svomflow.config import load_config
    from svomflow.errors import InputDataError
    from svomflow.tasks.eic.trigger_pipeline import EicTriggersConfig

    if (stream is None) != (log is None):
        raise InputDataError("give both STREAM and LOG, or neither (then --inbox is searched)")
    for f in (stream, log):
        if f is not None and not f.is_file():
            raise InputDataError(f"{f}: no such file")
    cfg = load_config(EicTriggersConfig, files=config or [], overrides=set_ or [])
    from svomflow.flows.eic_triggers import eic_triggers

    # only the values set (a mapping Prefect validates): the packaged defaults fill the rest
    settings: Any = cfg.model_dump(mode="json", exclude_unset=True)
    with flow_server(quiet=as_json), user_errors_printed_once():
        summary = eic_triggers(
            stream_file=str(stream.resolve()) if stream else None,
            log_file=str(log.resolve()) if log else None,
            inbox=str(inbox.resolve()) if inbox else None,
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
    for day in summary["days"]:
        c = day["counts"]
        typer.echo(
            f"{day['key']} (table {day['thresholds']}, catalogue {day['catalogue']}): "
            f"{c['MATCHED']} matched, {c['MISSED']} missed on board, "
            f"{c['SPURIOUS']} spurious, {c['KNOWN']} on known sources"
        )
        for t in day["missed"]:
            typer.echo(f"  missed on board: ground trigger at {t:.2f} s")
        for i in day["spurious"]:
            typer.echo(f"  spurious on board: trigger id {i}")
        typer.echo("  " + next((p for p in day["products"] if "TRIGCMP" in Path(p).name), ""))


@app.command("table-from-instrument")
@user_errors
def table_from_instrument(
    out: Annotated[Path, typer.Argument(help="TRIGTHR FITS file to write.")],
    instrument: Annotated[
        str, typer.Option("--instrument", help="Instrument definition.")
    ] = "eclairs",
    label: Annotated[str, typer.Option("--label", help="Table version label (TABLEVER).")] = "",
) -> None:
    """Write the threshold table of an instrument file (bands x timescales) as a TRIGTHR file."""
    from svomflow.products.eic_saa_files import write_trigger_thresholds
    from svomflow.tasks.eic.trigger_monitor import thresholds_from_instrument

    table = thresholds_from_instrument(instrument, label)
    write_trigger_thresholds(out, table)
    typer.echo(f"{out}: {len(table.rows)} rows, version {table.label}")


@app.command("show")
@user_errors
def show(
    file: Annotated[Path, typer.Argument(help="A TRIGTHR or OBSRCCAT file.")],
) -> None:
    """Check a threshold table or on-board catalogue file and print it (before registering it)."""
    from astropy.io import fits
    from svomflow.errors import InputDataError
    from svomflow.products.eic_saa_files import read_onboard_catalogue, read_trigger_thresholds

    if not file.is_file():
        raise InputDataError(f"{file}: no such file")
    try:
        code = str(fits.getval(file, "CCNM0001", ext=0)).strip().upper()
    except (OSError, KeyError):
        raise InputDataError(
            f"{file}: no CCNM0001 keyword: not a TRIGTHR or OBSRCCAT file"
        ) from None
    if code == "TRIGTHR":
        t = read_trigger_thresholds(file)
        typer.echo(f"TRIGTHR {t.label}: background {t.background_window_s} s, gap {t.gap_s} s")
        for r in t.rows:
            typer.echo(
                f"  {r.band_kev[0]:g}-{r.band_kev[1]:g} keV  {r.timescale_s:g} s  {r.threshold_sigma:g} sigma"
            )
    elif code == "OBSRCCAT":
        c = read_onboard_catalogue(file)
        typer.echo(f"OBSRCCAT {c.label}: {len(c.sources)} sources")
        for s in c.sources:
            typer.echo(f"  {s.name}: RA {s.ra_deg:.4f}, Dec {s.dec_deg:.4f}")
    else:
        raise InputDataError(f"{file}: code {code}, not TRIGTHR or OBSRCCAT")
    typer.echo(
        f"register it with: svomflow caldb register {file} --instrument ECLAIRS "
        f"--codename {code} --valid-from <upload time, ISO UTC>"
    )
