"""PSF fit, PSF/aperture photometry, zero point and limiting magnitude on injected stars."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.errors import InputDataError
from svomflow.tasks.photometry.extract import extract_sources
from svomflow.tasks.photometry.inject import add_noise, star_field
from svomflow.tasks.photometry.limits import (
    aperture_fraction,
    completeness,
    limiting_flux,
    limiting_magnitude,
)
from svomflow.tasks.photometry.measure import aperture_photometry, noise_map, psf_photometry
from svomflow.tasks.photometry.psf import PSFModel, fit_psf, select_psf_stars
from svomflow.tasks.photometry.zeropoint import ZeroPointConfig, fit_zero_point

GAIN = 1.5
TRUE = PSFModel(sigma=1.3, alpha=2.5, beta=2.8, wing_fraction=0.25)


@pytest.fixture(scope="module")
def field():
    rng = np.random.default_rng(1)
    shape = (512, 512)
    side = 10
    step = (shape[0] - 40) / side
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    x = 20 + step * (gx.ravel() + 0.5) + rng.uniform(-3, 3, side * side)
    y = 20 + step * (gy.ravel() + 0.5) + rng.uniform(-3, 3, side * side)
    flux = 10 ** rng.uniform(3.0, 5.5, side * side)  # ADU
    expected = star_field(shape, x, y, flux * GAIN, TRUE, sky_e=400.0)
    img = add_noise(expected, rng, read_noise_e=5.0, gain_e_per_adu=GAIN)
    ex = extract_sources(img, gain=GAIN)
    sub = img - ex.background
    err = noise_map(ex.rms, sub, GAIN)
    stars = select_psf_stars(ex.catalog, shape, half_size=10, max_stars=25)
    fit = fit_psf(sub, stars, half_size=10, noise=err)
    return {"img": img, "x": x, "y": y, "flux": flux, "ex": ex, "sub": sub, "err": err, "fit": fit}


def test_psf_fit_recovers_core_and_wings(field):
    fit = field["fit"]
    assert fit.n_stars >= 15
    # 25 stars of S/N > 30: shape parameters to a few percent, FWHM to 1 %.
    assert fit.fwhm == pytest.approx(TRUE.fwhm, rel=0.01)
    assert fit.model.sigma == pytest.approx(TRUE.sigma, rel=0.03)
    assert fit.model.wing_fraction == pytest.approx(TRUE.wing_fraction, abs=0.05)
    # Reduced chi2 of a correct model with a correct noise model: 1 within a few percent.
    assert fit.reduced_chi2 == pytest.approx(1.0, abs=0.06)


def test_psf_photometry_bias_and_scatter(field):
    ph = psf_photometry(
        field["sub"], field["x"], field["y"], field["fit"].model, error=field["err"]
    )
    flux = field["flux"]
    ratio = np.asarray(ph["FLUX_PSF"]) / flux
    bright = flux > 3e4  # S/N > 100
    n = bright.sum()
    bias = np.mean(ratio[bright]) - 1
    sem = np.std(ratio[bright]) / np.sqrt(n)
    assert abs(bias) < 0.01
    assert abs(bias) < 4 * sem + 0.002  # consistent with zero (0.2 % model floor)
    pull = (np.asarray(ph["FLUX_PSF"]) - flux) / np.asarray(ph["FLUXERR_PSF"])
    # The error bars follow the noise model: pull std 1 within 4/sqrt(2N).
    assert np.std(pull) == pytest.approx(1.0, abs=4 / np.sqrt(2 * len(pull)))
    # Fitted positions to a small fraction of a pixel.
    assert np.sqrt(np.mean((ph["X_PSF"] - field["x"]) ** 2)) < 0.15


def test_aperture_photometry_with_aperture_correction(field):
    psf = field["fit"].model
    r = 1.5 * psf.fwhm
    ap = aperture_photometry(
        field["sub"],
        field["x"],
        field["y"],
        radius=r,
        error=field["err"],
        annulus=(4 * psf.fwhm, 6 * psf.fwhm),
    )
    frac = aperture_fraction(psf, r)
    bright = field["flux"] > 3e4
    ratio = np.asarray(ap["FLUX_APER"])[bright] / (frac * field["flux"][bright])
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    pull = (np.asarray(ap["FLUX_APER"]) - frac * field["flux"]) / np.asarray(ap["FLUXERR_APER"])
    assert np.std(pull) == pytest.approx(1.0, abs=4 / np.sqrt(2 * len(pull)) + 0.05)


def test_zero_point_with_clipping_and_colour_term():
    rng = np.random.default_rng(3)
    n = 80
    ref = rng.uniform(14, 19, n)
    colour = rng.uniform(0.2, 1.5, n)
    err = 0.01 + 0.02 * (ref - 14) / 5
    inst = ref - 24.7 - 0.08 * (colour - np.median(colour)) + rng.normal(0, err)
    inst[:6] += 0.8  # blends / variables
    cfg = ZeroPointConfig(colour_term=True)
    zp = fit_zero_point(inst, err, ref, colour=colour, config=cfg)
    assert zp.n_used == n - 6
    assert zp.zp == pytest.approx(24.7, abs=4 * zp.zp_err)
    assert zp.colour_term == pytest.approx(0.08, abs=0.03)
    assert zp.scatter == pytest.approx(np.sqrt(np.mean(err[6:] ** 2)), rel=0.25)
    plain = fit_zero_point(inst, err, ref)
    assert plain.colour_term == 0.0
    with pytest.raises(InputDataError, match="calibration stars"):
        fit_zero_point(inst[:3], err[:3], ref[:3])


def test_limiting_magnitude_checked_by_injected_stars(field):
    psf = field["fit"].model
    rms = float(np.median(field["ex"].rms))
    zp, exptime = 25.0, 60.0
    mlim = limiting_magnitude(rms, psf, zp, exptime, gain=GAIN)
    ap_lim = limiting_flux(rms, psf, gain=GAIN, aperture_radius=1.5 * psf.fwhm)
    assert ap_lim > limiting_flux(rms, psf, gain=GAIN)  # PSF fitting is the more sensitive
    avoid = np.column_stack([field["x"], field["y"]])
    res = completeness(
        field["img"],
        psf,
        mags=np.array([mlim - 2.5, mlim]),
        zero_point=zp,
        exptime=exptime,
        gain=GAIN,
        n_per_mag=40,
        rng=np.random.default_rng(11),
        avoid=avoid,
    )
    curve = res.curve()
    bright, at_lim = curve[0], curve[1]
    assert bright["COMPLETENESS"] == 1.0
    assert abs(bright["FLUX_RATIO"] - 1) < 0.01
    # At the 5-sigma limit, S/N >= 5 for half the stars: binomial(40, 0.5) within 3 sigma.
    assert at_lim["FRAC_SNR5"] == pytest.approx(0.5, abs=3 * np.sqrt(0.25 / 40))
    assert at_lim["PULL_STD"] == pytest.approx(1.0, abs=0.35)
