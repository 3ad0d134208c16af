"""Validation of candidate master calibrations, QC reports and the QC history.

Two steps, as the telescope team does it (SCIENCE.md §6):

1. availability and sanity: enough frames, bias level, noise, dark current, flat level,
   saturation;
2. comparison with the current master: the fraction of pixels whose difference exceeds
   ``sigma`` times its error (BANZAI flags more than 5 % at 6 sigma), plus a level-shift and
   a noise cut.

Every threshold is a field of :class:`ValidationConfig`; the camera definition supplies the
defaults (``calibration.validation``). The QC history (one row per candidate and night, kept
across nights) is merged here and drawn as figures; publishing is the catalogue's job.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.catalogue import FigureModel
from svomflow.products.ccd_masters import MasterFrame
from svomflow.tasks.ccd.master_builders import robust_std

__all__ = [
    "Check",
    "ComparisonCuts",
    "QCReport",
    "SanityCuts",
    "ValidationConfig",
    "compare_with_current",
    "history_row",
    "merge_qc_history",
    "qc_history_figures",
    "qc_history_hdus",
    "qc_level_noise",
    "sanity_checks",
    "screen_frame",
]


class SanityCuts(StepConfig):
    """Step 1 thresholds (availability and sanity)."""

    min_frames: int = Field(5, ge=1, description="Frames needed to build a master (BANZAI: 5)")
    bias_level_range_adu: tuple[float, float] = Field(
        (800.0, 1200.0), description="[adu] allowed raw bias (overscan) level of every frame"
    )
    bias_max_noise_adu: float = Field(8.0, gt=0, description="[adu] maximum single-frame noise")
    dark_max_current_e_per_s: float = Field(
        0.05, gt=0, description="[e-/s] maximum median dark current of a master dark"
    )
    flat_level_range_adu: tuple[float, float] = Field(
        (5000.0, 45000.0), description="[adu] allowed median level of every flat frame"
    )
    max_saturated_fraction: float = Field(
        0.001, ge=0, description="Maximum fraction of saturated pixels in any frame"
    )
    max_empty_fraction: float = Field(
        0.001, ge=0, description="Maximum fraction of master pixels with no frame left"
    )


class ComparisonCuts(StepConfig):
    """Step 2 thresholds (comparison with the current master)."""

    sigma: float = Field(6.0, gt=0, description="A pixel differs if |diff| > sigma x its error")
    max_fraction: float = Field(
        0.05, ge=0, le=1, description="Maximum fraction of differing pixels (BANZAI: 5 %)"
    )
    max_level_shift_sigma: float = Field(
        3.0, gt=0, description="Maximum |median difference| in units of the median pixel error"
    )
    max_noise_ratio: float = Field(
        1.5,
        gt=0,
        description="Maximum ratio of the scatter of the difference to its expected error",
    )


class ValidationConfig(StepConfig):
    """Both validation steps."""

    sanity: SanityCuts = Field(default_factory=SanityCuts)
    comparison: ComparisonCuts = Field(default_factory=ComparisonCuts)

    @classmethod
    def from_camera(cls, camera: CameraModel) -> ValidationConfig:
        """Defaults from the camera definition's ``calibration`` section."""
        cal = camera.calibration
        v = dict(cal.get("validation", {}))
        sanity = {
            k: v[k]
            for k in (
                "bias_level_range_adu",
                "bias_max_noise_adu",
                "dark_max_current_e_per_s",
                "flat_level_range_adu",
                "max_saturated_fraction",
            )
            if k in v
        }
        if "min_frames" in cal:
            sanity["min_frames"] = cal["min_frames"]
        comp = {}
        if "comparison_sigma" in v:
            comp["sigma"] = v["comparison_sigma"]
        if "comparison_max_fraction" in v:
            comp["max_fraction"] = v["comparison_max_fraction"]
        return cls(sanity=SanityCuts(**sanity), comparison=ComparisonCuts(**comp))


@dataclass
class Check:
    """One validation check: its value, its limit and the verdict."""

    step: int
    name: str
    value: float | None
    limit: str
    passed: bool

    def describe(self) -> str:
        """Return a one-line description."""
        v = "n/a" if self.value is None else f"{self.value:.6g}"
        return (
            f"step {self.step} {self.name} = {v} ({self.limit}): {'ok' if self.passed else 'FAIL'}"
        )


