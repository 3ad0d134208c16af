"""The ``vhf_quick_analysis`` flow: burst event files -> TT, QCL, QPO, QLC, QPF, QT90, QHR, QSP, RSP, CRCLASS.

Coarse tasks, each one call of a pure step in :mod:`svomflow.tasks.vhf`: read (and check)
the inputs, resolve calibration, light curves + background per instrument, durations /
peak / hardness / trigger per instrument, positions, spectrum, classification, products.
Tasks pass file paths and small results; the event lists are re-read from a per-process
cache. Retries only on the I/O tasks (reading, publishing), never on bad input.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from svomflow.config import available_instruments, load_config
from svomflow.errors import SvomflowError
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
)
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.inputs import load_inputs, peek_headers
from svomflow.tasks.vhf.pipeline import (
    Positions,
    SpectrumStep,
    VHFResult,
    classification,
    joint_hardness,
    positions,
    resolve_calibration,
    spectrum,
    summary,
)
from svomflow.tasks.vhf.timing import (
    InstrumentCurves,
    InstrumentTiming,
    instrument_lightcurves,
    instrument_measures,
)

__all__ = ["FLOW_NAME", "load_vhf_config", "run_vhf_steps", "vhf_quick_analysis"]

FLOW_NAME = "vhf_quick_analysis"


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only I/O errors, never user errors (bad input stays bad)."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, OSError) and not isinstance(exc, SvomflowError)


def load_vhf_config(
    instruments: list[str],
    config_files: list[str] | None = None,
    overrides: list[str] | None = None,
    band: tuple[float, float] | None = None,
) -> VHFConfig:
    """Merge code defaults, packaged defaults, instrument overrides, user files and ``--set``."""
    known = set(available_instruments())
    cfg = load_config(
        VHFConfig,
        flow=FLOW_NAME,
        instruments=[n.lower() for n in instruments if n.lower() in known],
        files=config_files or [],
        overrides=overrides or [],
    )
    if band is not None:
        cfg.band_kev = (float(band[0]), float(band[1]))
    return cfg


@task(
    name="vhf-read",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def read_task(event_files: list[str], t0: float | None) -> dict[str, Any]:
    """Read and check every event file; return what was found (instruments, t0, flags)."""
    inputs = load_inputs(event_files, t0)
    return {
        "t0": inputs.t0,
        "instruments": {
            k: {
                "events": d.events.size,
                "detectors": list(d.events.detectors),
                "imaging": d.imaging is not None,
                "files": [h.path for h in d.headers],
                "flags": list(d.flags),
            }
            for k, d in inputs.instruments.items()
        },
    }


@task(name="vhf-resolve-calibration", cache_policy=NO_CACHE)
def calibration_task(event_files: list[str], t0: float) -> dict[str, Any]:
    """Check what each instrument needs (mask, response model); fail early naming what is missing."""
    return resolve_calibration(load_inputs(event_files, t0))


@task(name="vhf-lightcurves", task_run_name="lightcurves-{instrument}", cache_policy=NO_CACHE)
def lightcurves_task(
    event_files: list[str], t0: float, instrument: str, cfg: VHFConfig
) -> InstrumentCurves | str:
    """Light curves, background and T90 of one instrument (a string: why no burst was found)."""
    try:
        return instrument_lightcurves(load_inputs(event_files, t0).instruments[instrument], cfg)
    except SvomflowError as exc:
        return str(exc)


@task(name="vhf-durations", task_run_name="durations-{instrument}", cache_policy=NO_CACHE)
def durations_task(
    event_files: list[str], t0: float, instrument: str, curves: InstrumentCurves, cfg: VHFConfig
) -> InstrumentTiming:
    """Peak flux, rate trigger, hardness and detector net counts of one instrument."""
    return instrument_measures(load_inputs(event_files, t0).instruments[instrument], curves, cfg)


@task(name="vhf-position", cache_policy=NO_CACHE)
def position_task(
    event_files: list[str], t0: float, timings: dict[str, InstrumentTiming], cfg: VHFConfig
) -> Positions:
    """Coded-mask quick position and image trigger; count-ratio position."""
    return positions(load_inputs(event_files, t0), timings, cfg)


@task(name="vhf-spectrum", cache_policy=NO_CACHE)
def spectrum_task(
    event_files: list[str],
    t0: float,
    timings: dict[str, InstrumentTiming],
    pos: Positions,
    cfg: VHFConfig,
) -> SpectrumStep:
    """Response for the burst direction and the quick spectral fit."""
    return spectrum(load_inputs(event_files, t0), timings, pos, cfg)


@task(name="vhf-classification", cache_policy=NO_CACHE)
def classification_task(
    event_files: list[str],
    t0: float,
    timings: dict[str, InstrumentTiming],
    pos: Positions,
    cfg: VHFConfig,
) -> dict[str, Any]:
    """Joint hardness ratio and the crude classification."""
    crude, inst, _ = classification(timings, pos, cfg)
    return {
        "joint": joint_hardness(load_inputs(event_files, t0), timings, cfg),
        "crude": crude,
        "instrument": inst,
    }


@task(
    name="vhf-products",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def products_task(
    result: VHFResult, ctx: FlowContext, obs_id: str, cfg: VHFConfig
) -> list[dict[str, Any]]:
    """Write every product (FITS + PNG) atomically with provenance; return small references."""
    from svomflow.tasks.vhf.publish import publish_products

    refs = publish_products(
        result, store=ctx.store(), obs_id=obs_id, config=cfg, flow_name=FLOW_NAME
    )
    return [r.__dict__ for r in refs]


@flow(name=FLOW_NAME, flow_run_name="vhf-{obs_id}", on_failure=[record_failure])
def vhf_quick_analysis(
    event_files: list[str],
    obs_id: str,
    t0: float | None = None,
    band: tuple[float, float] | None = None,
    out_dir: str | None = None,
    config_files: list[str] | None = None,
    overrides: list[str] | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Quick analysis of a burst from its first event data (ECLAIRs, GRM, GBM-like files).

    Parameters
    ----------
    event_files
        Event files of any instruments (grouped by their ``INSTRUME`` keyword).
    obs_id
        Burst / observation id: names the run, the product folder and the processing status.
    t0
        Reference time (mission s); default: the imaging instrument's ``TRIGTIME``.
    band
        T90 / peak-flux band (keV) for every instrument; default: each instrument's.
    out_dir
        Product root (default ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``).
    config_files, overrides
        User configuration files and ``dotted.key=value`` overrides of :class:`VHFConfig`.
    database_url
        Products database (default SQLite under the data home).

    Returns
    -------
    dict
        The key numbers (:func:`svomflow.tasks.vhf.pipeline.summary`), ``products`` (type
        code -> path), ``timing_s`` (wall time per stage) and the flow-run id.
    """
    return run_vhf_steps(
        event_files,
        obs_id,
        t0=t0,
        band=band,
        out_dir=out_dir,
        config_files=config_files,
        overrides=overrides,
        database_url=database_url,
        use_prefect=True,
    )


