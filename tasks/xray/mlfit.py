"""Stage 2 of MXT source detection: maximum-likelihood PSF fitting with the Cash statistic.

Model of band ``b`` in a window of the detector image::

    m_b(pixel) = B_b + F_b(pixel) + sum_s N_{s,b} P(pixel; x_s, y_s)

with ``P`` the pixel-integrated lobster-eye PSF, ``N`` the counts of source ``s`` in band
``b``, ``B`` a flat background per band and ``F`` the fixed contribution of sources outside
the group. The statistic is C = 2 sum(m - c ln m) (SCIENCE.md §5); its value and gradient
come from a numba kernel and scipy's L-BFGS-B does the minimisation. Sources whose PSFs
overlap are fitted together (groups by distance, as XMM ``emldetect`` and eROSITA
``ermldet`` do).

Errors come from delta-C in the quadratic approximation around the minimum (the Fisher
matrix of the Poisson likelihood, which is the expected Hessian of C/2): delta-C = 2.71 for
90 % on one parameter; for the position, the delta-C = 4.61 ellipse and ``r90``, the radius of
the circle that holds 90 % of the position probability. The detection likelihood is
``ML = -ln P`` with P the chance probability of the delta-C between the fits with and without
the source (chi-square with 2 + n_bands degrees of freedom).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special, stats
from svomflow.instruments.mxt_calibration import PSFModel
from svomflow.tasks.xray._kernels import cash_grad, fisher_matrix
from threadpoolctl import threadpool_limits

__all__ = [
    "GroupFit",
    "SourceFit",
    "circle_radius_90",
    "detection_likelihood",
    "fit_group",
    "fit_sources",
    "group_sources",
]

DELTA_C_90_1D = 2.706
DELTA_C_90_2D = 4.605


@dataclass
class SourceFit:
    """Fitted parameters and errors of one source (detector pixel coordinates)."""

    x: float
    y: float
    counts: NDArray[np.float64]
    counts_err: NDArray[np.float64]
    cov_xy: NDArray[np.float64]
    r90_pix: float
    ml: float
    delta_c: float
    group: int = 0

    @property
    def total_counts(self) -> float:
        """Counts summed over the bands."""
        return float(self.counts.sum())


@dataclass
class GroupFit:
    """Result of one joint fit: sources, background per band, C at the minimum, window."""

    sources: list[SourceFit]
    background: NDArray[np.float64]
    cstat: float
    window: tuple[int, int, int, int]
    n_eval: int = 0
    converged: bool = True
    messages: list[str] = field(default_factory=list)


def circle_radius_90(cov: NDArray[np.float64], level: float = 0.9) -> float:
    """Return the radius of the centred circle holding ``level`` of a 2-D Gaussian with ``cov``."""
    lam = np.clip(np.linalg.eigvalsh(np.asarray(cov, dtype=np.float64)), 1e-30, None)
    theta = (np.arange(512) + 0.5) * (2 * np.pi / 512)
    q = np.cos(theta) ** 2 / lam[0] + np.sin(theta) ** 2 / lam[1]
    norm = 1.0 / (2 * np.pi * np.sqrt(lam[0] * lam[1]))

    def prob(r: float) -> float:
        return float(norm * np.mean((1.0 - np.exp(-0.5 * r * r * q)) / q) * 2 * np.pi)

    lo, hi = 0.0, 10.0 * float(np.sqrt(lam[1]))
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if prob(mid) < level else (lo, mid)
    return 0.5 * (lo + hi)


def detection_likelihood(delta_c: float, dof: int) -> float:
    """Return ML = -ln P(chi2_dof >= delta_c), with the large-delta-C asymptote where P underflows."""
    val = float(-stats.chi2.logsf(delta_c, dof))
    if np.isfinite(val):
        return val
    a, x = 0.5 * dof, 0.5 * delta_c
    # Q(a, x) ~ x^(a-1) e^-x / Gamma(a) for x >> a
    return float(x - (a - 1.0) * np.log(x) + special.gammaln(a))


def group_sources(xy: NDArray[np.float64], distance: float) -> list[list[int]]:
    """Return groups of source indices linked by separations below ``distance`` (friends-of-friends)."""
    n = len(xy)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if np.hypot(*(xy[i] - xy[j])) < distance:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


class _Problem:
    """The Cash statistic of one window as a function of a scaled parameter vector."""

    def __init__(
        self,
        counts: NDArray[np.float64],
        x_edges: NDArray[np.float64],
        y_edges: NDArray[np.float64],
        psf: PSFModel,
        fixed: NDArray[np.float64],
        ns: int,
        amp_scale: NDArray[np.float64],
        bkg_scale: NDArray[np.float64],
        free_pos: bool = True,
        pos: NDArray[np.float64] | None = None,
    ) -> None:
        self.counts = np.ascontiguousarray(counts, dtype=np.float64)
        self.xe, self.ye = x_edges, y_edges
        self.psf = psf
        self.fixed = np.ascontiguousarray(fixed, dtype=np.float64)
        self.ns = ns
        self.nb = counts.shape[0]
        self.amp_scale = amp_scale
        self.bkg_scale = bkg_scale
        self.free_pos = free_pos
        self.pos = pos
        shape = (ns, counts.shape[1], counts.shape[2])
        self.P = np.empty(shape)
        self.dX = np.empty(shape)
        self.dY = np.empty(shape)
        self._last: NDArray[np.float64] | None = None
        self.n_eval = 0

    def unpack(
        self, p: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        ns, nb = self.ns, self.nb
        k = 0
        if self.free_pos:
            pos = p[: 2 * ns].reshape(ns, 2)
            k = 2 * ns
        else:
            pos = self.pos  # type: ignore[assignment]
        amp = p[k : k + ns * nb].reshape(ns, nb) * self.amp_scale
        bkg = p[k + ns * nb :] * self.bkg_scale
        return pos, amp, bkg

    def psfs(self, pos: NDArray[np.float64]) -> None:
        key = np.asarray(pos, dtype=np.float64).ravel()
        if self._last is not None and np.array_equal(key, self._last):
            return
        for s in range(self.ns):
            self.P[s], self.dX[s], self.dY[s] = self.psf.pixels(
                pos[s, 0], pos[s, 1], self.xe, self.ye
            )
        self._last = key.copy()

    def __call__(self, p: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        self.n_eval += 1
        pos, amp, bkg = self.unpack(p)
        self.psfs(pos)
        ga = np.empty((self.ns, self.nb))
        gb = np.empty(self.nb)
        gx = np.empty(self.ns)
        gy = np.empty(self.ns)
        c = cash_grad(
            self.counts,
            self.P,
            self.dX,
            self.dY,
            np.ascontiguousarray(amp),
            bkg,
            self.fixed,
            ga,
            gb,
            gx,
            gy,
        )
        parts = []
        if self.free_pos:
            parts.append(np.column_stack([gx, gy]).ravel())
        parts.append((ga * self.amp_scale).ravel())
        parts.append(gb * self.bkg_scale)
        return c, np.concatenate(parts)

    def model(
        self, pos: NDArray[np.float64], amp: NDArray[np.float64], bkg: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        self.psfs(pos)
        return bkg[:, None, None] + self.fixed + np.einsum("sb,syx->byx", amp, self.P)


def _minimise(
    prob: _Problem, p0: NDArray[np.float64], bounds: Sequence[tuple[float | None, float | None]]
) -> optimize.OptimizeResult:
    # L-BFGS-B makes many tiny BLAS calls; multi-threaded OpenBLAS spins on them and is
    # several times slower on a busy machine than one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        return optimize.minimize(
            prob, p0, jac=True, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-7},
        )  # fmt: skip


def fit_group(
    images: NDArray[np.float64],
    psf: PSFModel,
    init_xy: NDArray[np.float64],
    init_counts: NDArray[np.float64],
    *,
    window: tuple[int, int, int, int],
    fixed: NDArray[np.float64] | None = None,
    bkg_init: NDArray[np.float64] | None = None,
    compute_ml: bool = True,
) -> GroupFit:
    """Fit sources jointly in a window of the band images (Cash statistic, L-BFGS-B).

    Parameters
    ----------
    images
        Counts images (n_bands, ny, nx) of the whole detector.
    psf
        The PSF model.
    init_xy, init_counts
        Initial positions (ns, 2) in detector pixels and counts (ns, n_bands).
    window
        ``(x0, x1, y0, y1)`` pixel bounds of the fitted region (x1, y1 exclusive).
    fixed
        Fixed model counts (n_bands, ny, nx) of the whole detector (sources outside the group).
    bkg_init
        Initial background per band and pixel.
    compute_ml
        Refit without each source to get its detection likelihood.
    """
    x0, x1, y0, y1 = window
    counts = np.asarray(images, dtype=np.float64)[:, y0:y1, x0:x1]
    nb = counts.shape[0]
    fx = (
        np.zeros_like(counts)
        if fixed is None
        else np.asarray(fixed, dtype=np.float64)[:, y0:y1, x0:x1]
    )
    xe = np.arange(x0, x1 + 1, dtype=np.float64)
    ye = np.arange(y0, y1 + 1, dtype=np.float64)
    init_xy = np.asarray(init_xy, dtype=np.float64).reshape(-1, 2)
    ns = init_xy.shape[0]
    init_counts = np.maximum(np.asarray(init_counts, dtype=np.float64).reshape(ns, nb), 1.0)
    npix = counts.shape[1] * counts.shape[2]
    if bkg_init is None:
        bkg_init = np.maximum(counts.sum(axis=(1, 2)) - init_counts.sum(axis=0), 1.0) / npix
    bkg_init = np.maximum(np.asarray(bkg_init, dtype=np.float64), 1e-3 / npix)
    amp_scale = np.maximum(init_counts, 10.0)
    bkg_scale = np.maximum(bkg_init, 1e-2 / npix)
    prob = _Problem(counts, xe, ye, psf, fx, ns, amp_scale, bkg_scale)
    p0 = np.concatenate(
        [init_xy.ravel(), init_counts.ravel() / amp_scale.ravel(), bkg_init / bkg_scale]
    )
    bounds = (
        [(x0 + 0.0, x1 + 0.0), (y0 + 0.0, y1 + 0.0)] * ns
        + [(0.0, None)] * (ns * nb)
        + [(1e-9, None)] * nb
    )
    res = _minimise(prob, p0, bounds)
    pos, amp, bkg = prob.unpack(res.x)
    pos, amp, bkg = pos.copy(), amp.copy(), bkg.copy()
    cbest = float(res.fun)
    cov = _covariance(prob, pos, amp, bkg)
    sources = []
    for s in range(ns):
        cxy = cov[2 * s : 2 * s + 2, 2 * s : 2 * s + 2]
        k = 2 * ns + s * nb
        err = np.sqrt(np.clip(np.diag(cov)[k : k + nb], 0, None))
        sources.append(
            SourceFit(
                x=float(pos[s, 0]),
                y=float(pos[s, 1]),
                counts=amp[s].copy(),
                counts_err=err,
                cov_xy=cxy.copy(),
                r90_pix=circle_radius_90(cxy) if np.all(np.isfinite(cxy)) else np.inf,
                ml=np.nan,
                delta_c=np.nan,
            )
        )
    n_eval = prob.n_eval
    if compute_ml:
        for s in range(ns):
            others = [i for i in range(ns) if i != s]
            prob0 = _Problem(
                counts, xe, ye, psf, fx, len(others), amp_scale[others], bkg_scale, free_pos=False,
                pos=pos[others],
            )  # fmt: skip
            q0 = np.concatenate(
                [
                    (amp[others] / amp_scale[others]).ravel(),
                    bkg / bkg_scale + amp[s] / npix / bkg_scale,
                ]
            )
            r0 = _minimise(prob0, q0, [(0.0, None)] * (len(others) * nb) + [(1e-9, None)] * nb)
            n_eval += prob0.n_eval
            dc = max(float(r0.fun) - cbest, 0.0)
            sources[s].delta_c = dc
            sources[s].ml = detection_likelihood(dc, 2 + nb)
    return GroupFit(
        sources=sources,
        background=bkg,
        cstat=cbest,
        window=window,
        n_eval=n_eval,
        converged=bool(res.success),
        messages=[str(res.message)],
    )


def _covariance(
    prob: _Problem, pos: NDArray[np.float64], amp: NDArray[np.float64], bkg: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Return inv(Fisher) for (x, y per source, counts per source and band, background per band)."""
    m = prob.model(pos, amp, bkg)  # (nb, ny, nx)
    fisher = fisher_matrix(
        prob.P, prob.dX, prob.dY, np.ascontiguousarray(amp), np.ascontiguousarray(m)
    )
    try:
        return np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(fisher)


