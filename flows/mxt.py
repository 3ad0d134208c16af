"""The ``mxt_analysis`` flow: MXT passes -> calibrated events -> sources -> LC, spectra, previews.

The flow only builds the request and the configuration and runs
:data:`~svomflow.tasks.xray.pipeline.MXT_PIPELINE` through the adapter
(:func:`~svomflow.flows.adapter.run_pipeline`): its first task selects GAIN, CTI, PATTERN and
PSF from the CALDB for the observation start (or takes ``override_<code>`` files), failing at
once and naming every missing file; then the inputs are read once, each step call is a task
and its products are published through the catalogue (``<out_dir>/<obs_id>/MXT/``,
versioned, with provenance: input checksums, merged configuration, calibration files and
CALDB index version). Burst mode: give ``trigger_time`` and the ECLAIRs
``prior_ra``/``prior_dec``; general-program mode: leave them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.instrument import load_instrument
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
    run_pipeline,
)
from svomflow.flows.prefect_flow import flow
from svomflow.products.catalogue.mxt import source_index
from svomflow.products.store import ProductRef
from svomflow.tasks.xray.pipeline import (
    FLOW_NAME,
    MXT_PIPELINE,
    MXTAnalysisConfig,
    MXTOutcome,
    MXTRequest,
    observation_start,
    with_calibration_files,
)

__all__ = [
    "default_obs_id",
    "header_obs_id",
    "input_flags",
    "mxt_analysis",
    "mxt_key_numbers",
    "mxt_result",
    "run_name",
]

# per-source product families -> key of the result's "products" (one list per family)
_SOURCE_KINDS = {"ARF": "arfs", "PHA": "spectra", "LC": "lightcurves"}


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

    The id is the one the products are filed under: the ``obs_id`` parameter, else the
    passes' ``OBS_ID``/``TRIGID`` header, else ``MXT<observation start>``. A name must never
    fail a run: unreadable passes (which fail the run in its tasks) fall back to the first
    pass's file name.
    """
    if params.get("obs_id"):
        return f"mxt-{params['obs_id']}"
    files = [str(f) for f in params.get("l1_files") or []]
    try:
        key = header_obs_id(files) or default_obs_id(
            files, observation_start(MXTRequest(tuple(files), "", "", None, None))
        )
    except Exception:  # a bad pass fails the run in its tasks, never in its name
        key = Path(files[0]).name.split(".")[0] if files else "none"
    return f"mxt-{key}"


def _run_name() -> str:
    from prefect.runtime import flow_run

    return run_name(dict(flow_run.parameters))


def input_flags(counts: Mapping[str, int]) -> list[str]:
    """Return what reading and merging the passes removed, as one line per cause.

    Damaged rows (NaN time, pixel or PHA out of range) are dropped, not fatal: the run says so
    in its result (``--json`` ``flags``) so that a damaged input never passes unnoticed.
    """
    out = []
    if counts.get("n_corrupted"):
        out.append(
            f"{counts['n_corrupted']} corrupted event rows dropped "
            "(NaN time, pixel or PHA out of range)"
        )
    if counts.get("n_bad_gti"):
        out.append(
            f"{counts['n_bad_gti']} GTI rows dropped (non-finite bounds or START after STOP)"
        )
    if counts.get("n_passes_without_gti"):
        out.append(
            f"{counts['n_passes_without_gti']} pass file(s) without a GTI extension: their "
            "good time is the span of their events"
        )
    if counts.get("n_no_attitude"):
        out.append(f"{counts['n_no_attitude']} events without attitude excluded")
    return out


