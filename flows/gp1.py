"""Prefect flow ``gp1_reduction``: reduce images and, for alerts, analyse them to products.

The flow builds the run's configuration and request and runs
:data:`~svomflow.tasks.gp1.pipeline.GP1_PIPELINE` through the adapter: its first task selects
every image's masters from the CALDB, the second reads the images once, then each step call
is a task (``reduction-<image>``, ``photometry-<image>``, ``summary-<sequence>``...) whose
products are published through the catalogue in a retried task. A bad image fails its own
tasks and is reported; the others go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger
from svomflow.config import deep_merge, load_instrument
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import (
    FlowContext,
    publish_summary,
    record_failure,
    run_pipeline,
    run_pipeline_plain,
)
from svomflow.flows.prefect_flow import flow
from svomflow.tasks.gp1.config import GP1Config, load_gp1_config
from svomflow.tasks.gp1.pipeline import GP1_PIPELINE, GP1Request, gp1_result

__all__ = [
    "gp1_key_numbers",
    "gp1_reduction",
    "mission_seconds",
    "process_images",
    "resolve_config",
]


def resolve_config(
    config: GP1Config | Mapping[str, Any] | None,
    config_file: str | None,
    output_dir: str | None,
) -> GP1Config:
    """Return the run's configuration: packaged defaults < ``config_file`` < ``config`` < ``output_dir``.

    Only the values the caller set on ``config`` are layered over the file
    (:func:`~svomflow.flows._params.config_overrides`): a ``GP1Config`` carries every
    default, and merging it whole would clobber the file.
    """
    cfg = load_gp1_config(config_file)
    overrides = config_overrides(config)
    if overrides:
        cfg = GP1Config.model_validate(deep_merge(cfg.model_dump(mode="json"), overrides))
    return cfg.model_copy(update={"output_dir": str(output_dir)}) if output_dir else cfg


def _run_name() -> str:
    """Name a GP1 run after what it processes: one image, or the folder of a batch."""
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return gp1_run_name([str(p) for p in params.get("images") or []])


def gp1_run_name(images: Sequence[str]) -> str:
    """Return the run name of a GP1 batch: the image's name, or the images' common folder.

    A night's batch starts with its calibration frames, so the first file's name says
    little; the folder (the night or the sequence) says what the run processed.
    """
    if not images:
        return "gp1-none"
    if len(images) == 1:
        return f"gp1-{Path(images[0]).stem}"
    parents = {Path(p).resolve().parent for p in images}
    if len(parents) == 1:
        folder = parents.pop()
        # a simulated night keeps its frames in <night>/colibri/raw or <night>/raw
        while folder.name in ("raw", "colibri") and folder.parent != folder:
            folder = folder.parent
        return f"gp1-{folder.name}-n{len(images)}"
    return f"gp1-{Path(images[0]).stem}-n{len(images)}"


def _mag(value: float | None, err: float | None = None) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    if err is None or not np.isfinite(err):
        return f"{value:.2f} mag"
    nd = 3 if err < 0.01 else 2  # a bright transient's error must not print as 0.00
    return f"{value:.{nd}f} ± {err:.{nd}f} mag"


def _utc(value: str | None) -> datetime | None:
    """Return an ISO time (UTC when it names no zone) as an aware datetime; None if unreadable."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + " UTC"


def mission_seconds(t: datetime) -> float:
    """Return SVOM mission time (s, TT, from the ECLAIRs time reference) of a UTC time."""
    from astropy.time import Time

    mjdref = float(load_instrument("eclairs").get("time_reference.mjdref"))
    return float((Time(t).tt.mjd - mjdref) * 86400.0)


