"""``svomflow caldb``: register, select, list, supersede, export and fetch calibration files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from svomflow.cli._common import fail, user_errors

app = typer.Typer(help="The calibration database (HEASARC CALDB rules).", no_args_is_help=True)

CaldbRoot = Annotated[
    str | None,
    typer.Option(
        "--caldb",
        help="CALDB directory or http(s) URL (default: $SVOMFLOW_CALDB, else $SVOMFLOW_HOME/caldb).",
    ),
]


def _open(root: str | None):
    from svomflow.calibration.caldb import open_caldb

    return open_caldb(root)


def _parse_value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _boundary_values(items: list[str] | None) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            fail(f"--boundary-value expects NAME=VALUE, got {item!r}")
        out[name.strip()] = _parse_value(value.strip())
    return out


def _row(e) -> str:
    bounds = ",".join(str(b) for b in e.boundaries) or "-"
    return (
        f"{e.id!s:>5} {e.telescope:<8} {e.instrument:<10} {e.detector:<8} {e.filter:<8} "
        f"{e.codename:<16} {e.valid_from:%Y-%m-%dT%H:%M:%S} q={e.quality} {bounds} {e.relpath}"
    )


@app.command("register")
@user_errors
def register(
    file: Annotated[Path, typer.Argument(help="Calibration file to register.")],
    instrument: Annotated[str, typer.Option(help="INSTRUME, e.g. ECLAIRS.")],
    codename: Annotated[str, typer.Option(help="Calibration code name (CAL_CNAM), e.g. GAIN.")],
    valid_from: Annotated[
        str, typer.Option("--valid-from", help="Validity start, ISO 8601 UTC (CAL_VSD/CAL_VST).")
    ],
    telescope: Annotated[str, typer.Option(help="TELESCOP.")] = "SVOM",
    detector: Annotated[str, typer.Option(help="DETNAM (NONE = any).")] = "NONE",
    filter_: Annotated[str, typer.Option("--filter", help="FILTER (NONE = any).")] = "NONE",
    boundary: Annotated[
        list[str] | None,
        typer.Option(help="Boundary, e.g. 'ENERG(4-150)keV' (repeatable, at most 9)."),
    ] = None,
    quality: Annotated[int, typer.Option(help="CAL_QUAL (0 = good).")] = 0,
    description: Annotated[str, typer.Option(help="CAL_DESC (70 characters).")] = "",
    cal_class: Annotated[str, typer.Option("--class", help="BCF or CPF.")] = "BCF",
    link: Annotated[bool, typer.Option(help="Hard-link instead of copying.")] = False,
    caldb: CaldbRoot = None,
) -> None:
    """Register FILE in the CALDB (creates a new index version)."""
    db = _open(caldb)
    if not hasattr(db, "register"):
        fail("a remote CALDB is read-only; register into a local CALDB directory")
    try:
        entry = db.register(
            file,
            telescope=telescope,
            instrument=instrument,
            codename=codename,
            detector=detector,
            filter=filter_,
            boundaries=boundary or [],
            valid_from=valid_from,
            quality=quality,
            description=description,
            cal_class=cal_class,
            copy=not link,
        )
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"registered entry {entry.id} in index version {entry.index_version}: {entry.path}")


@app.command("select")
@user_errors
def select(
    codename: Annotated[str, typer.Argument(help="Calibration code name (CAL_CNAM).")],
    instrument: Annotated[str, typer.Option(help="INSTRUME.")],
    time: Annotated[str, typer.Option(help="Observation time, ISO 8601 UTC.")],
    telescope: Annotated[str | None, typer.Option(help="TELESCOP (default: any).")] = None,
    detector: Annotated[str, typer.Option(help="DETNAM (NONE = any).")] = "NONE",
    filter_: Annotated[str, typer.Option("--filter", help="FILTER (NONE = any).")] = "NONE",
    boundary_value: Annotated[
        list[str] | None,
        typer.Option("--boundary-value", help="Boundary parameter value NAME=VALUE (repeatable)."),
    ] = None,
    index_version: Annotated[
        int | None, typer.Option("--index-version", help="Select in this index version.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entry as JSON.")] = False,
    caldb: CaldbRoot = None,
) -> None:
    """Print the file that HEASARC rules select for an observation time."""
    values = _boundary_values(boundary_value)
    try:
        entry = _open(caldb).select(
            codename,
            instrument=instrument,
            time=time,
            telescope=telescope,
            detector=detector,
            filter=filter_,
            index_version=index_version,
            **values,
        )
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(entry.to_dict(), indent=1))
    else:
        typer.echo(str(entry.path))


@app.command("list")
@user_errors
def list_(
    instrument: Annotated[str | None, typer.Option(help="Only this INSTRUME.")] = None,
    codename: Annotated[str | None, typer.Option(help="Only this code name.")] = None,
    all_qualities: Annotated[
        bool, typer.Option("--all-qualities", help="Include superseded (quality != 0) files.")
    ] = False,
    index_version: Annotated[
        int | None, typer.Option("--index-version", help="List this index version.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    caldb: CaldbRoot = None,
) -> None:
    """List the registered calibration files."""
    entries = _open(caldb).list(
        instrument=instrument,
        codename=codename,
        all_qualities=all_qualities,
        index_version=index_version,
    )
    if as_json:
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=1))
        return
    for e in entries:
        typer.echo(_row(e))


@app.command("supersede")
@user_errors
def supersede(
    entry_id: Annotated[int, typer.Argument(help="Entry id (see `svomflow caldb list`).")],
    quality: Annotated[int, typer.Option(help="New CAL_QUAL (non-zero; 5 = bad).")] = 5,
    caldb: CaldbRoot = None,
) -> None:
    """Give an entry a non-zero quality so that selection skips it (a new index version)."""
    db = _open(caldb)
    if not hasattr(db, "supersede"):
        fail("a remote CALDB is read-only")
    try:
        entry = db.supersede(entry_id, quality=quality)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(
        f"entry {entry.id} has quality {entry.quality} in index version {entry.index_version}"
    )


@app.command("export")
@user_errors
def export(
    out: Annotated[
        Path | None,
        typer.Argument(help="Output caldb.indx (FITS CIF); omit with --heasoft."),
    ] = None,
    instrument: Annotated[str | None, typer.Option(help="Only this INSTRUME.")] = None,
    telescope: Annotated[str | None, typer.Option(help="Only this TELESCOP.")] = None,
    index_version: Annotated[
        int | None, typer.Option("--index-version", help="Export this index version.")
    ] = None,
    heasoft: Annotated[
        bool,
        typer.Option(
            "--heasoft",
            help="Also write data/<tel>/<instr>/caldb.indx and software/tools/caldb.config.",
        ),
    ] = False,
    caldb: CaldbRoot = None,
) -> None:
    """Write a HEASARC caldb.indx (CAL_DIR relative to the CALDB root, HEASoft's $CALDB)."""
    db = _open(caldb)
    if not hasattr(db, "export_indx"):
        fail("export needs a local CALDB directory")
    if heasoft:
        for p in db.export_heasoft(index_version=index_version):
            typer.echo(str(p))
    if out is None:
        if not heasoft:
            fail("give an output file, or --heasoft")
        return
    path = db.export_indx(
        out, index_version=index_version, telescope=telescope, instrument=instrument
    )
    typer.echo(str(path))


@app.command("fetch")
@user_errors
def fetch(
    urls: Annotated[list[str], typer.Argument(help="URL(s), or paths under --base-url.")],
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Remote CALDB root (default $SVOMFLOW_CALDB).")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Expected SHA-256 (only with a single URL).")
    ] = None,
) -> None:
    """Download files from a remote CALDB into the local cache; print their cached paths."""
    import os

    from svomflow.calibration.caldb.client import CaldbClient

    base = base_url or os.environ.get("SVOMFLOW_CALDB", "")
    if not base.startswith(("http://", "https://")):
        base = next((u for u in urls if u.startswith(("http://", "https://"))), "")
    if not base:
        fail("give absolute URLs or --base-url (or set SVOMFLOW_CALDB to an http(s) URL)")
    if sha256 and len(urls) != 1:
        fail("--sha256 applies to a single URL")
    client = CaldbClient(base)
    for u in urls:
        typer.echo(str(client.fetch(u, sha256=sha256)))
