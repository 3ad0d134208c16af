"""Background of a binned light curve: Poisson polynomial fit in off-source intervals.

The off-source intervals are found automatically or given by the user (``intervals``):

* ``auto`` (default): a coarse excess search (``sigma_clip``, below) seeds a background
  fit, then the light curve is cut into Bayesian blocks and every block whose counts
  exceed the background model by ``clip_sigma`` (Poisson) and that is connected to the
  burst joins the source interval; the background is refitted without it and the
  classification repeated until stable. Blocks adapt to the data at every timescale: the
  edges of a 0.5 s burst are found to a few bins (a fixed 1 s search cannot hug it), and a
  faint soft tail that no single short bin shows (a long, slightly raised block) is kept
  in the source instead of being absorbed by the polynomial;
* ``sigma_clip``: iterative clipping of the excess on ``clip_timescale_s`` bins;
* ``blocks``: the first and last Bayesian blocks are the background, as battblocks does.

The margin around the source is ``max(pad_s, pad_fraction * length)``, at most half of
the data left on that side, so that a background interval always remains. The polynomial order is chosen by a likelihood-ratio
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
    "source_interval_auto",
    "source_interval_sigma_clip",
]


class BackgroundConfig(StepConfig):
    """Configuration of the background fit."""

    method: Literal["auto", "sigma_clip", "blocks", "manual"] = Field(
        "auto", description="how off-source intervals are chosen (none: unit-less)"
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
        0.3, ge=0, description="margin around the excess, as a fraction of its length"
    )
    pad_s: float = Field(0.0, ge=0, description="minimum margin around the excess (s)")
    ncp_prior: float = Field(
        8.0,
        gt=0,
        description="Bayesian-blocks prior of the 'blocks' and 'auto' methods (dimensionless)",
    )
    max_block_cells: int = Field(
        4000,
        ge=100,
        description="'auto': neighbouring bins are summed so that Bayesian blocks see at "
        "most this many cells (cells)",
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
        """Return the expected background counts per bin and their variance from the coefficient covariance."""
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


def _poisson_z(n: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Significance (sigma) of ``n`` counts over an expectation ``mu`` (0 when not above it).

    One-sided Poisson tail ``P(N >= n | mu)`` turned into a Gaussian-equivalent sigma, so
    that short low-count blocks are not over-rated as ``(n - mu) / sqrt(mu)`` would.
    """
    n = np.asarray(n, dtype=float)
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-12)
    out = np.zeros(n.shape)
    up = n > mu
    if np.any(up):
        # logsf keeps the precision of very significant blocks (sf underflows to 0)
        lsf = stats.poisson.logsf(n[up] - 1.0, mu[up])
        out[up] = stats.norm.isf(np.exp(np.maximum(lsf, -700.0)))
    return out


def _select_order(
    lo: np.ndarray,
    hi: np.ndarray,
    y: np.ndarray,
    exposure: np.ndarray,
    t_ref: float,
    scale: float,
    cfg: BackgroundConfig,
) -> tuple[tuple[np.ndarray, np.ndarray, float] | None, dict[int, float], list[str]]:
    """Fit orders 0, 1, ... and keep the last one the likelihood-ratio test accepts."""
    best = None
    tests: dict[int, float] = {}
    flags: list[str] = []
    threshold = float(stats.chi2.ppf(1.0 - cfg.lrt_alpha, 1))
    max_order = min(cfg.max_order, int(y.size) - 2)
    for order in range(max_order + 1):
        d = _design(lo, hi, t_ref, scale, order)
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
    return best, tests, flags


def _padded_intervals(
    src: tuple[float, float], t_lo: float, t_hi: float, cfg: BackgroundConfig
) -> np.ndarray:
    """Off-source intervals around ``src`` with the margin, at most half the room per side."""
    pad = max(cfg.pad_s, cfg.pad_fraction * (src[1] - src[0]))
    pad_lo = min(pad, 0.5 * max(src[0] - t_lo, 0.0))
    pad_hi = min(pad, 0.5 * max(t_hi - src[1], 0.0))
    iv = np.array([[t_lo, src[0] - pad_lo], [src[1] + pad_hi, t_hi]])
    return iv[iv[:, 1] > iv[:, 0]]


def _in_intervals(lo: np.ndarray, hi: np.ndarray, iv: np.ndarray) -> np.ndarray:
    sel = np.zeros(lo.size, dtype=bool)
    for a, b in iv:
        sel |= (lo >= a - 1e-9) & (hi <= b + 1e-9)
    return sel


