"""numba kernels of the optical simulator: pixel-integrated star profiles and charge bleeding."""

from __future__ import annotations

import math

import numpy as np
from svomflow.numba_policy import kernel

__all__ = ["PROFILE_GAUSSIAN", "PROFILE_MOFFAT", "add_stars", "bleed_columns"]

PROFILE_GAUSSIAN = 0
PROFILE_MOFFAT = 1


@kernel
def _moffat_cdf_free(r2, alpha2, beta, norm):
    return norm * (1.0 + r2 / alpha2) ** (-beta)


@kernel
def add_stars(img, xs, ys, fluxes, profile, width, beta, radii, oversample, core_radius):
    """Add stars to ``img`` (rows = y, columns = x) as profiles integrated over each pixel.

    Pixel (j, i) covers x in [i - 0.5, i + 0.5] and y in [j - 0.5, j + 0.5]. A Gaussian
    (``width`` = sigma) is integrated exactly with error functions (it is separable); a
    Moffat (``width`` = alpha, exponent ``beta``) is integrated by the midpoint rule on an
    ``oversample`` x ``oversample`` sub-grid within ``core_radius`` pixels of the centre and
    on a 3 x 3 sub-grid out to 2.5 core radii and at the pixel centre farther out, where the
    profile is smooth on the pixel scale (total error about 1e-4 of the flux). Each star
    is drawn out to ``radii[k]`` pixels; the caller chooses radii that keep the lost flux small.
    """
    ny, nx = img.shape
    inv = 1.0 / (math.sqrt(2.0) * width)
    alpha2 = width * width
    norm = (beta - 1.0) / (math.pi * alpha2)
    for k in range(xs.shape[0]):
        x0 = xs[k]
        y0 = ys[k]
        f = fluxes[k]
        rad = radii[k]
        i0 = max(math.floor(x0 - rad), 0)
        i1 = min(math.ceil(x0 + rad), nx - 1)
        j0 = max(math.floor(y0 - rad), 0)
        j1 = min(math.ceil(y0 + rad), ny - 1)
        if i0 > i1 or j0 > j1:
            continue
        if profile == PROFILE_GAUSSIAN:
            fx = np.empty(i1 - i0 + 1)
            for i in range(i0, i1 + 1):
                fx[i - i0] = 0.5 * (math.erf((i + 0.5 - x0) * inv) - math.erf((i - 0.5 - x0) * inv))
            for j in range(j0, j1 + 1):
                fy = 0.5 * (math.erf((j + 0.5 - y0) * inv) - math.erf((j - 0.5 - y0) * inv))
                if fy == 0.0:
                    continue
                for i in range(i0, i1 + 1):
                    img[j, i] += f * fy * fx[i - i0]
        else:
            for j in range(j0, j1 + 1):
                for i in range(i0, i1 + 1):
                    dx = i - x0
                    dy = j - y0
                    rr2 = dx * dx + dy * dy
                    if rr2 <= core_radius * core_radius:
                        n = oversample
                    elif rr2 <= 6.25 * core_radius * core_radius:
                        n = 3
                    else:
                        n = 1
                    h = 1.0 / n
                    acc = 0.0
                    for a in range(n):
                        sy = dy - 0.5 + (a + 0.5) * h
                        for b in range(n):
                            sx = dx - 0.5 + (b + 0.5) * h
                            acc += _moffat_cdf_free(sx * sx + sy * sy, alpha2, beta, norm)
                    img[j, i] += f * acc * h * h


@kernel
def bleed_columns(img, full_well):
    """Move charge above ``full_well`` along each column, half upwards and half downwards.

    Charge is conserved except what runs off the ends of a column.
    """
    ny, nx = img.shape
    for i in range(nx):
        up = np.zeros(ny)
        carry = 0.0
        for j in range(ny):
            v = img[j, i]
            if v > full_well:
                excess = v - full_well
                img[j, i] = full_well
                carry += 0.5 * excess
                up[j] = 0.5 * excess
            elif carry > 0.0:
                room = full_well - v
                take = carry if carry < room else room
                img[j, i] = v + take
                carry -= take
        carry = 0.0
        for j in range(ny - 1, -1, -1):
            carry += up[j]
            if carry > 0.0:
                v = img[j, i]
                room = full_well - v
                if room > 0.0:
                    take = carry if carry < room else room
                    img[j, i] = v + take
                    carry -= take
