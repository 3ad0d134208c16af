"""Prefect flow ``eic_pixel_calibration``: a period's pixel counts to BADPIX, UNIFMAP, DEADTIME.

The flow selects the period's files in a data directory (pixel count histories ``PIXHIST``
and a dead-time rates file ``DTRATES``, :mod:`svomflow.products.eic_pixel_files`), runs the
pipeline :data:`~svomflow.tasks.eic.pixels_pipeline.PIXELS_PIPELINE` (bad pixels, uniformity
map, module dead times; each step publishes its candidate CALDB file), then hands every
candidate to the promotion gate (:func:`svomflow.flows.eic_promotion.promote_task`): it is
compared with the current CALDB file of its code under the cuts of
``config/pipelines/eic_pixels.yaml``, registered only if it passes, and the verdict extends
the code's QC history (``CALQCH`` table, ``CALQCP`` plot). The schedule (``svomflow serve``)
runs it weekly on the last 7 days.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from astropy.time import Time
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from svomflow.config import load_config, load_instrument
from svomflow.errors import InputDataError
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import FlowContext, default_output_root, record_failure, run_pipeline
from svomflow.flows.eic_promotion import PromotionRequest, PromotionResult, promote_task
from svomflow.flows.prefect_flow import flow
from svomflow.products.eic_pixel_files import (
    read_bad_pixel_table,
    read_dead_time_fit,
    read_uniformity,
)
from svomflow.tasks.eic.dead_time import dead_time_figures
from svomflow.tasks.eic.gate import GateConfig, QCFigure
from svomflow.tasks.eic.pixel_health import pixel_health_figures
from svomflow.tasks.eic.pixels_pipeline import (
    PIXELS_PIPELINE,
    EicPixelsConfig,
    PixelsRequest,
    files_in_period,
    mission_time_utc,
)
from svomflow.tasks.eic.uniformity import uniformity_figures

__all__ = [
    "default_data_dir",
    "eic_pixel_calibration",
    "measure_badpix",
    "measure_deadtime",
    "measure_unifmap",
]

_FLOW = "eic_pixel_calibration"
#: the packaged defaults file (``config/pipelines/eic_pixels.yaml``)
CONFIG_LAYER = "eic_pixels"


def measure_badpix(path: Path) -> list[QCFigure]:
    """QC figures of a BADPIX file (for a current file the QC history lacks)."""
    return list(pixel_health_figures(read_bad_pixel_table(path)))


def measure_unifmap(path: Path) -> list[QCFigure]:
    """QC figures of a UNIFMAP file."""
    return list(uniformity_figures(read_uniformity(path)))


def measure_deadtime(path: Path) -> list[QCFigure]:
    """QC figures of a DEADTIME file (NaN for a file without module rows: not comparable)."""
    return list(dead_time_figures(read_dead_time_fit(path)))


_MEASURE = {"BADPIX": measure_badpix, "UNIFMAP": measure_unifmap, "DEADTIME": measure_deadtime}


def default_data_dir() -> Path:
    """Return where the scheduled runs look for the period's files (``$SVOMFLOW_HOME/eic/pixels``)."""
    from svomflow.paths import data_home

    return data_home() / "eic" / "pixels"


def _mission_time(iso: str, mjdref: float) -> float:
    return float((Time(iso, scale="utc").tt.mjd - mjdref) * 86400.0)


