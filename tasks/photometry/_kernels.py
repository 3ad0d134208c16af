"""Numba kernels of the photometry steps (rendering pixel-integrated PSF profiles).

The PSF model of GP1 is a Gaussian core plus Moffat wings::

    P(r) = (1 - w) * exp(-r^2 / 2 sigma^2) / (2 pi sigma^2)
           + w * (beta - 1) / (pi alpha^2) * (1 + r^2 / alpha^2) ** -beta

Both parts integrate to one over the plane. Stars are drawn *pixel-integrated*: the Gaussian
part exactly (products of error functions), the Moffat part by ``nsub x nsub`` sub-sampling
of the pixels within ``max(alpha, 1.5)`` pixels of the centre and, farther out, by its value
at the pixel centre plus a twenty-fourth of its Laplacian there (the midpoint rule's
leading correction: one evaluation instead of ``nsub**2``, and closer to the exact integral
than 3 x 3 sub-sampling there, ``tests/tasks/photometry/test_kernels.py``). Point-sampled
profiles bias PSF fluxes by about 1 % (SCIENCE.md §6), which is why the renderer integrates.

Pixel convention: pixel ``(j, i)`` covers ``[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]`` in
0-based coordinates.
"""

from __future__ import annotations

import math

import numpy as np
from svomflow.numba_policy import kernel

__all__ = ["moffat_pixel", "render_psf_stars"]


@kernel
def moffat_pixel(
    dx: float, dy: float, inv_a2: float, beta: float, nsub: int, far2: float
) -> tuple[float, float, float]:
    """Return the mean of ``(1 + r^2/alpha^2)**-beta`` over a pixel and its ``dx``/``dy`` slopes.

    ``(dx, dy)`` is the pixel centre relative to the star's centre. Within ``sqrt(far2)``
    pixels of it the pixel is sub-sampled ``nsub x nsub``; farther out the mean is the centre
    value plus ``laplacian / 24`` (exact to fourth order in the pixel size). The slopes are
    the derivatives of that mean with respect to ``dx`` and ``dy``.
    """
    s = dx * dx + dy * dy
    if s >= far2:
        u = 1.0 + s * inv_a2
        v1 = math.exp(-(beta + 1.0) * math.log(u))  # u ** -(beta + 1), faster than pow
        v = v1 * u
        # f(s) = u^-beta with u = 1 + s c; its 2-D Laplacian g(s) = 4 s f'' + 4 f'
        # = -4 beta c ((beta + 1) u^(-beta-2) - beta u^(-beta-1))
        g = -4.0 * beta * inv_a2 * ((beta + 1.0) * v1 / u - beta * v1)
        df = -beta * inv_a2 * v1
        dg = 4.0 * beta * (beta + 1.0) * inv_a2 * inv_a2 * v1 / (u * u) * ((beta + 2.0) - beta * u)
        ds = 2.0 * (df + dg / 24.0)
        return v + g / 24.0, ds * dx, ds * dy
    total = 0.0
    tx = 0.0
    ty = 0.0
    for sj in range(nsub):
        yy = dy - 0.5 + (sj + 0.5) / nsub
        for si in range(nsub):
            xx = dx - 0.5 + (si + 0.5) / nsub
            q = 1.0 + (xx * xx + yy * yy) * inv_a2
            v = math.exp(-beta * math.log(q))  # q ** -beta: a third faster than pow
            total += v
            t = -2.0 * beta * inv_a2 * v / q
            tx += t * xx
            ty += t * yy
    area = 1.0 / (nsub * nsub)
    return total * area, tx * area, ty * area


@kernel
def _far2(alpha: float) -> float:
    """Squared distance beyond which :func:`moffat_pixel` uses the Laplacian correction."""
    r = max(alpha, 1.5)
    return r * r


@kernel
def render_psf_stars(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    sigma: float,
    alpha: float,
    beta: float,
    wing_fraction: float,
    radius: int,
    nsub: int,
) -> None:
    """Add pixel-integrated core+wings stars to ``image`` in place, within ``radius`` pixels."""
    ny, nx = image.shape
    inv = 1.0 / (math.sqrt(2.0) * sigma)
    mnorm = (beta - 1.0) / (math.pi * alpha * alpha)
    inv_a2 = 1.0 / (alpha * alpha)
    far2 = _far2(alpha)
    gx = np.empty(2 * radius + 1)
    for k in range(x.shape[0]):
        xc = x[k]
        yc = y[k]
        f = flux[k]
        i0 = max(math.floor(xc + 0.5) - radius, 0)
        i1 = min(math.floor(xc + 0.5) + radius, nx - 1)
        j0 = max(math.floor(yc + 0.5) - radius, 0)
        j1 = min(math.floor(yc + 0.5) + radius, ny - 1)
        # the core's x factor once per column, not once per pixel
        for i in range(i0, i1 + 1):
            dx = i - xc
            gx[i - i0] = 0.5 * (math.erf((dx + 0.5) * inv) - math.erf((dx - 0.5) * inv))
        for j in range(j0, j1 + 1):
            dy = j - yc
            gy = 0.5 * (math.erf((dy + 0.5) * inv) - math.erf((dy - 0.5) * inv))
            for i in range(i0, i1 + 1):
                dx = i - xc
                core = gx[i - i0] * gy
                wing = 0.0
                if wing_fraction > 0.0:
                    wing = mnorm * moffat_pixel(dx, dy, inv_a2, beta, nsub, far2)[0]
                image[j, i] += f * ((1.0 - wing_fraction) * core + wing_fraction * wing)


