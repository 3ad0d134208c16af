"""Astrometry: triangle matching and the WCS fit against a reference catalog."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from svomflow.errors import InputDataError
from svomflow.tasks.astrometry.align import align_to_reference_image
from svomflow.tasks.astrometry.match import SimilarityTransform, match_points
from svomflow.tasks.astrometry.solve import AstrometryConfig, solve_astrometry
from svomflow.tasks.photometry.extract import extract_sources
from svomflow.tasks.photometry.inject import add_noise, simple_tan_wcs, star_field
from svomflow.tasks.photometry.psf import PSFModel

SCALE = 0.38  # arcsec / pixel


def test_match_points_recovers_transform_with_outliers():
    rng = np.random.default_rng(1)
    xy2 = rng.uniform(0, 1000, (60, 2))
    t_true = SimilarityTransform(1.002 * np.exp(1j * np.deg2rad(3.0)), complex(-40.0, 25.0))
    # xy1 holds 45 of the stars (transformed back), plus 15 spurious detections.
    inv = SimilarityTransform(1 / t_true.a, -t_true.b / t_true.a)
    x1, y1 = inv.apply(xy2[:45, 0], xy2[:45, 1])
    xy1 = np.column_stack([x1, y1]) + rng.normal(0, 0.1, (45, 2))
    xy1 = np.vstack([xy1, rng.uniform(0, 1000, (15, 2))])
    perm = rng.permutation(len(xy1))
    m = match_points(xy1[perm], xy2, tolerance=1.0)
    assert len(m.idx1) >= 44
    assert np.all(perm[m.idx1] == m.idx2)  # every pair is a true pair
    assert m.transform.rotation_deg == pytest.approx(3.0, abs=0.02)
    assert m.transform.shift[0] == pytest.approx(-40.0, abs=0.5)


def test_match_points_refuses_unrelated_lists():
    rng = np.random.default_rng(2)
    with pytest.raises(InputDataError, match="match"):
        match_points(rng.uniform(0, 500, (30, 2)), rng.uniform(0, 500, (30, 2)), tolerance=0.5)


def _field(rng, shape=(512, 512), n=80):
    true = simple_tan_wcs(shape, 210.0, -30.0, SCALE, rotation_deg=0.0)
    x = rng.uniform(10, shape[1] - 10, n)
    y = rng.uniform(10, shape[0] - 10, n)
    flux = 10 ** rng.uniform(3.5, 5.5, n)
    psf = PSFModel(sigma=1.2)
    img = add_noise(star_field(shape, x, y, flux, psf, sky_e=300.0), rng, read_noise_e=5.0)
    ra, dec = true.pixel_to_world_values(x, y)
    # A reference catalog with 30 extra stars just outside the field and 0.05" errors.
    xo = rng.uniform(-60, shape[1] + 60, 30)
    yo = np.where(rng.random(30) < 0.5, -30.0, shape[0] + 30.0)
    rao, deco = true.pixel_to_world_values(xo, yo)
    mags = 25.0 - 2.5 * np.log10(flux)
    ref = Table(
        {
            "ra": np.concatenate([ra, rao]) + rng.normal(0, 0.05 / 3600, n + 30),
            "dec": np.concatenate([dec, deco]) + rng.normal(0, 0.05 / 3600, n + 30),
            "r": np.concatenate([mags, np.full(30, 15.0)]),
        }
    )
    return img, true, ref, x, y


def test_solve_recovers_wcs_from_offset_rotated_guess():
    rng = np.random.default_rng(7)
    img, true, ref, _x, _y = _field(rng)
    guess = simple_tan_wcs(
        img.shape, 210.0, -30.0, SCALE * 1.01, rotation_deg=1.5, crpix=(256.5 + 35, 256.5 - 20)
    )
    cat = extract_sources(img, wcs=guess).catalog
    sol = solve_astrometry(cat, ref, guess, img.shape, AstrometryConfig(), reference_mag="r")
    assert sol.n_matched >= 60
    # Windowed centroids of S/N > 10 stars scatter by ~0.02-0.1 pix (<0.04"), catalog 0.07".
    assert sol.rms_arcsec < 0.15
    # The fitted WCS agrees with the truth across the field to a small fraction of a pixel.
    gx, gy = np.meshgrid(np.linspace(0, 511, 6), np.linspace(0, 511, 6))
    ra1, dec1 = sol.wcs.pixel_to_world_values(gx.ravel(), gy.ravel())
    ra0, dec0 = true.pixel_to_world_values(gx.ravel(), gy.ravel())
    sep = np.hypot((ra1 - ra0) * np.cos(np.deg2rad(dec0)), dec1 - dec0) * 3600
    assert sep.max() < 0.1


def test_alignment_to_reference_image():
    rng = np.random.default_rng(8)
    img, true, _ref, x, y = _field(rng)
    ref_cat = extract_sources(img, wcs=true).catalog
    # A second exposure of the same field, shifted by (12.3, -7.8) pixels.
    img2 = add_noise(
        star_field(
            img.shape, x + 12.3, y - 7.8, 10 ** np.full(len(x), 4.5), PSFModel(1.2), sky_e=300.0
        ),
        rng,
        read_noise_e=5.0,
    )
    cat2 = extract_sources(img2, wcs=true).catalog
    sol = align_to_reference_image(cat2, ref_cat, true, img.shape)
    xp, yp = sol.wcs.world_to_pixel_values(*true.pixel_to_world_values(x[:5], y[:5]))
    np.testing.assert_allclose(xp, x[:5] + 12.3, atol=0.1)
    np.testing.assert_allclose(yp, y[:5] - 7.8, atol=0.1)


def test_solve_fails_clearly_on_wrong_field():
    rng = np.random.default_rng(9)
    img, _true, ref, *_ = _field(rng)
    far = simple_tan_wcs(img.shape, 30.0, 40.0, SCALE)
    cat = extract_sources(img, wcs=far).catalog
    with pytest.raises(InputDataError, match="reference stars fall on the image"):
        solve_astrometry(cat, ref, far, img.shape)
