"""Prefect flow ``nightly_master_calibration``: build, validate and promote the night's masters.

Coarse tasks (ARCHITECTURE.md §10): one scan of the raw directory, one task per group
(screen + build + validate + write the candidate and its QC report), one CALDB registration
per passing candidate, one QC-history update. Retries only on the I/O and CALDB steps.
Groups of one type run side by side; types run in order (bias, then dark, then flat),
because darks are built with the bias master and flats with both.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from svomflow.calibration.caldb import open_caldb
from svomflow.config import load_config
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
    task_runner_for,
)
from svomflow.paths import data_home, safe_component
from svomflow.products.atomic import atomic_write_bytes
from svomflow.tasks.ccd.camera import CameraModel, load_camera
from svomflow.tasks.masters.build import (
    CandidateResult,
    FrameGroup,
    NightlyCalibrationConfig,
    group_frames,
    process_group,
    promote,
    refuse_small_groups,
    scan_night,
)
from svomflow.tasks.masters.qc import append_qc_history, plot_qc_history

__all__ = ["nightly_master_calibration"]


@task(name="scan-night", retries=2, retry_delay_seconds=2)
def _scan(raw_dir: str, night: str, camera: CameraModel, config: NightlyCalibrationConfig) -> Any:
    return scan_night(raw_dir, night, camera, config)


@task(name="build-validate-master", task_run_name="{group.key}")
def _process(
    group: FrameGroup,
    camera: CameraModel,
    config: NightlyCalibrationConfig,
    caldb_root: str | None,
    out_dir: str,
    night: str,
) -> CandidateResult:
    return process_group(
        group, camera, config, open_caldb(caldb_root), Path(out_dir) / "candidates", night
    )


@task(name="register-master", retries=2, retry_delay_seconds=2, task_run_name="{result.group}")
def _register(
    result: CandidateResult, camera: CameraModel, caldb_root: str | None
) -> dict[str, Any]:
    entry = promote(result, open_caldb(caldb_root), camera)
    return {
        "id": entry.id,
        "path": str(entry.path),
        "sha256": entry.sha256,
        "valid_from": str(entry.valid_from),
    }


@task(name="qc-history", retries=2, retry_delay_seconds=2)
def _history(rows: list[dict[str, Any]], out_dir: str) -> dict[str, Any]:
    qc_dir = Path(out_dir) / "qc"
    table = append_qc_history(qc_dir / "qc_history.fits", rows)
    plots = plot_qc_history(table, qc_dir / "plots")
    return {"history": str(qc_dir / "qc_history.fits"), "plots": [str(p) for p in plots]}


@task(name="publish-candidate", retries=2, retry_delay_seconds=2, task_run_name="{result.group}")
def _publish_group(
    ctx: FlowContext, result: CandidateResult, config: dict[str, Any], instrument: str
) -> list[str]:
    """Record the candidate master and its QC reports as products of the night."""
    from svomflow.tasks.masters.publish import publish_candidate

    refs = publish_candidate(
        ctx.store(),
        night=ctx.key,
        instrument=instrument,
        group=result.group,
        config=config,
        inputs=result.inputs,
        calibration_used=result.calibration_used,
        candidate=result.candidate_path,
        report_fits=result.report_fits,
        report_json=result.report_json,
    )
    return [r.path for r in refs]


@task(name="publish-qc-history", retries=2, retry_delay_seconds=2)
def _publish_history(
    ctx: FlowContext,
    qc: dict[str, Any],
    reports: list[str],
    config: dict[str, Any],
    instrument: str,
) -> list[Any]:
    """Record the QC history table and plots as products of the night."""
    from svomflow.tasks.masters.publish import publish_qc_history

    return publish_qc_history(
        ctx.store(),
        night=ctx.key,
        instrument=instrument,
        config=config,
        reports=reports,
        history=qc["history"],
        plots=qc["plots"],
    )


def _row(night: str, group: FrameGroup, passed: bool, reason: str, **vals: Any) -> dict[str, Any]:
    return {
        "NIGHT": night,
        "DATE_OBS": group.start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        "CAMERA": group.camera,
        "TYPE": group.kind.upper(),
        "FILTER": group.filter,
        "GROUP": group.key,
        "NFRAMES": vals.get("n_frames", len(group.frames)),
        "LEVEL": vals.get("level"),
        "NOISE": vals.get("noise"),
        "FRACTION": vals.get("fraction"),
        "PASSED": passed,
        "REASON": reason[:160],
    }


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
    # per-group candidates fan out on threads, or on Dask when $SVOMFLOW_DASK_ADDRESS is set
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
        Where candidates, QC reports and the QC history go (default
        ``$SVOMFLOW_HOME/calibration/<instrument>``), and the products root (products
        under ``<out_dir>/<night>/<instrument>/``; default ``$SVOMFLOW_PRODUCTS`` or
        ``$SVOMFLOW_HOME/products``).
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
    # processing status of the night in the products database (failures: record_failure)
    status = FlowContext(
        "nightly_master_calibration", night, str(out_dir or default_output_root()), database_url
    )
    cfg_dump = cfg.model_dump(mode="json")
    status.status("running")
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
        status.status("done", msg)
        return summary
    groups = group_frames(scan.frames, camera, cfg)
    assert cfg.min_frames is not None
    groups, refused = refuse_small_groups(groups, cfg.min_frames)
    rows = []
    for g, why in refused:
        log.warning("group %s refused: %s", g.key, why)
        summary["refused"].append({"group": g.key, "reason": why})
        rows.append(_row(night, g, False, f"refused: {why}"))
    for kind in ("bias", "dark", "flat"):
        these = [g for g in groups if g.kind == kind]
        futures = [_process.submit(g, camera, cfg, caldb_root, str(out), night) for g in these]
        for g, fut in zip(these, futures, strict=True):
            res: CandidateResult = fut.result()
            rep = res.report
            entry = None
            if res.passed:
                entry = _register(res, camera, caldb_root)
                summary["promoted"].append({"group": res.group, **entry})
                log.info("promoted %s (CALDB entry %s)", res.group, entry["id"])
            else:
                log.warning("candidate %s rejected: %s", res.group, "; ".join(rep.reasons))
            published = _publish_group(status, res, cfg_dump, camera.instrument)
            summary["products"] += published
            summary["groups"].append(
                {
                    "group": res.group,
                    "type": kind,
                    "filter": res.filter,
                    "passed": res.passed,
                    "reasons": rep.reasons,
                    "level": rep.level,
                    "noise": rep.noise,
                    "fraction": rep.fraction,
                    "candidate": res.candidate_path,
                    "qc_report": res.report_json,
                    "qc_fits": res.report_fits,
                    "caldb_entry": entry,
                    "products": published,
                }
            )
            rows.append(
                _row(
                    night,
                    g,
                    res.passed,
                    "; ".join(rep.reasons) or "ok",
                    n_frames=rep.n_frames,
                    level=rep.level,
                    noise=rep.noise,
                    fraction=rep.fraction,
                )
            )
    summary["qc"] = _history(rows, str(out))
    reports = [g["qc_report"] for g in summary["groups"]]
    hist_refs = _publish_history(status, summary["qc"], reports, cfg_dump, camera.instrument)
    summary["products"] += [r.path for r in hist_refs]
    summary["qc"]["products"] = [r.path for r in hist_refs]
    summary["status"] = "done"
    summary_path = out / "summaries" / f"nightly_{safe_component(night)}.json"
    atomic_write_bytes(summary_path, json.dumps(summary, indent=1, default=str).encode())
    summary["summary_file"] = str(summary_path)
    _artifact(summary)
    store = status.store()
    mine = set(summary["products"])
    refs = [r for r in store.list(obs_id=night) if r.path in mine]
    publish_summary(
        title=f"Nightly calibration {night} ({camera.instrument})",
        key=night,
        refs=refs,  # type: ignore[arg-type]
        numbers={
            "candidates": len(summary["groups"]),
            "promoted": len(summary["promoted"]),
            "refused groups": len(summary["refused"]),
        },
        previews=[r.path for r in hist_refs if r.path.endswith(".png")],
        artifact_key=f"nightly-products-{night}",
    )
    status.status(
        "done", f"{len(summary['promoted'])} promoted, {len(summary['groups'])} candidates"
    )
    return summary


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
