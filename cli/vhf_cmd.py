"""``svomflow vhf``: run the VHF quick analysis on event files (as a Prefect flow by default)."""

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

__all__ = ["derive_obs_id", "run_vhf", "vhf"]


def derive_obs_id(event_files: list[str]) -> str:
    """Burst id from the headers (TRIGID, else OBJECT), checked as a safe path component."""
    from svomflow.errors import InputDataError
    from svomflow.paths import safe_component
    from svomflow.products.burst_events import choose_t0, peek_headers

    headers = peek_headers(event_files)
    for h in headers:
        if h.trigger_id:
            return safe_component(h.trigger_id, what="trigger id (TRIGID/OBJECT header)")
    t0 = choose_t0(headers)
    if t0 is None:
        raise InputDataError("no TRIGID/OBJECT/TRIGTIME in the headers: give --obs-id")
    return f"T{t0:.3f}".replace(".", "p")


def run_vhf(
    event_files: list[str],
    *,
    obs_id: str | None = None,
    t0: float | None = None,
    band: tuple[float, float] | None = None,
    out_dir: str | None = None,
    config_files: list[str] | None = None,
    overrides: list[str] | None = None,
    prefect: bool = True,
) -> dict[str, Any]:
    """Run the flow (or, with ``prefect=False``, its pipeline without Prefect); return its result."""
    from svomflow.paths import safe_component

    oid = safe_component(obs_id, what="--obs-id") if obs_id else derive_obs_id(event_files)
    kwargs: dict[str, Any] = {
        "event_files": [str(Path(f)) for f in event_files],
        "obs_id": oid,
        "t0": t0,
        "band": band,
        "out_dir": out_dir,
        "config_files": config_files,
        "overrides": overrides,
    }
    if prefect:
        from prefect.exceptions import ParameterTypeError
        from svomflow.flows.vhf import vhf_quick_analysis

        try:
            return vhf_quick_analysis(**kwargs)  # type: ignore[no-any-return]
        except ParameterTypeError as exc:
            from svomflow.errors import ConfigError

            raise ConfigError(f"invalid flow parameters: {exc}") from None
    # flows.vhf_plain, not flows.vhf: a --no-prefect run never imports Prefect
    from svomflow.flows.vhf_plain import run_vhf_plain

    return run_vhf_plain(**kwargs)


def _checked_obs_id(
    files: list[str],
    obs_id: str | None,
    config_files: list[str] | None,
    overrides: list[str] | None,
    band: tuple[float, float] | None,
) -> str:
    """Check the files, the burst id and the merged configuration; return the burst id."""
    from svomflow.errors import InputDataError
    from svomflow.flows.vhf_plain import load_vhf_config_for
    from svomflow.paths import safe_component

    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise InputDataError(f"no such event file: {', '.join(missing)}")
    oid = safe_component(obs_id, what="--obs-id") if obs_id else derive_obs_id(files)
    load_vhf_config_for(files, config_files, overrides, band)
    return oid


def _lightcurve_inputs(
    files: list[str],
    band: tuple[float, float] | None,
    config_files: list[str] | None,
    overrides: list[str] | None,
) -> bool:
    """Whether the inputs are binned light curves (all of them); refuse a mix or event options."""
    from svomflow.errors import ConfigError, InputDataError
    from svomflow.tasks.vhf.lightcurve_input import is_lightcurve_file

    lcs = [f for f in files if Path(f).is_file() and is_lightcurve_file(f)]
    if not lcs:
        return False
    if len(lcs) != len(files):
        raise InputDataError("give either event files or light curves to --events, not both")
    if band is not None:
        raise ConfigError("--band selects events by energy; a light curve has its one band")
    if config_files or overrides:
        raise ConfigError("--config/--set apply to event files, not to light curves")
    return True


def _run_lightcurves(files: list[str], t0: float | None, as_json: bool) -> None:
    """T90/T50 of each binned light curve (no Prefect run: one short computation per file)."""
    from svomflow.tasks.vhf.lightcurve_input import analyse_lightcurve, summary, summary_lines

    results = [analyse_lightcurve(f, t0=t0) for f in files]
    if as_json:
        typer.echo(json.dumps(_clean([summary(r) for r in results]), separators=(",", ":")))
        return
    for r in results:
        for line in summary_lines(r):
            typer.echo(line)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@user_errors
