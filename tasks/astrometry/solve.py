"""Astrometric solution of an image against a local reference catalog (or a reference image).

Starting from the header WCS, the reference stars are projected onto the pixel grid, matched
to the extracted sources by triangle invariants (robust to header offsets of tens of pixels
and small rotations), and a TAN (optionally TAN-SIP) WCS is fitted to the matched pairs with
``astropy.wcs.utils.fit_wcs_from_points``. Matches are then redone with the fitted WCS and
outliers sigma-clipped before the final fit. Reference catalogs are local files (FITS/ECSV),
never a network query.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import fit_wcs_from_points
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.astrometry.match import match_points, nearest_pairs

__all__ = [
    "DEC_COLUMNS",
    "RA_COLUMNS",
    "AstrometryConfig",
    "AstrometrySolution",
    "read_reference_catalog",
    "reference_column",
    "solve_astrometry",
]

RA_COLUMNS = ("ra", "RA", "RAJ2000", "ALPHA_J2000", "ra_deg")
DEC_COLUMNS = ("dec", "DEC", "Dec", "DEJ2000", "DELTA_J2000", "dec_deg")


class AstrometryConfig(StepConfig):
    """Settings of the astrometric solution."""

    match_tolerance_pix: float = Field(
        3.0, gt=0, description="Match radius after the triangle transform (pixel)."
    )
    final_match_arcsec: float = Field(
        1.5, gt=0, description="Match radius with the fitted WCS (arcsec)."
    )
    n_brightest: int = Field(40, ge=5, description="Stars of each list used for triangles.")
    min_matches: int = Field(6, ge=3, description="Fewer matched stars is a failure.")
    sip_degree: int | None = Field(
        None, ge=1, le=5, description="SIP distortion order (None = pure TAN)."
    )
    clip_sigma: float = Field(3.0, gt=0, description="Residual clipping (sigma).")
    min_snr: float = Field(10.0, gt=0, description="Minimum S/N of sources used.")
    allowed_flags: int = Field(
        0, ge=0, description="Extraction FLAGS bits tolerated in the sources used (0 = none)."
    )
    isolation_pix: float = Field(
        8.0, ge=0, description="Sources with a detected neighbour closer than this are not used."
    )
    max_rms_arcsec: float = Field(
        1.0, gt=0, description="A solution with larger residual RMS is rejected (arcsec)."
    )


@dataclass(frozen=True)
class AstrometrySolution:
    """A fitted WCS with its quality figures."""

    wcs: WCS
    n_matched: int
    rms_arcsec: float
    rms_ra_arcsec: float
    rms_dec_arcsec: float
    shift_pix: tuple[float, float]
    rotation_deg: float
    source_index: np.ndarray
    reference_index: np.ndarray

    def header_cards(self) -> list[tuple[str, object, str]]:
        """Return FITS cards describing the solution's quality."""
        return [
            ("ASTNMAT", self.n_matched, "astrometry: matched reference stars"),
            ("ASTRMS", round(self.rms_arcsec, 4), "[arcsec] astrometry: residual RMS"),
            ("ASTRMSRA", round(self.rms_ra_arcsec, 4), "[arcsec] RMS along RA*cos(dec)"),
            ("ASTRMSDE", round(self.rms_dec_arcsec, 4), "[arcsec] RMS along Dec"),
        ]


def reference_column(table: Table, candidates: tuple[str, ...], what: str) -> str:
    """Return the first of ``candidates`` that is a column of ``table``."""
    for name in candidates:
        if name in table.colnames:
            return name
    raise InputDataError(
        f"reference catalog has no {what} column (looked for {', '.join(candidates)})"
    )


def read_reference_catalog(path: str | Path) -> Table:
    """Read a local reference catalog (FITS table or ECSV) with RA/Dec in degrees."""
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"reference catalog {p} does not exist")
    try:
        t = Table.read(p, format="ascii.ecsv") if p.suffix == ".ecsv" else Table.read(p)
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read reference catalog {p}: {exc}") from None
    reference_column(t, RA_COLUMNS, "RA")
    reference_column(t, DEC_COLUMNS, "Dec")
    return t


