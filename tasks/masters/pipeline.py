"""The nightly master calibration as a pipeline: screen, build and validate every group.

The request holds the night's groups (found from the frames' headers before the run, see
:mod:`svomflow.tasks.masters.groups`). The first task selects, for every group, the masters
it is built with and the current master it is compared with (all optional: the first night
has none). The plan handles the types in order, bias, dark then flat (darks are built with
a bias, flats with both), the groups of one type side by side (``runner.submit``: threads,
or Dask workers), and adds the verdicts to the QC history when asked.

Promotion into the CALDB is not a step: the flow
(:mod:`svomflow.flows.nightly_calibration`) runs this pipeline once per type and registers
the passing candidates before the next type, so that tonight's bias builds tonight's darks
through the CALDB, and every product records the CALDB entries it used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from astropy.table import Table
from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet, calibration_key
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.tasks.ccd.master_selection import CODENAMES
from svomflow.tasks.masters.build import (
    NightlyCalibrationConfig,
    ValidatedCandidate,
    build_candidate,
    empty_report,
    group_selections,
    screen_group,
    validate_candidate,
)
from svomflow.tasks.masters.groups import FrameGroup, night_window
from svomflow.tasks.masters.history import HistoryEntry, QCHistory, update_qc_history
from svomflow.tasks.step import Observation, Pipeline, Runner

__all__ = [
    "NIGHTLY_PIPELINE",
    "HistoryRequest",
    "NightlyInputs",
    "NightlyOutcome",
    "NightlyRequest",
    "refused_entry",
]

FLOW_NAME = "nightly_master_calibration"
KINDS = ("bias", "dark", "flat")


@dataclass(frozen=True)
class HistoryRequest:
    """Update the QC history in this run: the history so far and rows of earlier runs.

    Attributes
    ----------
    previous
        File of the QC history as it stood (the latest ``QCHIST`` product), or ``None``.
    entries
        Rows of tonight's groups handled by earlier runs (and refused groups).
    """

    previous: str | None = None
    entries: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True)
class NightlyRequest:
    """What one run handles: a night, its camera, groups of frames, and the QC history."""

    night: str
    camera: CameraModel
    groups: tuple[FrameGroup, ...]
    history: HistoryRequest | None = None
    night_start_utc_hour: float = 12.0


@dataclass
class NightlyInputs:
    """The request and the QC history read from its file."""

    request: NightlyRequest
    previous_history: Table | None


@dataclass
class NightlyOutcome:
    """The verdicts of the run's groups, their history rows, and the updated history."""

    candidates: list[ValidatedCandidate] = field(default_factory=list)
    entries: list[HistoryEntry] = field(default_factory=list)
    history: QCHistory | None = None


def refused_entry(group: FrameGroup, night: str, reason: str) -> HistoryEntry:
    """Return the QC history row of a group refused before building (too few frames)."""
    report = empty_report(group, night)
    return HistoryEntry(report, group.start, refused=reason)


def _observe(request: NightlyRequest) -> Observation:
    start, _ = night_window(request.night, request.night_start_utc_hour)
    cam = request.camera
    return Observation(
        instruments=(cam.name,),
        time=start.isoformat(),
        selections={
            g.key: {"masters": tuple(group_selections(g, cam).values())} for g in request.groups
        },
    )


def _needs(
    observation: Observation, config: NightlyCalibrationConfig
) -> list[CalibrationRequirement]:
    """Every master any group needs (all optional); groups selecting alike share one."""
    out: dict[str, CalibrationRequirement] = {}
    for sel in observation.selections.values():
        for master in sel["masters"]:
            for req in master.requirements(optional=True):
                out.setdefault(req.name, req)
    return list(out.values())


def _read(request: NightlyRequest, calibration: CalibrationSet) -> NightlyInputs:
    previous = None
    if request.history is not None and request.history.previous:
        previous = Table.read(request.history.previous, hdu="QCHIST")
    return NightlyInputs(request, previous)


def _group_calibration(
    calibration: CalibrationSet, group: FrameGroup, camera: CameraModel
) -> CalibrationSet:
    """Return the part of the run's calibration a group uses (what a Dask task is sent)."""
    names = {n for s in group_selections(group, camera).values() for n in s.names()}
    names |= {calibration_key(camera.name, c) for c in CODENAMES.values()}
    return CalibrationSet(
        entries={k: v for k, v in calibration.entries.items() if k in names},
        objects={k: v for k, v in calibration.objects.items() if k in names},
    )


def _plan(
    runner: Runner,
    inputs: NightlyInputs,
    config: NightlyCalibrationConfig,
    calibration: CalibrationSet,
) -> NightlyOutcome:
    request = inputs.request
    cam = request.camera
    outcome = NightlyOutcome()
    for kind in KINDS:
        groups = [g for g in request.groups if g.kind == kind]
        cals = [_group_calibration(calibration, g, cam) for g in groups]
        runners = [runner.named(g.key) for g in groups]
        # each stage of every group of this type side by side, the stages in order
        screens = [
            r.submit(screen_group, g, cam, config=config, calibration=c)
            for r, g, c in zip(runners, groups, cals, strict=True)
        ]
        builds = [
            r.submit(build_candidate, s.result(), cam, config=config, calibration=c)
            for r, s, c in zip(runners, screens, cals, strict=True)
        ]
        checks = [
            r.submit(
                validate_candidate, b.result(), cam, request.night, config=config, calibration=c
            )
            for r, b, c in zip(runners, builds, cals, strict=True)
        ]
        for fut in checks:
            v = fut.result()
            outcome.candidates.append(v)
            outcome.entries.append(HistoryEntry(v.report, v.group.start))
            if not v.passed:
                runner.warn(f"candidate {v.group.key} rejected: {'; '.join(v.report.reasons)}")
    if request.history is not None:
        entries = [*request.history.entries, *outcome.entries]
        outcome.history = runner.run(
            update_qc_history,
            inputs.previous_history,
            entries,
            cam.instrument,
            request.night,
            config=config,
        )
    return outcome


NIGHTLY_PIPELINE: Pipeline[
    NightlyRequest, NightlyInputs, NightlyCalibrationConfig, NightlyOutcome
] = Pipeline(
    flow_name=FLOW_NAME,
    config=NightlyCalibrationConfig,
    steps=(screen_group, build_candidate, validate_candidate, update_qc_history),
    observe=_observe,
    read=_read,
    plan=_plan,
    calibration_needs=_needs,
)