def source_interval_auto(
    bins: BinnedCounts, config: BackgroundConfig | None = None
) -> tuple[float, float]:
    """Find the burst interval as the connected Bayesian blocks significantly above the background.

    1. Seed: the coarse excess span of :func:`source_interval_sigma_clip` (or, when it finds
       nothing, the span between the first and last Bayesian block).
    2. The light curve (neighbouring bins summed to at most ``max_block_cells`` cells,
       never across gaps) is cut into Bayesian blocks on its exposure axis.
    3. The background is fitted outside the source and its margins (order by the LRT), each
       block's counts are compared with the model's (one-sided Poisson significance), and
       the source becomes the run of blocks above ``clip_sigma`` that contains the most
       significant block of the seed, extended over single non-significant blocks between
       significant ones. Steps 3 repeats until the interval is stable (at most 8 times).

    Raises
    ------
    InputDataError
        When no significant block exists.
    """
    from svomflow.tasks.timing.blocks import bayesian_blocks_binned

    cfg = config or BackgroundConfig()
    width = float(np.median(bins.width))
    n_bins = bins.lo.size
    group = max(1, int(np.ceil(n_bins / cfg.max_block_cells)))
    if group > 1:
        lo, hi, c, e = _rebin(bins, group * width)
    else:
        lo, hi = bins.lo, bins.hi
        c, e = np.asarray(bins.counts, dtype=float), bins.exposure
    keep = e > 0
    lo, hi, c, e = lo[keep], hi[keep], c[keep], e[keep]
    if lo.size < 4:
        raise InputDataError("light curve too short to separate burst and background")
    x = np.concatenate([[0.0], np.cumsum(e)])
    be = bayesian_blocks_binned(x, np.rint(c), ncp_prior=cfg.ncp_prior)
    idx = np.searchsorted(x, be)
    n_blk = idx.size - 1
    try:
        src = source_interval_sigma_clip(bins, cfg)
    except InputDataError:
        if n_blk < 3:
            raise InputDataError(
                f"no excess above {cfg.clip_sigma} sigma and no Bayesian block: no burst found"
            ) from None
        src = (float(lo[idx[1]]), float(hi[idx[-2] - 1]))
    t_lo, t_hi = float(lo[0]), float(hi[-1])
    t_ref = 0.5 * (t_lo + t_hi)
    scale = max(0.5 * (t_hi - t_lo), 1e-9)
    b_lo = lo[idx[:-1]]
    b_hi = hi[idx[1:] - 1]
    b_n = np.add.reduceat(c, idx[:-1])
    for _ in range(8):
        sel = _in_intervals(lo, hi, _padded_intervals(src, t_lo, t_hi, cfg))
        if sel.sum() < 3:
            break
        best, _, _ = _select_order(lo[sel], hi[sel], c[sel], e[sel], t_ref, scale, cfg)
        if best is None:
            break
        mu = (_design(lo, hi, t_ref, scale, best[0].size - 1) * e[:, None]) @ best[0]
        z = _poisson_z(b_n, np.add.reduceat(mu, idx[:-1]))
        hot = z > cfg.clip_sigma
        overlap = np.flatnonzero((b_hi > src[0]) & (b_lo < src[1]) & hot)
        if overlap.size == 0:
            break
        seed = int(overlap[np.argmax(z[overlap])])
        first = last = seed
        while first > 0 and (hot[first - 1] or (first > 1 and hot[first - 2])):
            first -= 1 if hot[first - 1] else 2
        while last < n_blk - 1 and (hot[last + 1] or (last < n_blk - 2 and hot[last + 2])):
            last += 1 if hot[last + 1] else 2
        new = (float(b_lo[first]), float(b_hi[last]))
        if new == src:
            break
        src = new
    return src


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
        When no burst can be separated from the background (``auto``, ``sigma_clip``,
        ``blocks``), or no polynomial of any order can be fitted.
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
    elif method == "blocks":
        from svomflow.tasks.timing.blocks import bayesian_blocks_binned

        edges = np.concatenate([bins.lo, bins.hi[-1:]])
        if not np.all(bins.contiguous):
            raise InputDataError("the 'blocks' background method needs a gap-free light curve")
        be = bayesian_blocks_binned(edges, counts, ncp_prior=cfg.ncp_prior)
        if be.size < 4:
            raise InputDataError("Bayesian blocks found no burst (fewer than 3 blocks)")
        # battblocks: background from the first and last blocks, no margin needed
        src = (float(be[1]), float(be[-2]))
        iv = np.array([[t_lo, src[0]], [src[1], t_hi]])
        iv = iv[iv[:, 1] > iv[:, 0]]
    else:
        if method == "auto":
            src = source_interval_auto(bins, cfg)
        else:
            src = source_interval_sigma_clip(bins, cfg)
        iv = _padded_intervals(src, t_lo, t_hi, cfg)
    sel = _in_intervals(bins.lo, bins.hi, iv)
    sel &= bins.exposure > 0
    if sel.sum() < 3:
        raise InputDataError("fewer than 3 off-source bins for the background fit")
    t_ref = 0.5 * (t_lo + t_hi)
    scale = max(0.5 * (t_hi - t_lo), 1e-9)
    best, tests, flags = _select_order(
        bins.lo[sel], bins.hi[sel], counts[sel], bins.exposure[sel], t_ref, scale, cfg
    )
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