def _sky(table: Table) -> tuple[np.ndarray, np.ndarray]:
    ra = np.asarray(table[reference_column(table, RA_COLUMNS, "RA")], float)
    dec = np.asarray(table[reference_column(table, DEC_COLUMNS, "Dec")], float)
    return ra, dec


def _residuals_arcsec(
    wcs: WCS, x: np.ndarray, y: np.ndarray, ra: np.ndarray, dec: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    ra_fit, dec_fit = wcs.pixel_to_world_values(x, y)
    dra = ((np.asarray(ra_fit) - ra + 180.0) % 360.0 - 180.0) * np.cos(np.deg2rad(dec)) * 3600
    ddec = (np.asarray(dec_fit) - dec) * 3600
    return dra, ddec


def solve_astrometry(
    catalog: Table,
    reference: Table,
    wcs_guess: WCS,
    shape: tuple[int, int],
    config: AstrometryConfig | None = None,
    *,
    reference_mag: str | None = None,
) -> AstrometrySolution:
    """Fit the image WCS from extracted sources and a reference catalog.

    Parameters
    ----------
    catalog
        Extracted sources (``XWIN_IMAGE``/``YWIN_IMAGE`` 1-based, ``FLUX_AUTO``, ``FLAGS``).
    reference
        Reference stars (RA/Dec in degrees; optional magnitude column to sort by).
    wcs_guess
        The header WCS (approximate: tens of pixels and a degree or two off is fine).
    shape
        Image shape (ny, nx), to select the reference stars in the field.
    reference_mag
        Magnitude column of ``reference`` to pick its brightest stars first.

    Raises
    ------
    InputDataError
        Too few sources or reference stars, no match, or a residual RMS above the limit.
    """
    cfg = config or AstrometryConfig()
    if wcs_guess is None or not wcs_guess.has_celestial:
        raise InputDataError("the image has no celestial WCS to start the astrometry from")
    wcs_guess = wcs_guess.celestial
    snr = np.asarray(catalog["FLUX_AUTO"], float) / np.maximum(
        np.asarray(catalog["FLUXERR_AUTO"], float), 1e-30
    )
    # Blends (deblended or with a close neighbour), masked pixels (saturation bleed, cosmic
    # rays), saturation and truncation all bias the centroids: use clean isolated sources,
    # and relax (deblended, then masked-pixel sources) only in fields too crowded for that.
    flags = np.asarray(catalog["FLAGS"])
    xa = np.asarray(catalog["XWIN_IMAGE"], float)
    ya = np.asarray(catalog["YWIN_IMAGE"], float)
    isolated = np.ones(len(xa), bool)
    if len(xa) > 1 and cfg.isolation_pix > 0:
        from scipy.spatial import cKDTree

        dnn, _ = cKDTree(np.column_stack([xa, ya])).query(np.column_stack([xa, ya]), k=2)
        isolated = dnn[:, 1] > cfg.isolation_pix
    bright = snr >= cfg.min_snr
    for allowed, iso in ((cfg.allowed_flags, isolated), (cfg.allowed_flags | 2, True),
                         (cfg.allowed_flags | 3, True)):  # fmt: skip
        use = bright & ((flags & ~allowed) == 0) & iso
        if use.sum() >= 2 * cfg.min_matches:
            break
    src_idx = np.flatnonzero(use)
    src_idx = src_idx[np.argsort(-np.asarray(catalog["FLUX_AUTO"], float)[src_idx])]
    xs = np.asarray(catalog["XWIN_IMAGE"], float)[src_idx] - 1
    ys = np.asarray(catalog["YWIN_IMAGE"], float)[src_idx] - 1
    if len(src_idx) < cfg.min_matches:
        raise InputDataError(
            f"only {len(src_idx)} sources with S/N >= {cfg.min_snr}: too few for astrometry"
        )

    ra, dec = _sky(reference)
    xr, yr = wcs_guess.world_to_pixel_values(ra, dec)
    margin = 0.1 * max(shape)
    inside = (
        np.isfinite(xr)
        & (xr > -margin)
        & (xr < shape[1] + margin)
        & (yr > -margin)
        & (yr < shape[0] + margin)
    )
    ref_idx = np.flatnonzero(inside)
    if reference_mag is not None and reference_mag in reference.colnames:
        mags = np.asarray(reference[reference_mag], float)[ref_idx]
        ref_idx = ref_idx[np.argsort(np.where(np.isfinite(mags), mags, np.inf))]
    if len(ref_idx) < cfg.min_matches:
        raise InputDataError(
            f"only {len(ref_idx)} reference stars fall on the image: wrong field or catalog"
        )

    m = match_points(
        np.column_stack([xs, ys]),
        np.column_stack([xr[ref_idx], yr[ref_idx]]),
        tolerance=cfg.match_tolerance_pix,
        n_brightest=cfg.n_brightest,
        min_matches=cfg.min_matches,
    )
    si, ri = src_idx[m.idx1], ref_idx[m.idx2]
    x_all = np.asarray(catalog["XWIN_IMAGE"], float) - 1
    y_all = np.asarray(catalog["YWIN_IMAGE"], float) - 1

    wcs = wcs_guess
    for _ in range(4):
        wcs = fit_wcs_from_points(
            (x_all[si], y_all[si]),
            SkyCoord(ra[ri], dec[ri], unit="deg"),
            projection="TAN",
            sip_degree=cfg.sip_degree,
        )
        # Re-match every usable source against every reference star with the new WCS.
        xr2, yr2 = wcs.world_to_pixel_values(ra, dec)
        scale = np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600
        i1, i2, _ = nearest_pairs(
            np.column_stack([x_all[src_idx], y_all[src_idx]]),
            np.column_stack([xr2, yr2]),
            cfg.final_match_arcsec / scale,
        )
        si_new, ri_new = src_idx[i1], i2
        dra, ddec = _residuals_arcsec(wcs, x_all[si_new], y_all[si_new], ra[ri_new], dec[ri_new])
        r = np.hypot(dra, ddec)
        sig = np.sqrt(np.mean(r**2) / 2) if len(r) else 0.0
        keep = r <= cfg.clip_sigma * max(sig, 1e-3) * np.sqrt(2)
        if keep.sum() < cfg.min_matches:
            break
        changed = len(si_new[keep]) != len(si) or np.any(si_new[keep] != si)
        si, ri = si_new[keep], ri_new[keep]
        if not changed:
            break
    wcs = fit_wcs_from_points(
        (x_all[si], y_all[si]),
        SkyCoord(ra[ri], dec[ri], unit="deg"),
        projection="TAN",
        sip_degree=cfg.sip_degree,
    )
    dra, ddec = _residuals_arcsec(wcs, x_all[si], y_all[si], ra[ri], dec[ri])
    rms = float(np.sqrt(np.mean(dra**2 + ddec**2)))
    if rms > cfg.max_rms_arcsec:
        raise InputDataError(
            f"astrometric residual RMS {rms:.2f} arcsec exceeds {cfg.max_rms_arcsec} arcsec"
        )
    return AstrometrySolution(
        wcs=wcs,
        n_matched=len(si),
        rms_arcsec=rms,
        rms_ra_arcsec=float(np.sqrt(np.mean(dra**2))),
        rms_dec_arcsec=float(np.sqrt(np.mean(ddec**2))),
        shift_pix=m.transform.shift,
        rotation_deg=m.transform.rotation_deg,
        source_index=si,
        reference_index=ri,
    )
