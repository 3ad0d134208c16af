"""The night's calibration frames: find them by header, group them, refuse small groups.

What the nightly flow does before its steps run (header reads only, no pixels): a night is
named by the date of its evening; its frames are grouped as the camera definition says
(camera, binning, filter for flats, temperature and exposure for darks), each group making
one candidate master.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.ccd_frames import FRAME_PATTERNS, RawFrameInfo, read_frame_info
from svomflow.tasks.masters.config import NightlyCalibrationConfig

__all__ = [
    "FrameGroup",
    "ScanResult",
    "group_frames",
    "night_window",
    "refuse_small_groups",
    "scan_night",
]


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

    Frames may be plain FITS, gzip'd (``.fits.gz``) or fpack'd (``.fits.fz``). Unreadable
    files and the camera's frames of the night whose exposure type is none of the camera's
    are listed in ``skipped`` with the reason; other cameras' frames are left out.
    """
    root = Path(raw_dir)
    if not root.is_dir():
        raise InputDataError(f"raw directory {root} does not exist")
    t0, t1 = night_window(night, config.night_start_utc_hour)
    wanted = {camera.exposure_types[t]: t for t in config.types if t in camera.exposure_types}
    known = sorted(set(camera.exposure_types.values()))
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
        if not t0 <= info.date_obs < t1:
            continue
        if info.exposure_type not in known:
            # this camera's frame of the night, of no type the camera has: a damaged header
            # (EXPTYPE = -1e300, corpus calib-096) must not vanish from the night unlisted
            skipped[str(p)] = (
                f"exposure type {info.exposure_type!r} is none of the camera's ({', '.join(known)})"
            )
            continue
        if info.exposure_type not in wanted:
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

    @property
    def product_instrument(self) -> str:
        """Instrument code of the group's products: the camera, then what sets the group apart.

        ``DDRAGO-B-dark-1x1-m100p0C-60s``: a night has several candidates of one type (two
        filters, two exposures), each a product of its own.
        """
        parts = self.key.split("_")
        return "-".join([self.camera, parts[0], *parts[2:]])


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
