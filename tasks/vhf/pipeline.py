"""The VHF quick analysis as one pipeline of steps: ``VHF_PIPELINE``.

The same definition runs in the Prefect flow (:mod:`svomflow.flows.vhf`, through the
adapter) and in plain Python (:func:`svomflow.tasks.step.run_plain`: ``svomflow vhf
--no-prefect``, the Monte Carlo bench, notebooks). The plan, per instrument of the burst:

1. ``lightcurves`` (T90 band clock, background, T90) and, alongside, ``image-trigger`` for an
   imaging instrument; an instrument without the burst is flagged, none with it is an error;
2. ``timing``: peak flux, rate trigger, hardness and the timing products;
3. ``quick-position`` (imaging instruments) and ``count-ratio-position`` (instruments with a
   direction-dependent response model);
4. ``trigger-report``: TT and QCL;
5. ``quick-spectrum`` for the best position (instruments with a response model);

then, for the burst, ``joint-hardness`` and ``classification``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.products.burst_events import BurstEvents, InstrumentEvents
from svomflow.tasks.coded_mask.image_trigger import ImageTrigger
from svomflow.tasks.step import (
    Observation,
    Pipeline,
    Runner,
    StepFuture,
    default_calibration_needs,
)
from svomflow.tasks.timing import HardnessRatio
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.curves import InstrumentCurves, InstrumentTiming, NoBurst
from svomflow.tasks.vhf.fits_products import ProductHeader
from svomflow.tasks.vhf.inputs import (
    VHFInputs,
    VHFRequest,
    observe,
    plane_calibration_requirements,
    read,
)
from svomflow.tasks.vhf.joint import classification, joint_hardness, primary_instrument
from svomflow.tasks.vhf.outcome import Positions, VHFOutcome
from svomflow.tasks.vhf.position import (
    count_ratio_position,
    image_trigger_search,
    quick_position_step,
)
from svomflow.tasks.vhf.responses import response_model
from svomflow.tasks.vhf.spectrum import GRMSpectrumResult, quick_spectrum_step
from svomflow.tasks.vhf.timing import lightcurves, timing
from svomflow.tasks.vhf.trigger import trigger_report

__all__ = ["FLOW_NAME", "VHF_PIPELINE"]

FLOW_NAME = "vhf_quick_analysis"


class _Stages:
    """Wall time of each stage of a plan (steps, with the publication of their products)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _has_response(data: InstrumentEvents, calibration: CalibrationSet) -> bool:
    return response_model(calibration, data.key) is not None and data.attitude is not None


