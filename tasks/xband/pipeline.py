"""The X-band analysis as a pipeline of steps: ECLAIRs + GRM event data -> refined burst products.

Steps, in the order of the plan (each module holds one, with its products):

1. ``timing`` (:mod:`~svomflow.tasks.xband.t90`): T90 per instrument, common intervals;
2. ``hardness-lag`` (:mod:`~svomflow.tasks.xband.hardness_lag`), concurrently with the rest;
3. ``localise`` (:mod:`~svomflow.tasks.xband.localise`): PO_ECL (imaging), PO_GRM (ratios);
4. ``responses`` (:mod:`~svomflow.tasks.xband.responses`): RSP for the burst direction;
5. ``spectra`` (:mod:`~svomflow.tasks.xband.extraction`): PHA/BAK of every fitted interval;
6. ``fit`` (:mod:`~svomflow.tasks.xband.spectral_fits`): ECL, GRM and joint fits, fluences,
   concurrently;
7. ``lightcurves`` (:mod:`~svomflow.tasks.xband.lightcurves`): LC and PF per instrument;
8. ``mask-lightcurves`` (:mod:`~svomflow.tasks.xband.mask_lightcurves`): MWLC of ECLAIRs.

Calibration (CALDB, resolved by the runner before the inputs are read): ``EBOUNDS`` and
``DEADTIME`` of both instruments (the events are read with them), ECLAIRs ``BADPIX``, and the
response models ``RSPPAR``. The flow (:mod:`svomflow.flows.xband`) runs this pipeline under
Prefect; notebooks and the Monte Carlo run it with
:func:`~svomflow.tasks.step.run_plain`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.products.catalogue.xband import JOINT_CODE
from svomflow.tasks.step import (
    Observation,
    Pipeline,
    Runner,
    StepFuture,
    default_calibration_needs,
)
from svomflow.tasks.vhf.inputs import plane_calibration_requirements
from svomflow.tasks.xband.config import XbandAnalysisConfig
from svomflow.tasks.xband.extraction import IntervalSpectra, spectra
from svomflow.tasks.xband.hardness_lag import HardnessLag, hardness_lag
from svomflow.tasks.xband.inputs import (
    KNOWN_INSTRUMENTS,
    XbandInputs,
    XbandRequest,
    observe,
    read_inputs,
)
from svomflow.tasks.xband.lightcurves import PeakFluxes, lightcurves
from svomflow.tasks.xband.localise import Positions, localise
from svomflow.tasks.xband.mask_lightcurves import MaskLightCurves, mask_lightcurves
from svomflow.tasks.xband.responses import Responses, responses
from svomflow.tasks.xband.selection import per_instrument
from svomflow.tasks.xband.spectral_fits import SpectralFits, fit
from svomflow.tasks.xband.t90 import XbandTiming, timing

__all__ = ["FLOW_NAME", "XBAND_PIPELINE", "FitPlan", "XbandOutcome", "fit_plans"]

FLOW_NAME = "xband_analysis"

Band = tuple[float, float]


@dataclass(frozen=True)
class FitPlan:
    """One fit of the plan: product code, instruments and bands.

    ``fluence_bands`` are the FLUENCE product's, ``flux_bands`` every band whose flux the
    fit reports (those and the light curves' flux bands), ``flux_band`` the band of a
    one-instrument fit's counts-to-flux factors.
    """

    code: str
    instruments: tuple[str, ...]
    fluence_bands: tuple[Band, ...]
    flux_bands: tuple[Band, ...]
    flux_band: Band | None


def fit_plans(names: list[str], config: XbandAnalysisConfig) -> list[FitPlan]:
    """Plan the fits of the instruments with spectra: each alone, then all of them jointly."""
    fl, lc = config.fluence, config.lightcurve
    # the light curves' flux bands of every instrument: each fit reports them all
    light = [per_instrument(lc, "flux_band_kev", n) for n in KNOWN_INSTRUMENTS]

    def plan(code: str, members: tuple[str, ...], bands: tuple[Band, ...]) -> FitPlan:
        flux_band = per_instrument(lc, "flux_band_kev", members[0]) if len(members) == 1 else None
        return FitPlan(code, members, bands, tuple(dict.fromkeys([*bands, *light])), flux_band)

    plans = [plan(instrument_code(n), (n,), (per_instrument(fl, "band_kev", n),)) for n in names]
    if len(names) > 1:
        plans.append(plan(JOINT_CODE, tuple(names), tuple(fl.joint_bands_kev)))
    return plans


@dataclass
class XbandOutcome:
    """What the X-band analysis found, step by step (products are published by the runner)."""

    t0: float
    timing: XbandTiming
    positions: Positions
    responses: Responses
    spectra: IntervalSpectra
    fits: dict[str, SpectralFits]
    peak_fluxes: dict[str, PeakFluxes]
    hardness_lag: HardnessLag
    mask_lightcurves: dict[str, MaskLightCurves] = field(default_factory=dict)
    #: What reading the inputs found and repaired, per instrument (times sorted on read...)
    input_flags: dict[str, list[str]] = field(default_factory=dict)

    def summary(self, published: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Return the results as JSON-ready dictionaries (what the flow and the CLI report).

        ``published`` maps the RSP products' instrument codes to their files.
        """
        return {
            "t0": self.t0,
            "intervals": self.timing.intervals.summary(),
            "t90": self.timing.t90_rows(),
            "positions": self.positions.summary(),
            "responses": self.responses.summary(published),
            "fits": {code: f.summary() for code, f in self.fits.items()},
            "peak_fluxes": {name: p.rows for name, p in self.peak_fluxes.items()},
            "hardness_lag": self.hardness_lag.rows,
            # one list of "instrument: flag" strings, as the VHF summary's "flags"
            "flags": [f"{name}: {f}" for name, fl in self.input_flags.items() for f in fl],
        }


def _plan(
    runner: Runner, inputs: XbandInputs, config: XbandAnalysisConfig, calibration: CalibrationSet
) -> XbandOutcome:
    ins = inputs.instruments
    t0 = inputs.t0
    tm = runner.run(timing, ins, t0, config=config.intervals)
    ci = tm.intervals
    # needs only the intervals: runs while the positions, responses and spectra are made
    hl: StepFuture[HardnessLag] = runner.submit(
        hardness_lag, ins, ci, t0, config.seed, config=config.temporal
    )
    pos = runner.run(
        localise,
        ins,
        ci,
        config.known_sources,
        t0,
        config=config.localise,
        calibration=calibration,
    )
    rsp = runner.run(responses, ins, pos, config=config.spectral, calibration=calibration)
    sp = runner.run(
        spectra,
        ins,
        ci.fitted(),
        ci.off_source,
        pos,
        rsp,
        config.known_sources,
        t0,
        config=config.spectral,
        calibration=calibration,
    )
    submitted = {
        p.code: runner.named(p.code).submit(
            fit,
            p.code,
            p.instruments,
            sp,
            p.fluence_bands,
            p.flux_bands,
            p.flux_band,
            t0,
            config.seed,
            config=config.spectral,
        )
        for p in fit_plans(list(sp.detectors), config)
    }
    fits = {code: f.result() for code, f in submitted.items()}
    for f in fits.values():
        for note in f.skipped:
            runner.warn(f"spectral fit skipped: {note}")
    peak: dict[str, PeakFluxes] = {}
    for name, ev in ins.items():
        one = fits.get(instrument_code(name))
        if one is not None and one.factors is not None:
            peak[name] = runner.named(name).run(
                lightcurves, name, ev, ci, one.factors, t0, config=config.lightcurve
            )
    # mask-weighted light curves toward the imaging position (MWLC_ECL)
    mwlc = {
        name: runner.named(name).run(
            mask_lightcurves, name, ins[name], pos, t0, config=config.lightcurve,
            calibration=calibration,
        )
        for name in pos.imaging
        if name in ins and ins[name].imaging
    }  # fmt: skip
    flags = {name: list(ev.flags) for name, ev in ins.items() if ev.flags}
    return XbandOutcome(t0, tm, pos, rsp, sp, fits, peak, hl.result(), mwlc, flags)


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


XBAND_PIPELINE: Pipeline[XbandRequest, XbandInputs, XbandAnalysisConfig, XbandOutcome] = Pipeline(
    flow_name=FLOW_NAME,
    config=XbandAnalysisConfig,
    steps=(
        timing,
        hardness_lag,
        localise,
        responses,
        spectra,
        fit,
        lightcurves,
        mask_lightcurves,
    ),
    observe=observe,
    read=read_inputs,
    plan=_plan,
    calibration_needs=lambda obs, cfg: _needs(XBAND_PIPELINE, obs),
)
