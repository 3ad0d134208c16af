"""Stacking: reprojection of dithered frames, flux conservation and noise reduction."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.errors import InputDataError
from svomflow.tasks.photometry.inject import add_noise, simple_tan_wcs, star_field
from svomflow.tasks.photometry.measure import aperture_photometry
from svomflow.tasks.photometry.psf import PSFModel
from svomflow.tasks.photometry.stack import StackConfig, StackInput, stack_images


def test_stack_of_dithered_frames():
    rng = np.random.default_rng(4)
    shape = (200, 200)
    ref_wcs = simple_tan_wcs(shape, 40.0, 10.0, 0.4)
    ra, dec = ref_wcs.pixel_to_world_values(rng.uniform(30, 170, 12), rng.uniform(30, 170, 12))
    flux = np.full(12, 2e4)
    psf = PSFModel(sigma=1.6)
    sky_sigma = np.sqrt(100.0 + 25.0)
    inputs = []
    for k, (dx, dy) in enumerate([(0.0, 0.0), (5.3, -3.7), (-4.1, 6.2)]):
        w = simple_tan_wcs(shape, 40.0, 10.0, 0.4, crpix=(100.5 + dx, 100.5 + dy))
        x, y = w.world_to_pixel_values(ra, dec)
        img = (
            add_noise(star_field(shape, x, y, flux, psf, sky_e=100.0), rng, read_noise_e=5.0)
            - 100.0
        )
        scale = 1.0 if k else 2.0  # the first frame was half as transparent
        inputs.append(
            StackInput(
                img / scale, w, rms=sky_sigma / scale, name=f"f{k}.fits", scale=scale, exptime=60.0
            )
        )
    res = stack_images(inputs, target_wcs=ref_wcs, shape=shape)
    x0, y0 = ref_wcs.world_to_pixel_values(ra, dec)
    err = np.where(np.isfinite(res.noise), res.noise, 1e9)
    ap = aperture_photometry(np.nan_to_num(res.data), x0, y0, radius=8.0, error=err)
    # Bilinear interpolation conserves flux to well under 1 % for FWHM ~ 3.8 pix.
    assert np.median(ap["FLUX_APER"] / flux) == pytest.approx(1.0, abs=0.01)
    # Noise: equal weights after scaling, so sqrt(3) lower than one frame (interpolation
    # smooths a little more: allow 25 % below).
    blank = res.data[5:25, 5:25]
    assert np.nanstd(blank) < sky_sigma / np.sqrt(3) * 1.05
    assert np.nanstd(blank) > sky_sigma / np.sqrt(3) * 0.6
    cards = dict((k, v) for k, v, _ in res.cards)
    assert cards["NCOMBINE"] == 3 and cards["IMCMB002"] == "f1.fits"
    assert cards["EXPTIME"] == 180.0
    med = stack_images(
        inputs, target_wcs=ref_wcs, shape=shape, config=StackConfig(combine="median")
    )
    assert np.nanmedian(med.data[90:110, 90:110]) == pytest.approx(
        np.nanmedian(res.data[90:110, 90:110]), abs=3.0
    )
    with pytest.raises(InputDataError, match="nothing"):
        stack_images([])
