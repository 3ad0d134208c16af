"""ECLAIRs quick position: sky-image peak, shadowgram-model fit, S/N and a 90 % error radius.

Steps (SCIENCE.md §4): sky image by balanced correlation (:func:`sky_image`), known sources
and background templates removed; the highest-S/N valid position is refined by a direct
fit of the exact shadow model (:func:`~svomflow.instruments.coded_mask.shadow`, fractional
shifts) to the shadowgram: weighted least squares for the source and template amplitudes,
profiled over the position (Nelder-Mead in shift units). The fit's source S/N is the quick
confidence level. The 90 % error radius is

    r90 = sqrt((k * fwhm / snr)^2 + sys^2)

with ``fwhm`` the angular resolution (element / height, projected at the source's off-axis
angle), ``k`` a function of S/N (``localisation.statistical_scale_table``: k per S/N bin,
calibrated by Monte Carlo with :func:`svomflow.simulation.eclairs_mc.calibrate_scale_table`;
near threshold the position error grows faster than 1/snr, so one k under-covers there) and
``sys`` = ``localisation.systematic_arcmin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator
from scipy.optimize import minimize
from svomflow.config import InstrumentDefinition, StepConfig
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import cos_theta
from svomflow.tasks.coded_mask.imaging import (
    MaskModel,
    Shadowgram,
    SkyImage,
    background_templates,
    sky_image,
)

__all__ = ["LocalisationConfig", "SourcePosition", "fit_position", "localise"]


class LocalisationConfig(StepConfig):
    """Settings of the quick-position step."""

    statistical_scale: float = Field(
        1.0, gt=0, description="k in r90 = sqrt((k fwhm/snr)^2 + sys^2), from Monte Carlo"
    )
    statistical_scale_snr_min: list[float] = Field(
        default_factory=list,
        description="Lower S/N edges of the bins of statistical_scale_by_snr (ascending); "
        "empty: statistical_scale for every S/N",
    )
    statistical_scale_by_snr: list[float] = Field(
        default_factory=list,
        description="k per S/N bin, from Monte Carlo (below the first edge: the first value)",
    )
    systematic_arcmin: float = Field(3.0, ge=0, description="systematic error term (arcmin)")
    min_coding: float = Field(
        0.05, gt=0, le=1, description="minimum partial-coding fraction searched"
    )
    refine: bool = Field(True, description="refine the image peak by a shadowgram-model fit")

    @model_validator(mode="after")
    def _check_table(self) -> LocalisationConfig:
        edges, ks = self.statistical_scale_snr_min, self.statistical_scale_by_snr
        if len(edges) != len(ks):
            raise ValueError(
                "statistical_scale_snr_min and statistical_scale_by_snr differ in length"
            )
        if any(b <= a for a, b in pairwise(edges)):
            raise ValueError("statistical_scale_snr_min must be strictly ascending")
        if any(k <= 0 for k in ks):
            raise ValueError("statistical_scale_by_snr values must be positive")
        return self

    def scale_for(self, snr: float) -> float:
        """Return k at this S/N: the bin of the table holding ``snr``, else the single k."""
        edges = self.statistical_scale_snr_min
        if not edges:
            return self.statistical_scale
        i = int(np.searchsorted(np.asarray(edges), snr, side="right")) - 1
        return float(self.statistical_scale_by_snr[max(i, 0)])

    @classmethod
    def from_instrument(cls, inst: InstrumentDefinition, **overrides: object) -> LocalisationConfig:
        """Defaults from the instrument's ``localisation`` section, then overrides."""
        table = inst.get("localisation.statistical_scale_table", None) or {}
        values: dict[str, object] = {
            "statistical_scale": float(inst.get("localisation.statistical_scale")),
            "systematic_arcmin": float(inst.get("localisation.systematic_arcmin")),
            "statistical_scale_snr_min": [float(x) for x in table.get("snr_min", [])],
            "statistical_scale_by_snr": [float(x) for x in table.get("k", [])],
        }
        values.update(overrides)
        return cls.model_validate(values)


