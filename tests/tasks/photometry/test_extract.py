"""Extraction: agreement with SExtractor on sep's reference image, catalog I/O, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from svomflow.errors import InputDataError
from svomflow.tasks.photometry.extract import (
    ExtractConfig,
    catalog_to_hdu,
    extract_sources,
    read_catalog,
)
from svomflow.tasks.photometry.inject import add_noise, simple_tan_wcs, star_field
from svomflow.tasks.photometry.psf import PSFModel

# Columns of image.cat (default.param): 0-based indices.
X, Y, XWIN, YWIN, APER, APERERR, KRON, AUTO, AUTOERR, FR50, FLAGS = (
    1,
    2,
    3,
    4,
    12,
    13,
    14,
    15,
    16,
    18,
    20,
)


@pytest.mark.realdata
def test_matches_sextractor_catalog(shared_data):
    """Same settings as default.sex (global rms, no deblending, default.conv, min Kron 0).

    Tolerances are sep's own test_vs_sextractor ones. Object 56 (sorted by y) is the one
    sep's test also excludes: a nearly point-like detection whose Kron radius SExtractor
    2.8.6 sets to 0; we compare its Kron radius and flux to 0 with the same 0.01 atol.
    """
    d = shared_data / "optical" / "sep"
    with warnings.catch_warnings():
        # The 1992 ESO header has non-standard ESO-LOG cards; the pixels are what we use.
        warnings.simplefilter("ignore", AstropyUserWarning)
        img = fits.getdata(d / "image.fits").astype(float)
    ref = np.loadtxt(d / "image.cat")
    cfg = ExtractConfig(global_rms=True, deblend_mincont=1.0, kron_min_radius=0.0)
    cat = extract_sources(img, cfg).catalog
    assert len(cat) == len(ref) == 65
    cat = cat[np.argsort(cat["Y_IMAGE"])]
    ref = ref[np.argsort(ref[:, Y])]
    np.testing.assert_allclose(cat["X_IMAGE"], ref[:, X], atol=1e-3)
    np.testing.assert_allclose(cat["Y_IMAGE"], ref[:, Y], atol=1e-3)
    np.testing.assert_allclose(cat["FLUX_APER"][:, 0], ref[:, APER], rtol=2e-4)
    np.testing.assert_allclose(cat["FLUXERR_APER"][:, 0], ref[:, APERERR], rtol=1e-5)
    keep = np.ones(len(cat), bool)
    keep[56] = False
    np.testing.assert_allclose(cat["KRON_RADIUS"][keep], ref[keep, KRON], atol=0.01, rtol=0)
    np.testing.assert_allclose(cat["FLUX_AUTO"][keep], ref[keep, AUTO], rtol=5e-4)
    np.testing.assert_allclose(cat["FLUXERR_AUTO"][keep], ref[keep, AUTOERR], rtol=5e-4)
    assert cat["FLUX_AUTO"][56] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(cat["FLUX_RADIUS"][keep], ref[keep, FR50], rtol=0.04, atol=0.01)
    np.testing.assert_allclose(cat["XWIN_IMAGE"][keep], ref[keep, XWIN], atol=0.0015)
    np.testing.assert_allclose(cat["YWIN_IMAGE"][keep], ref[keep, YWIN], atol=0.0015)
    # The four edge-truncated objects carry SExtractor's bit 8, as in image.cat.
    truncated = (cat["FLAGS"] & 8) != 0
    np.testing.assert_array_equal(truncated, (ref[:, FLAGS].astype(int) & 8) != 0)


def _field(rng, n=40, shape=(256, 256), fwhm=3.0):
    psf = PSFModel(sigma=fwhm / 2.3548)
    # Stars on a jittered grid, at least ~20 pixels apart: isolated by construction.
    side = int(np.ceil(np.sqrt(n)))
    step = (shape[0] - 30) / side
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    x = (15 + step * (gx.ravel()[:n] + 0.5) + rng.uniform(-2, 2, n)).astype(float)
    y = (15 + step * (gy.ravel()[:n] + 0.5) + rng.uniform(-2, 2, n)).astype(float)
    flux = 10 ** rng.uniform(3.5, 5, n)
    expected = star_field(shape, x, y, flux, psf, sky_e=200.0)
    return add_noise(expected, rng, read_noise_e=5.0), x, y, flux, psf


def test_positions_fwhm_and_sky_coordinates():
    rng = np.random.default_rng(3)
    img, x, y, flux, psf = _field(rng)
    wcs = simple_tan_wcs(img.shape, 150.0, 20.0, 0.4)
    cat = extract_sources(img, wcs=wcs, gain=1.0).catalog
    # Match each injected star to its nearest detection.
    d2 = (cat["XWIN_IMAGE"][None, :] - 1 - x[:, None]) ** 2 + (
        cat["YWIN_IMAGE"][None, :] - 1 - y[:, None]
    ) ** 2
    j = np.argmin(d2, axis=1)
    ok = np.sqrt(d2[np.arange(len(x)), j]) < 1.0
    assert ok.all()
    # Windowed-position error ~ FWHM / (2.35 S/N) < 0.05 pix for S/N > 30: check 0.1.
    dx = cat["XWIN_IMAGE"][j[ok]] - 1 - x[ok]
    assert np.sqrt(np.mean(dx**2)) < 0.1
    bright = ok & (flux > 3e4)
    fwhm = np.median(cat["FWHM_IMAGE"][j[bright]])
    assert fwhm == pytest.approx(psf.fwhm, rel=0.1)
    _ra, dec = wcs.pixel_to_world_values(x[ok], y[ok])
    assert np.max(np.abs(cat["DELTA_J2000"][j[ok]] - dec)) * 3600 < 0.1
    assert np.all(cat["MAG_AUTO"][cat["FLUX_AUTO"] > 0] < 99)


def test_catalog_roundtrip(tmp_path):
    rng = np.random.default_rng(4)
    img, *_ = _field(rng, n=10)
    cat = extract_sources(img).catalog
    path = tmp_path / "cat.fits"
    fits.HDUList([fits.PrimaryHDU(), catalog_to_hdu(cat)]).writeto(path)
    back = read_catalog(str(path))
    assert back.colnames[:3] == ["NUMBER", "X_IMAGE", "Y_IMAGE"]
    np.testing.assert_allclose(back["FLUX_AUTO"], cat["FLUX_AUTO"])
    assert back.meta["BACKRMS"] == pytest.approx(cat.meta["BACKRMS"][0])


def test_nan_pixels_are_masked_and_all_nan_is_an_error():
    rng = np.random.default_rng(5)
    img, *_ = _field(rng, n=10)
    img[100:110, :] = np.nan
    cat = extract_sources(img).catalog
    assert np.all(np.isfinite(cat["FLUX_AUTO"]))
    with pytest.raises(InputDataError, match="masked or not finite"):
        extract_sources(np.full((64, 64), np.nan))
    with pytest.raises(InputDataError, match="2-D"):
        extract_sources(np.zeros(10))


def test_defect_pixels_are_masked_only_when_asked():
    """A damaged pixel far below the sky inside a bright star's Kron aperture (corpus gp1-039).

    Kept, it drags the star's AUTO flux down by its depth; masked (``defect_sigma``), the
    flux is the undamaged image's within the noise and the count of defects is reported.
    """
    rng = np.random.default_rng(6)
    img, x, y, flux, _psf = _field(rng, n=9)
    star = int(np.argmax(flux))
    clean = extract_sources(img, defect_sigma=30.0)
    assert clean.n_defects == 0
    damaged = img.copy()
    damaged[round(y[star]) + 4, round(x[star]) + 4] -= 4e4  # 4 px off the centre
    kept = extract_sources(damaged)
    masked = extract_sources(damaged, defect_sigma=30.0)
    assert kept.n_defects == 0 and masked.n_defects == 1

    def auto(cat):
        d2 = (cat["XWIN_IMAGE"] - 1 - x[star]) ** 2 + (cat["YWIN_IMAGE"] - 1 - y[star]) ** 2
        i = int(np.argmin(d2))
        return float(cat["FLUX_AUTO"][i]), float(cat["FLUXERR_AUTO"][i]), int(cat["FLAGS"][i])

    f0, e0, _ = auto(clean.catalog)
    f_kept, _, _ = auto(kept.catalog)
    f_masked, _, flags = auto(masked.catalog)
    assert f0 - f_kept > 3e4  # the damage entered the flux unmasked
    assert abs(f_masked - f0) < 0.01 * f0 + 3 * e0  # one pixel of the star's wing left out
    assert flags & 1  # SExtractor's bit: the aperture has masked pixels
