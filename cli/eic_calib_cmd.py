"""``svomflow eic calib``: ECLAIRs per-pixel gain, on-board bands and SBN thresholds."""

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
    help="ECLAIRs calibration: per-pixel gain/offset, on-board band table, low thresholds (SBN).",
    no_args_is_help=True,
)

Spectra = Annotated[
    str,
    typer.Option(
        "--spectra",
        help="Calibration spectra file (counts per pixel and ADC channel), or 'latest' "
        "(newest in $SVOMFLOW_HOME/eic/calibration_spectra).",
    ),
]


def _config(files: list[str] | None, sets: list[str] | None) -> Any:
    from svomflow.config import load_config
    from svomflow.flows.eic_calibration import FLOW_NAME, EicCalibrationConfig

    return load_config(
        EicCalibrationConfig, flow=FLOW_NAME, files=files or [], overrides=sets or []
    )


@app.command("run")
@user_errors
def run(
    spectra: Spectra = "latest",
    caldb: CaldbDir = None,
    out: ProductsRoot = None,
    promote: Annotated[
        bool, typer.Option("--promote/--no-promote", help="Judge and promote the candidates.")
    ] = True,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Calibrate the plane and promote what passes the gate (flow eic_calibration)."""
    from svomflow.errors import InputDataError

    if spectra.strip().lower() not in ("latest", "last") and not Path(spectra).is_file():
        raise InputDataError(f"--spectra {spectra}: no such file")
    cfg = _config(config, set_)
    from svomflow.cli._progress import flow_progress
    from svomflow.flows.eic_calibration import eic_calibration

    with (
        flow_server(quiet=as_json),
        user_errors_printed_once(),
        flow_progress("eic calib run", quiet=as_json),
    ):
        summary = eic_calibration(
            str(Path(spectra).resolve()) if Path(spectra).is_file() else spectra,
            out_dir=str(out.resolve()) if out else None,
            caldb_root=caldb,
            config=cfg.model_dump(mode="json"),
            promote=promote,
        )
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    if summary["status"] == "empty":
        typer.echo(summary["message"])
        return
    typer.echo(f"calibration spectra {summary['spectra']} ({summary['mode']}, {summary['start']})")
    typer.echo(f"  pixels on their module's gain: {100 * summary['fallback_fraction']:.2f} %")
    for code, path in summary["candidates"].items():
        v = summary["verdicts"].get(code)
        verdict = (
            ""
            if v is None
            else ("promoted" if v["promoted"] else "refused: " + "; ".join(v["reasons"]))
        )
        typer.echo(f"  {code}: {verdict or 'not judged'} ({path})")
    for code, v in summary["verdicts"].items():
        typer.echo(f"  QC history {code}: {v['qc_history']}")


@app.command("gain")
@user_errors
def gain(
    spectra: Annotated[Path, typer.Option("--spectra", help="Calibration spectra file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PIXGAIN file to write.")],
    prior: Annotated[
        Path | None,
        typer.Option("--prior", help="PIXGAIN file used as the prior of the line search."),
    ] = None,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
) -> None:
    """Fit the per-pixel gain table only (no Prefect, no CALDB): write a PIXGAIN file."""
    import numpy as np
    from svomflow.config import load_instrument
    from svomflow.products.eic_calibration_files import (
        read_pixel_gain,
        read_pixel_spectra,
        write_pixel_gain,
    )
    from svomflow.tasks.eic.gain import fit_pixel_gain

    cfg = _config(config, set_)
    data = read_pixel_spectra(spectra)
    table = fit_pixel_gain(data, cfg.gain, read_pixel_gain(prior) if prior else None)
    inst = load_instrument("eclairs")
    write_pixel_gain(output, table, telescope=inst.telescope, instrument=inst.instrument)
    typer.echo(
        f"{output}: {table.gain.size} pixels, {int(table.fallback.sum())} on their module's "
        f"gain; median gain {float(np.median(table.gain)):.5f} keV/chan"
    )


@app.command("compare")
@user_errors
def compare(
    table: Annotated[Path, typer.Option("--table", help="PIXGAIN file (fitted).")],
    truth: Annotated[Path, typer.Option("--truth", help="PIXGAIN file of the true gains.")],
    energy: Annotated[
        float, typer.Option("--energy", help="Energy of the residuals (keV).")
    ] = 59.54,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Measure a gain table against the truth (simulations): residuals in keV and %."""
    import numpy as np
    from svomflow.products.eic_calibration_files import read_pixel_gain

    fit, ref = read_pixel_gain(table), read_pixel_gain(truth)
    x = ref.channel(energy)
    res = fit.gain * x + fit.offset - energy
    good = ~fit.fallback

    def rms(v: Any) -> float:
        return float(np.sqrt(np.mean(v**2))) if v.size else float("nan")

    figures = {
        "energy_kev": energy,
        "rms_kev": rms(res[good]),
        "rms_percent": 100 * rms(res[good]) / energy,
        "bias_kev": float(np.mean(res[good])),
        "max_abs_kev": float(np.max(np.abs(res[good]))),
        "gain_rms_percent": 100 * rms((fit.gain / ref.gain - 1)[good]),
        "offset_rms_kev": rms((fit.offset - ref.offset)[good]),
        "fallback_fraction": float(fit.fallback.mean()),
        "fallback_rms_kev": rms(res[~good]),
    }
    if as_json:  # NaN (no fallback pixel) is not JSON: null
        typer.echo(json.dumps({k: (None if v != v else v) for k, v in figures.items()}))
        return
    for k, v in figures.items():
        typer.echo(f"{k}: {v:.4g}")
