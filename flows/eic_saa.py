"""Prefect flow ``eic_saa``: measure the SAA contour, promote it through the gate, export it.

The flow reads the count rates along the orbit (the files given, else every ``*.fits`` of
the rates folder, ``$SVOMFLOW_HOME/eic/orbit_rates`` by default) and keeps the last
``days`` days. Then:

1. the pipeline :data:`~svomflow.tasks.eic.saa_pipeline.SAA_PIPELINE` measures the candidate contour
   (``SAACONT``) and its rate map (``SAAMAP``), with the contour in force selected from the
   CALDB in its first task (optional: the first contour has none);
2. the promotion gate (:func:`svomflow.flows.eic_promotion.promote_task`) judges the
   candidate against the current CALDB contour with the cuts of
   ``config/pipelines/eic_saa.yaml`` and registers it, valid from the start of its data,
   only when it passes; the verdict goes into the SAACONT QC history;
3. a promoted contour is exported as the operations centre's XML document (``SAAXML``,
   validated against ``config/schemas/saa_contour.xsd``), named after its CALDB file.

Scheduled weekly (``flows/registry.py``).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from svomflow.config import load_config
from svomflow.errors import InputDataError
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_flow_products,
    publish_summary,
    record_failure,
    run_pipeline,
)
from svomflow.flows.eic_promotion import PromotionRequest, promote_task
from svomflow.flows.prefect_flow import flow
from svomflow.paths import data_home
from svomflow.products.eic_saa_files import mission_time_utc
from svomflow.tasks.eic.saa import CODENAME, INSTRUMENT, TELESCOPE, saa_export
from svomflow.tasks.eic.saa_pipeline import (
    FLOW_NAME,
    SAA_PIPELINE,
    EicSaaConfig,
    SaaRequest,
    compare_contour_files,
    measure_contour_file,
    read_rates,
)

__all__ = ["default_rates_dir", "eic_saa", "rate_files_in", "saa_key"]


def default_rates_dir() -> Path:
    """Return where orbit-rate files are looked for by default (``$SVOMFLOW_HOME/eic/orbit_rates``)."""
    return data_home() / "eic" / "orbit_rates"


def rate_files_in(folder: str | Path) -> list[str]:
    """Return the orbit-rate files (``*.fits``) of a folder, sorted by name."""
    return sorted(str(p) for p in Path(folder).glob("*.fits") if p.is_file())


def saa_key(t_start: float, t_stop: float, mjdref: float) -> str:
    """Return the run key of a period: ``saa-<first day>-<last day>`` (UTC dates)."""
    a = mission_time_utc(t_start, mjdref)[:10]
    b = mission_time_utc(t_stop, mjdref)[:10]
    return f"saa-{a}-{b}"


def _utc(iso: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(iso).replace(tzinfo=_dt.UTC)


def _run_name() -> str:
    """Name a run after its first rate file (or its folder): ``saa-rates_w12``."""
    from prefect.runtime import flow_run

    params = dict(flow_run.parameters)
    files = params.get("rate_files") or []
    where = Path(files[0]).stem if files else Path(params.get("rates_dir") or "default").name
    return f"saa-{where}"


@flow(
    name="eic_saa",
    flow_run_name=_run_name,
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def eic_saa(
    rate_files: list[str] | None = None,
    rates_dir: str | None = None,
    out_dir: str | None = None,
    caldb_root: str | None = None,
    config: EicSaaConfig | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Measure the SAA contour from orbit rates, promote it through the gate, export it.

    Parameters
    ----------
    rate_files
        Orbit-rate files (``ORBRATE`` FITS tables); default: every ``*.fits`` of ``rates_dir``.
    rates_dir
        Folder searched when no file is given (default ``$SVOMFLOW_HOME/eic/orbit_rates``).
    out_dir
        Products root (default ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``).
    caldb_root
        CALDB location (default ``$SVOMFLOW_CALDB`` or the home's).
    config
        The configuration (:class:`~svomflow.tasks.eic.saa_pipeline.EicSaaConfig`); only the values
        set count, over ``config/pipelines/eic_saa.yaml``.
    database_url
        Products database (default SQLite under the data directory).

    Returns
    -------
    dict
        ``status`` (``empty`` or ``done``), the key, the QC figures, the gate's verdict, the
        CALDB entry when promoted and the product paths.
    """
    cfg = load_config(EicSaaConfig, flow=FLOW_NAME, overrides=config_overrides(config))
    files = list(rate_files or rate_files_in(rates_dir or default_rates_dir()))
    out_root = str(out_dir or default_output_root())
    if not files:
        where = rates_dir or default_rates_dir()
        return {"status": "empty", "message": f"no orbit-rate file in {where}: nothing to do"}
    request = SaaRequest(tuple(files), cfg.days)
    rates = read_rates(request)
    key = saa_key(float(rates.time.min()), float(rates.time.max()), rates.mjdref)
    ctx = FlowContext(FLOW_NAME, key, out_root, database_url)
    run = run_pipeline(SAA_PIPELINE, request, cfg, ctx, inputs=files, caldb_root=caldb_root)
    cand = run.outcome
    contour_path = next(r.path for r in run.refs if r.type_code == CODENAME)
    valid_from = mission_time_utc(cand.contour.t_start, cand.contour.mjdref)
    result = promote_task(
        PromotionRequest(
            path=contour_path,
            codename=CODENAME,
            telescope=TELESCOPE,
            instrument=INSTRUMENT,
            valid_from=_utc(valid_from),
            figures=cand.figures,
            gate=cfg.gate,
            description=f"SAA contour {key}",
        ),
        ctx,
        caldb_root=caldb_root,
        measure=measure_contour_file,
        compare=compare_contour_files,
        inputs=files,
    )
    refs = list(run.refs)
    xml_path = None
    if result.promoted:
        assert result.entry is not None
        if not cand.contour.polygons:
            raise InputDataError("a contour without polygon passed the gate: check the cuts")
        export = saa_export.run(
            cand.contour,
            Path(result.entry.path).name,
            valid_from,
            _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", ""),
            config=cfg.export,
        )
        xml_refs = publish_flow_products(
            ctx, cfg, list(export.products), name=saa_export.name, inputs=files
        )
        refs += xml_refs
        xml_path = xml_refs[0].path
    verdict = "promoted" if result.promoted else "refused: " + "; ".join(result.verdict.reasons)
    ctx.status("done", f"SAACONT {verdict}"[:2000])
    publish_summary(
        title=f"SAA contour {key}",
        key=key,
        refs=refs,
        numbers={
            **{f.name: round(f.value, 4) for f in result.verdict.figures},
            "verdict": verdict,
        },
        previews=[r.path for r in refs if r.type_code.endswith("-PREVIEW")],
        artifact_key=key,
    )
    return {
        "status": "done",
        "key": key,
        "n_samples": len(rates),
        "polygons": len(cand.contour.polygons),
        "promotion": result.summary(),
        "xml": xml_path,
        "products": [r.path for r in refs] + list(result.products),
    }