@task(name="select-period-files", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def _select(
    data_dir: str, start: str | None, stop: str | None, mjdref: float
) -> tuple[list[str], list[str]]:
    """Return the period's count-history files and dead-time rates files (by their headers)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputDataError(f"{data_dir}: not a directory")
    t0 = _mission_time(start, mjdref) if start else None
    t1 = _mission_time(stop, mjdref) if stop else None
    fits_files = sorted(str(p) for p in root.rglob("*.fits"))
    hist, rates = [], []
    from astropy.io import fits

    for p in fits_files:
        try:
            content = str(fits.getval(p, "CONTENT", ext=0)).strip()
        except (OSError, KeyError):
            continue
        if content == "PIXHIST":
            hist.append(p)
        elif content == "DTRATES":
            rates.append(p)
    return files_in_period(hist, t0, t1), rates


def _resolve_period(
    start: str | None, stop: str | None, last_days: float | None, now: _dt.datetime | None = None
) -> tuple[str | None, str | None]:
    if last_days is not None and start is None:
        end = now or _dt.datetime.now(_dt.UTC)
        stop = stop or end.replace(tzinfo=None).isoformat(timespec="seconds")
        start = (_dt.datetime.fromisoformat(stop) - _dt.timedelta(days=last_days)).isoformat(
            timespec="seconds"
        )
    return start, stop


def _run_name() -> str:
    from prefect.runtime import flow_run

    p = dict(flow_run.parameters)
    return str(p.get("obs_id") or f"pixels-{p.get('start') or 'all'}")


@flow(
    name=_FLOW,
    flow_run_name=_run_name,
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def eic_pixel_calibration(
    data_dir: str | None = None,
    start: str | None = None,
    stop: str | None = None,
    last_days: float | None = None,
    obs_id: str | None = None,
    out_dir: str | None = None,
    caldb_root: str | None = None,
    config: EicPixelsConfig | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Flag bad pixels, map the uniformity and fit dead times over a period; promote what passes.

    Parameters
    ----------
    data_dir
        Directory searched recursively for pixel count histories and dead-time rates files
        (recognised by their ``CONTENT`` keyword); default ``$SVOMFLOW_HOME/eic/pixels``
        (where the schedule looks).
    start, stop
        The period (ISO UTC); files overlapping it are used. Both ``None``: every file.
    last_days
        With no ``start``: the period is the ``last_days`` days up to ``stop`` (default now),
        what the weekly schedule passes.
    obs_id
        Key of the run (products folder, processing status); default ``pixels-<start>-<stop>``
        of the data used.
    out_dir
        Products root (default ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``).
    caldb_root
        CALDB location (default ``$SVOMFLOW_CALDB`` or ``$SVOMFLOW_HOME/caldb``).
    config
        The configuration (:class:`~svomflow.tasks.eic.pixels_pipeline.EicPixelsConfig`);
        only the values set count, over ``config/pipelines/eic_pixels.yaml``.
    database_url
        Products database (default SQLite under the data directory).

    Returns
    -------
    dict
        ``status`` (``"empty"`` or ``"done"``), the period, the files, per code the
        promotion verdict (``promoted``, reasons, figures, CALDB entry, QC history paths).
    """
    log = get_run_logger()
    cfg = load_config(EicPixelsConfig, flow=CONFIG_LAYER, overrides=config_overrides(config))
    inst = load_instrument(cfg.instrument)
    mjdref = float(inst.get("time_reference.mjdref"))
    start, stop = _resolve_period(start, stop, last_days)
    if data_dir is None and not default_data_dir().is_dir():
        # a fresh home (the schedule fires before any data arrived): nothing to do
        msg = f"no pixel data yet: {default_data_dir()} does not exist"
        log.info(msg)
        return {"status": "empty", "message": msg, "start": start, "stop": stop, "promotions": {}}
    data_dir = data_dir or str(default_data_dir())
    hist, rates = _select(data_dir, start, stop, mjdref)
    summary: dict[str, Any] = {
        "start": start,
        "stop": stop,
        "data_dir": data_dir,
        "history_files": hist,
        "rates_file": rates[-1] if rates else None,
        "promotions": {},
        "products": [],
    }
    if not hist:
        msg = f"no pixel count history in {data_dir} for the period {start or '...'} to {stop or '...'}"
        log.info(msg)
        summary.update(status="empty", message=msg)
        return summary
    if len(rates) > 1:
        log.warning("%d dead-time rates files: using the newest by name, %s", len(rates), rates[-1])
    from astropy.io import fits

    t_first = min(float(fits.getval(p, "TSTART", ext=0)) for p in hist)
    t_last = max(float(fits.getval(p, "TSTOP", ext=0)) for p in hist)
    utc0 = mission_time_utc(t_first, mjdref)
    utc1 = mission_time_utc(t_last, mjdref)
    key = obs_id or f"pixels-{utc0[:16].replace(':', '')}-{utc1[:16].replace(':', '')}"
    ctx = FlowContext(_FLOW, key, str(out_dir or default_output_root()), database_url)
    inputs = [*hist, *([rates[-1]] if rates else [])]
    run = run_pipeline(
        PIXELS_PIPELINE,
        PixelsRequest(tuple(hist), rates[-1] if rates else None, cfg.instrument),
        cfg,
        ctx,
        inputs=inputs,
        caldb_root=caldb_root,
    )
    for w in run.warnings:
        log.warning(w)
    out = run.outcome
    paths = {r.type_code: r.path for r in run.refs}
    summary["products"] = [r.path for r in run.refs]
    valid_from = _dt.datetime.fromisoformat(utc0).replace(tzinfo=_dt.UTC)
    candidates: list[tuple[str, str, tuple[QCFigure, ...], GateConfig]] = [
        ("BADPIX", "PIXBAD", out.health.figures, cfg.gates.badpix),
        ("UNIFMAP", "PIXUNIF", out.uniformity.figures, cfg.gates.unifmap),
    ]
    if out.dead_time is not None:
        candidates.append(("DEADTIME", "PIXDT", out.dead_time.figures, cfg.gates.deadtime))
    results: dict[str, PromotionResult] = {}
    for code, ptype, figures, gate in candidates:
        request = PromotionRequest(
            path=paths[ptype],
            codename=code,
            telescope=inst.telescope,
            instrument=inst.instrument,
            valid_from=valid_from,
            figures=tuple(figures),
            gate=gate,
            description=f"{code} from {key}"[:70],
        )
        results[code] = promote_task(
            request,
            ctx,
            caldb_root=caldb_root,
            measure=_MEASURE[code],
            history=cfg.history,
            inputs=inputs,
        )
        res = results[code]
        verdict = "promoted" if res.promoted else "refused: " + "; ".join(res.verdict.reasons)
        log.info("%s candidate %s", code, verdict)
    summary["promotions"] = {code: r.summary() for code, r in results.items()}
    summary["products"] += [p for r in results.values() for p in r.products]
    summary.update(
        status="done",
        obs_id=key,
        counts=_counts(out.health.table.pixels),
    )
    ctx.status("done")
    return summary


def _counts(pixels: Any) -> Mapping[str, int]:
    kinds = [p.kind for p in pixels]
    return {k: kinds.count(k) for k in ("DEAD", "NOISY", "INTERMIT")}
