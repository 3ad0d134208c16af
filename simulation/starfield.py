"""Synthetic star fields: a catalog with power-law number counts, its WCS, and drawn images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from svomflow.products.ogip import write_hdulist
from svomflow.simulation import _optical_kernels as OK

__all__ = [
    "StarCatalog",
    "draw_stars",
    "make_catalog",
    "moffat_alpha",
    "profile_radius",
    "tan_wcs",
    "write_catalog",
]


@dataclass
class StarCatalog:
    """Stars with sky positions and magnitudes per band (AB-like, instrument zero points)."""

    ra: np.ndarray
    dec: np.ndarray
    mags: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.ra.size)


def tan_wcs(
    ra: float,
    dec: float,
    shape: tuple[int, int],
    scale_arcsec: float,
    *,
    rotation_deg: float = 0.0,
    x_offset: int = 0,
) -> WCS:
    """Return a gnomonic (TAN) WCS centred on (ra, dec) for an image of ``shape`` (ny, nx).

    North is up and east left for ``rotation_deg = 0``. ``x_offset`` shifts the reference
    pixel for raw frames whose light-sensitive area does not start at column 0.
    """
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [nx / 2.0 + 0.5 + x_offset, ny / 2.0 + 0.5]
    s = scale_arcsec / 3600.0
    th = np.deg2rad(rotation_deg)
    w.wcs.cd = np.array([[-s * np.cos(th), s * np.sin(th)], [s * np.sin(th), s * np.cos(th)]])
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    return w


def make_catalog(
    rng: np.random.Generator,
    wcs: WCS,
    shape: tuple[int, int],
    *,
    density_per_arcmin2: float,
    mag_range: tuple[float, float],
    slope: float,
    bands: tuple[str, ...] = ("g", "r", "i"),
    margin_px: float = 60.0,
) -> StarCatalog:
    """Draw a star catalog over the image footprint plus a margin.

    Magnitudes in the reference band (``r`` if present, else the first) follow power-law
    number counts, dN/dm proportional to 10**(slope * m) within ``mag_range``; colours are
    drawn from a stellar-locus-like relation (g - r uniform in [0.2, 1.4], r - i about
    0.45 (g - r) with 0.05 mag scatter) and only matter through the per-band magnitudes.
    """
    ny, nx = shape
    scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0
    area_arcmin2 = (nx + 2 * margin_px) * (ny + 2 * margin_px) * (scale / 60.0) ** 2
    n = int(rng.poisson(density_per_arcmin2 * area_arcmin2))
    x = rng.uniform(-margin_px - 0.5, nx - 0.5 + margin_px, n)
    y = rng.uniform(-margin_px - 0.5, ny - 0.5 + margin_px, n)
    ra, dec = wcs.all_pix2world(x, y, 0)
    m1, m2 = mag_range
    u = rng.uniform(0.0, 1.0, n)
    a, b = 10.0 ** (slope * m1), 10.0 ** (slope * m2)
    mref = np.log10(a + u * (b - a)) / slope
    g_r = rng.uniform(0.2, 1.4, n)
    r_i = 0.45 * g_r + rng.normal(0.0, 0.05, n)
    colour = {"g": g_r, "r": np.zeros(n), "i": -r_i}
    ref = "r" if "r" in bands else bands[0]
    mags = {}
    for band in bands:
        offset = colour.get(band, np.zeros(n)) - colour.get(ref, np.zeros(n))
        mags[band] = mref + offset
    return StarCatalog(np.asarray(ra) % 360.0, np.asarray(dec), mags)


def write_catalog(catalog: StarCatalog, path: str | Path, *, name: str = "") -> Path:
    """Write the catalog as a FITS table (ID, ra, dec, mag_<band>) atomically."""
    cols = {"ID": np.arange(len(catalog), dtype=np.int32), "ra": catalog.ra, "dec": catalog.dec}
    for band, m in catalog.mags.items():
        cols[f"mag_{band}"] = m.astype(np.float32)
    table = Table(cols)
    table["ra"].unit = "deg"
    table["dec"].unit = "deg"
    hdu = fits.table_to_hdu(table)
    hdu.name = "REFCAT"
    hdu.header["FIELD"] = (name, "field name")
    hdu.header["COMMENT"] = "Synthetic reference catalog written by svomflow.simulation"
    return write_hdulist([fits.PrimaryHDU(), hdu], path)


def moffat_alpha(fwhm_px: float, beta: float) -> float:
    """Return the Moffat core width alpha for a given FWHM and beta."""
    return fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def profile_radius(
    profile: str, fwhm_px: float, beta: float, flux: np.ndarray, *, rel_loss: float = 1e-4
) -> np.ndarray:
    """Return per-star drawing radii (pixels) that lose at most ``rel_loss`` of the flux.

    For a Moffat the flux outside radius R is (1 + R^2 / alpha^2)^(1 - beta); for a Gaussian
    exp(-R^2 / 2 sigma^2). Faint stars need no more than the radius where the lost flux drops
    under one electron (far below the noise of any pixel), and radii are capped at 60 pixels.
    """
    flux = np.asarray(flux, dtype=np.float64)
    tol = np.maximum(rel_loss, np.minimum(1.0, 1.0 / np.maximum(flux, 1e-30)))
    if profile == "gaussian":
        sigma = fwhm_px / 2.354820045
        r = sigma * np.sqrt(-2.0 * np.log(tol))
    else:
        alpha = moffat_alpha(fwhm_px, beta)
        r = alpha * np.sqrt(tol ** (1.0 / (1.0 - beta)) - 1.0)
    return np.minimum(np.maximum(r, 2.0 * fwhm_px), 60.0)


def draw_stars(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    *,
    fwhm_px: float,
    profile: str = "moffat",
    beta: float = 3.0,
    oversample: int = 5,
) -> np.ndarray:
    """Add pixel-integrated stars (total ``flux`` each) to ``image`` in place and return it.

    Point-sampling a profile at pixel centres biases PSF fluxes by about 1 % at these
    widths, so the profile is integrated over each pixel (exactly for the Gaussian,
    by a fine midpoint rule for the Moffat).
    """
    if profile not in {"moffat", "gaussian"}:
        raise ValueError(f"unknown star profile {profile!r} (moffat or gaussian)")
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    flux = np.ascontiguousarray(flux, dtype=np.float64)
    radii = profile_radius(profile, fwhm_px, beta, flux)
    if profile == "gaussian":
        OK.add_stars(
            image, x, y, flux, OK.PROFILE_GAUSSIAN, fwhm_px / 2.354820045, 0.0, radii, 1, 0.0
        )
    else:
        alpha = moffat_alpha(fwhm_px, beta)
        OK.add_stars(
            image, x, y, flux, OK.PROFILE_MOFFAT, alpha, beta, radii, int(oversample), 2.0 * fwhm_px
        )
    return image
