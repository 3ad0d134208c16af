"""The PSF renderer kernel against a plain NumPy reference."""

from __future__ import annotations

import numpy as np
from scipy.special import erf
from svomflow.tasks.photometry._kernels import render_psf_stars


def _reference(shape, x, y, f, sigma, alpha, beta, w, nsub):
    jj, ii = np.indices(shape, dtype=float)
    out = np.zeros(shape)
    s = np.sqrt(2) * sigma
    for xc, yc, fl in zip(x, y, f, strict=True):
        gx = 0.5 * (erf((ii - xc + 0.5) / s) - erf((ii - xc - 0.5) / s))
        gy = 0.5 * (erf((jj - yc + 0.5) / s) - erf((jj - yc - 0.5) / s))
        sub = (np.arange(nsub) + 0.5) / nsub - 0.5
        m = np.zeros(shape)
        for sy in sub:
            for sx in sub:
                r2 = (ii - xc + sx) ** 2 + (jj - yc + sy) ** 2
                m += (1 + r2 / alpha**2) ** -beta
        m *= (beta - 1) / (np.pi * alpha**2) / nsub**2
        out += fl * ((1 - w) * gx * gy + w * m)
    return out


def test_render_matches_numpy_reference():
    rng = np.random.default_rng(0)
    shape = (40, 50)
    x = rng.uniform(5, 45, 6)
    y = rng.uniform(5, 35, 6)
    f = rng.uniform(10, 1000, 6)
    img = np.zeros(shape)
    render_psf_stars(img, x, y, f, 1.4, 2.7, 3.1, 0.3, 60, 4)
    ref = _reference(shape, x, y, f, 1.4, 2.7, 3.1, 0.3, 4)
    np.testing.assert_allclose(img, ref, rtol=1e-10, atol=1e-10)


def test_render_conserves_flux_and_truncates_at_radius():
    img = np.zeros((81, 81))
    render_psf_stars(
        img, np.array([40.3]), np.array([39.8]), np.array([1.0]), 1.5, 3.0, 3.0, 0.2, 40, 5
    )
    # Moffat beta=3 flux beyond R=40, alpha=3: (1 + (40/3)^2)^-2 ~ 3e-5 of the wing part.
    assert abs(img.sum() - 1.0) < 2e-4
    small = np.zeros((81, 81))
    render_psf_stars(
        small, np.array([40.0]), np.array([40.0]), np.array([1.0]), 1.5, 3.0, 3.0, 0.2, 3, 5
    )
    assert np.count_nonzero(small) == 49
