"""Background of a binned light curve: Poisson polynomial fit in off-source intervals.

The off-source intervals are found automatically (``sigma_clip``: iterative clipping of the
excess around the burst; ``blocks``: the first and last Bayesian blocks, as battblocks does)
or given by the user (``intervals``). The polynomial order is chosen by a likelihood-ratio
test on the Poisson likelihood (not least squares, which is biased at low counts): order
``k`` is kept over ``k - 1`` when ``2 (lnL_k - lnL_{k-1})`` exceeds the chi2(1) quantile
``1 - lrt_alpha``; a fit that does not converge or predicts a non-positive rate is dropped
and the lower order kept. The result carries the coefficient covariance (inverse Fisher
matrix) so that background uncertainty can be propagated (:meth:`BackgroundModel.sample`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field
from scipy import stats
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.timing.binning import BinnedCounts

__all__ = [
    "BackgroundConfig",
    "BackgroundModel",
    "fit_background",
    "fit_poisson_polynomial",
    "source_interval_sigma_clip",
]


class BackgroundConfig(StepConfig):
    """Configuration of the background fit."""

    method: Literal["sigma_clip", "blocks", "manual"] = Field(
        "sigma_clip", description="how off-source intervals are chosen (none: unit-less)"
    )
    intervals: list[tuple[float, float]] | None = Field(
        None, description="user off-source intervals (s since t0); implies method='manual'"
    )
    max_order: int = Field(3, ge=0, le=6, description="highest polynomial order tried")
    lrt_alpha: float = Field(
        0.01, gt=0, lt=1, description="false-acceptance probability of the order LRT"
    )
    clip_sigma: float = Field(4.0, gt=0, description="excess threshold of sigma_clip (sigma)")
    clip_timescale_s: float = Field(
        1.0, gt=0, description="rebinning used to look for the excess (s)"
    )
    pad_fraction: float = Field(
        0.1, ge=0, description="margin around the excess, as a fraction of its length"
    )
    pad_s: float = Field(5.0, ge=0, description="minimum margin around the excess (s)")
    ncp_prior: float = Field(
        8.0, gt=0, description="Bayesian-blocks prior of the 'blocks' method (dimensionless)"
    )


@dataclass(frozen=True)
class BackgroundModel:
    """Polynomial background rate ``sum c_j ((t - t_ref) / scale)^j`` (counts/s).

    ``cov`` is the covariance of ``coeffs``; ``intervals`` the off-source intervals used;
    ``source`` the excluded source interval (s); ``order_tests`` the LRT statistic per
    order tried; ``flags`` notes (fallbacks).
    """

    coeffs: np.ndarray
    cov: np.ndarray
    t_ref: float
    scale: float
    intervals: np.ndarray
    source: tuple[float, float]
    order_tests: dict[int, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    @property
    def order(self) -> int:
        """Polynomial order."""
        return int(self.coeffs.size - 1)

    def design(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Matrix of the bin-averaged powers: counts per bin = design @ coeffs * exposure."""
        return _design(
            np.asarray(lo, float), np.asarray(hi, float), self.t_ref, self.scale, self.order
        )

    def rate(self, t: np.ndarray) -> np.ndarray:
        """Background rate (counts/s) at times ``t``."""
        x = (np.asarray(t, dtype=float) - self.t_ref) / self.scale
        return np.polynomial.polynomial.polyval(x, self.coeffs)

    def counts(self, bins: BinnedCounts) -> tuple[np.ndarray, np.ndarray]:
        """Expected background counts per bin and their variance from the coefficient covariance."""
        a = self.design(bins.lo, bins.hi) * bins.exposure[:, None]
        mu = a @ self.coeffs
        var = np.einsum("ij,jk,ik->i", a, self.cov, a)
        return mu, var

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` coefficient vectors from the fit's Gaussian approximation."""
        return rng.multivariate_normal(self.coeffs, self.cov, size=n, check_valid="ignore")


def _design(lo: np.ndarray, hi: np.ndarray, t_ref: float, scale: float, order: int) -> np.ndarray:
    """Average of x^j over each bin, x = (t - t_ref) / scale (exact integral of the polynomial)."""
    xl = (lo - t_ref) / scale
    xh = (hi - t_ref) / scale
    out = np.empty((lo.size, order + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(order + 1):
            num = xh ** (j + 1) - xl ** (j + 1)
            den = (j + 1) * (xh - xl)
            out[:, j] = np.where(den != 0, num / den, xl**j)
    return out


def fit_poisson_polynomial(
    counts: np.ndarray, design: np.ndarray, exposure: np.ndarray, *, max_iter: int = 50
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Maximum-likelihood fit of ``counts ~ Poisson(exposure * design @ c)``.

    Fisher scoring (iteratively reweighted least squares with the identity link), started
    from the weighted least-squares solution. Returns ``(coeffs, covariance, lnL)`` or
    ``None`` when the fit fails (singular matrix, non-positive rate, no convergence).
    """
    a = design * exposure[:, None]
    y = np.asarray(counts, dtype=float)
    w = 1.0 / np.maximum(y, 1.0)
    try:
        c = np.linalg.solve(a.T @ (a * w[:, None]), a.T @ (w * y))
        for _ in range(max_iter):
            mu = a @ c
            if np.any(mu <= 0):
                return None
            w = 1.0 / mu
            fisher = a.T @ (a * w[:, None])
            step = np.linalg.solve(fisher, a.T @ (y / mu - 1.0))
            c = c + step
            if np.all(np.abs(step) <= 1e-10 * (np.abs(c) + 1e-12)):
                break
        else:
            return None
        mu = a @ c
        if np.any(mu <= 0):
            return None
        cov = np.linalg.inv(a.T @ (a / mu[:, None]))
    except np.linalg.LinAlgError:
        return None
    lnl = float(np.sum(y * np.log(mu) - mu))  # up to the data-only term
    return c, cov, lnl


def source_interval_sigma_clip(
    bins: BinnedCounts, config: BackgroundConfig | None = None
) -> tuple[float, float]:
    """Find the burst interval as the span of significant excess over a clipped linear background.

    The light curve is rebinned to ``clip_timescale_s``; a first-order Poisson fit is made
    to the bins not yet flagged, bins above ``clip_sigma`` (Poisson significance of the
    counts over the model) are flagged, and the span from the first to the last flagged bin
    is excluded; this repeats until the span is stable.
    """
    cfg = config or BackgroundConfig()
    lo, hi, c, e = _rebin(bins, cfg.clip_timescale_s)
    if lo.size < 4:
        raise InputDataError("light curve too short to separate burst and background")
    t_ref = 0.5 * (lo[0] + hi[-1])
    scale = max(0.5 * (hi[-1] - lo[0]), 1e-9)
    d = _design(lo, hi, t_ref, scale, 1)
    use = np.ones(lo.size, dtype=bool)
    span: tuple[int, int] | None = None
    for _ in range(20):
        fit = fit_poisson_polynomial(c[use], d[use], e[use])
        if fit is None:
            fit = fit_poisson_polynomial(c[use], d[use][:, :1], e[use])
            if fit is None:
                raise InputDataError("background fit failed on the whole light curve")
            mu = (d[:, :1] * e[:, None]) @ fit[0]
        else:
            mu = (d * e[:, None]) @ fit[0]
        sig = (c - mu) / np.sqrt(np.maximum(mu, 1e-9))
        hot = np.flatnonzero(sig > cfg.clip_sigma)
        if hot.size == 0:
            break
        new = (int(hot[0]), int(hot[-1]))
        if new == span:
            break
        span = new
        use = np.ones(lo.size, dtype=bool)
        use[span[0] : span[1] + 1] = False
        if use.sum() < 4:
            raise InputDataError("no off-source interval left: the excess fills the light curve")
    if span is None:
        raise InputDataError(
            f"no excess above {cfg.clip_sigma} sigma on {cfg.clip_timescale_s} s: no burst found"
        )
    return float(lo[span[0]]), float(hi[span[1]])


def _rebin(bins: BinnedCounts, width: float) -> tuple[np.ndarray, ...]:
    """Sum bins into groups of about ``width`` seconds (never across a gap)."""
    counts = np.asarray(bins.counts, dtype=float)
    key = np.floor((bins.lo - bins.lo[0]) / width).astype(np.int64)
    # a gap starts a new group even inside one clock interval
    gap = ~bins.contiguous
    key = key * 2 + np.cumsum(gap)  # unique per (clock slot, run)
    _, start = np.unique(key, return_index=True)
    start = np.sort(start)
    lo = bins.lo[start]
    hi = np.append(bins.hi[start[1:] - 1], bins.hi[-1])
    c = np.add.reduceat(counts, start)
    e = np.add.reduceat(bins.exposure, start)
    return lo, hi, c, e


def fit_background(bins: BinnedCounts, config: BackgroundConfig | None = None) -> BackgroundModel:
    """Fit the background of a one-band binned light curve.

    Parameters
    ----------
    bins : BinnedCounts
        The light curve (1-D counts).
    config : BackgroundConfig, optional

    Returns
    -------
    BackgroundModel

    Raises
    ------
    InputDataError
        When no burst can be separated from the background (``sigma_clip``), or no
        polynomial of any order can be fitted.
    """
    cfg = config or BackgroundConfig()
    counts = np.asarray(bins.counts, dtype=float)
    if counts.ndim != 1:
        raise ValueError("fit_background takes one band (1-D counts)")
    t_lo = float(bins.lo[0])
    t_hi = float(bins.hi[-1])
    method = "manual" if cfg.intervals else cfg.method
    if method == "manual":
        if not cfg.intervals:
            raise InputDataError("background method 'manual' needs intervals")
        iv = np.array(cfg.intervals, dtype=float).reshape(-1, 2)
        iv = iv[np.argsort(iv[:, 0])]
        if iv.shape[0] > 1:  # the source is the widest gap between the given intervals
            gaps = iv[1:, 0] - iv[:-1, 1]
            g = int(np.argmax(gaps))
            src = (float(iv[g, 1]), float(iv[g + 1, 0]))
        else:
            src = (float(iv[0, 1]), t_hi) if iv[0, 0] <= t_lo else (t_lo, float(iv[0, 0]))
    else:
        if method == "blocks":
            from svomflow.tasks.timing.blocks import bayesian_blocks_binned

            edges = np.concatenate([bins.lo, bins.hi[-1:]])
            if not np.all(bins.contiguous):
                raise InputDataError("the 'blocks' background method needs a gap-free light curve")
            be = bayesian_blocks_binned(edges, counts, ncp_prior=cfg.ncp_prior)
            if be.size < 4:
                raise InputDataError("Bayesian blocks found no burst (fewer than 3 blocks)")
            # battblocks: background from the first and last blocks, no margin needed
            src = (float(be[1]), float(be[-2]))
            pad = 0.0
        else:
            src = source_interval_sigma_clip(bins, cfg)
            pad = max(cfg.pad_s, cfg.pad_fraction * (src[1] - src[0]))
        iv = np.array([[t_lo, src[0] - pad], [src[1] + pad, t_hi]])
        iv = iv[iv[:, 1] > iv[:, 0]]
    sel = np.zeros(bins.lo.size, dtype=bool)
    for a, b in iv:
        sel |= (bins.lo >= a) & (bins.hi <= b)
    sel &= bins.exposure > 0
    if sel.sum() < 3:
        raise InputDataError("fewer than 3 off-source bins for the background fit")
    t_ref = 0.5 * (t_lo + t_hi)
    scale = max(0.5 * (t_hi - t_lo), 1e-9)
    y = counts[sel]
    exposure = bins.exposure[sel]
    best = None
    tests: dict[int, float] = {}
    flags: list[str] = []
    threshold = float(stats.chi2.ppf(1.0 - cfg.lrt_alpha, 1))
    max_order = min(cfg.max_order, int(sel.sum()) - 2)
    for order in range(max_order + 1):
        d = _design(bins.lo[sel], bins.hi[sel], t_ref, scale, order)
        fit = fit_poisson_polynomial(y, d, exposure)
        if fit is None:
            flags.append(f"order {order} fit failed; kept order {order - 1}")
            break
        if best is None:
            best = fit
            continue
        stat = 2.0 * (fit[2] - best[2])
        tests[order] = stat
        if stat < threshold:
            break
        best = fit
    if best is None:
        raise InputDataError("background fit failed at every polynomial order")
    return BackgroundModel(
        coeffs=best[0],
        cov=best[1],
        t_ref=t_ref,
        scale=scale,
        intervals=iv,
        source=(float(src[0]), float(src[1])),
        order_tests=tests,
        flags=tuple(flags),
    )
