"""Kernels of svomflow.tasks.xray against plain NumPy references on seeded inputs."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.instruments._mxt_kernels import psf_pixels
from svomflow.tasks.xray._kernels import cash_grad, fisher_matrix, recombine_frames

PAR = dict(gamma=17.0, arm_half=44.0, arm_sigma=2.8, halo_sigma=57.0, f_core=0.25, f_arm=0.55)


def _ref_psf(x0, y0, xe, ye, sub=24):
    """Numerical pixel integration of the PSF density (midpoint rule, sub x sub per pixel)."""
    p = PAR
    out = np.zeros((ye.size - 1, xe.size - 1))
    fx = (np.arange(sub) + 0.5) / sub
    for j in range(ye.size - 1):
        yy = ye[j] + fx * (ye[j + 1] - ye[j]) - y0
        for i in range(xe.size - 1):
            xx = xe[i] + fx * (xe[i + 1] - xe[i]) - x0
            u, v = np.meshgrid(xx, yy)
            core = p["gamma"] / (2 * np.pi * (p["gamma"] ** 2 + u * u + v * v) ** 1.5)
            tri = lambda a: np.clip(1 - np.abs(a) / p["arm_half"], 0, None) / p["arm_half"]  # noqa: E731
            g = lambda a, s: np.exp(-0.5 * (a / s) ** 2) / (np.sqrt(2 * np.pi) * s)  # noqa: E731
            dens = (
                p["f_core"] * core
                + 0.5 * p["f_arm"] * (tri(u) * g(v, p["arm_sigma"]) + g(u, p["arm_sigma"]) * tri(v))
                + (1 - p["f_core"] - p["f_arm"]) * g(u, p["halo_sigma"]) * g(v, p["halo_sigma"])
            )
            out[j, i] = dens.mean() * (xe[i + 1] - xe[i]) * (ye[j + 1] - ye[j])
    return out


def _kernel_psf(x0, y0, xe, ye):
    shape = (ye.size - 1, xe.size - 1)
    out, dx, dy = np.empty(shape), np.empty(shape), np.empty(shape)
    p = PAR
    psf_pixels(x0, y0, xe, ye, p["gamma"], p["arm_half"], p["arm_sigma"], p["halo_sigma"],
               p["f_core"], p["f_arm"], 1 - p["f_core"] - p["f_arm"], out, dx, dy)  # fmt: skip
    return out, dx, dy


def test_psf_pixels_match_numerical_integration():
    rng = np.random.default_rng(1)
    x0, y0 = 10.0 + rng.random(2)
    xe = np.arange(-4.0, 25.0, 1.0) + 0.0
    ye = np.arange(-3.0, 22.0, 1.0)
    got = _kernel_psf(x0, y0, xe, ye)[0]
    ref = _ref_psf(x0, y0, xe, ye)
    # midpoint rule with 24x24 samples: relative error < 1e-3 on every pixel of this smooth
    # profile, except at the triangle apex/cusp where the density has a kink
    assert np.allclose(got, ref, rtol=2e-3, atol=2e-7)


def test_psf_position_derivatives_match_finite_differences():
    xe = np.arange(30.0, 90.0)
    ye = np.arange(20.0, 95.0)
    p, dx, dy = _kernel_psf(60.3, 57.7, xe, ye)
    h = 1e-5
    px = _kernel_psf(60.3 + h, 57.7, xe, ye)[0]
    py = _kernel_psf(60.3, 57.7 + h, xe, ye)[0]
    assert np.allclose((px - p) / h, dx, atol=1e-8)
    assert np.allclose((py - p) / h, dy, atol=1e-8)


def _problem(seed):
    rng = np.random.default_rng(seed)
    nb, ns, ny, nx = 2, 2, 12, 15
    psf = rng.random((ns, ny, nx)) * 0.01
    dpx = rng.normal(0, 1e-3, (ns, ny, nx))
    dpy = rng.normal(0, 1e-3, (ns, ny, nx))
    amp = rng.random((ns, nb)) * 100 + 10
    bkg = rng.random(nb) + 0.1
    fixed = rng.random((nb, ny, nx)) * 0.1
    counts = rng.poisson(2.0, (nb, ny, nx)).astype(float)
    return counts, psf, dpx, dpy, amp, bkg, fixed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cash_grad_matches_numpy(seed):
    counts, psf, dpx, dpy, amp, bkg, fixed = _problem(seed)
    m = bkg[:, None, None] + fixed + np.einsum("sb,syx->byx", amp, psf)
    c_ref = 2 * np.sum(m - counts * np.log(m))
    w = 1 - counts / m
    ga, gb, gx, gy = np.empty_like(amp), np.empty_like(bkg), np.empty(2), np.empty(2)
    c = cash_grad(counts, psf, dpx, dpy, amp, bkg, fixed, ga, gb, gx, gy)
    assert c == pytest.approx(c_ref, rel=1e-12)
    assert np.allclose(ga, 2 * np.einsum("byx,syx->sb", w, psf))
    assert np.allclose(gb, 2 * w.sum(axis=(1, 2)))
    assert np.allclose(gx, 2 * np.einsum("byx,sb,syx->s", w, amp, dpx))
    assert np.allclose(gy, 2 * np.einsum("byx,sb,syx->s", w, amp, dpy))


def test_fisher_matches_numpy_jacobian():
    _counts, psf, dpx, dpy, amp, bkg, fixed = _problem(4)
    m = bkg[:, None, None] + fixed + np.einsum("sb,syx->byx", amp, psf)
    ns, nb = amp.shape
    jac = []
    for s in range(ns):
        jac.append(amp[s][:, None, None] * dpx[s][None])
        jac.append(amp[s][:, None, None] * dpy[s][None])
    for s in range(ns):
        for b in range(nb):
            d = np.zeros_like(m)
            d[b] = psf[s]
            jac.append(d)
    for b in range(nb):
        d = np.zeros_like(m)
        d[b] = 1.0
        jac.append(d)
    jm = np.array(jac).reshape(len(jac), -1)
    ref = (jm / m.ravel()) @ jm.T
    assert np.allclose(fisher_matrix(psf, dpx, dpy, amp, m), ref, rtol=1e-10)


def test_recombine_frames_groups_and_patterns():
    # frame 0: a single; frame 1: a +x double and a far single; frame 2: a quad (+x,+y);
    # frame 3: a diagonal pair (invalid) ; frame 4: a line of three (invalid)
    rows = [
        (0, 10, 10, 1.0),
        (1, 20, 20, 0.8), (1, 21, 20, 0.2), (1, 50, 50, 0.5),
        (2, 5, 5, 0.6), (2, 6, 5, 0.2), (2, 5, 6, 0.15), (2, 6, 6, 0.05),
        (3, 30, 30, 0.5), (3, 31, 31, 0.4),
        (4, 40, 40, 0.2), (4, 41, 40, 0.5), (4, 42, 40, 0.2),
    ]  # fmt: skip
    f, x, y, e = (np.array(c) for c in zip(*rows, strict=True))
    n = f.size
    idx, es, pat, mult = (
        np.empty(n, np.int64),
        np.empty(n),
        np.empty(n, np.int64),
        np.empty(n, np.int64),
    )
    ng = recombine_frames(
        f.astype(np.int64),
        x.astype(np.int64),
        y.astype(np.int64),
        e.astype(float),
        idx,
        es,
        pat,
        mult,
    )
    assert ng == 6
    assert list(pat[:ng]) == [0, 1, 0, 9, 13, 13]
    assert list(mult[:ng]) == [1, 2, 1, 4, 2, 3]
    assert np.allclose(es[:ng], [1.0, 1.0, 0.5, 1.0, 0.9, 0.9])
    assert list(idx[:ng]) == [0, 1, 3, 4, 8, 11]