def _timing_rows(result: Mapping[str, Any], trigger_time: str | None) -> dict[str, str]:
    """T0 in UTC and mission time, and the first and last images' DATE-OBS (UTC, T - T0)."""
    rows: dict[str, str] = {}
    t0 = _utc(trigger_time)
    if t0 is not None:
        rows["T0 (UTC)"] = _iso(t0)
        rows["T0 (SVOM mission time)"] = f"{mission_seconds(t0):.3f} s"
    starts = sorted(d for i in result["images"].values() if (d := _utc(i.get("date_obs"))))
    for label, one in (("first", starts[:1]), ("last", starts[-1:] if len(starts) > 1 else [])):
        if one:
            since = f" (T0 + {(one[0] - t0).total_seconds():.1f} s)" if t0 is not None else ""
            rows[f"{label} image DATE-OBS (UTC)"] = _iso(one[0]) + since
    return rows


def gp1_key_numbers(result: Mapping[str, Any], trigger_time: str | None = None) -> dict[str, str]:
    """Return a run's key numbers as ``{quantity: value with error and unit}``.

    Image counts; T0 (``trigger_time``, ISO UTC) in UTC and SVOM mission time, and the
    first and last images' DATE-OBS in UTC with their delay after T0; the median zero point
    and 5-sigma limiting magnitude of the reduced images; then per sequence its transient
    (position with its 1-sigma error, S/N on the stack difference, PSF magnitude with its
    error), the alert position used (90 % radius), the stack's limiting magnitude and the
    decay index.
    """
    images = list(result["images"].values())
    rows: dict[str, str] = {
        "images processed": str(len(images)),
        "failed": str(len(result["failed"])),
        "calibration frames skipped": str(len(result.get("skipped", {}))),
        "sequences": str(len(result["sequences"])),
    }
    rows |= _timing_rows(result, trigger_time)
    zps = [i["zp"] for i in images if i.get("zp") is not None]
    lims = [i["maglim"] for i in images if i.get("maglim") is not None]
    if zps:
        rows["zero point (median)"] = _mag(float(np.median(zps)))
    if lims:
        rows["limiting magnitude (median, per image)"] = _mag(float(np.median(lims)))
    for seq, s in result["sequences"].items():
        t = s.get("transient")
        if t:
            err = t.get("POS_ERR")
            pos_err = f' ± {err:.2f}" (1σ)' if err is not None else ""
            rows[f"{seq} transient (RA, Dec J2000)"] = (
                f"{t['ALPHA_J2000']:.6f}°, {t['DELTA_J2000']:+.6f}°{pos_err}, S/N {t['SNR']:.1f}"
            )
            if "MAG_PSF" in t:
                rows[f"{seq} transient magnitude"] = _mag(t["MAG_PSF"], t.get("MAGERR_PSF"))
        else:
            rows[f"{seq} transient"] = "none found"
        pos = s.get("alert_position")
        if pos:
            best = max(s.get("candidates") or [{}], key=lambda c: c.get("probability", -1))
            syst = pos.get("systematic_arcmin") or 0.0
            rows[f"{seq} alert position used"] = (
                f"{pos['source'] or 'given'} v{pos.get('version') or '?'}: "
                f"{pos['ra_deg']:.5f}°, {pos['dec_deg']:+.5f}°, "
                f"error radius {pos['error_radius_arcmin']:.3g} arcmin at {pos['confidence']:.0%}"
                + (f" (+ {syst:.3g} arcmin systematic)" if syst else "")
            )
            if "probability" in best:
                rows[f"{seq} P(transient is the afterglow)"] = f"{best['probability']:.3f}"
                if best.get("separation_arcmin") is not None:
                    rows[f"{seq} transient to alert position"] = (
                        f"{best['separation_arcmin']:.3g} arcmin"
                    )
        rows[f"{seq} stack limiting magnitude"] = _mag(s.get("stack_maglim"))
        decay = s.get("decay_index")
        if decay:
            rows[f"{seq} decay index"] = f"{decay[0]:.2f} ± {decay[1]:.2f}"
    return rows