@kernel
def _psf_box(
    xc: float,
    yc: float,
    i0: int,
    j0: int,
    n: int,
    sigma: float,
    alpha: float,
    beta: float,
    wing_fraction: float,
    nsub: int,
    p: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
) -> None:
    """Fill the unit-flux model ``p`` and its derivatives wrt the centre on an n x n box."""
    s2 = math.sqrt(2.0) * sigma
    c = 1.0 / (math.sqrt(2.0 * math.pi) * sigma)
    gx = np.empty(n)
    gy = np.empty(n)
    dgx = np.empty(n)
    dgy = np.empty(n)
    for k in range(n):
        dx = i0 + k - xc
        gx[k] = 0.5 * (math.erf((dx + 0.5) / s2) - math.erf((dx - 0.5) / s2))
        # d/dxc of the integral = -(g(dx + 1/2) - g(dx - 1/2))
        dgx[k] = -c * (
            math.exp(-((dx + 0.5) ** 2) / (2 * sigma * sigma))
            - math.exp(-((dx - 0.5) ** 2) / (2 * sigma * sigma))
        )
        dy = j0 + k - yc
        gy[k] = 0.5 * (math.erf((dy + 0.5) / s2) - math.erf((dy - 0.5) / s2))
        dgy[k] = -c * (
            math.exp(-((dy + 0.5) ** 2) / (2 * sigma * sigma))
            - math.exp(-((dy - 0.5) ** 2) / (2 * sigma * sigma))
        )
    mnorm = (beta - 1.0) / (math.pi * alpha * alpha)
    inv_a2 = 1.0 / (alpha * alpha)
    far2 = _far2(alpha)
    for a in range(n):
        for b in range(n):
            core = gx[b] * gy[a]
            dcx = dgx[b] * gy[a]
            dcy = gx[b] * dgy[a]
            wing = 0.0
            dwx = 0.0
            dwy = 0.0
            if wing_fraction > 0.0:
                v, sx, sy = moffat_pixel(i0 + b - xc, j0 + a - yc, inv_a2, beta, nsub, far2)
                # the centre moves the other way from the pixel's offset
                wing = mnorm * v
                dwx = -mnorm * sx
                dwy = -mnorm * sy
            p[a, b] = (1.0 - wing_fraction) * core + wing_fraction * wing
            px[a, b] = (1.0 - wing_fraction) * dcx + wing_fraction * dwx
            py[a, b] = (1.0 - wing_fraction) * dcy + wing_fraction * dwy


