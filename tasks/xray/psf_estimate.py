"""PSF self-calibration: fit the lobster-eye PSF's shape on the bright sources of the field.

The CALDB PSF is a model; the sky's PSF differs (core width, arm length, arm fraction vary
with energy, off-axis angle and the optics' real figure). Fitted with a wrong PSF, the
photons of a bright source's long arms are left in the residual and become false sources on
the cross, 10-15 arcmin from it, and the fits of every group iterate long on a model that
cannot match. When a field holds sources bright enough, the shape is measured on them:

* the sources: the stage-1 candidates with at least ``min_counts`` counts (at most
  ``max_sources``, brightest first), fitted jointly with one PSF shape, each with its own
  position and counts, and a flat background, on the summed image of the whole detector;
* the other candidates are masked (a disc of ``mask_radius_pix``) unless they lie on the cross
  of a bright source, where they are most likely its arm photons;
* the free shape parameters: the core scale ``gamma``, the arm half-length ``arm_half``,
  the core and arm fractions (the halo has the rest); the arm width and the halo width stay
  those of the CALDB model (the arms' width is set by the pore size, the halo is faint);
* the statistic: Cash, minimised with L-BFGS-B on transformed parameters (logs of the
  scales, logits of the fractions) started from the CALDB values;
* acceptance: the fit converged and lowered C by more than ``min_delta_c`` compared with the
  CALDB shape (positions and counts refitted in both): the counts "allow" it. Otherwise the
  CALDB PSF is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy import optimize
from scipy.special import expit, logit
from svomflow.instruments.mxt_calibration import PSFModel
from threadpoolctl import threadpool_limits

__all__ = ["PSFEstimate", "estimate_psf", "on_cross"]


@dataclass
class PSFEstimate:
    """Outcome of the PSF self-calibration.

    Attributes
    ----------
    psf
        The PSF to use: the fitted one when ``accepted``, else the CALDB model.
    accepted
        Whether the fitted shape replaced the model.
    n_sources
        Bright sources the shape was fitted on (0: not enough counts in the field).
    counts
        Their fitted counts, summed.
    delta_c
        C(model shape) - C(fitted shape), both with positions and counts refitted.
    message
        Why the estimate was accepted or not (one line, for the logs and the header).
    """

    psf: PSFModel
    accepted: bool
    n_sources: int
    counts: float
    delta_c: float
    message: str


def on_cross(
    dx: float, dy: float, psf: PSFModel, *, reach: float, width: float | None = None
) -> bool:
    """Return whether an offset (dx, dy) from a source lies on its cross arms.

    On the cross: within ``width`` (default 3 arm sigmas, at least 3 pixels) of an axis and
    at most ``reach`` pixels along it.
    """
    w = max(3.0 * psf.arm_sigma, 3.0) if width is None else width
    ax, ay = abs(dx), abs(dy)
    return (ay <= w and ax <= reach) or (ax <= w and ay <= reach)


class _ShapeProblem:
    """Cash statistic of the bright sources on the masked image vs. shape, positions, counts."""

    def __init__(
        self,
        image: NDArray[np.float64],
        weight: NDArray[np.float64],
        base: PSFModel,
        ns: int,
        bin_pix: int = 1,
    ) -> None:
        # bins of bin_pix x bin_pix pixels (the model is integrated exactly over any grid):
        # the shape is set by tens of pixels, and the fit costs bin_pix^2 times less
        ny, nx = (n - n % bin_pix for n in image.shape)
        k = bin_pix
        self.image = image[:ny, :nx].reshape(ny // k, k, nx // k, k).sum(axis=(1, 3))
        self.weight = weight[:ny, :nx].reshape(ny // k, k, nx // k, k).min(axis=(1, 3))
        self.base = base
        self.ns = ns
        self.xe = np.arange(0.0, nx + 1.0, k)
        self.ye = np.arange(0.0, ny + 1.0, k)
        self.c_log = self.image

    def psf_of(self, shape: NDArray[np.float64]) -> PSFModel:
        """Return the PSF of the transformed shape vector (log gamma, log L, logit fractions)."""
        f_core = float(expit(shape[2]))
        # the arm fraction is a share of what the core leaves, so the fractions sum to <= 1
        f_arm = float(expit(shape[3])) * (1.0 - f_core)
        return replace(
            self.base,
            gamma=float(math.exp(shape[0])),
            arm_half=float(math.exp(shape[1])),
            f_core=f_core,
            f_arm=f_arm,
        )

    def cstat(self, p: NDArray[np.float64], shape: NDArray[np.float64] | None) -> float:
        """Return C for parameters ``p`` (positions, log counts, log background[, shape])."""
        ns = self.ns
        logs = p[2 * ns : 3 * ns + 1] if shape is None else np.r_[p[2 * ns : 3 * ns + 1], shape[:2]]
        if not np.all(logs < _LOG_MAX):
            # a line search that strays to e^700 counts (or PSF sizes) would overflow: such a
            # point is only ever worse than where it came from, so it gets the worst C
            return _WORST_C
        psf = self.base if shape is None else self.psf_of(shape)
        pos = p[: 2 * ns].reshape(ns, 2)
        amp = np.exp(p[2 * ns : 3 * ns])
        bkg = math.exp(p[3 * ns])
        model = np.full(self.image.shape, bkg)
        for s in range(ns):
            model += amp[s] * psf.pixels(pos[s, 0], pos[s, 1], self.xe, self.ye)[0]
        model = np.maximum(model, 1e-12)
        return float(2.0 * np.sum(self.weight * (model - self.c_log * np.log(model))))


#: Largest log of counts, background or PSF size a trial point may have (e^50 ~ 5e21).
_LOG_MAX = 50.0
_WORST_C = 1e300


def _initial_shape(psf: PSFModel) -> NDArray[np.float64]:
    f_core = min(max(psf.f_core, 1e-3), 1 - 1e-3)
    share = min(max(psf.f_arm / max(1.0 - psf.f_core, 1e-6), 1e-3), 1 - 1e-3)
    return np.array([math.log(psf.gamma), math.log(psf.arm_half), logit(f_core), logit(share)])


def _minimise(fun: object, p0: NDArray[np.float64]) -> optimize.OptimizeResult:
    # one BLAS thread: the many small evaluations spin on multi-threaded BLAS (see mlfit)
    with threadpool_limits(limits=1, user_api="blas"):
        return optimize.minimize(
            fun, p0, method="L-BFGS-B", options={"maxiter": 300, "ftol": 1e-10, "eps": 1e-5}
        )


def _mask(
    shape: tuple[int, int],
    bright: NDArray[np.float64],
    others: NDArray[np.float64],
    psf: PSFModel,
    radius: float,
) -> NDArray[np.float64]:
    """Return the pixel weights: 0 within ``radius`` of a faint candidate off the bright crosses."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx] + 0.5
    weight = np.ones(shape)
    reach = float(max(shape))
    for ox, oy in others:
        if any(on_cross(ox - bx, oy - by, psf, reach=reach) for bx, by in bright):
            continue
        weight[np.hypot(xx - ox, yy - oy) <= radius] = 0.0
    return weight


