"""Transient detection on difference images: completeness vs S/N, false candidates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree
from svomflow.tasks.photometry.psf import PSFModel
from svomflow.tasks.subtraction.candidates import find_candidates, psf_significance

PSF = PSFModel(sigma=3.0 / 2.3548)  # FWHM 3 pixels
SIGMA = 10.0


SMOOTH = 0.7  # Gaussian sigma (pixel) that correlates the noise in the correlated case


def _flux_at_snr(snr: float | np.ndarray, correlated: bool) -> np.ndarray:
    """Flux whose PSF-fit S/N is ``snr`` in noise of pixel rms ``SIGMA``.

    The PSF-fit flux error is ``SIGMA / sqrt(sum P^2)`` in white noise; in noise smoothed by
    a kernel ``G`` (then scaled to rms ``SIGMA``) it is
    ``SIGMA sqrt(sum (G*P)^2 / sum G^2) / sum P^2``.
    """
    h = PSF.radius() + 4
    p = PSF.render((2 * h + 1, 2 * h + 1), np.array([float(h)]), np.array([float(h)]), np.ones(1))
    if not correlated:
        return np.asarray(snr) * SIGMA / np.sqrt((p**2).sum())
    delta = np.zeros_like(p)
    delta[h, h] = 1.0
    g = gaussian_filter(delta, SMOOTH)
    gp = gaussian_filter(p, SMOOTH)
    err = SIGMA * np.sqrt((gp**2).sum() / (g**2).sum()) / (p**2).sum()
    return np.asarray(snr) * err


def _difference(size: int, snrs: list[float], per_level: int, seed: int, correlated: bool):
    """Noise plus sources on a grid, one S/N level per block of rows; their true positions."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, (size, size))
    if correlated:  # a convolved reference correlates the difference's pixels
        noise = gaussian_filter(noise, SMOOTH)
    img = SIGMA * noise / noise.std()
    n = len(snrs) * per_level
    side = int(np.ceil(np.sqrt(n)))
    step = (size - 60) / side
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    x = 30 + step * (gx.ravel()[:n] + 0.5) + rng.uniform(-0.5, 0.5, n)
    y = 30 + step * (gy.ravel()[:n] + 0.5) + rng.uniform(-0.5, 0.5, n)
    level = np.repeat(np.asarray(snrs), per_level)
    PSF.add_to(img, x, y, _flux_at_snr(level, correlated))
    return img, np.full(img.shape, SIGMA), x, y, level


def _completeness(size: int, snrs: list[float], per_level: int, seed: int, correlated: bool):
    img, noise, x, y, level = _difference(size, snrs, per_level, seed, correlated)
    cands = find_candidates(img, noise, PSF)
    kept = cands[cands["REJECT"] == "ok"]
    if len(kept) == 0:
        return {s: 0.0 for s in snrs}, 0
    dist, idx = cKDTree(np.c_[x, y]).query(np.c_[kept["X_IMAGE"] - 1, kept["Y_IMAGE"] - 1])
    hit = np.zeros(len(x), bool)
    hit[idx[dist < 1.5]] = True
    false = int((dist >= 1.5).sum())
    return {s: float(hit[level == s].mean()) for s in snrs}, false


def test_point_source_at_snr_10_is_detected():
    # The case of the issue: a lone source at S/N 10, whose brightest pixel is at S/N ~4.
    img, noise, x, y, _ = _difference(128, [10.0], 1, 3, correlated=False)
    cands = find_candidates(img, noise, PSF)
    kept = cands[cands["REJECT"] == "ok"]
    assert len(kept) == 1
    assert np.hypot(kept["X_IMAGE"][0] - 1 - x[0], kept["Y_IMAGE"][0] - 1 - y[0]) < 0.5
    assert kept["SNR"][0] == pytest.approx(10.0, abs=2.5)


def test_significance_is_unit_normal_on_noise():
    rng = np.random.default_rng(5)
    img = rng.normal(0.0, SIGMA, (256, 256))
    s = psf_significance(img, np.full(img.shape, SIGMA), np.zeros(img.shape, bool), PSF)
    assert np.std(s[20:-20, 20:-20]) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("correlated", [False, True])
def test_completeness_vs_snr(correlated):
    # 1024^2 with 400 sources; false candidates scaled to a 2k x 2k image (x4).
    snrs = [3.0, 5.0, 7.0, 10.0]
    comp, false = _completeness(1024, snrs, 100, 11, correlated)
    print(f"correlated={correlated} completeness", comp, "false per 2k image", 4 * false)
    assert comp[7.0] > 0.9 and comp[10.0] > 0.97
    assert comp[3.0] < 0.3  # below threshold: not a detector of noise
    assert 4 * false < 1.0 + 1e-9 or false == 0
