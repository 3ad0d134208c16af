"""Benchmark: MXT stage-2 ML fit and whole detection of a 3-source field with 1e5 events.

Part 1 (stage-2 fit, target < 1 s). Peer: the same Cash likelihood with a plain NumPy model
and scipy.optimize.minimize (L-BFGS-B with finite-difference gradients), same run.

Part 2 (issue 16: detect-and-fit bounded whatever the PSF mismatch, target < 10 s): the
whole detection (:func:`svomflow.tasks.xray.detect.detect_field`: stage 1, PSF
self-calibration, stage 2, residual search, arm rule) on fields whose photons come from the
CALDB model (matched) and from foreign PSFs (:mod:`svomflow.simulation.mxt_psf`), timed
against the matched case and against the previous version (no self-calibration, no residual
systematic, no arm rule) in the same run, with the positions of both.
Run: ``python -m benchmarks.bench_mxt_ml [--no-previous]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import optimize
from scipy.special import erf
from svomflow.config import load_instrument
from svomflow.instruments.mxt_calibration import PSFModel
from svomflow.tasks.xray.mlfit import fit_sources


def numpy_psf(psf: PSFModel, x0: float, y0: float, xe: np.ndarray, ye: np.ndarray) -> np.ndarray:
    """Pixel-integrated PSF with NumPy (same closed forms as the numba kernel)."""
    u = xe - x0
    v = ye - y0
    g = psf.gamma
    U, V = np.meshgrid(u, v)
    F = np.arctan(U * V / (g * np.sqrt(g * g + U * U + V * V))) / (2 * np.pi)
    core = F[1:, 1:] - F[1:, :-1] - F[:-1, 1:] + F[:-1, :-1]

    def tri(a: np.ndarray) -> np.ndarray:
        a = np.clip(a / psf.arm_half, -1, 1)
        return np.where(a < 0, 0.5 * (1 + a) ** 2, 1 - 0.5 * (1 - a) ** 2)

    def gau(a: np.ndarray, s: float) -> np.ndarray:
        return 0.5 * (1 + erf(a / (s * np.sqrt(2))))

    tx, ty = np.diff(tri(u)), np.diff(tri(v))
    wx, wy = np.diff(gau(u, psf.arm_sigma)), np.diff(gau(v, psf.arm_sigma))
    hx, hy = np.diff(gau(u, psf.halo_sigma)), np.diff(gau(v, psf.halo_sigma))
    return (
        psf.f_core * core
        + 0.5 * psf.f_arm * (np.outer(wy, tx) + np.outer(ty, wx))
        + psf.f_halo * np.outer(hy, hx)
    )


def scipy_fit(imgs, psf, xy0, n0, window):
    x0, x1, y0, y1 = window
    c = imgs[:, y0:y1, x0:x1]
    xe, ye = np.arange(x0, x1 + 1.0), np.arange(y0, y1 + 1.0)
    ns, nb = n0.shape
    npix = c.shape[1] * c.shape[2]

    def cash(p):
        pos = p[: 2 * ns].reshape(ns, 2)
        amp = p[2 * ns : 2 * ns + ns * nb].reshape(ns, nb) * 1e3
        bkg = p[2 * ns + ns * nb :] * 1e-2
        m = bkg[:, None, None] + sum(
            amp[s][:, None, None] * numpy_psf(psf, *pos[s], xe, ye)[None] for s in range(ns)
        )
        m = np.maximum(m, 1e-300)
        return 2 * np.sum(m - c * np.log(m))

    p0 = np.concatenate(
        [xy0.ravel(), n0.ravel() / 1e3, np.full(nb, c.sum() / npix / nb / 1e-2 * 0.1)]
    )
    bounds = [(None, None)] * (2 * ns) + [(0, None)] * (ns * nb) + [(1e-9, None)] * nb
    return optimize.minimize(cash, p0, method="L-BFGS-B", bounds=bounds)


#: the detection as it was before the PSF self-calibration (issue 13)
PREVIOUS = {"psf_self_calibration": False, "arm_candidates": "keep", "residual_systematic": 0.0}
#: (core factor, arm factor) of the sky's PSF; None is the CALDB model itself
CASES = ((None, 1.0), (0.6, 2.5), (0.5, 3.0), (1.5, 0.5))


def _timed_detection(imgs: np.ndarray, overrides: dict) -> tuple[float, list, str]:
    from svomflow.instruments.attitude import Attitude
    from svomflow.tasks.xray.detect import DetectConfig, detect_field

    inst = load_instrument("mxt")
    t = time.perf_counter()
    det = detect_field(
        imgs, PSFModel.from_instrument(inst), Attitude(150.0, 20.0, 0.0),
        pixel_scale_arcsec=float(inst.get("ccd.pixel_scale_arcsec")), exposure_s=4000.0,
        cfg=DetectConfig(**overrides),
    )  # fmt: skip
    return time.perf_counter() - t, det.sources, det.psf.message


def _describe(sources: list, scale: float) -> str:
    from svomflow.simulation.mxt_mc import MISMATCH_XY

    err, false = [], 0
    for s in sources:
        d = np.hypot(*(MISMATCH_XY - [s.x, s.y]).T) * scale
        if d.min() > 120.0:
            false += 1
        else:
            err.append(d.min())
    errs = " ".join(f'{e:.1f}"' for e in sorted(err))
    return f"{len(err)} true (errors {errs}), {false} false"


def bench_mismatch(previous: bool = True) -> None:
    """Time the whole detection on matched and mismatched fields (issue 16, MXT part)."""
    from svomflow.simulation.mxt_mc import mismatch_images

    scale = float(load_instrument("mxt").get("ccd.pixel_scale_arcsec"))
    print(f"\nwhole detection, 3 sources, ~1e5 events; load {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")  # fmt: skip
    imgs0 = mismatch_images(np.random.default_rng(1), core_factor=None)
    _timed_detection(imgs0, {})  # compile
    t_ref = None
    for cf, af in CASES:
        imgs = mismatch_images(np.random.default_rng(1), core_factor=cf, arm_factor=af)
        name = "matched (CALDB model)" if cf is None else f"core x{cf} arms x{af}"
        t_new, src, msg = _timed_detection(imgs, {})
        t_ref = t_new if t_ref is None else t_ref
        line = f"{name:24s} now {t_new:6.1f} s ({t_new / t_ref:4.1f}x matched): {_describe(src, scale)}"
        print(line + f"; {msg}")
        if previous:
            t_old, src_old, _ = _timed_detection(imgs, PREVIOUS)
            print(f"{'':24s} previous {t_old:6.1f} s ({t_old / t_new:4.1f}x now): "
                  f"{_describe(src_old, scale)}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Run both parts and print the timings as ratios against the peers."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--no-previous", action="store_true", help="skip the previous version")
    args = ap.parse_args(argv)
    bench_fit()
    bench_mismatch(previous=not args.no_previous)


def bench_fit() -> None:
    """Time the stage-2 fit against the plain NumPy + scipy peer."""
    psf = PSFModel.from_instrument(load_instrument("mxt"))
    rng = np.random.default_rng(0)
    xy = np.array([[120.3, 130.7], [150.2, 140.1], [100.5, 95.2]])
    counts = 1.3 * np.array([[2.4e4, 1.2e4, 6e3], [1.2e4, 6e3, 2.4e3], [6e3, 3.6e3, 1.2e3]])
    bkg = np.array([0.06, 0.04, 0.02])
    imgs = np.array(
        [
            rng.poisson(
                bkg[b] + sum(counts[s, b] * psf.image(*xy[s], (256, 256)) for s in range(3))
            )
            for b in range(3)
        ],
        dtype=float,
    )
    print(f"field: 3 sources, 3 bands, {imgs.sum():.0f} events")
    start = xy + rng.normal(0, 1.5, xy.shape)
    fit_sources(imgs, psf, start, counts * 0.8, half_size=50, group_distance=90)  # compile
    reps = 5
    t = time.perf_counter()
    for _ in range(reps):
        res = fit_sources(imgs, psf, start, counts * 0.8, half_size=50, group_distance=90)
    t_ours = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):
        fit_sources(
            imgs, psf, start, counts * 0.8, half_size=50, group_distance=90, compute_ml=False
        )
    t_fit = (time.perf_counter() - t) / reps
    g = res[0]
    print(
        f"svomflow (numba + L-BFGS-B), fit + errors + ML refits: {t_ours:.3f} s ({g.n_eval} evaluations)"
    )
    print(f"svomflow fit + errors only: {t_fit:.3f} s")
    t = time.perf_counter()
    r = scipy_fit(imgs, psf, start, counts * 0.8, g.window)
    t_peer = time.perf_counter() - t
    print(
        f"plain numpy + scipy.optimize.minimize (fit only): {t_peer:.3f} s ({r.nfev} evaluations)"
    )
    print(
        f"ratio peer / svomflow (fit only): {t_peer / t_fit:.1f}x; target < 1 s: {'met' if t_ours < 1 else 'missed'}"
    )
    pos = r.x[:6].reshape(3, 2)
    ours = np.array([[s.x, s.y] for s in g.sources])
    print(f"max position difference ours vs peer: {np.abs(pos - ours).max():.3f} pixel")


if __name__ == "__main__":
    main()
