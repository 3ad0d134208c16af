"""The ``mxt_analysis`` flow: MXT passes -> calibrated events -> sources -> LC, spectra, previews.

Coarse tasks (resolve calibration, merge, calibrate, detect+fit, products) pass file paths,
never arrays. Burst mode: give ``trigger_time`` and the ECLAIRs ``prior_ra``/``prior_dec``;
general-program mode: leave them out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from svomflow.calibration.caldb import resolve_calibrations
from svomflow.config import load_instrument
from svomflow.tasks.xray.pipeline import (
    MXTAnalysisConfig,
    calibration_requirements,
    mission_time_to_utc,
    step_calibrate,
    step_detect,
    step_merge,
    step_products,
)

__all__ = ["mxt_analysis"]


@task(name="mxt-resolve-calibration", retries=2, retry_delay_seconds=2)
def resolve_calibration_task(tstart: float, overrides: dict[str, str] | None) -> dict[str, str]:
    """Select GAIN, CTI, PATTERN and PSF from the CALDB (or take the given override paths)."""
    mjdref = float(load_instrument("mxt").get("time_reference.mjdref"))
    entries = resolve_calibrations(
        calibration_requirements(), mission_time_to_utc(tstart, mjdref), overrides=overrides or {}
    )
    return {k: str(e.path) for k, e in entries.items()}


@task(name="mxt-merge")
def merge_task(
    l1_files: list[str], attitude_file: str, saa_file: str, out_dir: str
) -> dict[str, Any]:
    """Merge and de-duplicate the passes; GTIs and labelled gaps."""
    return step_merge(l1_files, attitude_file, saa_file, out_dir)


@task(name="mxt-calibrate")
def calibrate_task(merged: str, calibration: dict[str, str], out_dir: str) -> dict[str, Any]:
    """Calibrate the events (gain/offset, CTI, patterns)."""
    return step_calibrate(merged, calibration, out_dir)


@task(name="mxt-detect-fit")
def detect_task(
    cal_file: str,
    psf_file: str,
    out_dir: str,
    cfg: dict[str, Any],
    prior: tuple[float, float] | None,
) -> dict[str, Any]:
    """Stage-1 detection and stage-2 ML fit; writes the source list."""
    conf = MXTAnalysisConfig.model_validate(cfg)
    return step_detect(cal_file, psf_file, out_dir, conf.detect, prior)


@task(name="mxt-products")
def products_task(
    cal_file: str,
    srclist: str,
    psf_file: str,
    out_dir: str,
    cfg: dict[str, Any],
    trigger_time: float | None,
) -> dict[str, Any]:
    """Light curves, spectra (PHA + RMF/ARF) and PNG previews per source."""
    return step_products(
        cal_file, srclist, psf_file, out_dir, MXTAnalysisConfig.model_validate(cfg), trigger_time
    )


@flow(name="mxt_analysis")
def mxt_analysis(
    l1_files: list[str],
    attitude_file: str,
    saa_file: str,
    out_dir: str,
    calibration_overrides: dict[str, str] | None = None,
    trigger_time: float | None = None,
    prior_ra: float | None = None,
    prior_dec: float | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Process MXT passes into a source list, light curves, spectra and previews.

    Parameters
    ----------
    l1_files
        L1 pass files (any order; overlaps allowed).
    attitude_file, saa_file
        Attitude file and the SAA file of the observation's week.
    out_dir
        Where the products are written (atomically).
    calibration_overrides
        ``{"gain"|"cti"|"pattern"|"psf": path}`` instead of CALDB selection.
    trigger_time, prior_ra, prior_dec
        Burst mode: the trigger time and the ECLAIRs position (degrees).
    config
        Overrides of :class:`MXTAnalysisConfig`.
    """
    cfg = MXTAnalysisConfig.model_validate(config or {}).model_dump()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    from svomflow.tasks.xray.events import read_pass

    inst = load_instrument("mxt")
    # the first task needs the observation start: read it from the pass headers (cheap)
    tstart = min(float(read_pass(f, inst).gti[0, 0]) for f in l1_files) if l1_files else 0.0
    cal = resolve_calibration_task(tstart, calibration_overrides)
    merged = merge_task(list(l1_files), attitude_file, saa_file, out_dir)
    calibrated = calibrate_task(merged["path"], cal, out_dir)
    prior = (prior_ra, prior_dec) if prior_ra is not None and prior_dec is not None else None
    det = detect_task(calibrated["path"], cal["psf"], out_dir, cfg, prior)
    prods = products_task(calibrated["path"], det["path"], cal["psf"], out_dir, cfg, trigger_time)
    rows = "\n".join(
        f"| {i} | {s['ra_deg']:.5f} | {s['dec_deg']:.5f} | {s['r90_arcsec']:.1f} | {s['counts']:.0f} | {s['ml']:.1f} |"
        for i, s in enumerate(det["sources"], start=1)
    )
    create_markdown_artifact(
        markdown="| # | RA | Dec | r90 (arcsec) | counts | ML |\n|---|---|---|---|---|---|\n"
        + rows,
        key="mxt-sources",
        description="MXT source list",
    )
    return {
        "mode": "burst" if prior is not None else "general-program",
        "calibration": cal,
        "merge": merged,
        "calibrate": calibrated,
        "srclist": det["path"],
        "sources": det["sources"],
        "products": prods,
    }
