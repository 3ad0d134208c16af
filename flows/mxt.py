"""The ``mxt_analysis`` flow: MXT passes -> calibrated events -> sources -> LC, spectra, previews.

Coarse tasks (resolve calibration, merge, calibrate, detect+fit, products, publish) pass file
paths, never arrays. The steps write into a temporary work directory; the publish task
records every product through the product store (``<out_dir>/<obs_id>/MXT/``, versioned,
with provenance: input checksums, merged configuration, calibration files and CALDB index
version). Burst mode: give ``trigger_time`` and the ECLAIRs ``prior_ra``/``prior_dec``;
general-program mode: leave them out.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, task
from svomflow.calibration.caldb import open_caldb, resolve_calibrations
from svomflow.config import load_instrument
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
)
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

FLOW_NAME = "mxt_analysis"


@task(name="mxt-resolve-calibration", retries=2, retry_delay_seconds=2)
def resolve_calibration_task(
    tstart: float, overrides: dict[str, str] | None, caldb_root: str | None = None
) -> dict[str, dict[str, Any]]:
    """Select GAIN, CTI, PATTERN and PSF from the CALDB (or take the given override paths).

    Returns, per requirement, the code name, path, checksum, CALDB index version and whether
    the file was an override (what the products' provenance records).
    """
    mjdref = float(load_instrument("mxt").get("time_reference.mjdref"))
    overrides = overrides or {}
    need_caldb = len(overrides) < len(calibration_requirements())
    entries = resolve_calibrations(
        calibration_requirements(),
        mission_time_to_utc(tstart, mjdref),
        caldb=open_caldb(caldb_root) if need_caldb else None,
        overrides=overrides,
    )
    return {
        k: {
            "codename": e.codename,
            "path": str(e.path),
            "sha256": e.sha256,
            "index_version": e.index_version,
            "override": e.source == "override",
        }
        for k, e in entries.items()
    }


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


@task(name="mxt-publish", retries=2, retry_delay_seconds=2)
def publish_task(
    ctx: FlowContext,
    inputs: list[str],
    cfg: dict[str, Any],
    calibration: dict[str, dict[str, Any]],
    cal_file: str,
    srclist: str,
    products: dict[str, Any],
) -> dict[str, Any]:
    """Record every product in the store with its provenance; return paths by kind."""
    from svomflow.products.provenance import Provenance
    from svomflow.tasks.xray.publish import calibration_refs, publish_mxt_products

    prov = Provenance.start(
        config=cfg, inputs=inputs, calibration=calibration_refs(calibration), flow_name=FLOW_NAME
    )
    refs = publish_mxt_products(
        ctx.store(),
        obs_id=ctx.key,
        instrument=load_instrument("mxt").instrument,
        provenance=prov,
        events_file=cal_file,
        srclist_file=srclist,
        products=products,
    )

    def paths(v: Any) -> Any:
        return [r.path for r in v] if isinstance(v, list) else v.path

    return {"paths": {k: paths(v) for k, v in refs.items()}, "refs": refs}


def header_obs_id(l1_files: list[str]) -> str | None:
    """Return the ``OBS_ID`` (or ``TRIGID``) header value of the first pass that has one."""
    from astropy.io import fits
    from svomflow.paths import safe_component

    for f in l1_files:
        try:
            with fits.open(f) as hdul:
                for h in hdul[:2]:
                    for key in ("OBS_ID", "TRIGID"):
                        if str(h.header.get(key, "")).strip():
                            return safe_component(str(h.header[key]).strip(), what="OBS_ID")
        except OSError:
            continue
    return None


def default_obs_id(l1_files: list[str], tstart: float) -> str:
    """Return the observation id of the passes: header ``OBS_ID``/``TRIGID``, else ``MXT<tstart>``."""
    return header_obs_id(l1_files) or f"MXT{int(tstart)}"


def run_name(params: dict[str, Any]) -> str:
    """Return the flow run name ``mxt-<obs id>`` for the given flow parameters.

    The id is the ``obs_id`` parameter, else the passes' ``OBS_ID``/``TRIGID`` header, else
    the first pass's file name without extension (a name must never fail a run: any error
    reading the headers falls through to the file name).
    """
    if params.get("obs_id"):
        return f"mxt-{params['obs_id']}"
    files = [str(f) for f in params.get("l1_files") or []]
    try:
        key = header_obs_id(files)
    except Exception:  # a bad header fails the run in its tasks, never in its name
        key = None
    if key is None:
        key = Path(files[0]).name.split(".")[0] if files else "none"
    return f"mxt-{key}"


def _run_name() -> str:
    from prefect.runtime import flow_run

    return run_name(dict(flow_run.parameters))


@flow(name=FLOW_NAME, flow_run_name=_run_name, on_failure=[record_failure])
def mxt_analysis(
    l1_files: list[str],
    attitude_file: str,
    saa_file: str,
    obs_id: str | None = None,
    out_dir: str | None = None,
    database_url: str | None = None,
    calibration_overrides: dict[str, str] | None = None,
    caldb_root: str | None = None,
    trigger_time: float | None = None,
    prior_ra: float | None = None,
    prior_dec: float | None = None,
    config: MXTAnalysisConfig | None = None,
) -> dict[str, Any]:
    """Process MXT passes into a source list, light curves, spectra and previews.

    Parameters
    ----------
    l1_files
        L1 pass files (any order; overlaps allowed).
    attitude_file, saa_file
        Attitude file and the SAA file of the observation's week.
    obs_id
        Observation (or burst) id: the products' key (default: the passes' ``OBS_ID`` or
        ``TRIGID`` header, else ``MXT<start time>``).
    out_dir
        Products root (default ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``).
    database_url
        Products database (default SQLite under the data directory).
    calibration_overrides
        ``{"gain"|"cti"|"pattern"|"psf": path}`` instead of CALDB selection.
    caldb_root
        CALDB to select from (default ``$SVOMFLOW_CALDB`` or ``$SVOMFLOW_HOME/caldb``).
    trigger_time, prior_ra, prior_dec
        Burst mode: the trigger time and the ECLAIRs position (degrees).
    config
        The analysis configuration (:class:`MXTAnalysisConfig`; default: its defaults). A
        plain nested mapping is accepted and validated into the model (what the CLI,
        ``svomflow reprocess`` and deployment runs pass); unset keys keep their defaults.
        Typed, so the Prefect UI renders it as a form.

    Returns
    -------
    dict
        ``mode``, ``obs_id``, ``calibration``, merge/calibration counts, ``sources`` (list of
        dicts), ``srclist`` (published path) and ``products`` (published paths by kind).
    """
    from svomflow.tasks.xray.events import read_pass

    # no file layer to merge over here: the model (defaults included) is the configuration
    conf = config if config is not None else MXTAnalysisConfig()
    cfg = MXTAnalysisConfig.model_validate(conf).model_dump(mode="json")
    inst = load_instrument("mxt")
    if not l1_files:
        from svomflow.errors import InputDataError

        raise InputDataError("no MXT pass files given")
    # the first task needs the observation start: read it from the pass headers (cheap)
    tstart = min(float(read_pass(f, inst).gti[0, 0]) for f in l1_files)
    key = obs_id or default_obs_id(list(l1_files), tstart)
    root = out_dir or str(default_output_root())
    ctx = FlowContext(FLOW_NAME, key, root, database_url)
    ctx.status("running")
    cal = resolve_calibration_task(tstart, calibration_overrides, caldb_root)
    cal_paths = {k: v["path"] for k, v in cal.items()}
    prior = (prior_ra, prior_dec) if prior_ra is not None and prior_dec is not None else None
    Path(root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"mxt-{key}-", dir=root) as work:
        merged = merge_task(list(l1_files), attitude_file, saa_file, work)
        calibrated = calibrate_task(merged["path"], cal_paths, work)
        det = detect_task(calibrated["path"], cal_paths["psf"], work, cfg, prior)
        prods = products_task(calibrated["path"], det["path"], cal_paths["psf"], work, cfg, trigger_time)  # fmt: skip
        pub = publish_task(
            ctx,
            [*l1_files, attitude_file, saa_file],
            cfg,
            cal,
            calibrated["path"],
            det["path"],
            prods,
        )
    refs = pub["refs"]
    all_refs = [refs["events"], refs["srclist"], refs["rmf"]]
    for kind in ("spectra", "arfs", "lightcurves", "previews"):
        all_refs += refs[kind]
    mode = "burst" if prior is not None else "general-program"
    numbers: dict[str, Any] = {
        "mode": mode,
        "sources": det["n_sources"],
        "calibrated events": calibrated["counts"].get("n_calibrated"),
        "duplicated rows dropped": merged["counts"].get("n_duplicates"),
    }
    for i, s in enumerate(det["sources"], start=1):
        numbers[f"S{i}"] = (
            f'RA {s["ra_deg"]:.5f} Dec {s["dec_deg"]:+.5f} r90 {s["r90_arcsec"]:.1f}" '
            f"counts {s['counts']:.0f} ML {s['ml']:.1f}"
        )
    publish_summary(
        title="MXT analysis",
        key=key,
        refs=all_refs,
        numbers=numbers,
        previews=[r.path for r in refs["previews"]],
        artifact_key=f"mxt-{key}",
    )
    ctx.status("done")
    return {
        "mode": mode,
        "obs_id": key,
        "calibration": cal,
        "merge": {k: v for k, v in merged.items() if k != "path"},
        "calibrate": {k: v for k, v in calibrated.items() if k != "path"},
        "srclist": pub["paths"]["srclist"],
        "sources": det["sources"],
        "products": pub["paths"],
    }
