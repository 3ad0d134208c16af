"""The PSF kernels against plain NumPy references and fine numerical integration."""

from __future__ import annotations

import numpy as np
from scipy.special import erf
from svomflow.tasks.photometry._kernels import moffat_pixel, psf_fit_sources, render_psf_stars


def _moffat_mean(dx, dy, alpha, beta, nsub):
    """Mean of the Moffat profile over pixels centred at (dx, dy), nsub x nsub midpoints."""
    sub = (np.arange(nsub) + 0.5) / nsub - 0.5
    m = np.zeros(np.broadcast(dx, dy).shape)
    for sy in sub:
        for sx in sub:
            m += (1 + ((dx + sx) ** 2 + (dy + sy) ** 2) / alpha**2) ** -beta
    return m / nsub**2


def _moffat_far(dx, dy, alpha, beta):
    """Centre value plus Laplacian / 24, written from the 2-D Laplacian of (1+r^2/a^2)^-b."""
    r2 = dx**2 + dy**2
    u = 1 + r2 / alpha**2
    lap = -4 * beta / alpha**2 * u ** (-beta - 1) * (1 - (beta + 1) * r2 / (alpha**2 * u))
    return u**-beta + lap / 24


def _reference(shape, x, y, f, sigma, alpha, beta, w, nsub):
    jj, ii = np.indices(shape, dtype=float)
    out = np.zeros(shape)
    s = np.sqrt(2) * sigma
    far = max(alpha, 1.5)
    for xc, yc, fl in zip(x, y, f, strict=True):
        gx = 0.5 * (erf((ii - xc + 0.5) / s) - erf((ii - xc - 0.5) / s))
        gy = 0.5 * (erf((jj - yc + 0.5) / s) - erf((jj - yc - 0.5) / s))
        dx, dy = ii - xc, jj - yc
        m = np.where(
            np.hypot(dx, dy) >= far,
            _moffat_far(dx, dy, alpha, beta),
            _moffat_mean(dx, dy, alpha, beta, nsub),
        )
        m *= (beta - 1) / (np.pi * alpha**2)
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


def test_far_pixels_are_closer_to_the_integral_than_3x3_subsampling():
    # every pixel of a 31 x 31 box around stars at several sub-pixel phases, for wings
    # from shallow to steep: beyond max(alpha, 1.5) the corrected centre value is used
    rng = np.random.default_rng(3)
    for alpha, beta in ((1.2, 2.2), (2.0, 4.5), (3.7, 2.85), (6.0, 3.0)):
        far2 = max(alpha, 1.5) ** 2
        for xc, yc in rng.uniform(-0.5, 0.5, (4, 2)):
            jj, ii = np.indices((31, 31), dtype=float) - 15
            dx, dy = ii - xc, jj - yc
            sel = dx**2 + dy**2 >= far2
            exact = _moffat_mean(dx[sel], dy[sel], alpha, beta, 40)
            ours = np.array(
                [
                    moffat_pixel(a, b, 1 / alpha**2, beta, 3, far2)[0]
                    for a, b in zip(dx[sel], dy[sel], strict=True)
                ]
            )
            three = _moffat_mean(dx[sel], dy[sel], alpha, beta, 3)
            assert np.abs(ours - exact).sum() < np.abs(three - exact).sum()
            assert np.max(np.abs(ours / exact - 1)) < 0.015


def test_moffat_pixel_slopes_are_the_derivatives_of_its_value():
    # near (sub-sampled) and far (corrected centre value) pixels
    alpha, beta, h = 2.5, 3.2, 1e-6
    far2 = max(alpha, 1.5) ** 2
    for dx, dy in ((0.3, -0.4), (1.1, 1.7), (3.0, -2.2), (-7.5, 4.1)):
        _, sx, sy = moffat_pixel(dx, dy, 1 / alpha**2, beta, 5, far2)
        if (dx + h) ** 2 + dy**2 >= far2 > (dx - h) ** 2 + dy**2:
            continue  # not at the switch itself
        nx = (
            moffat_pixel(dx + h, dy, 1 / alpha**2, beta, 5, far2)[0]
            - moffat_pixel(dx - h, dy, 1 / alpha**2, beta, 5, far2)[0]
        ) / (2 * h)
        ny = (
            moffat_pixel(dx, dy + h, 1 / alpha**2, beta, 5, far2)[0]
            - moffat_pixel(dx, dy - h, 1 / alpha**2, beta, 5, far2)[0]
        ) / (2 * h)
        assert abs(sx - nx) < 1e-6 * max(abs(nx), 1e-3) + 1e-9
        assert abs(sy - ny) < 1e-6 * max(abs(ny), 1e-3) + 1e-9


def test_psf_fit_recovers_a_finely_integrated_star():
    # a noise-free star integrated with 15 x 15 sub-pixels (not the fitter's own model):
    # flux and centre come back to well under a percent and a hundredth of a pixel
    sigma, alpha, beta, w = 1.8, 3.7, 2.85, 0.6
    xs, ys, flux = np.array([20.27]), np.array([19.64]), np.array([5000.0])
    ref = _reference((41, 41), xs, ys, flux, sigma, alpha, beta, w, 3)
    jj, ii = np.indices((41, 41), dtype=float)
    s = np.sqrt(2) * sigma
    gx = 0.5 * (erf((ii - xs[0] + 0.5) / s) - erf((ii - xs[0] - 0.5) / s))
    gy = 0.5 * (erf((jj - ys[0] + 0.5) / s) - erf((jj - ys[0] - 0.5) / s))
    m = _moffat_mean(ii - xs[0], jj - ys[0], alpha, beta, 15) * (beta - 1) / (np.pi * alpha**2)
    fine = flux[0] * ((1 - w) * gx * gy + w * m)
    # the fitter's model (3 x 3 sub-pixels near the centre) is within 0.3 % of the peak
    assert np.abs(fine - ref).max() < 3e-3 * fine.max()
    out = np.zeros((1, 6))
    psf_fit_sources(
        fine, np.ones_like(fine), np.zeros(fine.shape, bool), np.array([20.0]), np.array([20.0]),
        sigma, alpha, beta, w, 6, 3, True, 20, out,
    )  # fmt: skip
    x, y, f = out[0, :3]
    assert abs(f / flux[0] - 1) < 2e-3
    assert abs(x - xs[0]) < 0.01 and abs(y - ys[0]) < 0.01
