"""Numba kernels of the MXT steps: Cash statistic, Fisher matrix, split-event recombination.

The Cash statistic comes with its gradient and the Fisher matrix is that of the multi-band
PSF model.

The pixel-integrated PSF itself (:func:`svomflow.instruments._mxt_kernels.psf_pixels`) lives
with the instrument model, below the steps.
"""

from __future__ import annotations

import math

import numpy as np
from svomflow.numba_policy import kernel

__all__ = ["cash_grad", "fisher_matrix", "recombine_frames"]


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
    """Return the Cash statistic C = 2 sum(m - c ln m) of the multi-band model, with its gradient.

    The gradient (with respect to the source amplitudes, backgrounds and positions) fills
    ``grad_*``.

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
def recombine_frames(  # noqa: C901  (one numba loop: flood fill, then the pattern of each group)
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