@dataclass
class QCReport:
    """The verdict on one candidate master and everything that led to it."""

    night: str
    camera: str
    kind: str
    filter: str
    group: str
    n_frames: int
    level: float | None
    noise: float | None
    fraction: float | None
    checks: list[Check] = field(default_factory=list)
    rejected_frames: dict[str, str] = field(default_factory=dict)
    compared_with: str | None = None
    candidate: str | None = None
    promoted_entry: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check passed (and there was a candidate at all)."""
        return self.candidate is not None and all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        """Descriptions of the failed checks (and notes when there was no candidate)."""
        out = [c.describe() for c in self.checks if not c.passed]
        if self.candidate is None:
            out.extend(self.notes)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        d = asdict(self)
        d["passed"] = self.passed
        d["reasons"] = self.reasons
        return d

    def hdus(self, diff_sigma: np.ndarray | None = None) -> list[Any]:
        """Return the FITS report: a summary header, and the DIFFSIG map when compared."""
        prim = fits.PrimaryHDU()
        h = prim.header
        h["NIGHT"] = self.night
        h["INSTRUME"] = self.camera
        h["OBSTYPE"] = self.kind
        h["FILTER"] = self.filter
        h["NCOMBINE"] = self.n_frames
        h["QCPASS"] = (self.passed, "candidate passed validation")
        for key, val in (
            ("QCLEVEL", self.level),
            ("QCNOISE", self.noise),
            ("QCFRAC", self.fraction),
        ):
            if val is not None and np.isfinite(val):
                h[key] = float(val)
        for i, c in enumerate(self.checks):
            h[f"CHK{i + 1:03d}"] = (c.describe()[:68], "")
        hdus: list[Any] = [prim]
        if diff_sigma is not None:
            hdus.append(fits.ImageHDU(diff_sigma.astype(np.float32), name="DIFFSIG"))
        return hdus


def screen_frame(stats: dict[str, Any], kind: str, cuts: SanityCuts) -> str | None:
    """Return why a raw calibration frame is unusable, or None if it is fine.

    ``stats`` holds ``overscan_level`` (adu), ``saturated_fraction`` and, for flats,
    ``level`` (adu above bias).
    """
    lo, hi = cuts.bias_level_range_adu
    lvl = stats["overscan_level"]
    if not lo <= lvl <= hi:
        return f"bias level {lvl:.1f} adu outside [{lo}, {hi}]"
    sat = stats["saturated_fraction"]
    if sat > cuts.max_saturated_fraction:
        return f"saturated fraction {sat:.4g} > {cuts.max_saturated_fraction}"
    if kind == "flat":
        flo, fhi = cuts.flat_level_range_adu
        f = stats["level"]
        if not flo <= f <= fhi:
            return f"flat level {f:.0f} adu outside [{flo}, {fhi}]"
    return None


def qc_level_noise(master: MasterFrame, camera: CameraModel) -> tuple[float, float]:
    """Return the (level, noise) recorded in the QC history for a master.

    Bias: median raw bias level (adu) and single-frame noise (adu). Dark: median dark
    current and single-frame noise (e-/s). Flat: median input level (adu) and the
    pixel-to-pixel scatter of the master (relative).
    """
    m = master.meta
    if master.kind == "BIAS":
        level = (
            float(np.median([f["overscan_level"] for f in master.frames]))
            if master.frames
            else float("nan")
        )
        return level, float(m.get("FRMNOISE", np.nan))
    if master.kind == "DARK":
        return float(m.get("MEDLEVEL", np.nan)) * camera.gain, float(
            m.get("FRMNOISE", np.nan)
        ) * camera.gain
    return float(m.get("MEDSCALE", np.nan)), robust_std(master.data[::2, ::2])


def sanity_checks(master: MasterFrame, camera: CameraModel, cuts: SanityCuts) -> list[Check]:
    """Step 1: checks on a candidate master and its inputs."""
    n = int(master.meta.get("NCOMBINE", len(master.frames)))
    checks = [Check(1, "n_frames", float(n), f">= {cuts.min_frames}", n >= cuts.min_frames)]
    sat = max((f["saturated_fraction"] for f in master.frames), default=0.0)
    checks.append(
        Check(
            1,
            "saturated_fraction",
            sat,
            f"<= {cuts.max_saturated_fraction}",
            sat <= cuts.max_saturated_fraction,
        )
    )
    empty = float(np.mean(master.count == 0))
    checks.append(
        Check(
            1,
            "empty_fraction",
            empty,
            f"<= {cuts.max_empty_fraction}",
            empty <= cuts.max_empty_fraction,
        )
    )
    level, noise = qc_level_noise(master, camera)
    if master.kind == "BIAS":
        lo, hi = cuts.bias_level_range_adu
        checks.append(Check(1, "bias_level_adu", level, f"in [{lo}, {hi}]", lo <= level <= hi))
        checks.append(
            Check(
                1,
                "frame_noise_adu",
                noise,
                f"<= {cuts.bias_max_noise_adu}",
                noise <= cuts.bias_max_noise_adu,
            )
        )
    elif master.kind == "DARK":
        lim = cuts.dark_max_current_e_per_s
        checks.append(Check(1, "dark_current_e_per_s", level, f"<= {lim}", level <= lim))
    elif master.kind == "FLAT":
        lo, hi = cuts.flat_level_range_adu
        checks.append(Check(1, "flat_level_adu", level, f"in [{lo}, {hi}]", lo <= level <= hi))
    return checks


def compare_with_current(
    candidate: MasterFrame, current: MasterFrame, cuts: ComparisonCuts
) -> tuple[list[Check], np.ndarray, float]:
    """Step 2: compare a candidate with the current master.

    Returns
    -------
    checks, diff_sigma, fraction
        The checks, the map of (candidate - current) / error, and the fraction of pixels
        beyond ``cuts.sigma``.
    """
    if candidate.data.shape != current.data.shape:
        return (
            [Check(2, "shape", None, f"== {current.data.shape}", False)],
            np.zeros_like(candidate.data),
            1.0,
        )
    diff = candidate.data.astype(np.float64) - current.data
    err = np.hypot(candidate.error.astype(np.float64), current.error)
    ok = np.isfinite(diff) & (err > 0)
    z = np.zeros_like(diff)
    z[ok] = diff[ok] / err[ok]
    frac = float(np.mean(np.abs(z[ok]) > cuts.sigma)) if ok.any() else 1.0
    med_err = float(np.median(err[ok])) if ok.any() else float("nan")
    shift = float(np.median(diff[ok]) / med_err) if ok.any() else float("inf")
    noise_ratio = robust_std(z[ok]) if ok.any() else float("inf")
    checks = [
        Check(
            2,
            f"fraction_beyond_{cuts.sigma:g}sigma",
            frac,
            f"<= {cuts.max_fraction}",
            frac <= cuts.max_fraction,
        ),
        Check(
            2,
            "level_shift_sigma",
            shift,
            f"|.| <= {cuts.max_level_shift_sigma}",
            abs(shift) <= cuts.max_level_shift_sigma,
        ),
        Check(
            2,
            "noise_ratio",
            noise_ratio,
            f"<= {cuts.max_noise_ratio}",
            noise_ratio <= cuts.max_noise_ratio,
        ),
    ]
    return checks, z.astype(np.float32), frac


_HISTORY_COLUMNS = (
    ("NIGHT", "U10"),
    ("DATE_OBS", "U23"),
    ("CAMERA", "U32"),
    ("TYPE", "U8"),
    ("FILTER", "U16"),
    ("GROUP", "U64"),
    ("NFRAMES", "i4"),
    ("LEVEL", "f8"),
    ("NOISE", "f8"),
    ("FRACTION", "f8"),
    ("PASSED", "?"),
    ("REASON", "U160"),
)


def history_row(report: QCReport, start: _dt.datetime, reason: str | None = None) -> dict[str, Any]:
    """Return the QC history row of a candidate (or of a refused group: ``reason`` given)."""
    passed = report.passed if reason is None else False
    why = reason if reason is not None else ("; ".join(report.reasons) or "ok")
    return {
        "NIGHT": report.night,
        "DATE_OBS": start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        "CAMERA": report.camera,
        "TYPE": report.kind,
        "FILTER": report.filter,
        "GROUP": report.group,
        "NFRAMES": report.n_frames,
        "LEVEL": report.level,
        "NOISE": report.noise,
        "FRACTION": report.fraction,
        "PASSED": passed,
        "REASON": why[:160],
    }


def merge_qc_history(old: Table | None, rows: list[dict[str, Any]]) -> Table:
    """Return the QC history with ``rows`` added (a history of every night so far).

    A row whose (NIGHT, CAMERA, TYPE, GROUP) is already present replaces the old one, so a
    re-run of a night does not duplicate its history.
    """
    new = Table(
        rows=[[_value(r.get(n), t) for n, t in _HISTORY_COLUMNS] for r in rows],
        names=[n for n, _ in _HISTORY_COLUMNS],
        dtype=[t for _, t in _HISTORY_COLUMNS],
    )
    if old is not None and len(old):
        keys = {(r["NIGHT"], r["CAMERA"], r["TYPE"], r["GROUP"]) for r in new}
        keep = [
            (str(r["NIGHT"]), str(r["CAMERA"]), str(r["TYPE"]), str(r["GROUP"])) not in keys
            for r in old
        ]
        table = vstack([old[keep], new], metadata_conflicts="silent")
    else:
        table = new
    table.sort(["DATE_OBS", "CAMERA", "TYPE", "GROUP"])
    return table


def qc_history_hdus(table: Table) -> list[Any]:
    """Return the QC history as FITS HDUs (an empty primary, then the QCHIST table)."""
    hdu = fits.table_to_hdu(table)
    hdu.name = "QCHIST"
    return [fits.PrimaryHDU(), hdu]


def _value(v: Any, t: str) -> Any:
    return _blank(t) if v is None else v


def _blank(t: str) -> Any:
    return {"f8": np.nan, "i4": 0, "?": False}.get(t, "")


_WINDOWS = (("day", 1.0), ("week", 7.0), ("month", 30.0), ("quarter", 91.0))


def qc_history_figures(table: Table) -> list[tuple[tuple[str, str, str], FigureModel]]:
    """Return one figure per (camera, type, filter): level and noise over the last day/week/month/quarter.

    Passing candidates are green dots, rejected ones red crosses.
    """
    if len(table) == 0:
        return []
    times = np.array([_dt.datetime.fromisoformat(str(t)) for t in table["DATE_OBS"]])
    combos = sorted({(str(r["CAMERA"]), str(r["TYPE"]), str(r["FILTER"])) for r in table})
    out = []
    for combo in combos:
        cam, typ, filt = combo
        sel = (table["CAMERA"] == cam) & (table["TYPE"] == typ) & (table["FILTER"] == filt)
        out.append((combo, _history_figure(times[sel], table[sel], combo)))
    return out


def _history_figure(t: np.ndarray, sub: Table, combo: tuple[str, str, str]) -> FigureModel:
    cam, typ, filt = combo
    end = max(t) + _dt.timedelta(hours=12)
    passed = np.asarray(sub["PASSED"], dtype=bool)
    values = {name: np.asarray(sub[name]) for name in ("LEVEL", "NOISE")}

    def draw(fig: Any) -> None:
        axes = fig.subplots(2, 4, sharey="row", squeeze=False)
        for col, (label, days) in enumerate(_WINDOWS):
            start = end - _dt.timedelta(days=days)
            w = np.array([start <= x <= end for x in t])
            for row, name in enumerate(("LEVEL", "NOISE")):
                ax = axes[row, col]
                for mask, style, lab in (
                    (w & passed, "o", "promoted"),
                    (w & ~passed, "x", "rejected"),
                ):
                    if mask.any():
                        ax.plot(
                            t[mask],
                            values[name][mask],
                            style,
                            color="tab:green" if style == "o" else "tab:red",
                            label=lab,
                        )
                ax.set_xlim(start, end)
                ax.tick_params(axis="x", labelrotation=30, labelsize=7)
                if row == 0:
                    ax.set_title(f"last {label}")
                if col == 0:
                    ax.set_ylabel(name.lower())
        handles, labels = axes[0, 0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="upper right")
        fig.suptitle(f"QC history: {cam} {typ} filter {filt}")
        fig.tight_layout()

    return FigureModel(draw=draw, size_in=(14.0, 5.5), dpi=80)
