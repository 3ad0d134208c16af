"""PSF stars are selected and cut out on the same centres (windowed where the catalog has them)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from svomflow.tasks.photometry.psf import fit_psf, select_psf_stars


def _gaussian_field(shape: tuple[int, int], xy: list[tuple[float, float]]) -> np.ndarray:
    yy, xx = np.indices(shape, dtype=float)
    img = np.zeros(shape)
    for x, y in xy:
        img += 5000.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    return img + np.random.default_rng(1).normal(0.0, 1.0, shape)


def test_a_star_whose_windowed_centre_is_near_the_edge_is_not_selected() -> None:
    shape, half = (60, 60), 10
    xy = [(30.0, 30.0), (10.2, 40.0)]  # the second's cutout just fits on X_IMAGE, not XWIN
    img = _gaussian_field(shape, xy)
    cat = Table(
        {
            # 1-based, SExtractor-style: X_IMAGE (isophotal) and XWIN_IMAGE (windowed) differ
            "X_IMAGE": [31.0, 11.2],
            "Y_IMAGE": [31.0, 41.0],
            "XWIN_IMAGE": [31.0, 10.4],
            "YWIN_IMAGE": [31.0, 41.0],
            "FLUX_AUTO": [1e5, 1e5],
            "FLUXERR_AUTO": [100.0, 100.0],
            "FLAGS": [0, 0],
        }
    )
    stars = select_psf_stars(cat, shape, half_size=half)
    assert list(stars["XWIN_IMAGE"]) == [31.0]
    fit = fit_psf(img, stars, half_size=half)  # every selected star has its cutout
    assert fit.n_stars == 1
    # the injected Gaussian: sigma 1.5 px, FWHM 2.355 x 1.5 = 3.53 px
    assert fit.fwhm == pytest.approx(2.3548 * 1.5, rel=0.05)
