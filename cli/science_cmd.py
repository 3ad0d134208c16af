"""``svomflow science``: the science database (delivered and refused product versions)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from svomflow.cli._common import ConfigFiles, SetOverrides, user_errors
from svomflow.errors import SvomflowError

__all__ = ["app"]

app = typer.Typer(help="The science database: validated products delivered, refusals.")

ScienceDbOpt = Annotated[
    str | None,
    typer.Option(
        "--science-database-url",
        help="Science database URL (default $SVOMFLOW_SCIENCE_DATABASE_URL or science.db).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]


def _delivered_dict(row: Any) -> dict[str, Any]:
    return {
        "product_id": row.product_id,
        "type_code": row.type_code,
        "instrument": row.instrument,
        "obs_id": row.obs_id,
        "version": row.version,
        "superseded": row.superseded,
        "ra_deg": row.ra_deg,
        "dec_deg": row.dec_deg,
        "error_radius_deg": row.error_radius_deg,
        "error_confidence": row.error_confidence,
        "key_values": row.key_values,
        "flags": row.flags,
        "url": row.url,
        "checksum": row.checksum,
        "delivered_at": row.delivered_at.isoformat(),
    }


def _refused_dict(row: Any) -> dict[str, Any]:
    return {
        "product_id": row.product_id,
        "type_code": row.type_code,
        "instrument": row.instrument,
        "obs_id": row.obs_id,
        "version": row.version,
        "reasons": row.reasons,
        "refused_at": row.refused_at.isoformat(),
    }


@app.command("list")
@user_errors
def list_(
    obs_id: Annotated[str | None, typer.Option("--obs-id", "-b", help="One burst.")] = None,
    type_code: Annotated[str | None, typer.Option("--type", "-t", help="One type code.")] = None,
    refused_only: Annotated[
        bool, typer.Option("--refused", help="List the refused versions instead.")
    ] = False,
    include_superseded: Annotated[
        bool, typer.Option("--all", help="Include superseded versions.")
    ] = False,
    science_database_url: ScienceDbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the delivered product versions (or the refused ones, with their reasons)."""
    from sqlmodel import Session
    from svomflow.products.science_db import delivered, make_science_engine, refused

    with Session(make_science_engine(science_database_url)) as s:
        if refused_only:
            rows = [_refused_dict(r) for r in refused(s, obs_id=obs_id, type_code=type_code)]
        else:
            rows = [
                _delivered_dict(r)
                for r in delivered(
                    s, obs_id=obs_id, type_code=type_code, include_superseded=include_superseded
                )
            ]
    if as_json:
        typer.echo(json.dumps({"refused" if refused_only else "delivered": rows}))
        return
    if not rows:
        typer.echo("no refused versions" if refused_only else "no delivered versions")
        return
    for r in rows:
        name = f"{r['type_code']}_{r['instrument']}_{r['obs_id']}_v{r['version']:02d}"
        if refused_only:
            typer.echo(f"{r['product_id'][:12]}  {name}  refused: {'; '.join(r['reasons'])}")
            continue
        pos = ""
        if r["ra_deg"] is not None:
            pos = (
                f"  RA {r['ra_deg']:.4f} Dec {r['dec_deg']:+.4f} "
                f"r={r['error_radius_deg'] * 60:.2f}'"
            )
        flags = f"  flagged: {'; '.join(r['flags'])}" if r["flags"] else ""
        old = "  (superseded)" if r["superseded"] else ""
        typer.echo(f"{r['product_id'][:12]}  {name}{pos}{flags}{old}")


@app.command("show")
@user_errors
def show(
    product_id: Annotated[str, typer.Argument(help="Product id (from `science list`).")],
    science_database_url: ScienceDbOpt = None,
) -> None:
    """Show one delivered or refused version (JSON)."""
    from sqlmodel import Session, col, select
    from svomflow.products.science_db import (
        DeliveredProduct,
        RefusedProduct,
        lookup,
        make_science_engine,
    )

    with Session(make_science_engine(science_database_url)) as s:
        row = lookup(s, product_id)
        if row is None and len(product_id) >= 6:  # a unique prefix, as `products` accepts
            hits: list[DeliveredProduct | RefusedProduct] = [
                *s.exec(
                    select(DeliveredProduct).where(
                        col(DeliveredProduct.product_id).startswith(product_id)
                    )
                ),
                *s.exec(
                    select(RefusedProduct).where(
                        col(RefusedProduct.product_id).startswith(product_id)
                    )
                ),
            ]
            row = hits[0] if len(hits) == 1 else None
    if row is None:
        raise SvomflowError(f"no delivered or refused version with id {product_id!r}")
    if isinstance(row, DeliveredProduct):
        typer.echo(json.dumps({"status": "delivered", **_delivered_dict(row)}, indent=2))
    else:
        typer.echo(json.dumps({"status": "refused", **_refused_dict(row)}, indent=2))


@app.command("deliver")
@user_errors
def deliver(
    obs_id: Annotated[str | None, typer.Option("--obs-id", "-b", help="One burst.")] = None,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    rejudge_refused: Annotated[
        bool, typer.Option("--rejudge-refused", help="Judge refused versions again.")
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Products database URL (default $SVOMFLOW_DATABASE_URL or SQLite).",
        ),
    ] = None,
    science_database_url: ScienceDbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate the products not judged yet and deliver the good ones to the science database."""
    from svomflow.flows.science_delivery import deliver_plain
    from svomflow.tasks.validation.pipeline import load_delivery_config

    cfg = load_delivery_config(files=config or (), overrides=set_ or ())
    report = deliver_plain(
        cfg,
        obs_id=obs_id,
        database_url=database_url,
        science_database_url=science_database_url,
        rejudge_refused=rejudge_refused,
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "delivered": report.delivered,
                    "flagged": report.flagged,
                    "refused": report.refused,
                    "already": report.already,
                }
            )
        )
        return
    for pid, reasons in report.refused.items():
        typer.echo(f"refused {pid[:12]}: {'; '.join(reasons)}")
    for pid, flags in report.flagged.items():
        typer.echo(f"flagged {pid[:12]}: {'; '.join(flags)}")
    typer.echo(report.summary())