def _timings(
    runner: Runner, inputs: VHFInputs, config: VHFConfig, calibration: CalibrationSet
) -> tuple[dict[str, InstrumentTiming], dict[str, str], dict[str, ImageTrigger | None]]:
    """Run steps 1 and 2: light curves and timing of every instrument, image triggers too.

    Raises
    ------
    InputDataError
        When no instrument shows the burst.
    """
    burst = inputs.burst
    # the image trigger needs no timing: it runs while the light curves are made
    triggers = {
        n: runner.named(d.key).submit(
            image_trigger_search, d, config=config, calibration=calibration
        )
        for n, d in burst.instruments.items()
        if d.imaging
    }
    pending = {
        n: runner.named(d.key).submit(lightcurves, d, config=config, calibration=calibration)
        for n, d in burst.instruments.items()
    }
    curves = {n: f.result() for n, f in pending.items()}
    images = {n: f.result() for n, f in triggers.items()}
    failed = {n: c.reason for n, c in curves.items() if isinstance(c, NoBurst)}
    if len(failed) == len(curves):
        raise InputDataError("no burst found: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    for n, why in failed.items():
        runner.warn(f"{n}: no burst found ({why})")
    measured: dict[str, StepFuture[InstrumentTiming]] = {}
    for n, c in curves.items():
        if isinstance(c, InstrumentCurves):
            d = burst.instruments[n]
            measured[n] = runner.named(d.key).submit(
                timing, d, c, inputs.obs_id, config=config, calibration=calibration
            )
    return {n: f.result() for n, f in measured.items()}, failed, images


def _positions(
    runner: Runner,
    inputs: VHFInputs,
    timings: dict[str, InstrumentTiming],
    images: dict[str, ImageTrigger | None],
    config: VHFConfig,
    calibration: CalibrationSet,
) -> Positions:
    """Run step 3: coded-mask and count-ratio positions of the instruments with a burst."""
    out = Positions(image_trigger=dict(images))
    coded, ratio = {}, {}
    for n, t in timings.items():
        d = inputs.burst.instruments[n]
        view = runner.named(d.key)
        if d.imaging:
            coded[n] = view.submit(
                quick_position_step, d, t, inputs.obs_id, config=config, calibration=calibration
            )
        if _has_response(d, calibration):
            ratio[n] = view.submit(
                count_ratio_position, d, t, config=config, calibration=calibration
            )
    for n, f in coded.items():
        qp = f.result()
        if qp.position is not None:
            out.coded_mask[n] = qp.position
        out.flags.setdefault(n, []).extend(qp.flags)
    for n, g in ratio.items():
        cr = g.result()
        if cr.localisation is not None:
            out.count_ratio[n] = cr.localisation
        out.flags.setdefault(n, []).extend(cr.flags)
    out.flags = {n: f for n, f in out.flags.items() if f}
    return out


def _spectra(
    runner: Runner,
    burst: BurstEvents,
    timings: dict[str, InstrumentTiming],
    positions: Positions,
    config: VHFConfig,
    calibration: CalibrationSet,
) -> tuple[dict[str, GRMSpectrumResult], dict[str, list[str]]]:
    """Run step 5: responses for the best position and quick spectra, where a model exists."""
    spectra: dict[str, GRMSpectrumResult] = {}
    flags: dict[str, list[str]] = {}
    best = positions.best()
    for n, t in timings.items():
        d = burst.instruments[n]
        if not _has_response(d, calibration):
            if not d.imaging:  # a counts-only instrument without a model (e.g. GBM)
                flags.setdefault(n, []).append(
                    "no response model for this instrument: quick spectrum not fitted"
                )
            continue
        if best is None:
            flags.setdefault(n, []).append("no position: no response, no spectrum")
            continue
        direction = (float(best["ra_deg"]), float(best["dec_deg"]))
        res = runner.named(d.key).run(
            quick_spectrum_step, d, t, direction, config=config, calibration=calibration
        )
        if res.spectrum is not None:
            spectra[n] = res.spectrum
        if res.flags:
            flags.setdefault(n, []).extend(res.flags)
    return spectra, flags


def _joint_hardness(
    runner: Runner,
    burst: BurstEvents,
    timings: dict[str, InstrumentTiming],
    config: VHFConfig,
    calibration: CalibrationSet,
) -> HardnessRatio | None:
    """Measure the cross-instrument hardness ratio when both its instruments show the burst."""
    jc = config.joint_hardness
    soft, hard = burst.get(jc.soft_instrument), burst.get(jc.hard_instrument)
    if soft is None or hard is None or soft.name not in timings or hard.name not in timings:
        return None
    return runner.run(
        joint_hardness,
        soft,
        timings[soft.name],
        hard,
        timings[hard.name],
        ProductHeader.joint(burst),
        config=config,
        calibration=calibration,
    ).ratio


def _plan(
    runner: Runner, inputs: VHFInputs, config: VHFConfig, calibration: CalibrationSet
) -> VHFOutcome:
    """Run every step of the VHF analysis on one burst (see the module notes)."""
    burst = inputs.burst
    stage = _Stages()
    with stage("lightcurves_timing"):
        timings, failed, images = _timings(runner, inputs, config, calibration)
    with stage("position"):
        positions = _positions(runner, inputs, timings, images, config, calibration)
    with stage("trigger_report"):
        reports = [
            runner.named(burst.instruments[n].key).submit(
                trigger_report,
                burst.instruments[n],
                t,
                positions.image_trigger.get(n),
                positions.coded_mask.get(n),
                config=config,
            )
            for n, t in timings.items()
        ]
        for f in reports:
            f.result()
    with stage("spectrum"):
        spectra, spectrum_flags = _spectra(runner, burst, timings, positions, config, calibration)
    with stage("classification"):
        jh = _joint_hardness(runner, burst, timings, config, calibration)
        best = positions.best()
        where = None if best is None else (best["ra_deg"], best["dec_deg"], best["r90_deg"])
        crude = runner.run(
            classification, timings, where, ProductHeader.joint(burst), config=config
        )
    return VHFOutcome(
        t0=burst.t0,
        instruments=list(burst.instruments),
        input_flags={n: list(d.flags) for n, d in burst.instruments.items()},
        timings=timings,
        failed=failed,
        positions=positions,
        spectra=spectra,
        spectrum_flags=spectrum_flags,
        joint_hardness=jh,
        crude=crude.crude,
        crude_instrument=crude.instrument,
        primary=crude.instrument or primary_instrument(timings, config.classification_catalogs),
        stage_seconds=stage.seconds,
    )


def _needs(
    pipeline: Pipeline[Any, Any, Any, Any], obs: Observation
) -> list[CalibrationRequirement]:
    """Select what the steps declare, and the optional gains and SAA contour of pixelated instruments."""
    return [
        *default_calibration_needs(
            pipeline.calibration_codes, obs, optional=pipeline.optional_calibration
        ),
        *plane_calibration_requirements(obs),
    ]


VHF_PIPELINE: Pipeline[VHFRequest, VHFInputs, VHFConfig, VHFOutcome] = Pipeline(
    flow_name=FLOW_NAME,
    config=VHFConfig,
    steps=(
        lightcurves,
        image_trigger_search,
        timing,
        quick_position_step,
        count_ratio_position,
        trigger_report,
        quick_spectrum_step,
        joint_hardness,
        classification,
    ),
    observe=observe,
    read=read,
    plan=_plan,
    # a quick analysis goes on without a response model: no count-ratio position and no
    # quick spectrum for that instrument, said in the flags
    optional_calibration=("RSPPAR",),
    calibration_needs=lambda obs, cfg: _needs(VHF_PIPELINE, obs),
)
