"""``svomflow spectrum``: fit OGIP spectra (one or several datasets) from the command line."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer
from svomflow.cli._common import user_errors
from svomflow.errors import InputDataError

app = typer.Typer(
    help="Spectral fitting of OGIP PHA spectra (XSPEC statistics, GBM catalog models).",
    no_args_is_help=True,
)

_PAIRING = (
    "Several datasets: repeat --pha; the i-th --bak/--rsp/--rmf/--arf/--channels/--energy "
    "goes with the i-th --pha. An option given once applies to every dataset. --bak none "
    "fits without background; a file not given is taken from the PHA header (BACKFILE, "
    "RESPFILE, ANCRFILE, resolved relative to the PHA's folder)."
)


def _per_dataset(values: list[str] | None, n: int, option: str) -> list[str | None]:
    if not values:
        return [None] * n
    if len(values) == 1:
        return [values[0]] * n
    if len(values) != n:
        raise InputDataError(
            f"{option} given {len(values)} times for {n} --pha datasets (give it once or once per --pha)"
        )
    return list(values)


def _parse_freeze(items: list[str] | None) -> dict[str, float]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputDataError(f"--freeze {item!r}: expected name=value")
        name, val = item.split("=", 1)
        try:
            out[name.strip()] = float(val)
        except ValueError as exc:
            raise InputDataError(f"--freeze {item!r}: value is not a number") from exc
    return out


def _clean(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


@app.command("fit", help="Fit a model to one or several spectra. " + _PAIRING)
@user_errors
def fit_cmd(  # noqa: C901 - one check per command-line option
    pha: Annotated[
        list[str],
        typer.Option(
            "--pha", help="Source PHA file (repeat for a joint fit; {n} picks a type II row)."
        ),
    ],
    bak: Annotated[
        list[str] | None, typer.Option("--bak", help="Background file, or 'none'.")
    ] = None,
    rsp: Annotated[
        list[str] | None, typer.Option("--rsp", help="Full response (RSP/RSP2).")
    ] = None,
    rmf: Annotated[
        list[str] | None, typer.Option("--rmf", help="Redistribution matrix (with --arf).")
    ] = None,
    arf: Annotated[
        list[str] | None, typer.Option("--arf", help="Ancillary response (effective area).")
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="band | cpl | pl | sbpl | bb, XSPEC's powerlaw/po, cutoffpl, grbm, "
            "bbody/bbodyrad, GBM's comp, or a sum like cpl+bb.",
        ),
    ] = "band",
    stat: Annotated[
        list[str] | None,
        typer.Option(
            "--stat",
            help="cstat | pgstat | wstat | chi2 | chi2-gehrels (XSPEC conventions), once or "
            "per dataset. Default: the instrument's (PG-stat for GBM, chi2 for BAT), else "
            "cstat (chi2 for non-integer counts with errors).",
        ),
    ] = None,
    freeze: Annotated[
        list[str] | None,
        typer.Option("--freeze", help="Hold a parameter: name=value (repeatable)."),
    ] = None,
    channels: Annotated[
        list[str] | None,
        typer.Option("--channels", help="Channel ranges lo-hi[,lo-hi] (per dataset or once)."),
    ] = None,
    energy: Annotated[
        list[str] | None,
        typer.Option(
            "--energy",
            help="Energy ranges in keV lo-hi[,lo-hi] (per dataset or once). Default: the "
            "instrument's standard ranges (docs/spectral.md).",
        ),
    ] = None,
    sys_err: Annotated[
        bool,
        typer.Option(
            "--sys-err/--no-sys-err",
            help="Add the files' SYS_ERR to the chi-square variance (XSPEC, sherpa); "
            "--no-sys-err ignores it as threeML does.",
        ),
    ] = True,
    all_channels: Annotated[
        bool,
        typer.Option(
            "--all-channels",
            help="Without --channels/--energy, fit every channel (no instrument default).",
        ),
    ] = False,
    pivot: Annotated[float, typer.Option("--pivot", help="Pivot energy of K (keV).")] = 100.0,
    cross_norm: Annotated[
        bool | None,
        typer.Option(
            "--cross-norm/--no-cross-norm",
            help="Free normalisation of every dataset after the first, or of none. Default: "
            "free for a dataset of another instrument than the first's (TELESCOP/INSTRUME).",
            show_default=False,
        ),
    ] = None,
    flux_band: Annotated[
        str, typer.Option("--flux-band", help="Flux band lo-hi (keV).")
    ] = "10-1000",
    errors: Annotated[
        bool, typer.Option("--errors/--no-errors", help="Profile (delta-stat = 1) errors.")
    ] = True,
    plot_path: Annotated[
        str | None, typer.Option("--plot", help="Write the count-spectrum plot to this PNG.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fit spectra and print the parameters (see --help for pairing rules)."""
    from svomflow.tasks import spectral as sp

    n = len(pha)
    baks = _per_dataset(bak, n, "--bak")
    rsps = _per_dataset(rsp, n, "--rsp")
    rmfs = _per_dataset(rmf, n, "--rmf")
    arfs = _per_dataset(arf, n, "--arf")
    chans = _per_dataset(channels, n, "--channels")
    ens = _per_dataset(energy, n, "--energy")
    datasets = []
    for i in range(n):
        b: Any = baks[i]
        if b is not None and b.lower() == "none":
            b = False
        if chans[i] and ens[i]:
            raise InputDataError("give --channels or --energy for a dataset, not both")
        ds = sp.load(pha[i], bak=b, rsp=rsps[i], rmf=rmfs[i], arf=arfs[i])
        ds.use_sys_err = sys_err
        datasets.append(ds)
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        for i, d in enumerate(datasets):
            d.name = f"{d.name}_{i + 1}"
    selections = [
        sp.apply_selection(d, chans[i], ens[i], use_defaults=not all_channels)
        for i, d in enumerate(datasets)
    ]
    stats = [
        s if s is not None else sp.default_statistic(d)
        for s, d in zip(_per_dataset(stat, n, "--stat"), datasets, strict=True)
    ]
    band = sp.parse_ranges(flux_band)
    if len(band) != 1:
        raise InputDataError("--flux-band takes one range lo-hi")
    res = sp.fit(
        datasets,
        model,
        stat=stats[0] if len(set(stats)) == 1 else stats,
        pivot=pivot,
        freeze=_parse_freeze(freeze),
        cross_norm=cross_norm if cross_norm is not None else sp.default_cross_norm(datasets),
    )
    if errors and res.free:
        sp.errors(res)
    fluxes: dict[str, Any] = {}
    for kind in ("photon", "energy"):
        f = sp.flux(res, band[0], kind, n_samples=1000 if res.free else 0)
        fluxes[kind] = {
            k: (_clean(v) if isinstance(v, float) else v) for k, v in f.to_dict().items()
        }
    if plot_path:
        sp.plot(res, plot_path)
    if as_json:
        out = {
            "selection": [sel.describe() for sel in selections],
            "statistic": res.statistic,
            "stat": _clean(res.stat),
            "dof": res.dof,
            "parameters": {
                k: {
                    "value": _clean(v.value),
                    "error_low": _clean(v.error_low),
                    "error_high": _clean(v.error_high),
                    "frozen": v.frozen,
                }
                for k, v in res.parameters.items()
            },
            "fluxes": fluxes,
        }
        typer.echo(json.dumps(out))
        return
    for sel in selections:
        typer.echo(f"selected {sel.describe()}")
    typer.echo(
        f"model {res.model.name}  {res.statistic} = {res.stat:.4f}  dof = {res.dof}"
        + ("" if res.converged else "  (NOT CONVERGED)")
    )
    for k, v in res.parameters.items():
        if v.frozen:
            typer.echo(f"  {k:14s} {v.value:.6g} (frozen)")
        elif v.error_low is not None:
            typer.echo(f"  {k:14s} {v.value:.6g} {v.error_low:+.3g} {v.error_high:+.3g}")
        else:
            typer.echo(
                f"  {k:14s} {v.value:.6g} +/- {v.error if v.error is not None else float('nan'):.3g}"
            )
    for kind, f in fluxes.items():
        typer.echo(f"  {kind} flux {band[0][0]:g}-{band[0][1]:g} keV: {f['value']:.4g} {f['unit']}")
        for note in f.get("notes", []):
            typer.echo(f"    note: {note}")
    if plot_path:
        typer.echo(f"plot written to {plot_path}")