def mxt_result(
    outcome: MXTOutcome, refs: Sequence[ProductRef], calibration: CalibrationSet, obs_id: str
) -> dict[str, Any]:
    """Return the JSON-ready result of a run (what the flow returns and ``--json`` prints).

    ``products`` holds the published paths by kind: ``events``, ``srclist``, ``rmf``, and per
    source (in source order) ``arfs``, ``spectra``, ``lightcurves``; ``previews`` has the
    image first, then one light curve per source.
    """
    by_type = {r.type_code: r.path for r in refs if source_index(r.instrument) is None}
    per_source: dict[str, list[tuple[int, str]]] = {}
    for r in refs:
        index = source_index(r.instrument)
        if index is not None:
            per_source.setdefault(r.type_code, []).append((index, r.path))
    products: dict[str, Any] = {
        "events": by_type.get("EVT"),
        "srclist": by_type.get("SRCLIST"),
        "rmf": by_type.get("RMF"),
    }
    for family, kind in _SOURCE_KINDS.items():
        products[kind] = [path for _, path in sorted(per_source.get(family, []))]
    products["previews"] = [by_type["QIMG"]] if "QIMG" in by_type else []
    products["previews"] += [path for _, path in sorted(per_source.get("LC-PREVIEW", []))]
    cal = {
        ref.codename.lower(): {
            "codename": ref.codename,
            "path": ref.path,
            "sha256": ref.sha256,
            "index_version": ref.index_version,
            "override": ref.override,
        }
        for ref in calibration.refs()
    }
    merge = outcome.merge
    return {
        "mode": outcome.mode,
        "flags": input_flags(merge.counts),
        "obs_id": obs_id,
        "calibration": cal,
        "merge": {"counts": merge.counts, "tstart": merge.tstart, "tstop": merge.tstop},
        "calibrate": {"counts": outcome.calibrate_counts},
        "srclist": products["srclist"],
        "sources": [
            {
                "ra_deg": s.ra_deg,
                "dec_deg": s.dec_deg,
                "r90_arcsec": s.r90_arcsec,
                "counts": s.counts,
                "ml": s.ml,
            }
            for s in outcome.sources
        ],
        "products": products,
    }


def mxt_key_numbers(outcome: MXTOutcome) -> dict[str, str]:
    """Return the run's key numbers as ``{quantity: value with error and unit}``.

    The observation span in UTC and mission time, the event counts, then per source its
    position with its 90% error radius, its counts and its count rate (with 1-sigma errors).
    The MXT detection gives count rates, not fluxes (a flux needs the spectral fit).
    """
    from svomflow.tasks.xray.events import mission_time_to_utc

    merge = outcome.merge
    mjdref = float(load_instrument("mxt").get("time_reference.mjdref"))
    rows: dict[str, str] = {
        "mode": outcome.mode,
        "start (UTC)": mission_time_to_utc(merge.tstart, mjdref)[:23],
        "stop (UTC)": mission_time_to_utc(merge.tstop, mjdref)[:23],
        "span (mission time)": f"{merge.tstart:.1f} to {merge.tstop:.1f} s",
        "calibrated events": str(outcome.calibrate_counts.get("n_calibrated", "n/a")),
        "duplicated rows dropped": str(merge.counts.get("n_duplicates", "n/a")),
        "sources": str(len(outcome.sources)),
    }
    for i, s in enumerate(outcome.sources, start=1):
        rows[f"S{i} (RA, Dec J2000; r90)"] = (
            f'{s.ra_deg:.5f}°, {s.dec_deg:+.5f}°; {s.r90_arcsec:.1f}"'
        )
        rows[f"S{i} counts; rate; ML"] = (
            f"{s.counts:.0f} ± {s.counts_err:.0f}; "
            f"{s.rate:.3g} ± {s.rate_err:.2g} counts/s; {s.ml:.1f}"
        )
    return rows


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
        ``{"gain"|"cti"|"pattern"|"psf": path}`` instead of CALDB selection (the same as the
        configuration's ``override_<code>`` values, which it sets).
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
    conf = MXTAnalysisConfig.model_validate(config) if config is not None else MXTAnalysisConfig()
    if calibration_overrides:
        conf = with_calibration_files(conf, calibration_overrides)
    prior = (prior_ra, prior_dec) if prior_ra is not None and prior_dec is not None else None
    request = MXTRequest(tuple(l1_files), attitude_file, saa_file, trigger_time, prior)
    # the products' key is needed before the first task: the start comes from the headers
    key = obs_id or default_obs_id(list(l1_files), observation_start(request))
    ctx = FlowContext(FLOW_NAME, key, out_dir or str(default_output_root()), database_url)
    run = run_pipeline(
        MXT_PIPELINE, request, conf, ctx, inputs=[*l1_files, attitude_file, saa_file],
        caldb_root=caldb_root,
    )  # fmt: skip
    result = mxt_result(run.outcome, run.refs, run.calibration, key)
    numbers = mxt_key_numbers(run.outcome)
    publish_summary(
        title="MXT analysis",
        key=key,
        refs=run.refs,
        numbers=numbers,
        previews=result["products"]["previews"],
        artifact_key=f"mxt-{key}",
    )
    ctx.status("done")
    return result
