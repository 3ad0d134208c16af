"""Nightly master calibrations: select, group, screen, build, validate and promote.

The pure steps here are what :mod:`svomflow.flows.nightly_calibration` orchestrates:

* :func:`scan_night` finds the night's raw calibration frames by header;
* :func:`group_frames` groups them as the camera definition says (camera, binning, filter,
  plus temperature and exposure for darks) and :func:`refuse_small_groups` drops groups with
  fewer frames than configured;
* :func:`process_group` screens the frames, builds the candidate (darks and flats use the
  bias/dark masters the CALDB selects for the group's time), validates it in two steps
  against the current master, and writes the candidate and its QC report;
* :func:`promote` registers a passing candidate in the CALDB with its validity start.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import CalibrationNotFoundError, InputDataError
from svomflow.paths import safe_join
from svomflow.tasks.ccd.camera import CameraModel
from svomflow.tasks.ccd.combine import CombineConfig
from svomflow.tasks.ccd.fitsio import FRAME_PATTERNS
from svomflow.tasks.ccd.frames import RawFrameInfo, read_frame_info, read_raw
from svomflow.tasks.ccd.master_builders import (
    MasterFrame,
    build_master_bias,
    build_master_dark,
    build_master_flat,
    read_master,
)
from svomflow.tasks.ccd.overscan import OverscanConfig, overscan_vector
from svomflow.tasks.masters.qc import (
    Check,
    QCReport,
    ValidationConfig,
    compare_with_current,
    qc_level_noise,
    sanity_checks,
    screen_frame,
)

__all__ = [
    "CandidateResult",
    "FrameGroup",
    "NightlyCalibrationConfig",
    "group_frames",
    "night_window",
    "process_group",
    "promote",
    "refuse_small_groups",
    "scan_night",
    "select_master",
]

CODENAMES = {"bias": "BIAS", "dark": "DARK", "flat": "FLAT"}


class NightlyCalibrationConfig(StepConfig):
    """Configuration of the nightly master-calibration build (defaults from the camera)."""

    types: list[str] = Field(
        default_factory=lambda: ["bias", "dark", "flat"], description="Calibration types built"
    )
    night_start_utc_hour: float = Field(
        12.0, ge=0, lt=24, description="A night runs from this UTC hour to the same hour next day"
    )
    min_frames: int | None = Field(
        None, ge=1, description="Minimum frames per group (camera's calibration.min_frames)"
    )
    dark_temperature_tolerance_c: float | None = Field(
        None, gt=0, description="[deg C] darks within this of each other group together"
    )
    group_darks_by_exposure: bool = Field(True, description="One dark master per exposure time")
    temperature_scaling: bool | None = Field(
        None, description="Scale darks with the doubling law (camera default)"
    )
    overscan: OverscanConfig = Field(default_factory=OverscanConfig)
    combine: CombineConfig = Field(default_factory=CombineConfig)
    validation: ValidationConfig | None = Field(
        None, description="Validation thresholds (camera's calibration.validation by default)"
    )

    def resolved(self, camera: CameraModel) -> NightlyCalibrationConfig:
        """Return a copy with every camera-dependent default filled in."""
        cal = camera.calibration
        upd: dict[str, Any] = {}
        if self.min_frames is None:
            upd["min_frames"] = int(cal.get("min_frames", 5))
        if self.dark_temperature_tolerance_c is None:
            upd["dark_temperature_tolerance_c"] = float(
                cal.get("dark_temperature_tolerance_c", 1.0)
            )
        if self.temperature_scaling is None:
            upd["temperature_scaling"] = bool(cal.get("dark_temperature_scaling", True))
        if self.validation is None:
            upd["validation"] = ValidationConfig.from_camera(camera)
        out = self.model_copy(update=upd)
        assert out.validation is not None and out.min_frames is not None
        # The group minimum and the sanity minimum are the same number.
        out.validation.sanity.min_frames = out.min_frames
        if "combine_sigma" in cal and "combine" not in self.model_fields_set:
            out.combine = CombineConfig(
                sigma_low=float(cal["combine_sigma"]),
                sigma_high=float(cal["combine_sigma"]),
                chunk_rows=int(cal.get("combine_chunk_rows", 256)),
            )
        if "overscan_fit_order" in cal and "overscan" not in self.model_fields_set:
            out.overscan = OverscanConfig(fit_order=cal["overscan_fit_order"])
        return out


def night_window(night: str, start_hour: float = 12.0) -> tuple[_dt.datetime, _dt.datetime]:
    """Return the UTC interval of a night named by the date of its evening."""
    try:
        day = _dt.date.fromisoformat(night)
    except ValueError:
        raise InputDataError(f"night must be a date YYYY-MM-DD, got {night!r}") from None
    t0 = _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.UTC) + _dt.timedelta(
        hours=start_hour
    )
    return t0, t0 + _dt.timedelta(days=1)


@dataclass
class ScanResult:
    """Calibration frames of a night, and the files that could not be used (with reasons)."""

    frames: list[RawFrameInfo]
    skipped: dict[str, str] = field(default_factory=dict)


def scan_night(
    raw_dir: str | Path, night: str, camera: CameraModel, config: NightlyCalibrationConfig
) -> ScanResult:
    """Find the night's raw calibration frames of ``camera`` in ``raw_dir`` by their headers.

    Frames may be plain FITS, gzip'd (``.fits.gz``) or fpack'd (``.fits.fz``).
    """
    root = Path(raw_dir)
    if not root.is_dir():
        raise InputDataError(f"raw directory {root} does not exist")
    t0, t1 = night_window(night, config.night_start_utc_hour)
    wanted = {camera.exposure_types[t]: t for t in config.types if t in camera.exposure_types}
    frames: list[RawFrameInfo] = []
    skipped: dict[str, str] = {}
    for p in _frame_files(root, skipped):
        try:
            info = read_frame_info(p, camera)
        except InputDataError as exc:
            skipped[str(p)] = str(exc)
            continue
        if info.camera.upper() != camera.instrument.upper():
            continue
        if info.exposure_type not in wanted or not t0 <= info.date_obs < t1:
            continue
        frames.append(info)
    return ScanResult(frames, skipped)


def _frame_files(root: Path, skipped: dict[str, str]) -> list[Path]:
    """Frame files under ``root`` (plain, ``.gz``, ``.fz``), one per frame, sorted.

    A frame present both uncompressed and compressed (``x.fits`` and ``x.fits.fz``) is
    taken once, uncompressed, so that it is not combined twice; the copy is listed as
    skipped.
    """
    found = {q for pat in FRAME_PATTERNS for q in root.rglob(pat) if not q.name.startswith(".")}
    out = []
    for q in sorted(found):
        plain = q.with_name(q.name[:-3]) if q.name.lower().endswith((".fz", ".gz")) else q
        if plain != q and plain in found:
            skipped[str(q)] = f"same frame as {plain.name}"
            continue
        out.append(q)
    return out


@dataclass
class FrameGroup:
    """Frames that make one master."""

    kind: str
    camera: str
    binning: str
    filter: str
    temperature: float
    exptime: float
    frames: list[RawFrameInfo]

    @property
    def key(self) -> str:
        """A readable, path-safe identifier of the group."""
        parts = [self.kind, self.camera, self.binning]
        if self.kind == "flat":
            parts.append(self.filter)
        if self.kind == "dark":
            parts.append(f"{self.temperature:+.1f}C")
            if self.exptime > 0:
                parts.append(f"{self.exptime:g}s")
        return "_".join(parts).replace("+", "p").replace("-", "m")

    @property
    def start(self) -> _dt.datetime:
        """Start of the first frame (the candidate's validity start)."""
        return min(f.date_obs for f in self.frames)


def _temperature_clusters(frames: list[RawFrameInfo], tol: float) -> list[list[RawFrameInfo]]:
    ordered = sorted(frames, key=lambda f: (np.nan_to_num(f.temperature, nan=1e9), f.date_obs))
    clusters: list[list[RawFrameInfo]] = []
    for f in ordered:
        if clusters and abs(f.temperature - clusters[-1][0].temperature) <= tol:
            clusters[-1].append(f)
        else:
            clusters.append([f])
    return clusters


def group_frames(
    frames: Sequence[RawFrameInfo], camera: CameraModel, config: NightlyCalibrationConfig
) -> list[FrameGroup]:
    """Group calibration frames by type, camera, binning and filter (flats), temperature and exposure (darks)."""
    by_type = {v: k for k, v in camera.exposure_types.items()}
    tol = float(config.dark_temperature_tolerance_c or 1.0)
    buckets: dict[tuple[Any, ...], list[RawFrameInfo]] = {}
    for f in frames:
        kind = by_type[f.exposure_type]
        filt = f.filter if kind == "flat" else "NONE"
        exp = f.exptime if (kind == "dark" and config.group_darks_by_exposure) else 0.0
        buckets.setdefault((kind, f.camera, f.binning, filt, exp), []).append(f)
    groups: list[FrameGroup] = []
    for (kind, cam, binning, filt, exp), members in sorted(
        buckets.items(), key=lambda kv: str(kv[0])
    ):
        clusters = _temperature_clusters(members, tol) if kind == "dark" else [members]
        for cl in clusters:
            temps = np.array([m.temperature for m in cl], dtype=float)
            t = float(np.nanmean(temps)) if np.isfinite(temps).any() else float("nan")
            groups.append(
                FrameGroup(kind, cam, binning, filt, t, exp, sorted(cl, key=lambda m: m.date_obs))
            )
    order = {"bias": 0, "dark": 1, "flat": 2}
    return sorted(groups, key=lambda g: (order.get(g.kind, 9), g.key))


def refuse_small_groups(
    groups: Sequence[FrameGroup], min_frames: int
) -> tuple[list[FrameGroup], list[tuple[FrameGroup, str]]]:
    """Split groups into those with enough frames and the refused ones (with the reason)."""
    ok, refused = [], []
    for g in groups:
        if len(g.frames) < min_frames:
            refused.append((g, f"{len(g.frames)} frames < minimum {min_frames}"))
        else:
            ok.append(g)
    return ok, refused


def select_master(
    caldb: Any,
    camera: CameraModel,
    kind: str,
    time: _dt.datetime,
    *,
    filter: str = "NONE",
    temperature: float | None = None,
    exptime: float | None = None,
) -> Any:
    """Select the master of ``kind`` valid at ``time`` from the CALDB (HEASARC rules).

    Darks are selected within their temperature boundary; the exposure boundary is tried
    first and dropped when no dark of that exposure exists (darks are stored as rates).
    """
    code = CODENAMES[kind]
    kwargs: dict[str, Any] = {
        "instrument": camera.instrument,
        "telescope": camera.telescope,
        "time": time,
    }
    if kind == "flat":
        kwargs["filter"] = filter
    if kind == "dark" and temperature is not None and np.isfinite(temperature):
        kwargs["CCDTEMP"] = float(temperature)
        if exptime is not None:
            try:
                return caldb.select(code, **kwargs, EXPTIME=float(exptime))
            except CalibrationNotFoundError:
                pass
    return caldb.select(code, **kwargs)


@dataclass
class CandidateResult:
    """Outcome of one group: the candidate, its QC report and where they were written."""

    group: str
    kind: str
    filter: str
    report: QCReport
    candidate_path: str | None
    report_json: str
    report_fits: str | None
    valid_from: str
    boundaries: dict[str, Any]
    inputs: list[str] = field(default_factory=list)
    calibration_used: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the candidate may become the master."""
        return self.report.passed


def _screen(
    group: FrameGroup,
    camera: CameraModel,
    config: NightlyCalibrationConfig,
    bias: MasterFrame | None,
) -> tuple[list[RawFrameInfo], dict[str, str]]:
    assert config.validation is not None
    good, rejected = [], {}
    for info in group.frames:
        try:
            raw, _ = read_raw(info.path, camera)
        except InputDataError as exc:
            rejected[info.path.name] = str(exc)
            continue
        strip = raw[camera.overscan_slice()]
        vec = overscan_vector(strip, config.overscan)
        img = raw[camera.image_slice()]
        stats = {
            "overscan_level": float(np.median(vec)),
            "saturated_fraction": float(np.mean(img >= camera.saturation_adu)),
        }
        if group.kind == "flat":
            sub = img[::4, ::4].astype(np.float64) - vec[::4, None]
            if bias is not None:
                sub = sub - bias.data[::4, ::4]
            stats["level"] = float(np.median(sub))
        reason = screen_frame(stats, group.kind, config.validation.sanity)
        if reason:
            rejected[info.path.name] = reason
        else:
            good.append(info)
    return good, rejected


def process_group(
    group: FrameGroup,
    camera: CameraModel,
    config: NightlyCalibrationConfig,
    caldb: Any,
    out_dir: str | Path,
    night: str,
) -> CandidateResult:
    """Screen, build, validate and write the candidate master of one group.

    Darks and flats are built with the bias (and dark) masters that the CALDB selects for
    the group's start time. The candidate is compared with the master the CALDB selects
    just before the group's start (the current one). Files are written under
    ``out_dir/<night>/<group>/``: ``candidate_<group>.fits``, ``qc_<group>.json`` and
    ``qc_<group>.fits``.
    """
    config = config if config.validation is not None else config.resolved(camera)
    assert config.validation is not None
    gdir = safe_join(out_dir, night, group.key)
    gdir.mkdir(parents=True, exist_ok=True)
    report = QCReport(
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
    before = group.start - _dt.timedelta(seconds=1)
    bias = dark = None
    used: dict[str, dict[str, Any]] = {}
    try:
        if group.kind in {"dark", "flat"}:
            e_bias = select_master(caldb, camera, "bias", group.start)
            used["bias"] = _entry_ref(e_bias)
            bias = read_master(e_bias.path)
        if group.kind == "flat":
            try:
                e_dark = select_master(
                    caldb, camera, "dark", group.start, temperature=group.temperature
                )
                used["dark"] = _entry_ref(e_dark)
                dark = read_master(e_dark.path)
            except CalibrationNotFoundError:
                report.notes.append("no master dark: flats not dark-corrected")
    except CalibrationNotFoundError as exc:
        report.notes.append(f"cannot build: {exc}")
    needs_bias = group.kind != "bias"
    if needs_bias and bias is None:
        good, rejected = [], {}
    else:
        good, rejected = _screen(group, camera, config, bias)
    report.rejected_frames = rejected
    cand_path: str | None = None
    diff_sigma = None
    boundaries: dict[str, Any] = {}
    if group.kind == "dark" and np.isfinite(group.temperature):
        tol = float(config.dark_temperature_tolerance_c or 1.0)
        boundaries["CCDTEMP"] = (
            round(group.temperature - tol, 3),
            round(group.temperature + tol, 3),
            "C",
        )
        if group.exptime > 0:
            boundaries["EXPTIME"] = float(group.exptime)
    min_frames = int(config.min_frames or 5)
    if needs_bias and bias is None:
        pass  # the note says which master is missing
    elif len(good) < min_frames:
        report.n_frames = len(good)
        report.notes.append(f"only {len(good)} usable frames (< {min_frames}); no candidate built")
        report.checks.append(Check(1, "n_frames", float(len(good)), f">= {min_frames}", False))
    else:
        paths = [f.path for f in good]
        if group.kind == "bias":
            cand = build_master_bias(
                paths, camera, overscan=config.overscan, combine=config.combine
            )
        elif group.kind == "dark":
            assert bias is not None
            cand = build_master_dark(
                paths,
                camera,
                bias,
                overscan=config.overscan,
                combine=config.combine,
                temperature_scaling=bool(config.temperature_scaling),
            )
        else:
            assert bias is not None
            cand = build_master_flat(
                paths,
                camera,
                bias,
                dark,
                overscan=config.overscan,
                combine=config.combine,
                temperature_scaling=bool(config.temperature_scaling),
            )
        report.n_frames = len(good)
        report.level, report.noise = qc_level_noise(cand, camera)
        report.checks.extend(sanity_checks(cand, camera, config.validation.sanity))
        try:
            current_entry = select_master(
                caldb,
                camera,
                group.kind,
                before,
                filter=group.filter,
                temperature=group.temperature,
                exptime=group.exptime or None,
            )
        except CalibrationNotFoundError:
            current_entry = None
            report.notes.append("no current master: comparison step skipped (first master)")
        if current_entry is not None:
            used["current"] = _entry_ref(current_entry)
            current = read_master(current_entry.path)
            checks, diff_sigma, frac = compare_with_current(
                cand, current, config.validation.comparison
            )
            report.checks.extend(checks)
            report.fraction = frac
            report.compared_with = str(current_entry.path)
        extra = [
            ("NIGHT", night, "night of the input frames"),
            ("QCPASS", report.passed, "passed validation"),
        ]
        cpath = gdir / f"candidate_{group.key}.fits"
        cand.write(cpath, extra=extra)
        cand_path = str(cpath)
        report.candidate = cand_path
    rj = gdir / f"qc_{group.key}.json"
    rf = gdir / f"qc_{group.key}.fits"
    report.write(rj, rf, diff_sigma)
    return CandidateResult(
        group=group.key,
        kind=group.kind,
        filter=group.filter,
        report=report,
        candidate_path=cand_path,
        report_json=str(rj),
        report_fits=str(rf),
        valid_from=group.start.isoformat(),
        boundaries=boundaries,
        inputs=[str(f.path) for f in good],
        calibration_used=used,
    )


def _entry_ref(entry: Any) -> dict[str, Any]:
    """Return what a product's provenance records of a CALDB entry."""
    return {
        "codename": str(entry.codename),
        "path": str(entry.path),
        "sha256": entry.sha256,
        "index_version": entry.index_version,
    }


def promote(result: CandidateResult, caldb: Any, camera: CameraModel) -> Any:
    """Register a passing candidate in the CALDB (valid from its first frame) and return the entry.

    Registering the same file again (a re-run of the night) returns the existing entry.
    """
    if not result.passed or result.candidate_path is None:
        raise ValueError(f"candidate {result.group} did not pass validation; it cannot be promoted")
    digest = hashlib.sha256(Path(result.candidate_path).read_bytes()).hexdigest()
    code = CODENAMES[result.kind]
    for e in caldb.list(instrument=camera.instrument, codename=code):
        if e.sha256 == digest:
            return e
    return caldb.register(
        result.candidate_path,
        telescope=camera.telescope,
        instrument=camera.instrument,
        codename=code,
        filter=result.filter if result.kind == "flat" else "NONE",
        boundaries=result.boundaries,
        valid_from=result.valid_from,
        quality=0,
        description=f"master {result.kind} {result.group} from night {result.report.night}",
    )