def vhf(
    ctx: typer.Context,
    events: Annotated[
        list[Path],
        typer.Option("--events", "-e", help="Event file(s): ECLAIRs/GRM L1, GBM TTE, OGIP events."),
    ],
    t0: Annotated[
        float | None,
        typer.Option("--t0", help="Reference time T0 (mission s); default from TRIGTIME."),
    ] = None,
    band: Annotated[
        tuple[float, float] | None,
        typer.Option("--band", help="T90/peak-flux band in keV, e.g. --band 50 300."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Product root directory.")] = None,
    obs_id: Annotated[
        str | None, typer.Option("--obs-id", help="Burst id (default: TRIGID/OBJECT header).")
    ] = None,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with the results.")
    ] = False,
    no_prefect: Annotated[
        bool,
        typer.Option(
            "--no-prefect", help="Run the same pipeline in this process, without a flow run."
        ),
    ] = False,
) -> None:
    """Run the VHF quick analysis (T0, position, light curves, T90, peak flux, HR, spectrum, class)."""
    import contextlib
    import logging
    import os

    from svomflow.collector import imports_frozen
    from svomflow.errors import ConfigError

    # `--events A B C`: click gives the files after the first as extra arguments
    extra = list(ctx.args)
    bad = [a for a in extra if a.startswith("-")]
    if bad:
        raise ConfigError(f"unknown option(s) {' '.join(bad)}")
    files = [str(e) for e in events] + extra

    if as_json:
        # keep stdout for the one JSON object: Prefect's console logs go to stderr anyway,
        # but its start-up banner must not appear
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        logging.getLogger("prefect").setLevel(logging.WARNING)
    if band is not None and not (0 <= band[0] < band[1]):
        raise ConfigError(
            f"--band must be LOW HIGH with 0 <= LOW < HIGH keV, got {band[0]} {band[1]}"
        )
    # every argument is checked before Prefect is contacted or anything is written; the
    # checks import the pipeline, whose objects then stay out of the collector's scans
    with imports_frozen():
        lightcurves = _lightcurve_inputs(files, band, config, set_)
        oid = "" if lightcurves else _checked_obs_id(files, obs_id, config, set_, band)
    if lightcurves:
        _run_lightcurves(files, t0, as_json)
        return
    server = contextlib.nullcontext() if no_prefect else flow_server(quiet=as_json)
    with server, user_errors_printed_once():
        res = run_vhf(
            files,
            obs_id=oid,
            t0=t0,
            band=band,
            out_dir=None if out is None else str(out),
            config_files=config,
            overrides=set_,
            prefect=not no_prefect,
        )
    if as_json:
        typer.echo(json.dumps(_clean(res), separators=(",", ":")))
        return
    typer.echo(
        f"obs_id {res['obs_id']}  T0 {res['t0']:.3f} (mission s)  instruments {', '.join(res['instruments'])}"
    )
    if res["t90"] is not None:
        typer.echo(
            f"T90 {res['t90']:.3f} ± {res['t90_err'] or float('nan'):.3f} s from {res['t90_start']:.3f} s "
            f"({res['t90_instrument']}, {res['t90_band_kev'][0]:g}-{res['t90_band_kev'][1]:g} keV); "
            f"T50 {res['t50']:.3f} s"
        )
    for ts, p in res["peak_flux"].items():
        typer.echo(
            f"peak flux {ts} s: {p['rate']:.1f} ± {p['rate_err']:.1f} counts/s at {p['start']:.3f} s"
        )
    if res["position"]:
        p = res["position"]
        typer.echo(
            f"position ({p['instrument']}): RA {p['ra_deg']:.4f} Dec {p['dec_deg']:.4f} r90 {p['r90_arcmin']:.2f} arcmin"
        )
    if res["classification"]:
        c = res["classification"]
        typer.echo(f"class {c['class']} (p_short {c['p_short']:.3f})")
    for f in res["flags"]:
        typer.echo(f"flag: {f}")
    typer.echo(f"{len(res['products'])} products:")
    for k, v in res["products"].items():
        typer.echo(f"  {k}: {v}")
