"""The MXT pipeline (``mxt_analysis``): passes -> calibrated events -> sources -> LC, spectra.

One definition, :data:`MXT_PIPELINE`, run by the Prefect flow (:mod:`svomflow.flows.mxt`,
through the adapter) and in plain Python (:func:`svomflow.tasks.step.run_plain`: the Monte
Carlo bench, notebooks). Its request is :class:`MXTRequest`, its configuration
:class:`MXTAnalysisConfig` (one section per step), its steps those of
:mod:`svomflow.tasks.xray.steps`:

1. ``observe`` reads the passes' headers: the observation start, for the CALDB selection of
   GAIN, CTI, PATTERN and PSF (the codes ``config/instruments/mxt.yaml`` lists);
2. ``read`` reads the passes, the attitude and the SAA file once;
3. ``plan`` merges, calibrates (EVT), detects (SRCLIST, QIMG), then makes the RMF and, one
   call per source (concurrent), the ARF, spectrum, light curve and its preview.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, model_validator
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config import load_instrument
from svomflow.config.base import StepConfig
from svomflow.errors import ConfigError, InputDataError
from svomflow.tasks.step import Observation, Pipeline, Runner, config_sections, override_field
from svomflow.tasks.xray.detect import DetectConfig, SourceRecord
from svomflow.tasks.xray.events import (
    mission_time_to_utc,
    pass_start,
    read_attitude,
    read_pass,
    read_saa,
)
from svomflow.tasks.xray.observation import MXTInputs, SourceProducts
from svomflow.tasks.xray.steps import (
    CalibrateConfig,
    MergeConfig,
    SourceProductsConfig,
    calibrate,
    detect,
    merge,
    response,
    source_products,
)

__all__ = [
    "FLOW_NAME",
    "MXT_PIPELINE",
    "MXTAnalysisConfig",
    "MXTOutcome",
    "MXTRequest",
    "MergeSummary",
    "observation_start",
    "with_calibration_files",
]

FLOW_NAME = "mxt_analysis"

# the instrument definition the pipeline is for (config/instruments/mxt.yaml)
_INSTRUMENT = "mxt"

# keys of the products section that configurations made before the sections existed hold at
# their top level: accepted there so that reprocessing an old product's configuration works
_LEGACY_PRODUCTS_KEYS = ("lc_min_counts", "extraction_radius_arcmin", "blocks_p0")


class MXTAnalysisConfig(StepConfig):
    """Configuration of the ``mxt_analysis`` flow: one section per step."""

    merge: MergeConfig = Field(default_factory=MergeConfig, description="Merging of the passes")
    calibrate: CalibrateConfig = Field(
        default_factory=CalibrateConfig, description="Event calibration"
    )
    detect: DetectConfig = Field(default_factory=DetectConfig, description="Source detection")
    products: SourceProductsConfig = Field(
        default_factory=SourceProductsConfig,
        description="Per-source light curves, spectra and responses",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_top_level_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(k in data for k in _LEGACY_PRODUCTS_KEYS):
            data = dict(data)
            section = dict(data.get("products") or {})
            for key in _LEGACY_PRODUCTS_KEYS:
                if key in data:
                    section.setdefault(key, data.pop(key))
            data["products"] = section
        return data

    @model_validator(mode="after")
    def _consistent(self) -> MXTAnalysisConfig:
        a, b = self.detect.override_psf, self.products.override_psf
        if a and b and a != b:
            raise ValueError(
                "detect.override_psf and products.override_psf name different files: a run "
                "uses one PSF (set one of them, or --calib psf=FILE)"
            )
        return self


@dataclass(frozen=True)
class MXTRequest:
    """What one MXT run processes: the pass files, attitude and SAA files, burst information.

    Attributes
    ----------
    l1_files
        L1 pass files (any order; overlaps allowed).
    attitude_file, saa_file
        The attitude file and the SAA file of the observation's week.
    trigger_time
        Burst mode: trigger time (mission s).
    prior_radec
        Burst mode: the ECLAIRs position (RA, Dec in degrees).
    """

    l1_files: tuple[str, ...]
    attitude_file: str
    saa_file: str
    trigger_time: float | None = None
    prior_radec: tuple[float, float] | None = None

    @property
    def mode(self) -> str:
        """``burst`` with an ECLAIRs prior, else ``general-program``."""
        return "burst" if self.prior_radec is not None else "general-program"


@dataclass(frozen=True)
class MergeSummary:
    """What the merge removed and kept (row counts by cause) and the observation span."""

    counts: dict[str, int]
    tstart: float
    tstop: float


@dataclass
class MXTOutcome:
    """What a run of the plan returns (its products are published by the runner)."""

    mode: str
    merge: MergeSummary
    calibrate_counts: dict[str, int]
    sources: list[SourceRecord]
    source_products: list[SourceProducts] = field(default_factory=list)


def observation_start(request: MXTRequest) -> float:
    """Return the observation start (mission s): the earliest GTI start of the passes.

    Raises
    ------
    InputDataError
        If no pass is given, a pass is unreadable or from another instrument, or no pass
        holds good time.
    """
    if not request.l1_files:
        raise InputDataError("no MXT pass files given")
    inst = load_instrument(_INSTRUMENT)
    starts = [t for t in (pass_start(f, inst) for f in request.l1_files) if t is not None]
    if not starts:
        raise InputDataError("no MXT pass holds good time (every GTI is empty)")
    return min(starts)


def _observe(request: MXTRequest) -> Observation:
    mjdref = float(load_instrument(_INSTRUMENT).get("time_reference.mjdref"))
    start = mission_time_to_utc(observation_start(request), mjdref)
    return Observation(instruments=(_INSTRUMENT,), time=start)


def _read(request: MXTRequest, calibration: CalibrationSet) -> MXTInputs:
    inst = load_instrument(_INSTRUMENT)
    return MXTInputs(
        passes=[read_pass(f, inst) for f in request.l1_files],
        attitude=read_attitude(request.attitude_file),
        saa=read_saa(request.saa_file),
        instrument=inst,
        trigger_time=request.trigger_time,
        prior_radec=request.prior_radec,
    )


def _plan(
    runner: Runner, inputs: MXTInputs, config: MXTAnalysisConfig, calibration: CalibrationSet
) -> MXTOutcome:
    merged = runner.run(merge, inputs, config=config.merge)
    observation = runner.run(
        calibrate, merged, inputs.instrument, config=config.calibrate, calibration=calibration
    )
    found = runner.run(
        detect, observation, inputs.prior_radec, config=config.detect, calibration=calibration
    )
    per_source: list[SourceProducts] = []
    if config.products.enabled:
        # the RMF is published first: every spectrum names it
        runner.run(response, inputs.instrument, config=config.products)
        calls = []
        for k in range(1, len(found) + 1):
            call = runner.named(f"s{k:02d}").submit(
                source_products, observation, found, k, inputs.trigger_time,
                config=config.products, calibration=calibration,
            )  # fmt: skip
            calls.append(call)
        per_source = [c.result() for c in calls]
    return MXTOutcome(
        mode="burst" if inputs.prior_radec is not None else "general-program",
        merge=MergeSummary(dict(merged.counts), merged.tstart, merged.tstop),
        calibrate_counts=dict(observation.events.counts),
        sources=list(found.sources),
        source_products=per_source,
    )


MXT_PIPELINE: Pipeline[MXTRequest, MXTInputs, MXTAnalysisConfig, MXTOutcome] = Pipeline(
    flow_name=FLOW_NAME,
    config=MXTAnalysisConfig,
    steps=(merge, calibrate, detect, response, source_products),
    observe=_observe,
    read=_read,
    plan=_plan,
)


def with_calibration_files(
    config: MXTAnalysisConfig, files: Mapping[str, str]
) -> MXTAnalysisConfig:
    """Return a copy of ``config`` whose steps use the given calibration files.

    ``files`` maps a CALDB code name (any case: ``gain``, ``PSF``) to a path; the path is set
    as ``override_<code>`` in every section of a step that declares the code (``psf`` sets
    ``detect.override_psf`` and ``products.override_psf``).

    Raises
    ------
    ConfigError
        For a code no MXT step uses.
    """
    out = config.model_copy(deep=True)
    codes = MXT_PIPELINE.calibration_codes
    for name, path in files.items():
        code = next((c for c in codes if c.lower() == name.strip().lower()), None)
        if code is None:
            raise ConfigError(
                f"calibration {name!r}: the MXT steps use {', '.join(c.lower() for c in codes)}"
            )
        for s in MXT_PIPELINE.steps:
            if code in s.calibration:
                for section in config_sections(out, s.config):
                    setattr(section, override_field(code), str(path))
    return out