@dataclass
class SourcePosition:
    """A localised source: sky and instrument coordinates, significance and error radius."""

    ra_deg: float
    dec_deg: float
    tan_y: float
    tan_z: float
    off_axis_deg: float
    snr: float
    image_snr: float
    counts: float
    counts_err: float
    coding: float
    r90_arcmin: float
    stat_arcmin: float
    sys_arcmin: float
    fit_sigma_arcmin: float
    image: SkyImage | None = None

    def to_dict(self) -> dict[str, float]:
        """Return the numbers as a JSON-ready dict (without the image)."""
        return {k: float(v) for k, v in self.__dict__.items() if k != "image"}


def _design(
    model: MaskModel,
    sy: float,
    sz: float,
    templates: Sequence[NDArray[np.float64]],
    usable: NDArray[np.bool_],
) -> NDArray[np.float64]:
    g = model.geometry
    p = model.source_shadow(float(g.shift_to_tan(sy)), float(g.shift_to_tan(sz)))
    cols = [p[usable]] + [t[usable] for t in templates]
    return np.stack(cols, axis=1)


def _wls(
    x: NDArray[np.float64], d: NDArray[np.float64], w: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    xw = x * w[:, None]
    a = x.T @ xw
    b = xw.T @ d
    try:
        cov = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(a)
    beta = cov @ b
    r = d - x @ beta
    return np.asarray(beta, np.float64), np.asarray(cov, np.float64), float(np.sum(r * r * w))


def fit_position(
    shadowgram: Shadowgram,
    model: MaskModel,
    start_tan: tuple[float, float],
    *,
    known_sources: Sequence[tuple[float, float]] = (),
    search_pixels: float = 2.5,
) -> dict[str, float | NDArray[np.float64]]:
    """Fit the exact shadow model of one source (plus templates) around a start position.

    Returns a dict with ``tan_y``, ``tan_z``, ``amplitude`` (counts per fully illuminated
    pixel), ``amplitude_err``, ``cov_shift`` (2x2 covariance in shift-pixel units from the
    curvature of the chi-square) and ``chi2``.
    """
    g = model.geometry
    u = shadowgram.usable
    data, _ = shadowgram.data_and_variance()
    d = data[u]
    bkg_var = (
        None
        if shadowgram.background is None
        else (np.clip(shadowgram.background, 0, None) * (1 + shadowgram.background_scale))[u]
    )
    templates = background_templates(model) + [
        model.source_shadow(ty, tz) for ty, tz in known_sources
    ]
    s0 = np.array([float(g.tan_to_shift(start_tan[0])), float(g.tan_to_shift(start_tan[1]))])

    def variance(x: NDArray[np.float64], beta: NDArray[np.float64]) -> NDArray[np.float64]:
        m = x @ beta
        if bkg_var is None:
            return np.clip(m, 0.5, None)
        # on-counts expected = source model + background; the off counts add scale * B
        return np.clip(m + bkg_var, 0.5, None)

    # weights from a fit at the start, then held fixed so chi2(position) is smooth
    x = _design(model, s0[0], s0[1], templates, u)
    w = 1.0 / np.clip(np.abs(d) + (0 if bkg_var is None else bkg_var), 1.0, None)
    for _ in range(2):
        beta, _, _ = _wls(x, d, w)
        w = 1.0 / variance(x, beta)

    def chi2(s: NDArray[np.float64]) -> float:
        if np.any(np.abs(s - s0) > search_pixels):
            return 1e300
        return _wls(_design(model, s[0], s[1], templates, u), d, w)[2]

    best = s0
    for _ in range(2):
        simplex = best + np.array([[0.0, 0.0], [0.7, 0.0], [0.0, 0.7]])
        res = minimize(
            chi2,
            best,
            method="Nelder-Mead",
            options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-4, "maxiter": 400},
        )
        best = np.asarray(res.x, dtype=np.float64)
        x = _design(model, best[0], best[1], templates, u)
        beta, _, _ = _wls(x, d, w)
        w = 1.0 / variance(x, beta)
    beta, cov, c2 = _wls(_design(model, best[0], best[1], templates, u), d, w)

    # curvature of chi2 (fixed weights) by central differences: cov = 2 H^-1
    h = 0.15
    f0 = chi2(best)
    hess = np.zeros((2, 2))
    for i in range(2):
        ei = np.eye(2)[i] * h
        hess[i, i] = (chi2(best + ei) - 2 * f0 + chi2(best - ei)) / h**2
    e0, e1 = np.eye(2) * h
    hess[0, 1] = hess[1, 0] = (
        chi2(best + e0 + e1) - chi2(best + e0 - e1) - chi2(best - e0 + e1) + chi2(best - e0 - e1)
    ) / (4 * h * h)
    try:
        cov_shift = 2.0 * np.linalg.inv(hess)
        if np.any(np.linalg.eigvalsh(cov_shift) <= 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov_shift = np.full((2, 2), np.nan)
    return {
        "tan_y": float(g.shift_to_tan(best[0])),
        "tan_z": float(g.shift_to_tan(best[1])),
        "amplitude": float(beta[0]),
        "amplitude_err": float(np.sqrt(max(cov[0, 0], 0.0))),
        "cov_shift": np.asarray(cov_shift, dtype=np.float64),
        "chi2": c2,
    }


def localise(
    shadowgram: Shadowgram,
    model: MaskModel,
    attitude: Attitude,
    config: LocalisationConfig | None = None,
    *,
    known_sources: Sequence[tuple[float, float]] = (),
    keep_image: bool = False,
) -> SourcePosition:
    """Return the position of the brightest excess in a shadowgram with S/N and 90 % radius.

    Parameters
    ----------
    shadowgram
        Counts in the burst interval (with a background interval estimate, or templates only).
    model
        Mask model of the instrument.
    attitude
        Pointing, to convert projected angles to RA/Dec.
    config
        Step settings; default :class:`LocalisationConfig` (use ``from_instrument``).
    known_sources
        Projected angles of known sources to model and remove (e.g. from a catalog through
        the attitude).
    """
    cfg = config or LocalisationConfig()
    img = sky_image(shadowgram, model, known_sources=known_sources, min_coding=cfg.min_coding)
    i, j, peak_snr = img.peak()
    if not np.isfinite(peak_snr) or peak_snr <= 0:
        raise InputDataError("localise: no positive excess in the sky image")
    g = model.geometry
    ty, tz = float(img.tan_y[i]), float(img.tan_z[j])
    u = shadowgram.usable
    snr = peak_snr
    counts = float(img.counts[i, j])
    counts_err = float(np.sqrt(img.variance[i, j]))
    fit_sigma = np.nan
    if cfg.refine:
        fit = fit_position(shadowgram, model, (ty, tz), known_sources=known_sources)
        ty, tz = float(fit["tan_y"]), float(fit["tan_z"])
        illum = float(np.sum(model.source_shadow(ty, tz)[u]))
        counts = float(fit["amplitude"]) * illum
        counts_err = float(fit["amplitude_err"]) * illum
        snr = float(fit["amplitude"]) / max(float(fit["amplitude_err"]), 1e-300)
        cov = np.asarray(fit["cov_shift"])
        if np.all(np.isfinite(cov)):
            # geometric-mean sigma, shift pixels -> arcmin at this off-axis angle
            ct = float(cos_theta(ty, tz))
            sig_tan = np.sqrt(np.sqrt(max(np.linalg.det(cov), 0.0))) * g.pitch_mm / g.height_mm
            fit_sigma = float(np.degrees(sig_tan * ct**1.5) * 60.0)
    ct = float(cos_theta(ty, tz))
    # resolution projected at the off-axis angle: radial cos^2, tangential cos -> cos^1.5
    fwhm_arcmin = float(np.degrees(g.resolution_tan * ct**1.5) * 60.0)
    stat = fwhm_arcmin / max(snr, 1e-9)
    r90 = float(np.hypot(cfg.scale_for(snr) * stat, cfg.systematic_arcmin))
    ra, dec = attitude.from_projected(ty, tz)
    ii = int(np.clip(np.round(g.tan_to_shift(ty)) - img.shift_y[0], 0, img.shift_y.size - 1))
    jj = int(np.clip(np.round(g.tan_to_shift(tz)) - img.shift_z[0], 0, img.shift_z.size - 1))
    return SourcePosition(
        ra_deg=float(ra),
        dec_deg=float(dec),
        tan_y=ty,
        tan_z=tz,
        off_axis_deg=float(np.degrees(np.arccos(ct))),
        snr=float(snr),
        image_snr=float(peak_snr),
        counts=counts,
        counts_err=counts_err,
        coding=float(img.coding[ii, jj]),
        r90_arcmin=r90,
        stat_arcmin=float(stat),
        sys_arcmin=float(cfg.systematic_arcmin),
        fit_sigma_arcmin=fit_sigma,
        image=img if keep_image else None,
    )
