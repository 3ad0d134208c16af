"""``svomflow mxt``: run the ``mxt_analysis`` flow on MXT pass files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from svomflow.cli._common import (
    ConfigFiles,
    SetOverrides,
    flow_server,
    user_errors,
    user_errors_printed_once,
)

__all__ = ["mxt"]


def _calibration_files(items: list[str] | None) -> dict[str, str]:
    """Parse ``--calib CODE=PATH`` options into ``{code: absolute path}``."""
    from svomflow.errors import ConfigError

    out: dict[str, str] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--calib {item!r}: expected NAME=PATH (gain, cti, pattern, psf)")
        if not Path(path).is_file():
            raise ConfigError(f"--calib {name}: {path} does not exist")
        out[name.strip().lower()] = str(Path(path).resolve())
    return out


@user_errors
def mxt(
    ctx: typer.Context,
    events: Annotated[
        list[Path],
        typer.Option(
            "--events",
            "-e",
            help="L1 pass files (any order; repeat --events, or list them after one --events).",
        ),
    ],
    attitude: Annotated[Path, typer.Option("--attitude", help="Attitude file.")],
    saa: Annotated[Path, typer.Option("--saa", help="SAA file of the observation's week.")],
    trigger_time: Annotated[
        float | None, typer.Option("--trigger-time", help="Burst mode: trigger time (mission s).")
    ] = None,
    prior_ra: Annotated[
        float | None, typer.Option("--prior-ra", help="Burst mode: ECLAIRs RA (deg).")
    ] = None,
    prior_dec: Annotated[
        float | None, typer.Option("--prior-dec", help="Burst mode: ECLAIRs Dec (deg).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Products root (default $SVOMFLOW_HOME/products)."),
    ] = None,
    obs_id: Annotated[
        str | None, typer.Option("--obs-id", help="Observation id (default from the headers).")
    ] = None,
    caldb: Annotated[
        str | None, typer.Option("--caldb", help="CALDB directory or URL to select from.")
    ] = None,
    calib: Annotated[
        list[str] | None,
        typer.Option(
            "--calib", help="Use this calibration file: NAME=PATH (gain|cti|pattern|psf)."
        ),
    ] = None,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON object.")
    ] = False,
) -> None:
    """Analyse MXT passes: merge, calibrate, detect and fit sources, light curves, spectra, previews."""
    from svomflow.config import load_config
    from svomflow.errors import ConfigError, InputDataError
    from svomflow.tasks.xray.pipeline import MXTAnalysisConfig, with_calibration_files

    files = [*events, *(Path(a) for a in ctx.args)]
    bad = [a for a in ctx.args if a.startswith("-")]
    if bad:
        raise ConfigError(f"unknown option(s): {' '.join(bad)}")
    for f in [*files, attitude, saa]:
        if not f.is_file():
            raise InputDataError(f"{f}: no such file")
    if (prior_ra is None) != (prior_dec is None):
        raise ConfigError("give both --prior-ra and --prior-dec, or neither")
    cfg = load_config(MXTAnalysisConfig, files=config or [], overrides=set_ or [])
    # --calib CODE=PATH is the configuration's override_<code> (every step that uses CODE)
    cfg = with_calibration_files(cfg, _calibration_files(calib))
    if obs_id is not None:
        from svomflow.paths import safe_component

        safe_component(obs_id, what="--obs-id")
    from svomflow.flows.mxt import mxt_analysis

    with flow_server(quiet=as_json), user_errors_printed_once():
        result = mxt_analysis(
            l1_files=[str(f.resolve()) for f in files],
            attitude_file=str(attitude.resolve()),
            saa_file=str(saa.resolve()),
            obs_id=obs_id,
            out_dir=str(out.resolve()) if out else None,
            caldb_root=caldb,
            trigger_time=trigger_time,
            prior_ra=prior_ra,
            prior_dec=prior_dec,
            config=cfg,
        )
    if as_json:
        keep = ("mode", "obs_id", "flags", "sources", "srclist", "products", "merge", "calibrate")
        typer.echo(json.dumps({k: result[k] for k in keep}, default=str))
        return
    typer.echo(f"MXT {result['obs_id']} ({result['mode']}): {len(result['sources'])} source(s)")
    for i, s in enumerate(result["sources"], start=1):
        typer.echo(
            f"  S{i}: RA {s['ra_deg']:.5f} Dec {s['dec_deg']:+.5f}  r90 {s['r90_arcsec']:.1f} arcsec"
            f"  counts {s['counts']:.0f}  ML {s['ml']:.1f}"
        )
    typer.echo(f"source list: {result['srclist']}")
