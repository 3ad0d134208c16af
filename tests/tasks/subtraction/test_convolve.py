"""Single-precision convolution of the subtraction: same difference and candidates as double."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import fftconvolve
from svomflow.tasks.photometry.inject import add_noise, star_field
from svomflow.tasks.photometry.measure import noise_map
from svomflow.tasks.photometry.psf import PSFModel
from svomflow.tasks.subtraction import alard_lupton, candidates
from svomflow.tasks.subtraction.convolve import convolve_same

SHAPE = (300, 300)
SCI_PSF = PSFModel(sigma=1.8, alpha=3.0, beta=3.0, wing_fraction=0.1)
REF_PSF = PSFModel(sigma=1.2, alpha=3.0, beta=3.0, wing_fraction=0.1)
TRANSIENT = (151.3, 137.6, 3000.0)


def _double(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return fftconvolve(np.asarray(image, float), np.asarray(kernel, float), mode="same")  # type: ignore[no-any-return]


def _pair() -> tuple[np.ndarray, ...]:
    """A science image (with a transient) and a deep reference; stars up to 1e6 ADU."""
    rng = np.random.default_rng(5)
    n = 90
    x = rng.uniform(15, SHAPE[1] - 15, n)
    y = rng.uniform(15, SHAPE[0] - 15, n)
    flux = 10 ** rng.uniform(3.0, 6.0, n)
    sky = 300.0
    ref = (
        add_noise(
            star_field(SHAPE, x, y, flux * 16, REF_PSF, sky_e=sky * 16), rng, read_noise_e=5.0
        )
        / 16
        - sky
    )
    ref_err = np.sqrt(sky * 16 + np.clip(ref * 16, 0, None)) / 16
    tx, ty, tf = TRANSIENT
    sci = (
        add_noise(
            star_field(SHAPE, np.append(x, tx), np.append(y, ty), np.append(flux, tf), SCI_PSF,
                       sky_e=sky),
            rng, read_noise_e=5.0,
        )
        - sky
    )  # fmt: skip
    sci_err = noise_map(np.sqrt(sky), sci, 1.0)
    order = np.argsort(-flux)
    return sci, ref, sci_err, ref_err, x[order], y[order]


def test_convolve_same_is_the_linear_convolution() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(0.0, 10.0, (64, 80))
    image[30, 40] = 1e5  # a bright star's peak
    kernel = rng.random((9, 9))
    out = convolve_same(image, kernel)
    assert out.dtype == np.float32 and out.shape == image.shape
    # the direct sum at one pixel near the edge (zero outside the frame)
    j, i = 2, 77
    pad = np.pad(image, 4)
    direct = np.sum(pad[j : j + 9, i : i + 9] * kernel[::-1, ::-1])
    assert out[j, i] == pytest.approx(direct, rel=1e-5, abs=1e-2)
    # single precision: rounding ~1e-7 of the frame's largest values, far below the noise
    assert np.max(np.abs(out - _double(image, kernel))) < 1e-6 * 1e5 * kernel.sum()
    # an even, non-square kernel is placed where scipy's "same" places it
    wide = rng.random((8, 11))
    assert (
        np.max(np.abs(convolve_same(image, wide) - _double(image, wide))) < 1e-6 * 1e5 * wide.sum()
    )


def test_single_precision_subtraction_matches_double(monkeypatch: pytest.MonkeyPatch) -> None:
    sci, ref, se, re, sx, sy = _pair()

    def run() -> tuple[alard_lupton.SubtractionResult, np.ndarray, object]:
        res = alard_lupton.subtract_images(
            sci, ref, science_noise=se, reference_noise=re, science_fwhm=SCI_PSF.fwhm,
            reference_fwhm=REF_PSF.fwhm, star_x=sx, star_y=sy,
        )  # fmt: skip
        bad = ~np.isfinite(res.difference) | ~np.isfinite(res.noise)
        sig = candidates.psf_significance(
            np.where(bad, 0.0, res.difference), res.noise, bad, SCI_PSF
        )
        return res, sig, candidates.find_candidates(res.difference, res.noise, SCI_PSF)

    single, sig1, cand1 = run()
    monkeypatch.setattr(alard_lupton, "convolve_same", _double)
    monkeypatch.setattr(candidates, "convolve_same", _double)
    double, sig2, cand2 = run()
    ok = np.isfinite(double.difference)
    assert ok.mean() > 0.9
    # the difference within 1e-3 sigma of the double-precision one, its noise within 1e-5
    dz = np.abs(single.difference - double.difference)[ok] / double.noise[ok]
    assert np.max(dz) < 1e-3
    assert np.max(np.abs(single.noise / double.noise - 1)[ok]) < 1e-5
    assert np.max(np.abs(sig1 - sig2)) < 1e-3
    # the same candidates, same verdicts, positions and S/N
    assert len(cand1) == len(cand2) >= 1
    assert list(cand1["REJECT"]) == list(cand2["REJECT"])
    assert np.allclose(cand1["X_IMAGE"], cand2["X_IMAGE"], atol=1e-3)
    assert np.allclose(cand1["SNR"], cand2["SNR"], rtol=1e-4)
    best = cand1[cand1["REJECT"] == "ok"][0]
    assert np.hypot(best["X_IMAGE"] - 1 - TRANSIENT[0], best["Y_IMAGE"] - 1 - TRANSIENT[1]) < 0.5