def fit_sources(
    images: NDArray[np.float64],
    psf: PSFModel,
    init_xy: NDArray[np.float64],
    init_counts: NDArray[np.float64],
    *,
    half_size: int,
    group_distance: float,
    bkg_per_pixel: NDArray[np.float64] | None = None,
    compute_ml: bool = True,
) -> list[GroupFit]:
    """Fit all sources of a field: groups by distance, each group in its own window.

    The other groups' current models are a fixed component of each group's fit.

    ``half_size`` (pixels) pads the group's bounding box to make its window.
    """
    images = np.asarray(images, dtype=np.float64)
    nb, ny, nx = images.shape
    init_xy = np.asarray(init_xy, dtype=np.float64).reshape(-1, 2)
    init_counts = np.asarray(init_counts, dtype=np.float64).reshape(len(init_xy), nb)
    if len(init_xy) == 0:
        return []
    groups = group_sources(init_xy, group_distance)
    # fixed component of every source from its initial estimate
    xe, ye = np.arange(nx + 1.0), np.arange(ny + 1.0)
    models = np.zeros((len(init_xy), nb, ny, nx))
    for s in range(len(init_xy)):
        models[s] = (
            init_counts[s][:, None, None]
            * psf.pixels(init_xy[s, 0], init_xy[s, 1], xe, ye)[0][None]
        )
    out = []
    for g_id, grp in enumerate(groups):
        others = [i for i in range(len(init_xy)) if i not in grp]
        fixed = models[others].sum(axis=0) if others else None
        lo = np.floor(init_xy[grp].min(axis=0)) - half_size
        hi = np.ceil(init_xy[grp].max(axis=0)) + half_size
        window = (
            int(max(lo[0], 0)), int(min(hi[0], nx)), int(max(lo[1], 0)), int(min(hi[1], ny)),
        )  # fmt: skip
        gf = fit_group(
            images, psf, init_xy[grp], init_counts[grp], window=window, fixed=fixed,
            bkg_init=bkg_per_pixel, compute_ml=compute_ml,
        )  # fmt: skip
        for s, sf in zip(grp, gf.sources, strict=True):
            sf.group = g_id
            models[s] = sf.counts[:, None, None] * psf.pixels(sf.x, sf.y, xe, ye)[0][None]
        out.append(gf)
    return out
