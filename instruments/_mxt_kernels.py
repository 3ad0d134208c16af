"""Numba kernel of the MXT point-spread function: the lobster-eye PSF integrated over pixels.

PSF model (per source, detector pixel units, centre ``(x0, y0)``)::

    P(x, y) = f_core * K(r; gamma)
            + f_arm/2 * T(dx; L) * G(dy; s_w) + f_arm/2 * G(dx; s_w) * T(dy; L)
            + f_halo * G(dx; s_h) * G(dy; s_h)

with ``K`` the 2-D Cauchy ("Lorentzian-like", King beta = 3/2) profile
``gamma / (2 pi (gamma^2 + r^2)^1.5)``, ``T`` the triangle of half-length ``L`` and ``G``
Gaussians. Every term has a closed-form integral over a rectangle, so pixels are integrated
exactly (no sub-sampling): the Cauchy part through the solid-angle primitive
``F(x, y) = atan(x y / (gamma sqrt(gamma^2 + x^2 + y^2))) / (2 pi)``, the others as products
of 1-D CDFs. Position derivatives are closed forms too (derivatives of the primitives).

Pixel convention: pixel ``(j, i)`` (row ``j`` = RAWY, column ``i`` = RAWX) covers
``[x_edges[i], x_edges[i+1]) x [y_edges[j], y_edges[j+1])``; the detector pixel ``k`` spans
``[k, k + 1)``.

The kernel lives with the instrument model (:class:`svomflow.instruments.mxt_calibration.PSFModel`)
because the CALDB loader, the simulator and the fit all evaluate the same PSF.
"""

from __future__ import annotations

import math

import numpy as np
from svomflow.numba_policy import kernel

__all__ = ["gauss_cdf_pdf", "psf_pixels", "tri_cdf_pdf"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@kernel
def tri_cdf_pdf(u: float, half: float) -> tuple[float, float]:
    """Return (CDF, PDF) at ``u`` of the triangle distribution on ``[-half, half]``."""
    if u <= -half:
        return 0.0, 0.0
    if u >= half:
        return 1.0, 0.0
    a = u / half
    if a < 0.0:
        return 0.5 * (1.0 + a) ** 2, (1.0 + a) / half
    return 1.0 - 0.5 * (1.0 - a) ** 2, (1.0 - a) / half


@kernel
def gauss_cdf_pdf(u: float, sigma: float) -> tuple[float, float]:
    """Return (CDF, PDF) at ``u`` of a centred Gaussian of width ``sigma``."""
    z = u / sigma
    return 0.5 * (1.0 + math.erf(z / _SQRT2)), _INV_SQRT2PI / sigma * math.exp(-0.5 * z * z)


@kernel
def psf_pixels(
    x0: float,
    y0: float,
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    gamma: float,
    arm_half: float,
    arm_sigma: float,
    halo_sigma: float,
    f_core: float,
    f_arm: float,
    f_halo: float,
    out: np.ndarray,
    dx_out: np.ndarray,
    dy_out: np.ndarray,
) -> None:
    """Integrate the PSF over the pixels of a grid, with its derivatives in the source position.

    Fills ``out`` (ny, nx) with the pixel integrals and ``dx_out``/``dy_out`` with their
    derivatives with respect to ``x0``/``y0``.
    """
    nx = x_edges.size - 1
    ny = y_edges.size - 1
    g2 = gamma * gamma
    inv2pi = 1.0 / (2.0 * math.pi)
    # 1-D edge values of the separable components (CDF and PDF at each edge).
    tx_c = np.empty(nx + 1)
    tx_p = np.empty(nx + 1)
    wx_c = np.empty(nx + 1)
    wx_p = np.empty(nx + 1)
    hx_c = np.empty(nx + 1)
    hx_p = np.empty(nx + 1)
    for i in range(nx + 1):
        u = x_edges[i] - x0
        tx_c[i], tx_p[i] = tri_cdf_pdf(u, arm_half)
        wx_c[i], wx_p[i] = gauss_cdf_pdf(u, arm_sigma)
        hx_c[i], hx_p[i] = gauss_cdf_pdf(u, halo_sigma)
    ty_c = np.empty(ny + 1)
    ty_p = np.empty(ny + 1)
    wy_c = np.empty(ny + 1)
    wy_p = np.empty(ny + 1)
    hy_c = np.empty(ny + 1)
    hy_p = np.empty(ny + 1)
    for j in range(ny + 1):
        v = y_edges[j] - y0
        ty_c[j], ty_p[j] = tri_cdf_pdf(v, arm_half)
        wy_c[j], wy_p[j] = gauss_cdf_pdf(v, arm_sigma)
        hy_c[j], hy_p[j] = gauss_cdf_pdf(v, halo_sigma)
    # Corner values of the Cauchy primitive F and its partial derivatives.
    fc = np.empty((ny + 1, nx + 1))
    fcx = np.empty((ny + 1, nx + 1))
    fcy = np.empty((ny + 1, nx + 1))
    for j in range(ny + 1):
        v = y_edges[j] - y0
        for i in range(nx + 1):
            u = x_edges[i] - x0
            s = math.sqrt(g2 + u * u + v * v)
            fc[j, i] = math.atan(u * v / (gamma * s)) * inv2pi
            # dF/du = gamma v / ((gamma^2 + u^2) s) / (2 pi), symmetric for v.
            fcx[j, i] = gamma * v / ((g2 + u * u) * s) * inv2pi
            fcy[j, i] = gamma * u / ((g2 + v * v) * s) * inv2pi
    half_arm = 0.5 * f_arm
    for j in range(ny):
        dty = ty_c[j + 1] - ty_c[j]
        dwy = wy_c[j + 1] - wy_c[j]
        dhy = hy_c[j + 1] - hy_c[j]
        # derivative of an interval integral wrt the centre: -(pdf(hi) - pdf(lo))
        pty = -(ty_p[j + 1] - ty_p[j])
        pwy = -(wy_p[j + 1] - wy_p[j])
        phy = -(hy_p[j + 1] - hy_p[j])
        for i in range(nx):
            dtx = tx_c[i + 1] - tx_c[i]
            dwx = wx_c[i + 1] - wx_c[i]
            dhx = hx_c[i + 1] - hx_c[i]
            ptx = -(tx_p[i + 1] - tx_p[i])
            pwx = -(wx_p[i + 1] - wx_p[i])
            phx = -(hx_p[i + 1] - hx_p[i])
            core = fc[j + 1, i + 1] - fc[j + 1, i] - fc[j, i + 1] + fc[j, i]
            dcore_x = -(fcx[j + 1, i + 1] - fcx[j + 1, i] - fcx[j, i + 1] + fcx[j, i])
            dcore_y = -(fcy[j + 1, i + 1] - fcy[j + 1, i] - fcy[j, i + 1] + fcy[j, i])
            out[j, i] = f_core * core + half_arm * (dtx * dwy + dwx * dty) + f_halo * dhx * dhy
            dx_out[j, i] = (
                f_core * dcore_x + half_arm * (ptx * dwy + pwx * dty) + f_halo * phx * dhy
            )
            dy_out[j, i] = (
                f_core * dcore_y + half_arm * (dtx * pwy + dwx * pty) + f_halo * dhx * phy
            )