@kernel
def psf_fit_sources(  # noqa: C901 - one numba loop: per source, Gauss-Newton with its checks
    image: np.ndarray,
    noise: np.ndarray,
    bad: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    sigma: float,
    alpha: float,
    beta: float,
    wing_fraction: float,
    half: int,
    nsub: int,
    fit_positions: bool,
    max_iter: int,
    out: np.ndarray,
) -> None:
    """Fit flux (and centre) of each source with the pixel-integrated PSF, weighted LSQ.

    ``out[k]`` receives (x, y, flux, flux_err, reduced chi2, flag). Flags: 1 = box truncated
    by the edge, 2 = masked pixels in the box, 4 = centre moved more than 2 pixels (the
    forced fit at the start position is kept), 8 = no valid pixel.
    Gauss-Newton on (x, y, flux); the flux error is from the inverse normal matrix.
    """
    ny, nx = image.shape
    n = 2 * half + 1
    p = np.empty((n, n))
    px = np.empty((n, n))
    py = np.empty((n, n))
    for k in range(x0.shape[0]):
        flag = 0
        xc = x0[k]
        yc = y0[k]
        i0 = math.floor(xc + 0.5) - half
        j0 = math.floor(yc + 0.5) - half
        if i0 < 0 or j0 < 0 or i0 + n > nx or j0 + n > ny:
            flag |= 1
        flux = 0.0
        ferr = math.nan
        chi2 = math.nan
        moved = False
        iters = max_iter if fit_positions else 1
        for it in range(iters + 1):
            _psf_box(xc, yc, i0, j0, n, sigma, alpha, beta, wing_fraction, nsub, p, px, py)
            # Normal equations of (flux, dx, dy) or flux only.
            a00 = a01 = a02 = a11 = a12 = a22 = 0.0
            b0 = b1 = b2 = 0.0
            npix = 0
            for a in range(n):
                jj = j0 + a
                if jj < 0 or jj >= ny:
                    continue
                for b in range(n):
                    ii = i0 + b
                    if ii < 0 or ii >= nx:
                        continue
                    if bad[jj, ii]:
                        flag |= 2
                        continue
                    s = noise[jj, ii]
                    if not (s > 0.0) or not math.isfinite(image[jj, ii]):
                        continue
                    w = 1.0 / (s * s)
                    d = image[jj, ii]
                    if it == 0 or not fit_positions:
                        a00 += w * p[a, b] * p[a, b]
                        b0 += w * p[a, b] * d
                    else:
                        r = d - flux * p[a, b]
                        j1 = flux * px[a, b]
                        j2 = flux * py[a, b]
                        a00 += w * p[a, b] * p[a, b]
                        a01 += w * p[a, b] * j1
                        a02 += w * p[a, b] * j2
                        a11 += w * j1 * j1
                        a12 += w * j1 * j2
                        a22 += w * j2 * j2
                        b0 += w * p[a, b] * r
                        b1 += w * j1 * r
                        b2 += w * j2 * r
                    npix += 1
            if npix == 0 or a00 <= 0.0:
                flag |= 8
                break
            if it == 0 or not fit_positions:
                flux = b0 / a00
                ferr = 1.0 / math.sqrt(a00)
                if not fit_positions or it == iters:
                    break
                continue
            # Solve the 3x3 system by Cramer's rule.
            det = (
                a00 * (a11 * a22 - a12 * a12)
                - a01 * (a01 * a22 - a12 * a02)
                + a02 * (a01 * a12 - a11 * a02)
            )
            if det == 0.0 or flux <= 0.0:
                break
            d0 = (
                b0 * (a11 * a22 - a12 * a12)
                - a01 * (b1 * a22 - a12 * b2)
                + a02 * (b1 * a12 - a11 * b2)
            ) / det
            d1 = (
                a00 * (b1 * a22 - b2 * a12)
                - b0 * (a01 * a22 - a12 * a02)
                + a02 * (a01 * b2 - b1 * a02)
            ) / det
            d2 = (
                a00 * (a11 * b2 - a12 * b1)
                - a01 * (a01 * b2 - b1 * a02)
                + b0 * (a01 * a12 - a11 * a02)
            ) / det
            # Damp steps to at most half a pixel per iteration.
            step = math.sqrt(d1 * d1 + d2 * d2)
            if step > 0.5:
                d1 *= 0.5 / step
                d2 *= 0.5 / step
            flux += d0
            xc += d1
            yc += d2
            ferr = math.sqrt((a11 * a22 - a12 * a12) / det) if det > 0 else math.nan
            if (xc - x0[k]) ** 2 + (yc - y0[k]) ** 2 > 4.0:
                moved = True
                break
            if step < 1e-4 and abs(d0) < 1e-6 * abs(flux) + 1e-12:
                break
        if moved:
            flag |= 4
            xc = x0[k]
            yc = y0[k]
            _psf_box(xc, yc, i0, j0, n, sigma, alpha, beta, wing_fraction, nsub, p, px, py)
            a00 = 0.0
            b0 = 0.0
            for a in range(n):
                jj = j0 + a
                for b in range(n):
                    ii = i0 + b
                    if jj < 0 or jj >= ny or ii < 0 or ii >= nx or bad[jj, ii]:
                        continue
                    s = noise[jj, ii]
                    if s > 0.0 and math.isfinite(image[jj, ii]):
                        w = 1.0 / (s * s)
                        a00 += w * p[a, b] * p[a, b]
                        b0 += w * p[a, b] * image[jj, ii]
            if a00 > 0.0:
                flux = b0 / a00
                ferr = 1.0 / math.sqrt(a00)
        # Reduced chi2 of the final model on the (re-centred) box.
        _psf_box(xc, yc, i0, j0, n, sigma, alpha, beta, wing_fraction, nsub, p, px, py)
        c2 = 0.0
        m = 0
        for a in range(n):
            jj = j0 + a
            for b in range(n):
                ii = i0 + b
                if jj < 0 or jj >= ny or ii < 0 or ii >= nx or bad[jj, ii]:
                    continue
                s = noise[jj, ii]
                if s > 0.0 and math.isfinite(image[jj, ii]):
                    r = (image[jj, ii] - flux * p[a, b]) / s
                    c2 += r * r
                    m += 1
        dof = m - (3 if fit_positions else 1)
        chi2 = c2 / dof if dof > 0 else math.nan
        out[k, 0] = xc
        out[k, 1] = yc
        out[k, 2] = flux
        out[k, 3] = ferr
        out[k, 4] = chi2
        out[k, 5] = flag