def estimate_psf(
    image: NDArray[np.float64],
    psf: PSFModel,
    xy: Sequence[tuple[float, float]],
    counts: Sequence[float],
    *,
    min_counts: float,
    max_sources: int = 3,
    mask_radius_pix: float = 25.0,
    min_delta_c: float = 25.0,
    bin_pix: int = 4,
) -> PSFEstimate:
    """Fit the PSF shape on the bright sources of a summed counts image (see the module doc).

    Parameters
    ----------
    image
        Counts image (ny, nx) of the whole detector, all bands summed.
    psf
        The CALDB PSF: the starting point and the fallback.
    xy, counts
        Stage-1 candidates' positions (pixels) and counts.
    min_counts
        A source takes part in the fit from this many counts.
    max_sources
        At most this many (the brightest) sources take part.
    mask_radius_pix
        Radius of the disc masked around the other candidates off the bright crosses.
    min_delta_c
        Minimum decrease of C for the fitted shape to replace the model.
    bin_pix
        The fit is made on bins of ``bin_pix`` x ``bin_pix`` pixels.
    """
    xy_a = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    cnt = np.asarray(counts, dtype=np.float64).reshape(-1)
    order = [int(i) for i in np.argsort(-cnt) if cnt[i] >= min_counts][:max_sources]
    if not order:
        return PSFEstimate(psf, False, 0, 0.0, 0.0, f"no source with >= {min_counts:g} counts")
    bright = xy_a[order]
    others = np.delete(xy_a, order, axis=0)
    img = np.asarray(image, dtype=np.float64)
    weight = _mask(img.shape, bright, others, psf, mask_radius_pix)
    ns = len(order)
    prob = _ShapeProblem(img, weight, psf, ns, bin_pix)
    n_bright = cnt[order]
    free_area = float(weight.sum())
    bkg0 = max((float((img * weight).sum()) - float(n_bright.sum())) / free_area, 1e-3) * bin_pix**2
    p0 = np.concatenate([bright.ravel(), np.log(n_bright), [math.log(bkg0)]])
    ref = _minimise(lambda p: prob.cstat(p, None), p0)
    q0 = np.concatenate([ref.x, _initial_shape(psf)])
    res = _minimise(lambda q: prob.cstat(q[:-4], q[-4:]), q0)
    dc = float(ref.fun - res.fun)
    total = float(np.exp(res.x[2 * ns : 3 * ns]).sum())
    if not (res.success and dc >= min_delta_c):
        why = "did not converge" if not res.success else f"delta-C {dc:.1f} < {min_delta_c:g}"
        return PSFEstimate(psf, False, ns, total, dc, f"PSF shape kept (fit {why})")
    fitted = prob.psf_of(res.x[-4:])
    return PSFEstimate(
        fitted, True, ns, total, dc,
        f"PSF shape fitted on {ns} source(s), {total:.0f} counts, delta-C {dc:.1f}",
    )  # fmt: skip