@flow(
    name="gp1_reduction",
    flow_run_name=_run_name,
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def gp1_reduction(
    images: list[str],
    config: GP1Config | None = None,
    config_file: str | None = None,
    output_dir: str | None = None,
    database_url: str | None = None,
    products: bool = True,
    caldb_root: str | None = None,
) -> dict[str, Any]:
    """Reduce ``images`` one by one; analyse alert images and publish the sequence products.

    Parameters
    ----------
    images
        Raw image paths (processed in the given order).
    config
        Configuration values (:class:`~svomflow.tasks.gp1.config.GP1Config`) applied over
        the packaged defaults and ``config_file``. Only the values set on it are applied
        (a plain nested mapping, validated into the model, sets exactly its keys; what the
        CLI, the watcher and ``svomflow reprocess`` pass); unset ones keep the file's.
        Typed, so the Prefect UI renders it as a form.
    config_file
        A GP1 pipeline YAML file (``gp1 run --config``).
    output_dir
        Output root (overrides the configuration's).
    database_url
        Products database (default: SQLite under the svomflow data directory).
    products
        Build the products of the sequences that got a new image (from every image of the
        sequence so far: the watcher runs one image at a time).
    caldb_root
        CALDB the masters are selected from (default ``$SVOMFLOW_CALDB`` or the data
        directory's).

    Returns
    -------
    dict
        ``images`` (path -> figures and products), ``failed`` (path or sequence -> reason)
        and ``sequences`` (sequence -> transient, decay index and product references).
    """
    log = get_run_logger()
    cfg = resolve_config(config, config_file, output_dir)
    key = Path(images[0]).name if images else "none"
    ctx = FlowContext("gp1_reduction", key, cfg.output_dir, database_url)
    request = GP1Request(tuple(images), cfg, products, database_url)
    run = run_pipeline(
        GP1_PIPELINE,
        request,
        cfg,
        ctx,
        inputs=[p for p in images if Path(p).is_file()],
        caldb_root=caldb_root,
    )
    result = gp1_result(run.outcome, run.refs)
    for path, reason in result["failed"].items():
        log.error("%s: %s", Path(path).name, reason)
    done, failed, seqs = len(result["images"]), len(result["failed"]), len(result["sequences"])
    log.info("gp1: %d images processed, %d failed, %d sequences", done, failed, seqs)
    publish_summary(
        title=f"GP1 {key}",
        key=key,
        refs=run.refs,
        numbers=gp1_key_numbers(result, cfg.trigger_time),
        previews=[p for s in result["sequences"].values() for p in s["previews"]],
        artifact_key=f"gp1-{key}",
    )
    ctx.status("done" if done or not failed else "failed", f"{done} images, {failed} failed")
    return result


def process_images(
    paths: Sequence[str | Path],
    cfg: GP1Config,
    *,
    caldb_root: str | None = None,
    database_url: str | None = None,
    products: bool = True,
) -> dict[str, Any]:
    """Run GP1 on images in plain Python (no Prefect): the pipeline the flow runs.

    Products are published under ``cfg.output_dir`` (products database ``database_url``).
    A bad image is reported in ``failed`` and the others go on.

    Returns
    -------
    dict
        As :func:`~svomflow.tasks.gp1.pipeline.gp1_result`.
    """
    images = tuple(str(p) for p in paths)
    key = Path(images[0]).name if images else "none"
    ctx = FlowContext("gp1_reduction", key, cfg.output_dir, database_url)
    request = GP1Request(images, cfg, products, database_url)
    run = run_pipeline_plain(
        GP1_PIPELINE,
        request,
        cfg,
        ctx,
        inputs=[p for p in images if Path(p).is_file()],
        caldb_root=caldb_root,
    )
    result = gp1_result(run.outcome, run.refs)
    done, failed = len(result["images"]), len(result["failed"])
    ctx.status("done" if done or not failed else "failed", f"{done} images, {failed} failed")
    return result
