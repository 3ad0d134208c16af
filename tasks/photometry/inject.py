"""Synthetic star fields and fake-star injection (pixel-integrated profiles, real noise).

Used to validate the photometry (completeness, flux bias, scatter vs the noise model) and to
check limiting magnitudes, and by tests that need a frame before the COLIBRI simulator is
at hand.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS
from svomflow.tasks.photometry.psf import PSFModel

__all__ = ["add_noise", "inject_stars", "simple_tan_wcs", "star_field"]


def simple_tan_wcs(
    shape: tuple[int, int],
    ra_deg: float,
    dec_deg: float,
    pixel_scale_arcsec: float,
    *,
    rotation_deg: float = 0.0,
    crpix: tuple[float, float] | None = None,
) -> WCS:
    """Return a north-up (east left) TAN WCS rotated by ``rotation_deg``, centred on the image."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra_deg, dec_deg]
    w.wcs.crpix = list(crpix) if crpix else [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    s = pixel_scale_arcsec / 3600.0
    th = np.deg2rad(rotation_deg)
    w.wcs.cd = s * np.array([[-np.cos(th), np.sin(th)], [np.sin(th), np.cos(th)]])
    return w


def star_field(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux_e: np.ndarray,
    psf: PSFModel,
    *,
    sky_e: float,
) -> np.ndarray:
    """Return the noiseless expected image in electrons: sky plus pixel-integrated stars."""
    img = np.full(shape, float(sky_e))
    psf.add_to(img, x, y, flux_e)
    return img


def add_noise(
    expected_e: np.ndarray,
    rng: np.random.Generator,
    *,
    read_noise_e: float,
    gain_e_per_adu: float = 1.0,
    bias_adu: float = 0.0,
) -> np.ndarray:
    """Draw Poisson + Gaussian read noise on an expected image (e-) and return ADU."""
    counts = rng.poisson(np.clip(expected_e, 0, None)).astype(np.float64)
    counts += rng.normal(0.0, read_noise_e, size=expected_e.shape)
    return counts / gain_e_per_adu + bias_adu


def inject_stars(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux_adu: np.ndarray,
    psf: PSFModel,
    rng: np.random.Generator,
    *,
    gain_e_per_adu: float,
) -> np.ndarray:
    """Return a copy of ``image`` (ADU) with fake stars added, including their Poisson noise."""
    stars_e = psf.render(image.shape, x, y, np.asarray(flux_adu, float) * gain_e_per_adu)
    noisy = rng.poisson(np.clip(stars_e, 0, None)).astype(np.float64) / gain_e_per_adu
    return np.asarray(image, dtype=np.float64) + noisy
