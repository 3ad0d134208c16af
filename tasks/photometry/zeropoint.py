"""Photometric zero point against a local reference catalog (sigma-clipped, optional colour term).

Model: ``m_ref = m_inst + ZP + C * (colour - colour_0)``, with ``m_inst = -2.5 log10(flux/s)``
(flux in ADU, per second of exposure so that ZP is comparable between exposures). The zero
point is the inverse-variance weighted mean over clipped stars; its error is the weighted
standard error, and the clipped scatter is reported separately (it measures how well the
catalog and the image agree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.astrometry.solve import DEC_COLUMNS, RA_COLUMNS, reference_column

__all__ = [
    "ZeroPoint",
    "ZeroPointConfig",
    "fit_zero_point",
    "match_reference",
    "reference_mag_column",
]


class ZeroPointConfig(StepConfig):
    """Zero-point fit settings."""

    match_radius_arcsec: float = Field(1.0, gt=0, description="Catalog match radius (arcsec).")
    clip_sigma: float = Field(3.0, gt=0, description="Sigma clipping of the residuals.")
    min_stars: int = Field(5, ge=1, description="Fewer calibration stars is an error.")
    min_snr: float = Field(20.0, gt=0, description="Minimum S/N of calibration stars.")
    colour_term: bool = Field(False, description="Fit a linear colour term.")
    colour_bands: tuple[str, str] | None = Field(
        None, description="Reference bands (b1, b2) whose difference is the colour."
    )
    mag_range: tuple[float, float] = Field(
        (-np.inf, np.inf), description="Reference magnitudes used (bright, faint)."
    )


@dataclass(frozen=True)
class ZeroPoint:
    """A fitted zero point."""

    zp: float
    zp_err: float
    scatter: float
    n_used: int
    n_matched: int
    colour_term: float = 0.0
    colour_zero: float = 0.0

    def header_cards(self) -> list[tuple[str, object, str]]:
        """Return FITS cards describing the calibration."""
        return [
            ("MAGZP", round(self.zp, 5), "[mag] zero point (1 ADU/s)"),
            ("MAGZPERR", round(self.zp_err, 5), "[mag] zero point error"),
            ("MAGZPSCT", round(self.scatter, 5), "[mag] clipped scatter of calibrators"),
            ("MAGZPN", self.n_used, "calibrators used"),
            ("MAGZPCT", round(self.colour_term, 5), "colour term"),
        ]


def reference_mag_column(table: Table, band: str) -> str:
    """Return the reference catalog column of magnitudes in ``band``."""
    cands = (band, f"{band}mag", f"mag_{band}", f"{band.upper()}MAG", f"MAG_{band.upper()}")
    return reference_column(table, cands, f"{band}-band magnitude")


def match_reference(
    ra: np.ndarray, dec: np.ndarray, reference: Table, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return (source index, reference index) of sky matches within ``radius_arcsec``."""
    ok = np.isfinite(ra) & np.isfinite(dec)
    idx = np.flatnonzero(ok)
    if len(idx) == 0 or len(reference) == 0:
        e = np.zeros(0, dtype=int)
        return e, e
    rra = np.asarray(reference[reference_column(reference, RA_COLUMNS, "RA")], float)
    rdec = np.asarray(reference[reference_column(reference, DEC_COLUMNS, "Dec")], float)
    src = SkyCoord(ra[idx] * u.deg, dec[idx] * u.deg)
    ref = SkyCoord(rra * u.deg, rdec * u.deg)
    j, d2, _ = src.match_to_catalog_sky(ref)
    good = d2.arcsec < radius_arcsec
    return idx[good], np.asarray(j)[good]


def fit_zero_point(
    inst_mag: np.ndarray,
    inst_err: np.ndarray,
    ref_mag: np.ndarray,
    ref_err: np.ndarray | None = None,
    colour: np.ndarray | None = None,
    config: ZeroPointConfig | None = None,
) -> ZeroPoint:
    """Fit ``ref_mag - inst_mag = ZP (+ C * colour)`` with iterative sigma clipping.

    Parameters
    ----------
    inst_mag, inst_err
        Instrumental magnitudes (per second) and their errors of matched stars.
    ref_mag, ref_err
        Reference magnitudes (and errors, default 0) of the same stars.
    colour
        Reference colour of each star (needed when ``config.colour_term``).
    """
    cfg = config or ZeroPointConfig()
    m_i = np.asarray(inst_mag, float)
    m_r = np.asarray(ref_mag, float)
    var = np.asarray(inst_err, float) ** 2
    if ref_err is not None:
        var = var + np.asarray(ref_err, float) ** 2
    ok = np.isfinite(m_i) & np.isfinite(m_r) & np.isfinite(var) & (var > 0)
    ok &= (m_r >= cfg.mag_range[0]) & (m_r <= cfg.mag_range[1])
    use_colour = cfg.colour_term
    if use_colour:
        if colour is None:
            raise InputDataError("colour term requested but no colours were given")
        c = np.asarray(colour, float)
        ok &= np.isfinite(c)
    else:
        c = np.zeros_like(m_i)
    n_matched = int(ok.sum())
    if n_matched < cfg.min_stars:
        raise InputDataError(
            f"only {n_matched} calibration stars (at least {cfg.min_stars} needed) "
            "for the zero point"
        )
    c0 = float(np.median(c[ok])) if use_colour else 0.0
    dc = c - c0
    resid_all = m_r - m_i
    keep = ok.copy()
    # Error floor: the intrinsic catalog/image mismatch, re-estimated each pass, stops
    # very bright stars from dominating the weights.
    floor2 = 0.0
    beta = np.zeros(2)
    for _ in range(10):
        w = 1.0 / (var[keep] + floor2)
        if use_colour:
            a = np.column_stack([np.ones(keep.sum()), dc[keep]])
            aw = a * w[:, None]
            beta = np.linalg.solve(a.T @ aw, aw.T @ resid_all[keep])
        else:
            beta = np.array([np.sum(w * resid_all[keep]) / np.sum(w), 0.0])
        r = resid_all - beta[0] - beta[1] * dc
        mad = 1.4826 * np.median(np.abs(r[keep] - np.median(r[keep])))
        extra = mad**2 - np.median(var[keep])
        floor2 = max(extra, 0.0)
        new = ok & (np.abs(r) <= cfg.clip_sigma * np.sqrt(var + floor2 + 1e-12))
        if new.sum() < cfg.min_stars or np.array_equal(new, keep):
            break
        keep = new
    w = 1.0 / (var[keep] + floor2)
    r = resid_all[keep] - beta[0] - beta[1] * dc[keep]
    n = int(keep.sum())
    if use_colour:
        a = np.column_stack([np.ones(n), dc[keep]])
        cov = np.linalg.inv(a.T @ (a * w[:, None]))
        zp_err = float(np.sqrt(cov[0, 0]))
    else:
        zp_err = float(1.0 / np.sqrt(np.sum(w)))
    scatter = float(np.std(r, ddof=1)) if n > 1 else 0.0
    return ZeroPoint(
        zp=float(beta[0]),
        zp_err=zp_err,
        scatter=scatter,
        n_used=n,
        n_matched=n_matched,
        colour_term=float(beta[1]),
        colour_zero=c0,
    )
