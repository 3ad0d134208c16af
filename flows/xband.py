"""The ``xband_analysis`` flow: ECLAIRs + GRM event data -> refined burst products.

Coarse tasks, one per product family (TEMP, LOC, RSP, SPEC+FLUENCE, LC+PF, HR+LAG), each
calling a step of :mod:`svomflow.tasks.xband.pipeline` and publishing its products through
the product store (atomic, versioned, idempotent for identical inputs and configuration).
Tasks pass small dictionaries (intervals, positions, fit summaries, file paths), never
arrays; the time-resolved spectra are fitted in one task. Only the input check (file I/O)
retries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, task
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
)
from svomflow.products.content import relink_ogip
from svomflow.products.provenance import CalibrationRef, Provenance
from svomflow.products.store import ProductRef
from svomflow.tasks.xband.config import XbandAnalysisConfig
from svomflow.tasks.xband.pipeline import (
    ProductSpec,
    step_hardness_lag,
    step_lightcurves,
    step_localise,
    step_responses,
    step_spectra,
    step_timing,
)

__all__ = ["FLOW_NAME", "xband_analysis"]

FLOW_NAME = "xband_analysis"


def _data_digest(path: str) -> str:
    """SHA-256 of a FITS file with its CHECKSUM/DATASUM cards blanked (their comments hold a date)."""
    raw = bytearray(Path(path).read_bytes())
    for start in range(0, len(raw) - 79, 80):
        if raw[start : start + 9] in (b"CHECKSUM=", b"DATASUM ="):
            raw[start : start + 80] = b" " * 80
    return hashlib.sha256(bytes(raw)).hexdigest()


def _publish(
    ctx: FlowContext,
    specs: list[ProductSpec],
    files: list[str],
    cfg: dict[str, Any],
    responses: list[tuple[str, str]] = (),  # type: ignore[assignment]
    published: Mapping[str, str] | None = None,
) -> list[ProductRef]:
    """Publish the products in order; each names the published files it refers to.

    ``published`` maps work-file names to published names of products of earlier tasks
    (the responses); products of this call that have a ``source`` are added as they go, so
    a background published before its spectrum is named in the spectrum's ``BACKFILE``.
    """
    store = ctx.store()
    calib = [CalibrationRef(codename=code, path=p, sha256=_data_digest(p)) for code, p in responses]
    names = dict(published or {})
    refs = []
    for s in specs:
        prov = Provenance.start(
            config=cfg, inputs=files, calibration=calib, flow_name=ctx.flow_name
        )
        content = relink_ogip(s.content, names) if isinstance(s.content, list) else s.content
        ref = store.publish(
            content,
            type_code=s.type_code,
            instrument=s.instrument,
            obs_id=ctx.key,
            provenance=prov,
            ext=s.ext,
        )
        if s.source is not None:
            names[Path(s.source).name] = Path(ref.path).name
        refs.append(ref)
    return refs


def _published_names(specs: list[ProductSpec], refs: list[ProductRef]) -> dict[str, str]:
    """Work-file name -> published file name of the products that came from a work file."""
    return {
        Path(s.source).name: Path(r.path).name
        for s, r in zip(specs, refs, strict=True)
        if s.source is not None
    }


def _responses(rsp: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    if "eclairs" in rsp:
        out.append(("SPECRESP MATRIX", rsp["eclairs"]["rsp"]))
    for v in rsp.get("grm", {}).values():
        out.append(("SPECRESP MATRIX", v["rsp"]))
    return out


@task(name="xband-check-inputs", retries=2, retry_delay_seconds=2)
def check_inputs_task(events: list[str], ctx: FlowContext) -> list[str]:
    """Resolve the input paths (they must exist) and record the run as running."""
    paths = [str(Path(p).resolve()) for p in events]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        from svomflow.errors import InputDataError

        raise InputDataError(f"event file(s) not found: {', '.join(missing)}")
    ctx.status("running")
    return paths


@task(name="xband-temporal")
def timing_task(
    files: list[str], t0: float | None, cfg: dict[str, Any], ctx: FlowContext, work: str
) -> tuple[dict[str, Any], list[ProductRef]]:
    """T90 per instrument and the common intervals (T90_ECL, T90_GRM, TINT_ECLGRM)."""
    info, specs = step_timing(files, t0, XbandAnalysisConfig.model_validate(cfg), Path(work))
    return info, _publish(ctx, specs, files, cfg)


@task(name="xband-localise")
def localise_task(
    files: list[str], cfg: dict[str, Any], info: dict[str, Any], ctx: FlowContext
) -> tuple[dict[str, Any], list[ProductRef]]:
    """Refined positions (PO_ECL, PO_GRM)."""
    loc, specs = step_localise(files, XbandAnalysisConfig.model_validate(cfg), info)
    return loc, _publish(ctx, specs, files, cfg)


@task(name="xband-responses")
def responses_task(
    files: list[str],
    cfg: dict[str, Any],
    info: dict[str, Any],
    loc: dict[str, Any],
    ctx: FlowContext,
    work: str,
) -> tuple[dict[str, Any], list[ProductRef]]:
    """ECLAIRs response for the position, GRM responses for the direction (RSP_*)."""
    spectral = XbandAnalysisConfig.model_validate(cfg).spectral
    rsp, specs = step_responses(
        files, info, loc, Path(work), eclairs_weighting=spectral.eclairs_weighting
    )
    refs = _publish(ctx, specs, files, cfg)
    # the spectra name these files in RESPFILE: they need the published names
    rsp["published"] = _published_names(specs, refs)
    return rsp, refs


@task(name="xband-spectra")
def spectra_task(
    files: list[str],
    cfg: dict[str, Any],
    info: dict[str, Any],
    loc: dict[str, Any],
    rsp: dict[str, Any],
    ctx: FlowContext,
    work: str,
) -> tuple[dict[str, Any], list[ProductRef]]:
    """Spectra of every interval, fits (ECL, GRM, joint), fluences (SP_*, FLUENCE_*, PHA/BAK)."""
    spec, specs = step_spectra(
        files, XbandAnalysisConfig.model_validate(cfg), info, loc, rsp, Path(work)
    )
    return spec, _publish(ctx, specs, files, cfg, _responses(rsp), rsp.get("published"))


@task(name="xband-lightcurves")
def lightcurves_task(
    files: list[str],
    cfg: dict[str, Any],
    info: dict[str, Any],
    spec: dict[str, Any],
    rsp: dict[str, Any],
    ctx: FlowContext,
) -> tuple[dict[str, Any], list[ProductRef]]:
    """Light curves and peak fluxes in physical units (LC_*, PF_*)."""
    out, specs = step_lightcurves(files, XbandAnalysisConfig.model_validate(cfg), info, spec)
    return out, _publish(ctx, specs, files, cfg, _responses(rsp))


@task(name="xband-hardness-lag")
def hardness_lag_task(
    files: list[str], cfg: dict[str, Any], info: dict[str, Any], ctx: FlowContext
) -> tuple[dict[str, Any], list[ProductRef]]:
    """Hardness ratios and lags (HR_*, LAG_*)."""
    out, specs = step_hardness_lag(files, XbandAnalysisConfig.model_validate(cfg), info)
    return out, _publish(ctx, specs, files, cfg)


def _fmt(v: Any, digits: int = 4) -> str:
    try:
        return f"{float(v):.{digits}g}"
    except (TypeError, ValueError):
        return str(v)


@flow(name=FLOW_NAME, on_failure=[record_failure])
def xband_analysis(
    events: list[str],
    obs_id: str,
    t0: float | None = None,
    out_dir: str | None = None,
    database_url: str | None = None,
    config: XbandAnalysisConfig | None = None,
) -> dict[str, Any]:
    """Refined ECLAIRs + GRM burst products from X-band event files.

    Parameters
    ----------
    events
        ECLAIRs and/or GRM L1 event files (recognised by their INSTRUME keyword).
    obs_id
        Observation (burst) identifier: products are filed and versioned under it.
    t0
        Reference time (mission s); default the ECLAIRs (else GRM) TRIGTIME.
    out_dir
        Product root (default ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``).
    database_url
        Products database (default SQLite under the data directory).
    config
        The analysis configuration (every section has defaults).
    """
    cfg = (config or XbandAnalysisConfig()).model_dump(mode="json")
    root = out_dir or str(default_output_root())
    ctx = FlowContext(FLOW_NAME, obs_id, root, database_url)
    work = str(Path(root) / obs_id / "work")
    files = check_inputs_task(list(events), ctx)
    info, r1 = timing_task(files, t0, cfg, ctx, work)
    loc, r2 = localise_task(files, cfg, info, ctx)
    rsp, r3 = responses_task(files, cfg, info, loc, ctx, work)
    spec, r4 = spectra_task(files, cfg, info, loc, rsp, ctx, work)
    lcs, r5 = lightcurves_task(files, cfg, info, spec, rsp, ctx)
    hl, r6 = hardness_lag_task(files, cfg, info, ctx)
    refs = [*r1, *r2, *r3, *r4, *r5, *r6]
    numbers: dict[str, Any] = {"T0 (mission s)": _fmt(info["t0"], 12)}
    for name, row in info["t90"].items():
        if "t90" in row:
            numbers[f"T90 {name} {row['band_lo']:g}-{row['band_hi']:g} keV (s)"] = (
                f"{_fmt(row['t90'])} ± {_fmt(row['t90_err'], 2)}"
            )
        else:
            numbers[f"T90 {name} {row['band_lo']:g}-{row['band_hi']:g} keV (s)"] = (
                f"not measured ({row.get('quality', 'NOT_MEASURED')})"
            )
    if "eclairs" in loc:
        e = loc["eclairs"]
        numbers["PO_ECL RA, Dec (deg), r90"] = (
            f"{e['ra_deg']:.4f}, {e['dec_deg']:.4f}, {e['r90_arcmin']:.1f} arcmin"
        )
    if "grm" in loc:
        g = loc["grm"]
        numbers["PO_GRM RA, Dec (deg), r90"] = (
            f"{g['ra_deg']:.2f}, {g['dec_deg']:.2f}, {g['error_radius_90_deg']:.1f} deg"
        )
    for code, fl in spec["fits"].items():
        main = next((f for f in fl if f["label"] == "main"), None)
        if main is None:
            continue
        p = main["parameters"]
        shape = ", ".join(
            f"{k}={_fmt(v['value'])}" for k, v in p.items() if not v["frozen"] and k != "K"
        )
        numbers[f"SP_{code} main {main['model']}"] = shape
        for key, fx in main["fluxes"].items():
            if key.startswith("fluence"):
                numbers[f"FLUENCE_{code} {key[8:]} keV (erg/cm2)"] = (
                    f"{fx['value']:.3e} (-{abs(fx['error_low']):.1e} +{fx['error_high']:.1e})"
                )
    for name, rows in lcs.items():
        for r in rows:
            numbers[f"PF {name} {r['timescale']:g} s (ph/cm2/s)"] = (
                f"{_fmt(r['photon_flux'])} ± {_fmt(r['photon_flux_err'], 2)}"
            )
    for code, v in hl.items():
        numbers[f"HR_{code}"] = f"{_fmt(v['hr']['ratio'])} ± {_fmt(v['hr']['ratio_err'], 2)}"
        numbers[f"LAG_{code} (s)"] = f"{_fmt(v['lag']['lag'])} ± {_fmt(v['lag']['lag_err'], 2)}"
    previews = [r.path for r in refs if r.path.endswith(".png")]
    publish_summary(
        title="X-band analysis",
        key=obs_id,
        refs=refs,
        numbers=numbers,
        previews=previews,
        artifact_key=f"xband-{obs_id}",
    )
    ctx.status("done")
    return {
        "obs_id": obs_id,
        "t0": info["t0"],
        "intervals": info["intervals"],
        "t90": info["t90"],
        "positions": {
            k: {kk: vv for kk, vv in v.items() if kk != "excluded_pixels"} for k, v in loc.items()
        },
        "responses": rsp,
        "fits": spec["fits"],
        "peak_fluxes": lcs,
        "hardness_lag": hl,
        "products": [
            {
                "type": r.type_code,
                "instrument": r.instrument,
                "version": r.version,
                "path": r.path,
                "new": r.created_new,
            }
            for r in refs
        ],
    }
