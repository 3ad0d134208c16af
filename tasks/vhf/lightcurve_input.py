"""Durations from a binned OGIP light curve (RATE or COUNTS) instead of an event list.

What ``svomflow vhf --events LC.fits`` runs when the file is a light curve: the curve is
read with its GTIs (:func:`svomflow.products.ogip.read_lightcurve`), turned into counts per
bin without rounding (:func:`svomflow.tasks.timing.binning.from_lightcurve`: Poisson for
integer counts, Gaussian from the ERROR column otherwise, e.g. a mask-weighted,
background-subtracted coded-mask curve), its background fitted (a polynomial on the
pre- and post-burst intervals, which for a background-subtracted curve is close to zero)
and T90/T50 measured with the same Koshut-plateau method as on events. A light curve has
no energies per photon, no detectors and no positions: only the timing products are made.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from astropy.io import fits
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.products.ogip import MALFORMED_FILE_ERRORS, read_lightcurve
from svomflow.tasks.timing.background import BackgroundConfig, BackgroundModel, fit_background
from svomflow.tasks.timing.binning import BinnedCounts, from_lightcurve
from svomflow.tasks.timing.duration import DurationConfig, Durations, durations
from svomflow.tasks.timing.t90_status import T90Status, t90_status

__all__ = [
    "LightCurveInputConfig",
    "LightCurveTiming",
    "analyse_lightcurve",
    "is_lightcurve_file",
    "lightcurve_hdu_index",
    "summary",
    "summary_lines",
]


class LightCurveInputConfig(StepConfig):
    """How a binned light curve given as input is analysed."""

    statistic: Literal["auto", "poisson", "gaussian"] = Field(
        "auto",
        description="auto: Poisson for integer counts, Gaussian (from ERROR) otherwise",
    )
    background: BackgroundConfig = Field(default_factory=BackgroundConfig)
    durations: DurationConfig = Field(default_factory=DurationConfig)


@dataclass(frozen=True)
class LightCurveTiming:
    """T90/T50 of one light-curve file, with what they were measured on.

    ``t0`` is the reference time (mission s) of the times in ``bins`` and ``durations``;
    ``statistic`` is ``poisson`` or ``gaussian``; ``durations`` is None when ``status``
    says why no T90 was reported; ``peak_rate`` the highest background-subtracted bin
    rate (counts/s) and its error.
    """

    path: str
    t0: float
    statistic: str
    bins: BinnedCounts
    background: BackgroundModel
    durations: Durations | None
    status: T90Status
    peak_rate: tuple[float, float, float]
    band_kev: tuple[float, float] | None
    flags: tuple[str, ...] = field(default_factory=tuple)


def lightcurve_hdu_index(hdul: fits.HDUList) -> int | None:
    """Return the index of the first light-curve table (None if none).

    A light curve has a TIME column and a scalar RATE or COUNTS column; a PHA type II
    spectrum (a COUNTS vector per row, ``HDUCLAS1 = SPECTRUM``) is not one.
    """
    for i, hdu in enumerate(hdul):
        if not isinstance(hdu, fits.BinTableHDU):
            continue
        if str(hdu.header.get("HDUCLAS1", "")).strip().upper() == "SPECTRUM":
            continue
        cols = {c.name.upper(): c for c in hdu.columns}
        if "TIME" not in cols:
            continue
        for name in ("RATE", "COUNTS"):
            if name in cols and cols[name].format.repeat == 1:
                return i
    return None


def is_lightcurve_file(path: str | Path) -> bool:
    """Whether ``path`` is a FITS light curve (a TIME + RATE/COUNTS table), not an event list."""
    try:
        # a truncated or odd file is the event reader's to report, with its own message
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                return lightcurve_hdu_index(hdul) is not None
    except MALFORMED_FILE_ERRORS:  # a KeyError on an absurd NAXIS was a traceback (vhf-039)
        return False


def _reference_time(path: str | Path, t0: float | None, first_bin: float) -> float:
    """``t0`` if given, else the header's TRIGTIME, else the start of the first bin (s)."""
    if t0 is not None:
        return float(t0)
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if "TRIGTIME" in hdu.header:
                return float(hdu.header["TRIGTIME"])
    return float(first_bin)


