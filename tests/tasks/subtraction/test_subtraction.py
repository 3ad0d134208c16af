"""Alard-Lupton subtraction: PSF matching, flux scaling, injected transient recovery."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.errors import InputDataError
from svomflow.tasks.photometry.inject import add_noise, star_field
from svomflow.tasks.photometry.measure import noise_map
from svomflow.tasks.photometry.psf import PSFModel
from svomflow.tasks.subtraction.alard_lupton import gaussian_basis, subtract_images
from svomflow.tasks.subtraction.candidates import find_candidates

SHAPE = (400, 400)
GAIN = 1.0


def _pair(
    rng, *, sci_psf, ref_psf, transient=None, scale=0.9, sky_offset=7.0, n=120, variable=None
):
    x = rng.uniform(15, SHAPE[1] - 15, n)
    y = rng.uniform(15, SHAPE[0] - 15, n)
    flux = 10 ** rng.uniform(3.0, 5.0, n)
    sky = 300.0
    # A deep reference: 4x lower noise (stacked), pixels in science units.
    ref = (
        add_noise(
            star_field(SHAPE, x, y, flux * 16, ref_psf, sky_e=sky * 16), rng, read_noise_e=5.0
        )
        / 16
        - sky
    )
    ref_err = np.sqrt(sky * 16 + 25 + np.clip(ref * 16, 0, None)) / 16
    sflux = flux * scale
    if variable is not None:
        sflux[variable] *= 3.0
    xs, ys, fs = x, y, sflux
    if transient is not None:
        xs = np.append(x, transient[0])
        ys = np.append(y, transient[1])
        fs = np.append(sflux, transient[2])
    sci = (
        add_noise(star_field(SHAPE, xs, ys, fs, sci_psf, sky_e=sky), rng, read_noise_e=5.0)
        - sky
        + sky_offset
    )
    sci_err = noise_map(np.sqrt(sky + 25.0), sci, GAIN)
    order = np.argsort(-flux)
    return sci, ref, sci_err, ref_err, x[order], y[order]


def test_basis_sums():
    b = gaussian_basis(6, [0.8, 1.6], [2, 1])
    assert len(b) == 6 + 3
    assert b[0].sum() == pytest.approx(1.0)
    assert all(abs(f.sum()) < 1e-10 for f in b[1:])


@pytest.mark.parametrize("sci_sigma,ref_sigma", [(1.8, 1.2), (1.2, 1.6)])
def test_subtraction_finds_injected_transient(sci_sigma, ref_sigma):
    rng = np.random.default_rng(21)
    sci_psf = PSFModel(sigma=sci_sigma, alpha=3.0, beta=3.0, wing_fraction=0.1)
    ref_psf = PSFModel(sigma=ref_sigma, alpha=3.0, beta=3.0, wing_fraction=0.1)
    tx, ty, tf = 201.3, 187.6, 2500.0
    sci, ref, se, re, sx, sy = _pair(rng, sci_psf=sci_psf, ref_psf=ref_psf, transient=(tx, ty, tf))
    res = subtract_images(
        sci,
        ref,
        science_noise=se,
        reference_noise=re,
        science_fwhm=sci_psf.fwhm,
        reference_fwhm=ref_psf.fwhm,
        star_x=sx,
        star_y=sy,
    )
    assert res.scale == pytest.approx(0.9, rel=0.01)
    # The constant term is partly degenerate with the broad zero-sum basis functions on
    # stamps; the check is that it is of the right size (sky noise is ~17 ADU per pixel).
    assert res.background == pytest.approx(7.0, abs=1.0)
    # Away from the transient the difference is noise: normalised residual std ~ 1.
    z = res.difference / res.noise
    core = z[20:-20, 20:-20].copy()
    core[int(ty) - 20 - 12 : int(ty) - 20 + 12, int(tx) - 20 - 12 : int(tx) - 20 + 12] = np.nan
    assert np.nanstd(core) == pytest.approx(1.0, abs=0.1)
    diff_psf = sci_psf if res.psf_of == "science" else ref_psf
    cand = find_candidates(res.difference, res.noise, diff_psf)
    kept = cand[cand["REJECT"] == "ok"]
    assert len(kept) >= 1
    best = kept[0]
    d = np.hypot(best["X_IMAGE"] - 1 - tx, best["Y_IMAGE"] - 1 - ty)
    assert d < 0.5
    assert best["FLUX_PSF"] == pytest.approx(tf, abs=3 * best["FLUXERR_PSF"])
    # No more than a few noise/residual candidates over the 160k-pixel image.
    assert len(kept) <= 3


def test_dipole_rejected_and_too_few_stamps():
    rng = np.random.default_rng(5)
    psf = PSFModel(sigma=1.5)
    diff = rng.normal(0, 1, (100, 100))
    img = psf.render(
        (100, 100), np.array([50.0, 30.0]), np.array([50.0, 70.0]), np.array([800.0, 800.0])
    )
    img -= psf.render((100, 100), np.array([51.8]), np.array([50.0]), np.array([800.0]))
    diff += img
    cand = find_candidates(diff, np.ones_like(diff), psf)
    near = cand[np.hypot(cand["X_IMAGE"] - 51, cand["Y_IMAGE"] - 51) < 3]
    assert len(near) >= 1 and near["REJECT"][0] == "dipole"
    clean = cand[np.hypot(cand["X_IMAGE"] - 31, cand["Y_IMAGE"] - 71) < 1]
    assert len(clean) == 1 and clean["REJECT"][0] == "ok"
    with pytest.raises(InputDataError, match="stamps"):
        subtract_images(
            diff,
            diff,
            science_noise=np.ones_like(diff),
            reference_noise=np.ones_like(diff),
            science_fwhm=3,
            reference_fwhm=3,
            star_x=np.array([1.0]),
            star_y=np.array([1.0]),
        )
