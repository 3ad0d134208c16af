"""Prefect flow ``nightly_master_calibration``: build, validate and promote the night's masters.

The flow scans the raw directory once (headers), groups the frames, then runs the
pipeline :data:`~svomflow.tasks.masters.pipeline.NIGHTLY_PIPELINE` once per type, in order
(bias, then dark, then flat): each run selects the masters its groups need from the CALDB
in its first task, screens, builds and validates the groups of that type side by side
(threads, or Dask when ``$SVOMFLOW_DASK_ADDRESS`` is set) and publishes the candidates and
their QC reports through the catalogue. The passing candidates are registered in the CALDB
(a retried task) before the next type, so tonight's bias builds tonight's darks and flats
and their products record its CALDB entry. A last run adds the night to the QC history.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from svomflow.atomic import atomic_write_bytes
from svomflow.calibration.caldb import open_caldb
from svomflow.config import load_config
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
    run_pipeline,
    task_runner_for,
    transient_error,
)
from svomflow.flows.prefect_flow import flow
from svomflow.instruments.ccd_camera import CameraModel, load_camera
from svomflow.paths import data_home, safe_component
from svomflow.products.store import ProductRef
from svomflow.tasks.ccd.master_selection import CODENAMES
from svomflow.tasks.masters.build import ValidatedCandidate
from svomflow.tasks.masters.config import NightlyCalibrationConfig
from svomflow.tasks.masters.groups import (
    FrameGroup,
    ScanResult,
    group_frames,
    refuse_small_groups,
    scan_night,
)
from svomflow.tasks.masters.history import HistoryEntry
from svomflow.tasks.masters.pipeline import (
    NIGHTLY_PIPELINE,
    HistoryRequest,
    NightlyRequest,
    refused_entry,
)
from svomflow.tasks.progress import report as report_progress

__all__ = [
    "nightly_key_numbers",
    "nightly_master_calibration",
    "register_candidate",
    "resolve_night",
    "run_name",
]

KINDS = ("bias", "dark", "flat")
_FLOW = "nightly_master_calibration"


@task(name="scan-night", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def _scan(
    raw_dir: str, night: str, camera: CameraModel, config: NightlyCalibrationConfig
) -> ScanResult:
    return scan_night(raw_dir, night, camera, config)


def register_candidate(
    caldb: Any, path: str, candidate: ValidatedCandidate, camera: CameraModel
) -> Any:
    """Register a passing candidate's file in the CALDB, valid from its first frame.

    Registering the same file again (a re-run of the night) returns the existing entry.

    Raises
    ------
    ValueError
        When the candidate did not pass validation.
    """
    from svomflow.atomic import sha256_file

    if not candidate.passed:
        raise ValueError(
            f"candidate {candidate.group.key} did not pass validation; it cannot be promoted"
        )
    digest = sha256_file(path)
    code = CODENAMES[candidate.group.kind]
    for e in caldb.list(instrument=camera.instrument, codename=code):
        if e.sha256 == digest:
            return e
    return caldb.register(
        path,
        telescope=camera.telescope,
        instrument=camera.instrument,
        codename=code,
        filter=candidate.group.filter if candidate.group.kind == "flat" else "NONE",
        boundaries=candidate.boundaries,
        valid_from=candidate.valid_from,
        quality=0,
        description=(
            f"master {candidate.group.kind} {candidate.group.key} from night "
            f"{candidate.report.night}"
        ),
    )


@task(
    name="register-master",
    task_run_name="register-{candidate.group.key}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 5],
    retry_condition_fn=lambda t, r, s: transient_error(t, r, s),
)
def _register(
    path: str, candidate: ValidatedCandidate, camera: CameraModel, caldb_root: str | None
) -> dict[str, Any]:
    """Promote a validated candidate into the CALDB (retried on I/O errors)."""
    entry = register_candidate(open_caldb(caldb_root), path, candidate, camera)
    return {
        "id": entry.id,
        "path": str(entry.path),
        "sha256": entry.sha256,
        "valid_from": str(entry.valid_from),
    }


def _latest_history(ctx: FlowContext, instrument: str) -> str | None:
    """Return the QC history as it stands: the newest QCHIST product of the camera, if any."""
    rows = ctx.store().list(type_code="QCHIST", instrument=instrument)
    rows = [r for r in rows if Path(r.path).is_file()]
    if not rows:
        return None
    return max(rows, key=lambda r: r.created).path


def _product_paths(refs: Sequence[ProductRef], instrument: str) -> dict[str, str]:
    """``{type code: path}`` of the products of one instrument code (a group's)."""
    return {r.type_code: r.path for r in refs if r.instrument == instrument}


_LATEST = ("last", "latest")


def resolve_night(night: str, start_hour: float = 12.0, now: _dt.datetime | None = None) -> str:
    """Return ``night`` as a date; ``"last"`` means the latest night that has mostly passed.

    A night is named by the date of its evening and runs from ``start_hour`` UTC that day to
    the same hour the next day. "last" is the night that held the moment 12 h ago, so a
    morning schedule (any time up to 12 h after the night's start + 12 h) gets the night
    that just ended, whatever the hour the schedule fires.
    """
    if night.strip().lower() not in _LATEST:
        return night
    now = now or _dt.datetime.now(_dt.UTC)
    then = now - _dt.timedelta(hours=12) - _dt.timedelta(hours=start_hour)
    return then.date().isoformat()


def run_name(params: Mapping[str, Any]) -> str:
    """Return the flow run name ``calib-<night>`` for the given flow parameters.

    ``"last"`` is resolved with the run's ``night_start_utc_hour`` when its configuration
    sets one (the parameter may be the model or its JSON mapping), as the flow does.
    """
    night = str(params.get("night") or "last")
    config = params.get("config")
    hour = (
        config.get("night_start_utc_hour")
        if isinstance(config, Mapping)
        else getattr(config, "night_start_utc_hour", None)
    )
    start = float(hour) if hour is not None else NightlyCalibrationConfig().night_start_utc_hour
    return f"calib-{resolve_night(night, start)}"


def _run_name() -> str:
    from prefect.runtime import flow_run

    return run_name(dict(flow_run.parameters))


@flow(
    name="nightly_master_calibration",
    flow_run_name=_run_name,
    on_failure=[record_failure],
    on_crashed=[record_failure],
    # per-group steps fan out on threads, or on Dask when $SVOMFLOW_DASK_ADDRESS is set
    task_runner=task_runner_for(),
)
def nightly_master_calibration(
    night: str,
    raw_dir: str,
    out_dir: str | None = None,
    caldb_root: str | None = None,
    instrument: str = "colibri_ddrago_b",
    config: NightlyCalibrationConfig | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Build the night's master bias/dark/flat candidates, validate them and promote the good ones.

    Parameters
    ----------
    night
        Date of the evening of the night (``YYYY-MM-DD``); frames from 12:00 UTC that day to
        12:00 UTC the next day (``night_start_utc_hour``) belong to it. ``"last"`` (what the
        nightly schedule passes) is the night that just ended (:func:`resolve_night`).
    raw_dir
        Directory searched recursively for raw frames (selected by their headers).
    out_dir
        Products root (products under ``<out_dir>/<night>/<instrument code>/``; default
        ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``) and where the run's summary
        goes (``summaries/``; default ``$SVOMFLOW_HOME/calibration/<instrument>``).
    caldb_root
        CALDB location (default: ``$SVOMFLOW_CALDB`` or ``$SVOMFLOW_HOME/caldb``).
    instrument
        Camera definition name.
    config
        The configuration (:class:`~svomflow.tasks.masters.build.NightlyCalibrationConfig`).
        Only the values set on it count (a plain nested mapping, validated into the model,
        sets exactly its keys: what ``calib nightly`` and ``svomflow reprocess`` pass):
        settings left unset are filled from the camera definition
        (:meth:`~svomflow.tasks.masters.build.NightlyCalibrationConfig.resolved`), which a
        model's defaults must not hide. Typed, so the Prefect UI renders it as a form.
    database_url
        Products database (default SQLite under the data directory).

    Returns
    -------
    dict
        ``status`` (``"empty"`` or ``"done"``), per group the verdict, reasons, candidate and
        report paths, the CALDB entries promoted, refused groups and the QC history paths.
    """
    log = get_run_logger()
    camera = load_camera(instrument)
    cfg = load_config(NightlyCalibrationConfig, overrides=config_overrides(config)).resolved(camera)
    night = resolve_night(night, cfg.night_start_utc_hour)
    ctx = FlowContext(_FLOW, night, str(out_dir or default_output_root()), database_url)
    ctx.status("running")
    out = Path(out_dir) if out_dir else data_home() / "calibration" / safe_component(camera.name)
    scan = _scan(raw_dir, night, camera, cfg)
    for path, why in scan.skipped.items():
        log.warning("skipped %s: %s", path, why)
    summary: dict[str, Any] = {
        "night": night,
        "camera": camera.instrument,
        "raw_dir": str(raw_dir),
        "out_dir": str(out),
        "skipped_files": scan.skipped,
        "groups": [],
        "refused": [],
        "promoted": [],
        "products": [],
    }
    if not scan.frames:
        msg = f"no calibration frames of {camera.instrument} for night {night} in {raw_dir}: nothing to do"
        log.info(msg)
        summary.update(status="empty", message=msg)
        ctx.status("done", msg)
        return summary
    groups = group_frames(scan.frames, camera, cfg)
    assert cfg.min_frames is not None
    groups, refused = refuse_small_groups(groups, cfg.min_frames)
    entries: list[HistoryEntry] = []
    for g, why in refused:
        log.warning("group %s refused: %s", g.key, why)
        summary["refused"].append({"group": g.key, "reason": why})
        entries.append(refused_entry(g, night, why))
    refs: list[ProductRef] = []
    reports: list[str] = []
    # progress in groups (refused ones are done already), the QC history as the last item
    total, done = len(groups) + len(refused) + 1, len(refused)
    for kind in KINDS:
        these = tuple(g for g in groups if g.kind == kind)
        if not these:
            continue
        report_progress(_FLOW, f"{kind} masters ({len(these)} groups)", done=done, total=total)
        run = run_pipeline(
            NIGHTLY_PIPELINE,
            _request(night, camera, these, cfg),
            cfg,
            ctx,
            inputs=[str(f.path) for g in these for f in g.frames],
            caldb_root=caldb_root,
        )
        refs += run.refs
        for cand in run.outcome.candidates:
            paths = _product_paths(run.refs, cand.instrument)
            entry = None
            if cand.passed:
                entry = _register(paths["MASTER"], cand, camera, caldb_root)
                summary["promoted"].append({"group": cand.group.key, **entry})
                log.info("promoted %s (CALDB entry %s)", cand.group.key, entry["id"])
            reports.append(paths["QCJSON"])
            summary["groups"].append(_group_summary(cand, paths, entry, run.refs))
        entries += run.outcome.entries
        done += len(these)
    report_progress(_FLOW, "QC history", done=done, total=total)
    history = run_pipeline(
        NIGHTLY_PIPELINE,
        _request(
            night,
            camera,
            (),
            cfg,
            HistoryRequest(_latest_history(ctx, camera.instrument), tuple(entries)),
        ),
        cfg,
        ctx,
        inputs=reports,
        caldb_root=caldb_root,
    )
    refs += history.refs
    summary["products"] = [r.path for r in refs]
    hist = [r.path for r in history.refs if r.type_code == "QCHIST"]
    plots = [r.path for r in history.refs if r.type_code == "QCPLOT"]
    summary["qc"] = {
        "history": hist[0] if hist else None,
        "plots": plots,
        "products": [r.path for r in history.refs],
    }
    summary["status"] = "done"
    report_progress(_FLOW, "done", done=total, total=total)
    summary_path = out / "summaries" / f"nightly_{safe_component(night)}.json"
    atomic_write_bytes(summary_path, json.dumps(summary, indent=1, default=str).encode())
    summary["summary_file"] = str(summary_path)
    _artifact(summary)
    publish_summary(
        title=f"Nightly calibration {night} ({camera.instrument})",
        key=night,
        refs=refs,
        numbers=nightly_key_numbers(summary),
        previews=plots,
        artifact_key=f"nightly-products-{night}",
    )
    ctx.status("done", f"{len(summary['promoted'])} promoted, {len(summary['groups'])} candidates")
    return summary


def _request(
    night: str,
    camera: CameraModel,
    groups: tuple[FrameGroup, ...],
    cfg: NightlyCalibrationConfig,
    history: HistoryRequest | None = None,
) -> NightlyRequest:
    return NightlyRequest(night, camera, groups, history, cfg.night_start_utc_hour)


# units of the QC level and noise by master type (tasks/masters/qc.py qc_level_noise)
_QC_UNITS = {"BIAS": ("adu", "adu"), "DARK": ("e-/s", "e-/s"), "FLAT": ("adu", "(relative)")}


def nightly_key_numbers(summary: Mapping[str, Any]) -> dict[str, str]:
    """Return a night's key numbers as ``{quantity: value with unit}``.

    Masters built, promoted, rejected by QC and groups refused before building; then per
    group its verdict with the QC figures: level and noise (units by master type) and the
    fraction of pixels that differ from the current master (when there was one).
    """
    groups = summary["groups"]
    rows: dict[str, str] = {
        "night": str(summary["night"]),
        "masters built": str(len(groups)),
        "promoted": str(len(summary["promoted"])),
        "rejected by QC": str(sum(not g["passed"] for g in groups)),
        "groups refused": str(len(summary["refused"])),
    }

    def fmt(v: float | None, unit: str = "") -> str:
        return "n/a" if v is None else f"{v:.4g} {unit}".rstrip()

    for g in groups:
        lu, nu = _QC_UNITS.get(str(g["type"]).upper(), ("", ""))
        verdict = "promoted" if g["passed"] else "rejected: " + "; ".join(g["reasons"])
        rows[f"{g['group']} ({g.get('n_frames', '?')} frames)"] = (
            f"{verdict}; level {fmt(g['level'], lu)}, noise {fmt(g['noise'], nu)}, "
            f"fraction of pixels off the current master {fmt(g['fraction'])}"
        )
    for r in summary["refused"]:
        rows[str(r["group"])] = f"refused: {r['reason']}"
    return rows


def _group_summary(
    cand: ValidatedCandidate,
    paths: Mapping[str, str],
    entry: dict[str, Any] | None,
    refs: Sequence[ProductRef],
) -> dict[str, Any]:
    rep = cand.report
    return {
        "group": cand.group.key,
        "type": cand.group.kind,
        "filter": cand.group.filter,
        "passed": cand.passed,
        "n_frames": rep.n_frames,
        "reasons": rep.reasons,
        # frames screened out of the group (NaN pixels, wrong exposure, ...) with the reason:
        # a damaged input never passes unnoticed in the --json output
        "rejected_frames": dict(rep.rejected_frames),
        "level": rep.level,
        "noise": rep.noise,
        "fraction": rep.fraction,
        "candidate": paths.get("MASTER"),
        "qc_report": paths.get("QCJSON"),
        "qc_fits": paths.get("QC"),
        "caldb_entry": entry,
        "products": [r.path for r in refs if r.instrument == cand.instrument],
    }


def _artifact(summary: dict[str, Any]) -> None:
    """Attach a markdown table of the verdicts to the flow run."""
    from prefect.artifacts import create_markdown_artifact

    lines = [
        f"# Nightly calibration {summary['night']} ({summary['camera']})",
        "",
        "| group | verdict | level | noise | fraction | reasons |",
        "|---|---|---|---|---|---|",
    ]
    for g in summary["groups"]:

        def f(v: Any) -> str:
            return "" if v is None else f"{v:.4g}"

        lines.append(
            f"| {g['group']} | {'promoted' if g['passed'] else 'rejected'} | {f(g['level'])} | "
            f"{f(g['noise'])} | {f(g['fraction'])} | {'; '.join(g['reasons'])} |"
        )
    for r in summary["refused"]:
        lines.append(f"| {r['group']} | refused | | | | {r['reason']} |")
    create_markdown_artifact(
        "\n".join(lines), key="nightly-calibration", description="Master calibration verdicts"
    )