def _peak(bins: BinnedCounts, bkg: BackgroundModel) -> tuple[float, float, float]:
    """Return (time, rate, error) of the highest background-subtracted bin rate."""
    mu, var_model = bkg.counts(bins)
    var = bins.variance if bins.variance is not None else np.maximum(bins.counts, 1.0)
    net = (bins.counts - mu) / bins.exposure
    i = int(np.argmax(net))
    return (
        float(bins.centre[i]),
        float(net[i]),
        float(np.sqrt(var[i] + var_model[i]) / bins.exposure[i]),
    )


def analyse_lightcurve(
    path: str | Path, config: LightCurveInputConfig | None = None, *, t0: float | None = None
) -> LightCurveTiming:
    """Measure T90/T50 on a binned OGIP light curve (module docstring).

    Raises
    ------
    InputDataError
        Not a light curve, unreadable, counts that cannot carry the statistic asked for, or
        no burst found above the background.
    """
    cfg = config or LightCurveInputConfig()
    with fits.open(path, memmap=False) as hdul:
        idx = lightcurve_hdu_index(hdul)
    if idx is None:
        raise InputDataError(f"{path}: no light-curve table (TIME with RATE or COUNTS)")
    lc = read_lightcurve(path, idx)
    raw = from_lightcurve(lc, statistic=cfg.statistic)
    ref = _reference_time(path, t0, float(lc.time[0]) + lc.timezero)
    shift = lc.timezero - ref
    bins = BinnedCounts(raw.lo + shift, raw.hi + shift, raw.counts, raw.exposure, raw.variance)
    flags: list[str] = []
    try:
        bkg = fit_background(bins, cfg.background)
    except InputDataError as exc:
        raise InputDataError(f"{path}: {exc}") from None
    dur: Durations | None = None
    why = None
    try:
        dur = durations(bins, bkg, cfg.durations, band_kev=lc.band_kev)
        flags.extend(dur.flags)
    except InputDataError as exc:
        why = str(exc)
    flags.extend(bkg.flags)
    dt = float(np.median(bins.width))
    span = (float(bins.lo[0]), float(bins.hi[-1]))
    status = t90_status(bkg, span, dt, cfg.durations, why, flags)
    if not status.measured:
        dur = None
    return LightCurveTiming(
        path=str(path),
        t0=ref,
        statistic="gaussian" if bins.gaussian else "poisson",
        bins=bins,
        background=bkg,
        durations=dur,
        status=status,
        peak_rate=_peak(bins, bkg),
        band_kev=lc.band_kev,
        flags=tuple(flags),
    )


def summary(result: LightCurveTiming) -> dict[str, object]:
    """Return the JSON-able summary printed by ``svomflow vhf`` for a light-curve input."""
    d = result.durations
    t, rate, err = result.peak_rate
    return {
        "file": result.path,
        "t0": result.t0,
        "statistic": result.statistic,
        "band_kev": list(result.band_kev) if result.band_kev else None,
        "t90": d.t90 if d else None,
        "t90_err": d.t90_err if d else None,
        "t90_start": d.t90_start if d else None,
        "t50": d.t50 if d else None,
        "t50_err": d.t50_err if d else None,
        "background_order": result.background.order,
        "background_intervals": result.background.intervals.tolist(),
        "t90_quality": result.status.quality,
        "t90_reason": result.status.reason,
        "peak_rate": {"time": t, "rate": rate, "rate_err": err},
        "flags": list(result.flags),
    }


def summary_lines(result: LightCurveTiming) -> list[str]:
    """Return the human-readable lines of :func:`summary`."""
    s = summary(result)
    band = result.band_kev
    lines = [
        f"light curve {Path(result.path).name}: T0 {result.t0:.3f} (mission s), "
        f"{s['statistic']} statistics" + (f", {band[0]:g}-{band[1]:g} keV" if band else "")
    ]
    d = result.durations
    if d is not None:
        lines.append(
            f"T90 {d.t90:.3f} ± {d.t90_err:.3f} s from {d.t90_start:.3f} s; "
            f"T50 {d.t50:.3f} ± {d.t50_err:.3f} s"
        )
    else:
        lines.append(f"no T90 ({result.status.quality}): {result.status.reason}")
    t, rate, err = result.peak_rate
    lines.append(f"peak rate {rate:.4g} ± {err:.2g} counts/s at {t:.3f} s (bin of the file)")
    lines.append(
        f"background: order {result.background.order} on "
        + ", ".join(f"[{a:.1f}, {b:.1f}]" for a, b in result.background.intervals)
        + " s"
    )
    lines.extend(f"flag: {f}" for f in result.flags)
    return lines
