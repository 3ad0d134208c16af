"""Prefect flow ``eic_calibration``: ECLAIRs per-pixel gain, on-board bands and SBN table.

From one file of calibration spectra (counts per pixel and raw ADC channel, ground sources
or in-flight background lines) the pipeline fits the gain and offset of every pixel (with
the current ``PIXGAIN`` as the prior of the line search), derives the on-board band table
and the low-threshold table, and publishes the three candidates (``PIXGAIN``, ``BANDTAB``,
``SBNTHR``) through the catalogue. Each is then judged by the promotion gate against the
current CALDB file of its code (:mod:`svomflow.flows.eic_promotion`, cuts in
``config/pipelines/eic_calibration.yaml``): promoted or not, its verdict goes into the code's
QC history. The band and threshold tables derive from the new gains, so they are promoted
only with them (their ``gain_promoted`` figure).

``spectra="latest"`` (what the weekly schedule passes) takes the newest file dropped in
``$SVOMFLOW_HOME/eic/calibration_spectra/``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger
from pydantic import Field
from svomflow.atomic import atomic_write_bytes
from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config import load_config, load_instrument
from svomflow.config.base import StepConfig
from svomflow.errors import InputDataError
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
    run_pipeline,
)
from svomflow.flows.eic_promotion import PromotionRequest, PromotionResult, promote_task
from svomflow.flows.prefect_flow import flow
from svomflow.paths import data_home
from svomflow.products.eic_calibration_files import (
    PixelSpectra,
    read_band_table,
    read_pixel_gain,
    read_pixel_spectra,
    read_threshold_table,
)
from svomflow.tasks.eic.bands import BandCandidate, BandConfig, band_figures, energy_bands
from svomflow.tasks.eic.gain import GainCandidate, GainFitConfig, gain_figures, pixel_gain
from svomflow.tasks.eic.gate import GateConfig, QCFigure
from svomflow.tasks.eic.qc_history import HistoryConfig
from svomflow.tasks.eic.thresholds import (
    ThresholdCandidate,
    ThresholdConfig,
    sbn_thresholds,
    threshold_figures,
)
from svomflow.tasks.step import Observation, Pipeline, Runner

__all__ = [
    "CODES",
    "EIC_CALIBRATION_PIPELINE",
    "EicCalibrationConfig",
    "EicCalibrationRequest",
    "eic_calibration",
    "latest_spectra",
    "spectra_dir",
]

FLOW_NAME = "eic_calibration"
#: The CALDB codes this flow makes, in promotion order (the tables derive from the gains).
CODES = ("PIXGAIN", "BANDTAB", "SBNTHR")


class EicCalibrationConfig(StepConfig):
    """Configuration of the ECLAIRs calibration flow (defaults: the pipeline YAML)."""

    gain: GainFitConfig = Field(default_factory=GainFitConfig)
    bands: BandConfig = Field(default_factory=BandConfig)
    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig)
    gates: dict[str, GateConfig] = Field(
        default_factory=dict, description="Promotion cuts per CALDB code (PIXGAIN, BANDTAB, SBNTHR)"
    )
    history: HistoryConfig = Field(default_factory=HistoryConfig)


@dataclass(frozen=True)
class EicCalibrationRequest:
    """The calibration spectra file and the instrument definition name."""

    spectra: str
    instrument: str = "eclairs"


@dataclass
class _Inputs:
    spectra: PixelSpectra
    telescope: str
    instrument: str


@dataclass
class EicCalibrationOutcome:
    """The three candidates (tables, QC figures, products)."""

    gain: GainCandidate
    bands: BandCandidate
    thresholds: ThresholdCandidate


def _observe(request: EicCalibrationRequest) -> Observation:
    spectra = read_pixel_spectra(request.spectra)
    return Observation(instruments=(request.instrument,), time=spectra.start.isoformat())


def _needs(observation: Observation, config: EicCalibrationConfig) -> list[CalibrationRequirement]:
    """Select the current ``PIXGAIN`` of each instrument (optional: the first has none)."""
    out = []
    for name in observation.instruments:
        inst = load_instrument(name)
        out.append(
            CalibrationRequirement(
                name=f"{name}:PIXGAIN",
                codename="PIXGAIN",
                instrument=inst.instrument,
                telescope=inst.telescope,
                optional=True,
            )
        )
    return out


def _read(request: EicCalibrationRequest, calibration: CalibrationSet) -> _Inputs:
    inst = load_instrument(request.instrument)
    return _Inputs(read_pixel_spectra(request.spectra), inst.telescope, inst.instrument)


def _plan(
    runner: Runner, inputs: _Inputs, config: EicCalibrationConfig, calibration: CalibrationSet
) -> EicCalibrationOutcome:
    gain = runner.run(
        pixel_gain,
        inputs.spectra,
        inputs.telescope,
        inputs.instrument,
        config=config.gain,
        calibration=calibration,
    )
    bands = runner.run(
        energy_bands, gain.table, inputs.telescope, inputs.instrument, config=config.bands
    )
    thresholds = runner.run(
        sbn_thresholds,
        inputs.spectra,
        gain.table,
        inputs.telescope,
        inputs.instrument,
        config=config.thresholds,
    )
    fb = float(gain.table.fallback.mean())
    if fb > 0:
        runner.warn(f"{100 * fb:.2f} % of the pixels use their module's gain (poor spectra)")
    return EicCalibrationOutcome(gain, bands, thresholds)


EIC_CALIBRATION_PIPELINE: Pipeline[
    EicCalibrationRequest, _Inputs, EicCalibrationConfig, EicCalibrationOutcome
] = Pipeline(
    flow_name=FLOW_NAME,
    config=EicCalibrationConfig,
    steps=(pixel_gain, energy_bands, sbn_thresholds),
    observe=_observe,
    read=_read,
    plan=_plan,
    calibration_needs=_needs,
)


def spectra_dir() -> Path:
    """Return the folder the schedule takes calibration spectra from."""
    return data_home() / "eic" / "calibration_spectra"


def latest_spectra(folder: Path | None = None) -> Path | None:
    """Return the newest ``*.fits`` calibration spectra file of ``folder``, if any."""
    where = folder or spectra_dir()
    files = sorted(where.glob("*.fits"), key=lambda p: (p.stat().st_mtime, p.name))
    return files[-1] if files else None


def _measure_gain(path: Path) -> list[QCFigure]:
    return gain_figures(read_pixel_gain(path), [59.54])


def _measure_bands(path: Path) -> list[QCFigure]:
    return [*band_figures(read_band_table(path)), QCFigure("gain_promoted", 1.0)]


def _measure_thresholds(path: Path) -> list[QCFigure]:
    return [*threshold_figures(read_threshold_table(path)), QCFigure("gain_promoted", 1.0)]


def _moved_fraction(candidate: Path, current: Path) -> list[QCFigure]:
    """Fraction of pixels whose 59.5 keV energy moved by more than 1 keV from the current table."""
    new, old = read_pixel_gain(candidate), read_pixel_gain(current)
    if new.gain.shape != old.gain.shape:
        return [QCFigure("moved_fraction", 1.0)]
    x = old.channel(59.54)
    moved = np.abs(new.gain * x + new.offset - 59.54) > 1.0
    return [QCFigure("moved_fraction", float(moved.mean()))]


def _resolve_spectra(spectra: str) -> Path | None:
    if spectra.strip().lower() in ("latest", "last"):
        return latest_spectra()
    path = Path(spectra).expanduser()
    if not path.is_file():
        raise InputDataError(f"calibration spectra not found: {path}")
    return path


def run_name(params: dict[str, Any]) -> str:
    """Return the flow run name ``eic-calib-<spectra folder>`` for the given flow parameters.

    ``spectra`` is a folder of calibration spectra or ``latest``; its last path component
    names the run (``eic-calib-latest`` when none is given).
    """
    spectra = str(params.get("spectra") or "latest").rstrip("/")
    return f"eic-calib-{Path(spectra).name or 'latest'}"


def _run_name() -> str:
    from prefect.runtime import flow_run

    return run_name(dict(flow_run.parameters))


@flow(
    name=FLOW_NAME,
    flow_run_name=_run_name,
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def eic_calibration(
    spectra: str = "latest",
    out_dir: str | None = None,
    caldb_root: str | None = None,
    instrument: str = "eclairs",
    config: EicCalibrationConfig | None = None,
    promote: bool = True,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Calibrate the ECLAIRs plane from calibration spectra and promote what passes the gate.

    Parameters
    ----------
    spectra
        Calibration spectra file (counts per pixel and ADC channel); ``"latest"``: the newest
        in ``$SVOMFLOW_HOME/eic/calibration_spectra/``.
    out_dir
        Products root (default ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``).
    caldb_root
        CALDB location (default ``$SVOMFLOW_CALDB`` or ``$SVOMFLOW_HOME/caldb``).
    instrument
        Instrument definition name.
    config
        Values over the packaged defaults (``config/pipelines/eic_calibration.yaml``).
    promote
        Judge the candidates and promote the passing ones (False: only make them).
    database_url
        Products database (default SQLite under the data directory).

    Returns
    -------
    dict
        ``status`` (``"empty"`` or ``"done"``), the candidates' paths and figures, and per
        CALDB code the gate's verdict, CALDB entry and QC history.
    """
    log = get_run_logger()
    path = _resolve_spectra(spectra)
    if path is None:
        msg = f"no calibration spectra in {spectra_dir()}: nothing to do"
        log.info(msg)
        return {"status": "empty", "message": msg}
    cfg = load_config(EicCalibrationConfig, flow=FLOW_NAME, overrides=config_overrides(config))
    data = read_pixel_spectra(path)
    key = f"eiccal-{data.start:%Y%m%dT%H%M%S}"
    ctx = FlowContext(FLOW_NAME, key, str(out_dir or default_output_root()), database_url)
    run = run_pipeline(
        EIC_CALIBRATION_PIPELINE,
        EicCalibrationRequest(str(path.resolve()), instrument),
        cfg,
        ctx,
        inputs=[str(path.resolve())],
        caldb_root=caldb_root,
    )
    out = run.outcome
    paths = {r.type_code: r.path for r in run.refs}
    summary: dict[str, Any] = {
        "status": "done",
        "spectra": str(path),
        "start": data.start.isoformat(),
        "mode": data.mode,
        "candidates": {c: paths.get(c) for c in CODES},
        "fallback_fraction": float(out.gain.table.fallback.mean()),
        "warnings": list(run.warnings),
        "verdicts": {},
    }
    if promote:
        results = _promote_all(out, paths, data.start, cfg, ctx, caldb_root, instrument)
        summary["verdicts"] = {c: r.summary() for c, r in results.items()}
    else:
        summary["figures"] = {
            "PIXGAIN": {f.name: f.value for f in out.gain.figures},
            "BANDTAB": {f.name: f.value for f in out.bands.figures},
            "SBNTHR": {f.name: f.value for f in out.thresholds.figures},
        }
    summary_path = Path(ctx.out_root) / key / "eic_calibration_summary.json"
    atomic_write_bytes(summary_path, json.dumps(summary, indent=1, default=str).encode())
    summary["summary_file"] = str(summary_path)
    publish_summary(
        title=f"ECLAIRs calibration {data.start:%Y-%m-%d %H:%M}",
        key=key,
        refs=run.refs,
        numbers=key_numbers(summary),
        artifact_key=key,
    )
    ctx.status("done", "; ".join(f"{k}: {v}" for k, v in key_numbers(summary).items())[:500])
    return summary