class _Done:
    """A finished result with the interface of a Prefect future (for runs without Prefect)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


def _logger(use_prefect: bool) -> Any:
    import logging

    return get_run_logger() if use_prefect else logging.getLogger("svomflow.flows.vhf")


def run_vhf_steps(
    event_files: list[str],
    obs_id: str,
    *,
    t0: float | None = None,
    band: tuple[float, float] | None = None,
    out_dir: str | None = None,
    config_files: list[str] | None = None,
    overrides: list[str] | None = None,
    database_url: str | None = None,
    use_prefect: bool = False,
) -> dict[str, Any]:
    """The flow's body: inside the flow each step is a Prefect task; ``use_prefect=False`` runs
    the same steps as plain calls (``svomflow vhf --no-prefect``, benchmarks)."""

    def call(t: Any, *args: Any) -> Any:
        return t(*args) if use_prefect else t.fn(*args)

    def submit(t: Any, *args: Any) -> Any:
        return t.submit(*args) if use_prefect else _Done(t.fn(*args))

    if not use_prefect:
        # no on_failure hook outside a flow run: record the failure here
        ctx = FlowContext(FLOW_NAME, obs_id, out_dir or str(default_output_root()), database_url)
        try:
            return _body(
                event_files,
                obs_id,
                t0,
                band,
                out_dir,
                config_files,
                overrides,
                database_url,
                False,
                call,
                submit,
            )
        except SvomflowError as exc:
            ctx.status("failed", str(exc)[:2000])
            raise
    return _body(
        event_files,
        obs_id,
        t0,
        band,
        out_dir,
        config_files,
        overrides,
        database_url,
        True,
        call,
        submit,
    )


def _body(
    event_files: list[str],
    obs_id: str,
    t0: float | None,
    band: tuple[float, float] | None,
    out_dir: str | None,
    config_files: list[str] | None,
    overrides: list[str] | None,
    database_url: str | None,
    use_prefect: bool,
    call: Any,
    submit: Any,
) -> dict[str, Any]:
    log = _logger(use_prefect)
    clock: dict[str, float] = {}
    start = time.perf_counter()
    out_root = out_dir or str(default_output_root())
    ctx = FlowContext(FLOW_NAME, obs_id, out_root, database_url)
    ctx.status("received")
    files = [str(Path(f).resolve()) for f in event_files]
    insts = sorted({h.instrument for h in peek_headers(files)})
    cfg = load_vhf_config(insts, config_files, overrides, band)
    ctx.status("running")
    mark = time.perf_counter()
    info = call(read_task, files, t0)
    t_ref = float(info["t0"])
    clock["read"] = time.perf_counter() - mark
    mark = time.perf_counter()
    cal = call(calibration_task, files, t_ref)
    clock["calibration"] = time.perf_counter() - mark
    mark = time.perf_counter()
    futures = {n: submit(lightcurves_task, files, t_ref, n, cfg) for n in info["instruments"]}
    curves = {n: f.result() for n, f in futures.items()}
    clock["lightcurves_background"] = time.perf_counter() - mark
    failed = {n: c for n, c in curves.items() if isinstance(c, str)}
    for n, why in failed.items():
        if use_prefect:  # without Prefect the reason reaches the user through the flags
            log.warning("%s: no burst found (%s)", n, why)
    if len(failed) == len(curves):
        raise SvomflowError("no burst found: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    mark = time.perf_counter()
    dfut = {
        n: submit(durations_task, files, t_ref, n, c, cfg)
        for n, c in curves.items()
        if not isinstance(c, str)
    }
    timings = {n: f.result() for n, f in dfut.items()}
    clock["durations_peak_hardness"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pos = call(position_task, files, t_ref, timings, cfg)
    clock["position"] = time.perf_counter() - mark
    mark = time.perf_counter()
    spec = call(spectrum_task, files, t_ref, timings, pos, cfg)
    clock["spectrum"] = time.perf_counter() - mark
    mark = time.perf_counter()
    cls = call(classification_task, files, t_ref, timings, pos, cfg)
    clock["classification"] = time.perf_counter() - mark
    result = VHFResult(
        inputs=load_inputs(files, t_ref),
        calibration=cal,
        timings=timings,
        failed=failed,
        positions=pos,
        spectrum=spec,
        joint_hardness=cls["joint"],
        crude=cls["crude"],
        crude_instrument=cls["instrument"],
    )
    mark = time.perf_counter()
    refs = call(products_task, result, ctx, obs_id, cfg)
    clock["products"] = time.perf_counter() - mark
    out = summary(result)
    out["obs_id"] = obs_id
    out["products"] = {f"{r['type_code']}_{r['instrument']}": r["path"] for r in refs}
    numbers = {
        "T0 (mission s)": f"{out['t0']:.3f}",
        f"T90 ({out['t90_instrument']}, {out['t90_band_kev'][0]:g}-{out['t90_band_kev'][1]:g} keV)": (
            "n/a"
            if out["t90"] is None
            else f"{out['t90']:.2f} ± {out['t90_err'] or float('nan'):.2f} s"
        ),
        "class": "n/a"
        if out["classification"] is None
        else f"{out['classification']['class']} (p_short {out['classification']['p_short']:.3f})",
    }
    if out["position"]:
        p = out["position"]
        numbers["position"] = (
            f"RA {p['ra_deg']:.3f} Dec {p['dec_deg']:.3f} r90 {p['r90_arcmin']:.1f}' ({p['instrument']})"
        )
    from svomflow.products.store import ProductRef

    publish_summary(
        title=f"VHF quick analysis {obs_id}",
        key=obs_id,
        refs=[ProductRef(**r) for r in refs],
        numbers=numbers,
        previews=[r["path"] for r in refs if r["path"].endswith(".png")],
        artifact_key=f"vhf-{obs_id}",
    )
    ctx.status("done")
    clock["total_in_flow"] = time.perf_counter() - start
    out["timing_s"] = clock
    from svomflow.products.provenance import current_flow_run_id

    out["flow_run_id"] = current_flow_run_id()
    return out
