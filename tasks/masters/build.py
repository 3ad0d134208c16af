"""The nightly masters as steps: screen the frames of a group, build the candidate, validate it.

Each step takes one group (:class:`~svomflow.tasks.masters.groups.FrameGroup`) and data
objects; the masters it needs come from the run's calibration set (selected in the flow's
first task: the bias and dark valid at the group's start to build darks and flats, and the
current master of the group's type, valid just before it, to compare the candidate with;
all optional, since the first night has none). The candidate and its QC reports are
returned as catalogue products; promotion into the CALDB is the flow's business.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.catalogue import Product, link_name
from svomflow.products.ccd_frames import FrameStack, RawFrameInfo
from svomflow.products.ccd_masters import MasterFrame
from svomflow.tasks.ccd.master_builders import (
    build_master_bias,
    build_master_dark,
    build_master_flat,
)
from svomflow.tasks.ccd.master_selection import (
    CODENAMES,
    MasterSelection,
    master_selection,
    pick_master,
)
from svomflow.tasks.ccd.overscan import overscan_vector
from svomflow.tasks.masters.config import NightlyCalibrationConfig
from svomflow.tasks.masters.groups import FrameGroup
from svomflow.tasks.masters.publish import candidate_products
from svomflow.tasks.masters.qc import (
    Check,
    QCReport,
    compare_with_current,
    qc_level_noise,
    sanity_checks,
    screen_frame,
)
from svomflow.tasks.step import step

__all__ = [
    "Candidate",
    "ScreenedGroup",
    "ValidatedCandidate",
    "build_candidate",
    "group_selections",
    "screen_group",
    "validate_candidate",
]


def group_selections(group: FrameGroup, camera: CameraModel) -> dict[str, MasterSelection]:
    """Return the masters a group needs, by role: ``bias``/``dark`` to build, ``current``.

    Darks and flats are built with the bias valid at the group's start, flats also with the
    dark valid then (at the group's temperature); the candidate is compared with the current
    master of its type, valid one second before the group's start.
    """
    out: dict[str, MasterSelection] = {}
    if group.kind in ("dark", "flat"):
        out["bias"] = master_selection(camera, "bias", group.start)
    if group.kind == "flat":
        out["dark"] = master_selection(camera, "dark", group.start, temperature=group.temperature)
    out["current"] = master_selection(
        camera,
        group.kind,
        group.start - _dt.timedelta(seconds=1),
        filter=group.filter,
        temperature=group.temperature,
        exptime=group.exptime or None,
        role="current",
    )
    return out


@dataclass
class ScreenedGroup:
    """A group after screening: the usable frames, the rejected ones and why, notes."""

    group: FrameGroup
    good: list[RawFrameInfo]
    rejected: dict[str, str]
    notes: list[str] = field(default_factory=list)
    used: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def missing_bias(self) -> bool:
        """Whether the group needed a bias master that the CALDB did not have."""
        return self.group.kind != "bias" and "bias" not in self.used


@dataclass
class Candidate:
    """A candidate master (``None`` when it could not be built) and what led to it."""

    screened: ScreenedGroup
    master: MasterFrame | None
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


@dataclass
class ValidatedCandidate:
    """The verdict on a group's candidate, with its products (candidate and QC reports).

    ``boundaries`` and ``valid_from`` are what the CALDB registration of a passing candidate
    needs; ``instrument`` is the instrument code of its products.
    """

    group: FrameGroup
    report: QCReport
    valid_from: str
    boundaries: dict[str, Any]
    instrument: str
    products: list[Product]
    inputs: list[str]

    @property
    def passed(self) -> bool:
        """Whether the candidate may become the master."""
        return self.report.passed


def _screen_stats(
    raw: np.ndarray,
    kind: str,
    camera: CameraModel,
    config: NightlyCalibrationConfig,
    bias: MasterFrame | None,
) -> dict[str, Any]:
    strip = raw[camera.overscan_slice()]
    vec = overscan_vector(strip, config.overscan)
    img = raw[camera.image_slice()]
    stats = {
        "overscan_level": float(np.median(vec)),
        "saturated_fraction": float(np.mean(img >= camera.saturation_adu)),
    }
    if kind == "flat":
        sub = img[::4, ::4].astype(np.float64) - vec[::4, None]
        if bias is not None:
            sub = sub - bias.data[::4, ::4]
        stats["level"] = float(np.median(sub))
    return stats


@step(name="screen-frames", config=NightlyCalibrationConfig, calibration=("BIAS", "DARK"))
def screen_group(
    group: FrameGroup,
    camera: CameraModel,
    *,
    config: NightlyCalibrationConfig,
    calibration: CalibrationSet,
) -> ScreenedGroup:
    """Screen a group's raw frames (overscan level, saturation, flat level) one by one.

    Darks and flats need the bias valid at the group's start: without one no frame is
    screened and the group gets no candidate (the note says why). Flats without a dark are
    built without dark correction (noted).
    """
    assert config.validation is not None
    sel = group_selections(group, camera)
    notes: list[str] = []
    used: dict[str, dict[str, Any]] = {}
    bias = None
    if "bias" in sel:
        picked = pick_master(calibration, sel["bias"])
        if picked is None:
            notes.append(f"cannot build: no calibration file {sel['bias'].describe()}")
        else:
            bias, used["bias"] = picked
    if "dark" in sel and bias is not None:
        picked = pick_master(calibration, sel["dark"])
        if picked is None:
            notes.append("no master dark: flats not dark-corrected")
        else:
            used["dark"] = picked[1]
    screened = ScreenedGroup(group, [], {}, notes, used)
    if screened.missing_bias:
        return screened
    stack = FrameStack(group.frames)
    for i, info in enumerate(group.frames):
        try:
            raw = stack.frame(i, camera)
        except InputDataError as exc:
            screened.rejected[info.path.name] = str(exc)
            continue
        stats = _screen_stats(raw, group.kind, camera, config, bias)
        reason = screen_frame(stats, group.kind, config.validation.sanity)
        if reason:
            screened.rejected[info.path.name] = reason
        else:
            screened.good.append(info)
    return screened


@step(name="build-master", config=NightlyCalibrationConfig, calibration=("BIAS", "DARK"))
def build_candidate(
    screened: ScreenedGroup,
    camera: CameraModel,
    *,
    config: NightlyCalibrationConfig,
    calibration: CalibrationSet,
) -> Candidate:
    """Combine a group's usable frames into a candidate master (none if too few remain).

    Darks are built with the bias master, flats with the bias and (if any) dark masters
    valid at the group's start.
    """
    group = screened.group
    cand = Candidate(screened, None)
    min_frames = int(config.min_frames or 5)
    if screened.missing_bias:
        return cand  # the screening note says which master is missing
    if len(screened.good) < min_frames:
        n = len(screened.good)
        cand.notes.append(f"only {n} usable frames (< {min_frames}); no candidate built")
        cand.checks.append(Check(1, "n_frames", float(n), f">= {min_frames}", False))
        return cand
    sel = group_selections(group, camera)
    frames = FrameStack(screened.good)
    if group.kind == "bias":
        cand.master = build_master_bias(
            frames, camera, overscan=config.overscan, combine=config.combine
        )
        return cand
    picked_bias = pick_master(calibration, sel["bias"])
    assert picked_bias is not None  # screening found it
    bias = picked_bias[0]
    if group.kind == "dark":
        cand.master = build_master_dark(
            frames,
            camera,
            bias,
            overscan=config.overscan,
            combine=config.combine,
            temperature_scaling=bool(config.temperature_scaling),
        )
    else:
        picked_dark = pick_master(calibration, sel["dark"])
        cand.master = build_master_flat(
            frames,
            camera,
            bias,
            None if picked_dark is None else picked_dark[0],
            overscan=config.overscan,
            combine=config.combine,
            temperature_scaling=bool(config.temperature_scaling),
        )
    return cand


def empty_report(group: FrameGroup, night: str) -> QCReport:
    """Return a group's QC report before any figure is measured (filled in by validation)."""
    return QCReport(
        night=night,
        camera=group.camera,
        kind=CODENAMES[group.kind],
        filter=group.filter,
        group=group.key,
        n_frames=len(group.frames),
        level=None,
        noise=None,
        fraction=None,
    )


def _boundaries(group: FrameGroup, config: NightlyCalibrationConfig) -> dict[str, Any]:
    """CALDB boundaries of a group's master: temperature range and exposure of darks."""
    out: dict[str, Any] = {}
    if group.kind == "dark" and np.isfinite(group.temperature):
        tol = float(config.dark_temperature_tolerance_c or 1.0)
        out["CCDTEMP"] = (
            round(group.temperature - tol, 3),
            round(group.temperature + tol, 3),
            "C",
        )
        if group.exptime > 0:
            out["EXPTIME"] = float(group.exptime)
    return out


@step(
    name="validate-master",
    config=NightlyCalibrationConfig,
    calibration=("BIAS", "DARK", "FLAT"),
    outputs=("MASTER", "QC", "QCJSON"),
)
def validate_candidate(
    candidate: Candidate,
    camera: CameraModel,
    night: str,
    *,
    config: NightlyCalibrationConfig,
    calibration: CalibrationSet,
) -> ValidatedCandidate:
    """Validate a candidate in two steps (sanity, comparison with the current master).

    Returns the verdict with the candidate master (``MASTER``, its ``QCPASS`` keyword says
    whether it passed) and its QC reports (``QC`` FITS, ``QCJSON``) as products. Without a
    current master (the first night) the comparison is skipped and noted.
    """
    assert config.validation is not None
    screened = candidate.screened
    group = screened.group
    report = empty_report(group, night)
    report.notes.extend(screened.notes)
    report.notes.extend(candidate.notes)
    report.rejected_frames = dict(screened.rejected)
    report.checks.extend(candidate.checks)
    if candidate.checks:
        report.n_frames = len(screened.good)
    used = dict(screened.used)
    diff_sigma = None
    master = candidate.master
    if master is not None:
        report.n_frames = len(screened.good)
        report.level, report.noise = qc_level_noise(master, camera)
        report.checks.extend(sanity_checks(master, camera, config.validation.sanity))
        picked = pick_master(calibration, group_selections(group, camera)["current"])
        if picked is None:
            report.notes.append("no current master: comparison step skipped (first master)")
        else:
            current, used["current"] = picked
            checks, diff_sigma, frac = compare_with_current(
                master, current, config.validation.comparison
            )
            report.checks.extend(checks)
            report.fraction = frac
            report.compared_with = used["current"].get("path")
    instrument = group.product_instrument
    if master is not None:
        # the candidate's file, named once the catalogue has published it
        report.candidate = link_name("MASTER", instrument)
    inputs = [str(f.path) for f in screened.good]
    products = candidate_products(
        report, master, diff_sigma, instrument=instrument, night=night, inputs=inputs, used=used
    )
    return ValidatedCandidate(
        group=group,
        report=report,
        valid_from=group.start.isoformat(),
        boundaries=_boundaries(group, config),
        instrument=instrument,
        products=products,
        inputs=inputs,
    )