def _promote_all(
    out: EicCalibrationOutcome,
    paths: Mapping[str, str],
    start: _dt.datetime,
    cfg: EicCalibrationConfig,
    ctx: FlowContext,
    caldb_root: str | None,
    instrument: str,
) -> dict[str, PromotionResult]:
    inst = load_instrument(instrument)

    def request(code: str, figures: list[QCFigure]) -> PromotionRequest:
        return PromotionRequest(
            path=paths[code],
            codename=code,
            telescope=inst.telescope,
            instrument=inst.instrument,
            valid_from=start,
            figures=tuple(figures),
            gate=cfg.gates.get(code, GateConfig()),
            description=f"ECLAIRs {code} from calibration spectra of {start:%Y-%m-%d}",
        )

    results: dict[str, PromotionResult] = {}
    results["PIXGAIN"] = promote_task(
        request("PIXGAIN", out.gain.figures),
        ctx,
        caldb_root=caldb_root,
        measure=_measure_gain,
        compare=_moved_fraction,
        history=cfg.history,
    )
    ok = QCFigure("gain_promoted", 1.0 if results["PIXGAIN"].promoted else 0.0)
    results["BANDTAB"] = promote_task(
        request("BANDTAB", [*out.bands.figures, ok]),
        ctx,
        caldb_root=caldb_root,
        measure=_measure_bands,
        history=cfg.history,
    )
    results["SBNTHR"] = promote_task(
        request("SBNTHR", [*out.thresholds.figures, ok]),
        ctx,
        caldb_root=caldb_root,
        measure=_measure_thresholds,
        history=cfg.history,
    )
    return results


def key_numbers(summary: Mapping[str, Any]) -> dict[str, str]:
    """Return a run's key numbers as ``{quantity: value}`` (verdict per code, fallbacks)."""
    rows = {
        "spectra": f"{summary.get('start')} ({summary.get('mode')})",
        "pixels on their module's gain": f"{100 * float(summary.get('fallback_fraction', 0)):.2f} %",
    }
    for code, v in dict(summary.get("verdicts") or {}).items():
        rows[code] = "promoted" if v["promoted"] else "refused: " + "; ".join(v["reasons"])
    return rows
