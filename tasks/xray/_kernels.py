"""Numba kernels of the MXT steps: the pixel-integrated lobster-eye PSF, the Cash statistic
with its gradient, and the recombination of split events.

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
"""

from __future__ import annotations

import math

import numpy as np
from svomflow.numba_policy import kernel

__all__ = [
    "cash_grad",
    "fisher_matrix",
    "gauss_cdf_pdf",
    "psf_pixels",
    "recombine_frames",
    "tri_cdf_pdf",
]

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
    """Fill ``out`` (ny, nx) with the PSF integrated over pixels and ``dx_out``/``dy_out`` with
    its derivatives with respect to the source position ``x0``/``y0``."""
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


@kernel
def cash_grad(
    counts: np.ndarray,
    psf: np.ndarray,
    dpsf_x: np.ndarray,
    dpsf_y: np.ndarray,
    amp: np.ndarray,
    bkg: np.ndarray,
    fixed: np.ndarray,
    grad_amp: np.ndarray,
    grad_bkg: np.ndarray,
    grad_x: np.ndarray,
    grad_y: np.ndarray,
) -> float:
    """Return the Cash statistic C = 2 sum(m - c ln m) of the multi-band model and fill its
    gradient with respect to the source amplitudes, backgrounds and positions.

    Shapes: ``counts``/``fixed`` (nb, ny, nx); ``psf``/``dpsf_*`` (ns, ny, nx); ``amp``
    (ns, nb) counts per source and band; ``bkg`` (nb,) counts per pixel. The model is
    ``m[b] = bkg[b] + fixed[b] + sum_s amp[s, b] * psf[s]``.
    """
    nb, ny, nx = counts.shape
    ns = psf.shape[0]
    grad_amp[:, :] = 0.0
    grad_bkg[:] = 0.0
    grad_x[:] = 0.0
    grad_y[:] = 0.0
    c_stat = 0.0
    for b in range(nb):
        for j in range(ny):
            for i in range(nx):
                m = bkg[b] + fixed[b, j, i]
                for s in range(ns):
                    m += amp[s, b] * psf[s, j, i]
                if m < 1e-300:
                    m = 1e-300
                c = counts[b, j, i]
                if c > 0.0:
                    c_stat += m - c * math.log(m)
                    w = 1.0 - c / m
                else:
                    c_stat += m
                    w = 1.0
                grad_bkg[b] += w
                for s in range(ns):
                    grad_amp[s, b] += w * psf[s, j, i]
                    grad_x[s] += w * amp[s, b] * dpsf_x[s, j, i]
                    grad_y[s] += w * amp[s, b] * dpsf_y[s, j, i]
    grad_amp *= 2.0
    grad_bkg *= 2.0
    grad_x *= 2.0
    grad_y *= 2.0
    return 2.0 * c_stat


@kernel
def recombine_frames(
    frame: np.ndarray,
    rawx: np.ndarray,
    rawy: np.ndarray,
    energy: np.ndarray,
    out_index: np.ndarray,
    out_energy: np.ndarray,
    out_pattern: np.ndarray,
    out_multi: np.ndarray,
) -> int:
    """Group the pixel events of each frame into split events; return the number of groups.

    Inputs must be sorted by frame. Within a frame, pixels that touch (8-connected) form one
    event; ``out_index`` gets the row of its brightest pixel, ``out_energy`` the summed
    energy, ``out_multi`` the number of pixels and ``out_pattern`` the code:
    0 single; 1-4 doubles (neighbour at +x, -x, +y, -y); 5-8 triples and 9-12 quads inside a
    2x2 square (quadrant +x+y, -x+y, -x-y, +x-y); 13 anything else (invalid: pile-up or a
    cosmic-ray track).
    """
    n = frame.size
    label = np.full(n, -1, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    ngroups = 0
    start = 0
    while start < n:
        stop = start
        while stop < n and frame[stop] == frame[start]:
            stop += 1
        for k in range(start, stop):
            if label[k] >= 0:
                continue
            # flood fill over the pixels of this frame (frames hold few pixels)
            label[k] = ngroups
            top = 0
            stack[top] = k
            top += 1
            best = k
            esum = 0.0
            cnt = 0
            while top > 0:
                top -= 1
                p = stack[top]
                esum += energy[p]
                cnt += 1
                if energy[p] > energy[best]:
                    best = p
                for q in range(start, stop):
                    if label[q] < 0 and abs(rawx[q] - rawx[p]) <= 1 and abs(rawy[q] - rawy[p]) <= 1:
                        label[q] = ngroups
                        stack[top] = q
                        top += 1
            # pattern from the offsets of the group's pixels relative to the brightest one
            code = 13
            if cnt == 1:
                code = 0
            elif cnt <= 4:
                sx = 0
                sy = 0
                ok = True
                for q in range(start, stop):
                    if label[q] != ngroups or q == best:
                        continue
                    dx = rawx[q] - rawx[best]
                    dy = rawy[q] - rawy[best]
                    if dx != 0:
                        if sx != 0 and sx != dx:
                            ok = False
                        sx = dx
                    if dy != 0:
                        if sy != 0 and sy != dy:
                            ok = False
                        sy = dy
                if ok:
                    if cnt == 2:
                        if sx != 0 and sy != 0:
                            code = 13  # diagonal pair: not a charge split
                        elif sy == 0:
                            code = 1 if sx > 0 else 2
                        else:
                            code = 3 if sy > 0 else 4
                    elif sx != 0 and sy != 0:
                        if sx > 0 and sy > 0:
                            quad = 0
                        elif sx < 0 and sy > 0:
                            quad = 1
                        elif sx < 0 and sy < 0:
                            quad = 2
                        else:
                            quad = 3
                        code = (5 if cnt == 3 else 9) + quad
            out_index[ngroups] = best
            out_energy[ngroups] = esum
            out_pattern[ngroups] = code
            out_multi[ngroups] = cnt
            ngroups += 1
        start = stop
    return ngroups


@kernel
def fisher_matrix(
    psf: np.ndarray,
    dpsf_x: np.ndarray,
    dpsf_y: np.ndarray,
    amp: np.ndarray,
    model: np.ndarray,
) -> np.ndarray:
    """Return the Poisson Fisher matrix sum(dm_i dm_j / m) of the multi-band PSF model.

    Parameter order: (x_s, y_s) for each source, counts (s, b) source-major, background b.
    Shapes as in :func:`cash_grad`; ``model`` is (nb, ny, nx).
    """
    nb, ny, nx = model.shape
    ns = psf.shape[0]
    npar = 2 * ns + ns * nb + nb
    fis = np.zeros((npar, npar))
    idx = np.empty(2 * ns + ns + 1, dtype=np.int64)
    val = np.empty(2 * ns + ns + 1)
    for b in range(nb):
        for j in range(ny):
            for i in range(nx):
                m = model[b, j, i]
                if m <= 0.0:
                    continue
                k = 0
                for s in range(ns):
                    idx[k] = 2 * s
                    val[k] = amp[s, b] * dpsf_x[s, j, i]
                    idx[k + 1] = 2 * s + 1
                    val[k + 1] = amp[s, b] * dpsf_y[s, j, i]
                    k += 2
                for s in range(ns):
                    idx[k] = 2 * ns + s * nb + b
                    val[k] = psf[s, j, i]
                    k += 1
                idx[k] = 2 * ns + ns * nb + b
                val[k] = 1.0
                k += 1
                inv = 1.0 / m
                for p in range(k):
                    vp = val[p] * inv
                    for q in range(k):
                        fis[idx[p], idx[q]] += vp * val[q]
    return fis
