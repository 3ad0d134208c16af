"""``svomflow followup NOTICE``: another mission's notice -> a GP1 observation request."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from svomflow.cli._common import SetOverrides, user_errors

__all__ = ["followup"]


@user_errors
def followup(
    notice: Annotated[
        Path, typer.Argument(help="Notice file: GCN Kafka JSON (unified schema) or VOEvent XML.")
    ],
    set_: SetOverrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the request as JSON.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the request (JSON) here.")
    ] = None,
) -> None:
    """Turn NOTICE into a GP1 observation request: one pointing, or a tiling of its region.

    Settings (--set): camera, coverage, max_tiles, overlap, fit_fraction (see
    docs/alert_loop.md).
    """
    from pydantic import ValidationError
    from svomflow.config.loader import deep_merge, format_validation_error, parse_set_overrides
    from svomflow.errors import ConfigError
    from svomflow.products.alert_messages import parse_notice
    from svomflow.tasks.alerts.followup import FollowupConfig, followup_request

    if not notice.is_file():
        raise FileNotFoundError(2, "no such file", str(notice))
    try:
        cfg = FollowupConfig.model_validate(deep_merge({}, parse_set_overrides(set_ or [])))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source="--set")) from None
    req = followup_request(parse_notice(notice.read_bytes()), cfg)
    text = req.model_dump_json(indent=1)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    if as_json:
        typer.echo(text)
        return
    fx, fy = req.field_arcmin
    typer.echo(f"{req.mission} {req.instrument} {req.event_id} ({req.notice_id})")
    typer.echo(f"trigger time: {req.trigger_time.isoformat()}")
    if req.ra_deg is not None and req.dec_deg is not None:
        r = f", radius {req.radius_arcmin:.2f}' at {cfg.coverage:.0%}" if req.radius_arcmin else ""
        typer.echo(f"region: {req.region_kind} at ({req.ra_deg:.4f}, {req.dec_deg:+.4f}){r}")
    typer.echo(f"camera {req.camera}: field {fx:.1f}' x {fy:.1f}'")
    typer.echo(
        f"request: {req.mode}, {len(req.tiles)} pointing(s), probability {req.covered_probability:.3f}"
    )
    for i, t in enumerate(req.tiles[:20], 1):
        typer.echo(f"  {i:3d}  RA {t.ra_deg:9.4f}  Dec {t.dec_deg:+8.4f}  P {t.probability:.4f}")
    if len(req.tiles) > 20:
        typer.echo(f"  ... {len(req.tiles) - 20} more (--json for all)")
    for n in req.notes:
        typer.echo(f"note: {n}")
