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

A light curve given with errors (``BinnedCounts.variance``: background-subtracted or
mask-weighted rates read from a file) is fitted by weighted least squares (chi-square,
the order test on its difference) and its source found by ``sigma_clip`` (the Bayesian
blocks here are Poisson); nothing is rounded to counts.

The background is fitted on a pre-burst and a post-burst interval separated from the
emission by a gap ``max(gap_s, gap_fraction * length)`` (at most half of the data left on
that side, so that a background interval always remains), as a GBM or BAT analyst picks
them by eye: a faint tail below the detection threshold then stays out of the fit instead
of tilting a drifting polynomial, and :func:`svomflow.tasks.timing.duration.durations`
starts its post-burst plateau there. What is left of the tail past the gap is taken by a
decaying exponential fitted with the polynomial on the post-burst interval (``tail_term``,
:func:`_with_tail`), so that it does not tilt the polynomial under the burst. While
``auto`` searches the source it uses the narrower ``search_gap_fraction`` and never lowers
the order the first (widest) intervals asked for, so that a drift cannot feed a runaway
source. The polynomial order is chosen by likelihood-ratio tests on the Poisson likelihood
(not least squares, which is biased at low counts) over every order up to ``max_order``
(:func:`_select_order`): order ``j`` replaces the order ``k < j`` kept so far when
``2 (lnL_j - lnL_k)`` exceeds the chi2(``j - k``) quantile ``1 - lrt_alpha``. With the tail
term on, every order is fitted with it, so that a higher order is not chosen to follow the
faint tail (which would make it background and cut it off the source). A fit that does not
converge or predicts a non-positive rate ends the search at the order below. The result
carries the coefficient covariance (inverse Fisher
matrix) so that background uncertainty can be propagated (:meth:`BackgroundModel.sample`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field
from scipy import special, stats
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.timing.binning import BinnedCounts

__all__ = [
    "BackgroundConfig",
    "BackgroundModel",
    "fit_background",
    "fit_gaussian_polynomial",
    "fit_poisson_polynomial",
    "padded_intervals",
    "significant_run",
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
    balance_sigma: float = Field(
        3.0,
        gt=0,
        description="an order is raised while the model misses the counts of one "
        "background interval (pre- or post-burst) by more than this (sigma)",
    )
    lrt_alpha: float = Field(
        0.01, gt=0, lt=1, description="false-acceptance probability of the order LRT"
    )
    clip_sigma: float = Field(4.0, gt=0, description="excess threshold of sigma_clip (sigma)")
    clip_timescale_s: float = Field(
        1.0, gt=0, description="rebinning used to look for the excess (s)"
    )
    gap_fraction: float = Field(
        1.0,
        ge=0,
        description="gap between the emission and the pre-/post-burst background intervals, "
        "as a fraction of the emission's length (dimensionless)",
    )
    tail_term: bool = Field(
        True,
        description="fit the post-burst background interval with the polynomial plus a "
        "decaying exponential from the source end (the emission's own faint tail, kept out "
        "of the background; automatic intervals and the refits of the durations step, never "
        "the user's intervals) (none: switch)",
    )
    tail_tau_fractions: list[float] = Field(
        [0.125, 0.25, 0.5],
        min_length=1,
        description="e-folding times of the tail term tried, as fractions of the emission's "
        "length; the best likelihood is kept (longer ones mimic a falling background: with "
        "1.0 the quadratic-drift T90 bias was +18 %) (dimensionless)",
    )
    gap_before_fraction: float = Field(
        0.3,
        ge=0,
        description="the same gap before the emission: bursts rise fast and their faint "
        "tails come after, and the pre-burst data are often short (dimensionless)",
    )
    search_gap_fraction: float = Field(
        0.3,
        ge=0,
        description="'auto': the narrower gap used while the source interval is searched, "
        "so that a drift stays constrained on both sides (dimensionless)",
    )
    gap_s: float = Field(
        0.0, ge=0, description="minimum gap between the emission and the background intervals (s)"
    )
    bridge_bins: int = Field(
        2,
        ge=0,
        description="sigma_clip: non-significant bins bridged inside one excess run (bins)",
    )
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
    order tried; ``flags`` notes (fallbacks). When the fit carried a tail term
    (``BackgroundConfig.tail_term``), ``tail_tau`` is its e-folding time (s),
    ``tail_amplitude`` its rate at ``tail_start``, the start of the post-burst interval
    (counts/s; source counts, not background) and ``tail_cov`` the joint covariance of
    ``coeffs`` and ``tail_amplitude`` (``cov`` is its polynomial block, the tail's
    uncertainty marginalised). ``config`` is the configuration the model was fitted with;
    ``search`` (``auto``) the polynomial the source search last compared the Bayesian
    blocks with (its own intervals, the order fitted alone): the error simulations search
    their own sources against it.
    """

    coeffs: np.ndarray
    cov: np.ndarray
    t_ref: float
    scale: float
    intervals: np.ndarray
    source: tuple[float, float]
    order_tests: dict[int, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    tail_tau: float = float("nan")
    tail_start: float = float("nan")
    tail_amplitude: float = 0.0
    tail_cov: np.ndarray | None = None
    config: BackgroundConfig | None = None
    search: BackgroundModel | None = None

    @property
    def order(self) -> int:
        """Polynomial order."""
        return int(self.coeffs.size - 1)

    def design(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Matrix of the bin-averaged powers: counts per bin = design @ coeffs * exposure."""
        return _design(
            np.asarray(lo, float), np.asarray(hi, float), self.t_ref, self.scale, self.order
        )

    @property
    def has_tail(self) -> bool:
        """Whether the fit carried the emission-tail term."""
        return bool(np.isfinite(self.tail_tau)) and self.tail_cov is not None

    def fit_design(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Design of the fitted model: the polynomial's, plus the tail column when fitted."""
        d = self.design(lo, hi)
        if not self.has_tail:
            return d
        col = _tail_column(
            np.asarray(lo, float), np.asarray(hi, float), self.tail_start, self.tail_tau
        )
        return np.column_stack([d, col])

    def fit_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the fitted parameters (coefficients, then the tail amplitude) and their covariance."""
        if not self.has_tail or self.tail_cov is None:
            return np.asarray(self.coeffs, float), np.asarray(self.cov, float)
        return np.append(self.coeffs, self.tail_amplitude), np.asarray(self.tail_cov, float)

    def tail_rate(
        self, lo: np.ndarray, hi: np.ndarray, amplitude: float | None = None
    ) -> np.ndarray:
        """Return the fitted emission tail's mean rate over each bin (counts/s; 0 without a tail).

        ``amplitude`` replaces the fitted ``tail_amplitude`` (an error simulation's refit).
        """
        lo = np.asarray(lo, float)
        if not self.has_tail:
            return np.zeros(lo.size)
        amp = self.tail_amplitude if amplitude is None else amplitude
        return amp * _tail_column(lo, np.asarray(hi, float), self.tail_start, self.tail_tau)

    def tail_after(self, t: float, amplitude: float | None = None) -> float:
        """Return the fitted emission tail's counts after time ``t`` (to infinity; 0 without a tail)."""
        if not self.has_tail:
            return 0.0
        amp = self.tail_amplitude if amplitude is None else amplitude
        return float(amp * self.tail_tau * np.exp(-max(t - self.tail_start, 0.0) / self.tail_tau))

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


def _tail_column(lo: np.ndarray, hi: np.ndarray, t_start: float, tau: float) -> np.ndarray:
    """Bin average of ``exp(-(t - t_start) / tau)`` for ``t >= t_start`` (0 before it)."""
    a = np.maximum(lo, t_start) - t_start
    b = np.maximum(hi, t_start) - t_start
    width = np.where(hi > lo, hi - lo, 1.0)
    return tau * (np.exp(-a / tau) - np.exp(-b / tau)) / width


def _with_tail(
    lo: np.ndarray,
    hi: np.ndarray,
    y: np.ndarray,
    exposure: np.ndarray,
    d: np.ndarray,
    variance: np.ndarray | None,
    src: tuple[float, float],
    cfg: BackgroundConfig,
) -> tuple[tuple[np.ndarray, np.ndarray, float], float, float] | None:
    """Fit the polynomial design ``d`` plus a decaying exponential from the source end.

    A burst's emission fades below the detection threshold instead of stopping: what is left
    of it at the start of the post-burst background interval (a few counts/s over hundreds)
    raises the polynomial there and, with a drift, tilts it, so that the background is
    over-subtracted under the burst. The tail term ``A exp(-(t - t_a) / tau)`` (zero
    before ``t_a``, the first post-burst bin after the source end, where ``A`` is the rate
    left) takes those counts; ``tau`` is the best of
    ``tail_tau_fractions`` times the source length (profile likelihood). ``A`` is held at
    its physical bound: emission is never negative, and a fit with ``A < 0`` (a deficit
    decaying after the burst) is dropped, the polynomial alone kept (the bounded maximum-
    likelihood estimate). Returns the joint fit and ``tau``, or None when no post-burst bin
    lies after the source or no fit with ``A > 0`` converges; else the fit, ``tau`` and
    ``t_a``.
    """
    length = max(src[1] - src[0], float(np.max(hi - lo)))
    after = lo >= src[1] - 1e-9
    if not np.any(after):
        return None
    t_a = float(lo[after].min())
    best: tuple[tuple[np.ndarray, np.ndarray, float], float, float] | None = None
    for frac in cfg.tail_tau_fractions:
        tau = frac * length
        col = _tail_column(lo, hi, t_a, tau)
        fit = _fit(y, np.column_stack([d, col]), exposure, variance)
        if fit is None or fit[0][-1] <= 0:
            continue
        if best is None or fit[2] > best[0][2]:
            best = (fit, tau, t_a)
    return best


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


def fit_gaussian_polynomial(
    counts: np.ndarray, design: np.ndarray, exposure: np.ndarray, variance: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Weighted least-squares fit of ``counts ~ Normal(exposure * design @ c, variance)``.

    For binned curves given with errors (background-subtracted or mask-weighted counts,
    possibly negative). Returns ``(coeffs, covariance, lnL)`` with ``lnL = -chi2 / 2``, so
    that the order test's ``2 dlnL`` is the chi-square difference; ``None`` when singular.
    """
    a = design * exposure[:, None]
    w = 1.0 / np.asarray(variance, dtype=float)
    y = np.asarray(counts, dtype=float)
    try:
        fisher = a.T @ (a * w[:, None])
        c = np.linalg.solve(fisher, a.T @ (w * y))
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        return None
    return c, cov, float(-0.5 * np.sum(w * (y - a @ c) ** 2))


def _fit(
    y: np.ndarray, d: np.ndarray, e: np.ndarray, var: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Poisson fit, or the Gaussian one when the counts carry a variance."""
    if var is None:
        return fit_poisson_polynomial(y, d, e)
    return fit_gaussian_polynomial(y, d, e, var)


def source_interval_sigma_clip(
    bins: BinnedCounts, config: BackgroundConfig | None = None
) -> tuple[float, float]:
    """Find the burst interval as the run of significant excess over a clipped linear background.

    The light curve is rebinned to ``clip_timescale_s``; a first-order Poisson fit is made
    to the bins not yet flagged, bins above ``clip_sigma`` (significance of the counts over
    the model) are flagged, and the run of flagged bins around the most significant one
    (bridging ``bridge_bins`` quiet bins) is excluded; this repeats until the run is stable.
    """
    cfg = config or BackgroundConfig()
    lo, hi, c, e, v = _rebin(bins, cfg.clip_timescale_s)
    if lo.size < 4:
        raise InputDataError("light curve too short to separate burst and background")
    t_ref = 0.5 * (lo[0] + hi[-1])
    scale = max(0.5 * (hi[-1] - lo[0]), 1e-9)
    d = _design(lo, hi, t_ref, scale, 1)
    use = np.ones(lo.size, dtype=bool)
    span: tuple[int, int] | None = None
    for _ in range(20):
        vu = None if v is None else v[use]
        fit = _fit(c[use], d[use], e[use], vu)
        if fit is None:
            fit = _fit(c[use], d[use][:, :1], e[use], vu)
            if fit is None:
                raise InputDataError("background fit failed on the whole light curve")
            mu = (d[:, :1] * e[:, None]) @ fit[0]
        else:
            mu = (d * e[:, None]) @ fit[0]
        sig = (c - mu) / np.sqrt(np.maximum(mu if v is None else v, 1e-9))
        new = _hot_run(sig, cfg.clip_sigma, cfg.bridge_bins)
        if new is None:
            break
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
    return _extend_on_coarser_bins(bins, (float(lo[span[0]]), float(hi[span[1]])), cfg)


def _extend_on_coarser_bins(
    bins: BinnedCounts, src: tuple[float, float], cfg: BackgroundConfig
) -> tuple[float, float]:
    """Extend the source over adjacent excess seen only on 4x, 16x, ... coarser bins.

    A faint tail that no ``clip_timescale_s`` bin shows above ``clip_sigma`` is significant
    on longer bins (the role Bayesian blocks play for Poisson counts): at each coarser
    scale the background is refitted (order by the test) outside the source and its search
    gap, and coarse bins above ``clip_sigma`` that touch the source join it.
    """
    width = cfg.clip_timescale_s * 4.0
    span = float(bins.hi[-1] - bins.lo[0])
    while width <= span / 8.0:
        lo, hi, c, e, v = _rebin(bins, width)
        t_ref = 0.5 * (lo[0] + hi[-1])
        scale = max(0.5 * (hi[-1] - lo[0]), 1e-9)
        iv = padded_intervals(src, float(lo[0]), float(hi[-1]), cfg, cfg.search_gap_fraction)
        sel = _in_intervals(lo, hi, iv)
        if sel.sum() < 4:
            break
        vs = None if v is None else v[sel]
        # the polynomial alone: on coarse bins the pre-burst interval holds a few bins or
        # none, and a tail term there takes a falling background for emission (GRB 080916C
        # n3: a 4 s bin of the pre-burst data then joined the source, which ran to the
        # data start); the Bayesian-blocks search refines the extent with it
        best, _, _ = _select_order(lo[sel], hi[sel], c[sel], e[sel], t_ref, scale, cfg, 0, vs)
        if best is None:
            break
        mu = (_design(lo, hi, t_ref, scale, best.order) * e[:, None]) @ best.alone[0]
        hot = (c - mu) / np.sqrt(np.maximum(mu if v is None else v, 1e-9)) > cfg.clip_sigma
        # only coarse bins wholly outside the source can extend it (one that straddles an
        # edge is hot because of the burst itself)
        k = int(np.searchsorted(lo, src[1] - 1e-9))
        new_hi = src[1]
        while k < lo.size and hot[k]:
            new_hi = float(hi[k])
            k += 1
        k = int(np.searchsorted(hi, src[0] + 1e-9, side="right")) - 1
        new_lo = src[0]
        while k >= 0 and hot[k]:
            new_lo = float(lo[k])
            k -= 1
        src = (new_lo, new_hi)
        width *= 4.0
    return src


def _fit_cells(
    bins: BinnedCounts, sel: np.ndarray, max_cells: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Return the selected bins summed into at most about ``max_cells`` cells for the fit.

    Neighbouring bins are summed (never across a gap or an interval edge); counts,
    exposures and variances add, and the fit's design is the exact average of the powers
    over each cell, so a polynomial fitted to the cells is the one fitted to the bins but
    for the information inside a cell, which a background smooth over seconds does not
    have. A fine clock (a 0.5 s burst gets 4 ms bins: 45,000 bins over 180 s) then costs
    no more to fit than a coarse one: every order is fitted with and without the tail term.
    """
    idx = np.flatnonzero(sel)
    lo, hi = bins.lo[idx], bins.hi[idx]
    c = np.asarray(bins.counts, dtype=float)[idx]
    e = bins.exposure[idx]
    v = None if bins.variance is None else np.asarray(bins.variance, dtype=float)[idx]
    group = int(np.ceil(idx.size / max_cells))
    if group <= 1:
        return lo, hi, c, e, v
    run = np.cumsum(np.concatenate([[0], lo[1:] > hi[:-1] + 1e-9]))
    start = np.flatnonzero(np.concatenate([[True], run[1:] != run[:-1]]))
    pos = np.arange(idx.size) - np.repeat(start, np.diff(np.append(start, idx.size)))
    first = np.flatnonzero((pos % group) == 0)
    last = np.append(first[1:], idx.size) - 1
    vs = None if v is None else np.add.reduceat(v, first)
    return lo[first], hi[last], np.add.reduceat(c, first), np.add.reduceat(e, first), vs


def _hot_run(sig: np.ndarray, threshold: float, bridge: int) -> tuple[int, int] | None:
    """Return the first and last index of the run of bins above ``threshold`` around the peak.

    The run grows from the most significant bin over bins above the threshold, bridging at
    most ``bridge`` non-significant bins in a row. Taking the span from the first to the
    last significant bin anywhere instead lets one noise bin (or a background drift the
    linear model misses) far from the burst stretch the source over most of the data.
    """
    hot = sig > threshold
    if not np.any(hot):
        return None
    first = last = int(np.argmax(sig))
    n = sig.size
    while True:
        ahead = np.flatnonzero(hot[last + 1 : min(n, last + 2 + bridge)])
        if ahead.size == 0:
            break
        last += int(ahead[0]) + 1
    while True:
        back = np.flatnonzero(hot[max(0, first - 1 - bridge) : first][::-1])
        if back.size == 0:
            break
        first -= int(back[0]) + 1
    return first, last


def _rebin(
    bins: BinnedCounts, width: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Sum bins into groups of about ``width`` seconds (never across a gap); variance summed too."""
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
    v = None if bins.variance is None else np.add.reduceat(bins.variance, start)
    return lo, hi, c, e, v


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
        # P(N >= n | mu) is the regularised lower incomplete gamma P(floor(n - 1) + 1, mu)
        # (what scipy.stats.poisson.sf(n - 1, mu) computes), and the sigma is -ndtri of it
        # (norm.isf): the same numbers as scipy.stats without its per-call argument
        # handling, a tenth of the time on the error simulations' small arrays. A tail that
        # underflows is held at exp(-700), as the log-tail was.
        with np.errstate(divide="ignore"):
            lsf = np.log(special.gammainc(np.floor(n[up] - 1.0) + 1.0, mu[up]))
        out[up] = -special.ndtri(np.exp(np.maximum(lsf, -700.0)))
    return out


def _block_z(
    n: np.ndarray,
    a: np.ndarray,
    idx: np.ndarray,
    fit: tuple[np.ndarray, np.ndarray],
    floor: float | None = None,
) -> np.ndarray:
    """Significance of each block's counts ``n`` over the background model, its error included.

    ``a`` is the design (times exposure) of the cells, ``idx`` the block boundaries in
    cells. The Poisson tail alone treats the model as exact: a long block far from the
    background intervals, where the polynomial is extrapolated, would be significant for a
    1 % model error (a 100 s block of 40,000 counts is 4 sigma at 2 %). The smaller of the
    Poisson significance and ``(n - mu) / sqrt(mu + var_model)`` is kept. With ``floor``
    the Poisson tail is only computed where the Gaussian significance exceeds it (elsewhere
    the smaller of the two is at most the Gaussian one, returned): only whether a block is
    above a threshold is asked, and most blocks are background.
    """
    ab = np.add.reduceat(a, idx[:-1], axis=0)
    mu = ab @ fit[0]
    var = np.einsum("ij,jk,ik->i", ab, fit[1], ab)
    z = np.maximum((n - mu) / np.sqrt(np.maximum(mu + var, 1e-12)), 0.0)
    up = np.ones(z.size, dtype=bool) if floor is None else z > floor
    z[up] = np.minimum(_poisson_z(n[up], mu[up]), z[up])
    return z


@dataclass(frozen=True)
class _Fit:
    """One background fit: the polynomial, plus the emission-tail term when it was fitted.

    ``params`` are the coefficients then (with a tail) the tail amplitude, ``cov`` their
    joint covariance, ``lnl`` the log-likelihood (Poisson, or ``-chi2 / 2``); ``alone`` the
    coefficients and covariance of the same order fitted without the tail term and
    ``alone_lnl`` its log-likelihood; ``tail_chosen`` whether the order selection chose the
    model with the tail (:func:`_select_order`).
    """

    params: np.ndarray
    cov: np.ndarray
    lnl: float
    order: int
    alone: tuple[np.ndarray, np.ndarray]
    alone_lnl: float
    tail_tau: float = float("nan")
    tail_start: float = float("nan")
    tail_chosen: bool = False

    @property
    def has_tail(self) -> bool:
        """Whether the tail term is part of the fit."""
        return self.params.size > self.order + 1

    @property
    def poly(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the polynomial's coefficients and covariance (the tail's error marginalised)."""
        k = self.order + 1
        return self.params[:k], self.cov[:k, :k]

    @property
    def chosen(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the polynomial of the chosen model: the joint fit's with the tail chosen, else alone."""
        return self.poly if self.tail_chosen else self.alone

    def model(
        self, lo: np.ndarray, hi: np.ndarray, exposure: np.ndarray, t_ref: float, scale: float
    ) -> np.ndarray:
        """Return the fitted model's expected counts per bin (polynomial plus tail)."""
        d = _design(lo, hi, t_ref, scale, self.order)
        if self.has_tail:
            d = np.column_stack([d, _tail_column(lo, hi, self.tail_start, self.tail_tau)])
        return (d * exposure[:, None]) @ self.params


def _fit_order(
    lo: np.ndarray,
    hi: np.ndarray,
    y: np.ndarray,
    exposure: np.ndarray,
    t_ref: float,
    scale: float,
    order: int,
    cfg: BackgroundConfig,
    variance: np.ndarray | None,
    tail_src: tuple[float, float] | None,
) -> _Fit | None:
    """Fit one polynomial order, with the tail term when ``tail_src`` is given and it helps.

    The model of that order is the polynomial plus ``max(A, 0)`` times the best tail shape
    (:func:`_with_tail`): the polynomial alone when no fit with ``A > 0`` converges or it
    fits better (the bounded maximum-likelihood estimate).
    """
    d = _design(lo, hi, t_ref, scale, order)
    fit = _fit(y, d, exposure, variance)
    if fit is None:
        return None
    out = _Fit(fit[0], fit[1], fit[2], order, (fit[0], fit[1]), fit[2])
    if tail_src is not None:
        joint = _with_tail(lo, hi, y, exposure, d, variance, tail_src, cfg)
        if joint is not None and joint[0][2] > fit[2]:
            (c, cov, lnl), tau, t_a = joint
            out = _Fit(c, cov, lnl, order, (fit[0], fit[1]), fit[2], tau, t_a)
    return out


def significant_run(
    n: np.ndarray,
    a: np.ndarray,
    idx: np.ndarray,
    fit: tuple[np.ndarray, np.ndarray],
    blocks: tuple[np.ndarray, np.ndarray],
    near: tuple[float, float],
    threshold: float,
) -> tuple[float, float] | None:
    """Return the run of Bayesian blocks significantly above the background around the burst (s).

    ``n`` are the blocks' counts, ``a`` the background design times exposure of the cells,
    ``idx`` the block boundaries in cells, ``fit`` the polynomial's coefficients and
    covariance and ``blocks`` the blocks' start and end times. The run starts from the most
    significant block (:func:`_block_z`, above ``threshold``) that overlaps ``near`` and
    grows over significant neighbours and over a single quiet block when it and the
    significant block beyond it are significant together (:func:`_bridged`). None when no
    block overlapping ``near`` is significant.
    """
    z = _block_z(n, a, idx, fit, threshold)
    hot = z > threshold
    b_lo, b_hi = blocks
    overlap = np.flatnonzero((b_hi > near[0]) & (b_lo < near[1]) & hot)
    if overlap.size == 0:
        return None
    n_blk = n.size
    first = last = int(overlap[np.argmax(z[overlap])])
    bridge = functools.partial(_bridged, n, a, idx, fit, hot, threshold)
    while first > 0 and (hot[first - 1] or bridge(first - 2, first - 1)):
        first -= 1 if hot[first - 1] else 2
    while last < n_blk - 1 and (hot[last + 1] or bridge(last + 1, last + 2)):
        last += 1 if hot[last + 1] else 2
    return float(b_lo[first]), float(b_hi[last])


def _bridged(
    n: np.ndarray,
    a: np.ndarray,
    idx: np.ndarray,
    fit: tuple[np.ndarray, np.ndarray],
    hot: np.ndarray,
    threshold: float,
    i: int,
    j: int,
) -> bool:
    """Whether the source grows over the quiet block and the significant one beyond it (blocks ``i..j``).

    One of the two is quiet, the other above the threshold (``hot``). A single significant
    block past a quiet one is not enough: Bayesian blocks cut the edges of a block where
    the counts deviate most, so over hundreds of seconds of background a few-second block
    of a fluctuation reaches 4 sigma, and bridging to it over a long quiet block let a
    quadratic-drift burst's source run to 250 s (seed 1041 of docs/durations.md). The two
    blocks together must be significant (a second pulse after a short pause is; a
    fluctuation after a long quiet stretch is not).
    """
    if i < 0 or j >= n.size or not (hot[i] or hot[j]):
        return False
    cells = a[idx[i] : idx[j + 1]]
    z = _block_z(np.array([n[i] + n[j]]), cells, np.array([0, cells.shape[0]]), fit, threshold)
    return bool(z[0] > threshold)


def _select_order(
    lo: np.ndarray,
    hi: np.ndarray,
    y: np.ndarray,
    exposure: np.ndarray,
    t_ref: float,
    scale: float,
    cfg: BackgroundConfig,
    min_order: int = 0,
    variance: np.ndarray | None = None,
    tail_src: tuple[float, float] | None = None,
) -> tuple[_Fit | None, dict[int, float], list[str]]:
    """Fit every order up to ``max_order`` and keep the one of highest penalised likelihood.

    Each candidate model scores ``2 lnL - q p``, with ``p`` its parameters beyond a
    constant and ``q`` the chi2(1) quantile ``1 - lrt_alpha`` (a parameter must improve the
    fit as much as the likelihood-ratio test at ``lrt_alpha`` asks). Every order is
    scored: the sequential test that stopped at the first order refused kept a constant
    under a background that rises and falls back (no linear term over the two intervals;
    28 of 150 simulated quadratic-drift bursts, docs/durations.md). Orders below
    ``min_order`` are not candidates, nor is a model that misfits one of the separate
    background intervals (pre- and post-burst) by more than ``balance_sigma``
    (:func:`_interval_misfit`) while another does not: with a short pre-burst interval the
    likelihood has little power against a drift, but a constant between the two
    intervals' levels makes the plateaus of the cumulative curve slope and moves T90.

    With ``tail_src`` (the emission interval) each order is also a candidate with the
    emission-tail term (:func:`_with_tail`, two parameters: amplitude and e-fold), so that a
    tail still decaying in the post-burst interval is explained by the tail, not by a
    higher order that bends the polynomial into it (which makes the tail background and
    cuts it off the source: the source of a 60 s soft tail ended at 29 s instead of 53 s),
    while a background falling over the whole interval, which a tail would mimic with
    one parameter more, keeps its order (GRB 080916C n3). The fit returned is the chosen
    order's, with the tail term when its amplitude is positive (a tail below the penalty
    still leaks into the fit), and that order fitted alone (``_Fit.alone``).
    """
    runs = np.cumsum(np.concatenate([[0], lo[1:] > hi[:-1] + 1e-9]))
    tests: dict[int, float] = {}
    flags: list[str] = []
    q = float(stats.chi2.ppf(1.0 - cfg.lrt_alpha, 1))
    max_order = min(cfg.max_order, int(y.size) - 2)
    fits: list[_Fit] = []
    for order in range(max_order + 1):
        fit = _fit_order(lo, hi, y, exposure, t_ref, scale, order, cfg, variance, tail_src)
        if fit is None:
            if fits:
                flags.append(f"order {order} fit failed; kept order {fits[-1].order} or below")
            break
        fits.append(fit)
    if not fits:
        return None, tests, flags
    # (score, misfit, fit) of each candidate: the order alone, and with the tail
    cands: list[tuple[float, float, _Fit]] = []
    lnl0 = fits[0].alone_lnl
    for fit in fits:
        lnl = fit.alone_lnl
        alone = _Fit(fit.alone[0], fit.alone[1], lnl, fit.order, fit.alone, lnl)
        if fit.order > 0:
            tests[fit.order] = 2.0 * (lnl - lnl0)
        if fit.order < min(min_order, fits[-1].order):
            continue
        mis = _interval_misfit(alone, runs, y, lo, hi, exposure, t_ref, scale, variance)
        cands.append((2.0 * lnl - q * fit.order, mis, fit))
        if fit.has_tail:
            mis = _interval_misfit(fit, runs, y, lo, hi, exposure, t_ref, scale, variance)
            chosen = dataclasses.replace(fit, tail_chosen=True)
            cands.append((2.0 * fit.lnl - q * (fit.order + 2), mis, chosen))
    balanced = [c for c in cands if c[1] <= cfg.balance_sigma]
    if balanced:
        best = max(balanced, key=lambda c: c[0])[2]
    else:
        best = min(cands, key=lambda c: c[1])[2]
    return best, tests, flags


def _interval_misfit(
    fit: _Fit,
    runs: np.ndarray,
    y: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    exposure: np.ndarray,
    t_ref: float,
    scale: float,
    variance: np.ndarray | None,
) -> float:
    """Return the largest |counts - model| / sigma summed over each contiguous run of bins."""
    mu = fit.model(lo, hi, exposure, t_ref, scale)
    var = mu if variance is None else variance
    n_runs = int(runs[-1]) + 1 if runs.size else 0
    if n_runs < 2:
        return 0.0
    d = np.bincount(runs, weights=y - mu, minlength=n_runs)
    v = np.bincount(runs, weights=var, minlength=n_runs)
    return float(np.max(np.abs(d) / np.sqrt(np.maximum(v, 1e-12))))


def padded_intervals(
    src: tuple[float, float],
    t_lo: float,
    t_hi: float,
    cfg: BackgroundConfig,
    fraction: float | None = None,
) -> np.ndarray:
    """Off-source intervals around ``src`` past the gap, the gap at most half the room per side.

    ``fraction`` replaces ``cfg.gap_fraction`` (the source search uses a narrower gap).
    """
    frac = cfg.gap_fraction if fraction is None else fraction
    frac_lo = cfg.gap_before_fraction if fraction is None else min(fraction, frac)
    length = src[1] - src[0]
    pad_lo = min(max(cfg.gap_s, frac_lo * length), 0.5 * max(src[0] - t_lo, 0.0))
    pad_hi = min(max(cfg.gap_s, frac * length), 0.5 * max(t_hi - src[1], 0.0))
    iv = np.array([[t_lo, src[0] - pad_lo], [src[1] + pad_hi, t_hi]])
    return iv[iv[:, 1] > iv[:, 0]]


def _in_intervals(lo: np.ndarray, hi: np.ndarray, iv: np.ndarray) -> np.ndarray:
    sel = np.zeros(lo.size, dtype=bool)
    for a, b in iv:
        sel |= (lo >= a - 1e-9) & (hi <= b + 1e-9)
    return sel


def source_interval_auto(
    bins: BinnedCounts,
    config: BackgroundConfig | None = None,
    *,
    seed: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """Find the burst interval as the connected Bayesian blocks significantly above the background.

    1. Seed: ``seed`` when given (the extent found on other bins of the same data), else
       the coarse excess run of :func:`source_interval_sigma_clip` (or, when it finds
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
    return _search_source(bins, config or BackgroundConfig(), seed)[0]


def _search_source(
    bins: BinnedCounts, cfg: BackgroundConfig, seed: tuple[float, float] | None
) -> tuple[tuple[float, float], BackgroundModel | None]:
    """Run :func:`source_interval_auto`; also return the last polynomial the blocks were compared with."""
    from svomflow.tasks.timing.blocks import bayesian_blocks_binned

    width = float(np.median(bins.width))
    n_bins = bins.lo.size
    group = max(1, int(np.ceil(n_bins / cfg.max_block_cells)))
    if group > 1:
        lo, hi, c, e, _ = _rebin(bins, group * width)
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
        src = seed if seed is not None else source_interval_sigma_clip(bins, cfg)
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
    min_order = 0
    last: BackgroundModel | None = None
    for _ in range(8):
        search_iv = padded_intervals(src, t_lo, t_hi, cfg, cfg.search_gap_fraction)
        sel = _in_intervals(lo, hi, search_iv)
        if sel.sum() < 3:
            break
        # the tail term, a candidate of the order selection, takes the emission still
        # decaying past the search gap, so that the polynomial neither bends into it nor
        # is raised by it near the burst (under a linear drift that tilt ended the source
        # early); the blocks are compared with the polynomial of the model chosen
        tail_src = src if cfg.tail_term else None
        best, _, _ = _select_order(
            lo[sel], hi[sel], c[sel], e[sel], t_ref, scale, cfg, min_order, None, tail_src
        )
        if best is None:
            break
        # never below the order the widest background intervals asked for: a source grown
        # over a drift leaves less background, the test then keeps a lower order that
        # misfits the drift, more blocks look significant and the source runs away
        min_order = max(min_order, best.order)
        a_cells = _design(lo, hi, t_ref, scale, best.order) * e[:, None]
        level = best.chosen
        new = significant_run(b_n, a_cells, idx, level, (b_lo, b_hi), src, cfg.clip_sigma)
        last = BackgroundModel(level[0], level[1], t_ref, scale, search_iv, src)
        if new is None:
            break
        if new == src:
            break
        src = new
    return src, last


def fit_background(
    bins: BinnedCounts,
    config: BackgroundConfig | None = None,
    *,
    seed: tuple[float, float] | None = None,
    source: tuple[float, float] | None = None,
) -> BackgroundModel:
    """Fit the background of a one-band binned light curve.

    Parameters
    ----------
    bins : BinnedCounts
        The light curve (1-D counts).
    config : BackgroundConfig, optional
    seed : tuple of float, optional
        ``auto``: a first guess of the source interval (s), e.g. found on finer bins.
    source : tuple of float, optional
        With given ``intervals``: the emission interval (s), recorded as the model's source
        and used for the tail term (the durations step's refits on other intervals); the
        user's intervals alone (``source`` None) are fitted by the polynomial only.

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
    tail = cfg.tail_term and method in ("auto", "sigma_clip")
    search: BackgroundModel | None = None
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
        if source is not None:
            src = (float(source[0]), float(source[1]))
            tail = cfg.tail_term
    elif method == "blocks" and bins.gaussian:
        raise InputDataError(
            "the 'blocks' background method needs Poisson counts; this curve carries "
            "Gaussian errors: use 'sigma_clip', 'auto' or background intervals"
        )
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
        if method == "auto" and not bins.gaussian:
            src, search = _search_source(bins, cfg, seed)
        else:
            src = source_interval_sigma_clip(bins, cfg)
        iv = padded_intervals(src, t_lo, t_hi, cfg)
    sel = _in_intervals(bins.lo, bins.hi, iv)
    sel &= bins.exposure > 0
    if sel.sum() < 3:
        raise InputDataError("fewer than 3 off-source bins for the background fit")
    t_ref = 0.5 * (t_lo + t_hi)
    scale = max(0.5 * (t_hi - t_lo), 1e-9)
    lo, hi, c, e, var = _fit_cells(bins, sel, cfg.max_block_cells)
    best, tests, flags = _select_order(
        lo, hi, c, e, t_ref, scale, cfg, 0, var, src if tail else None
    )
    if best is None:
        raise InputDataError("background fit failed at every polynomial order")
    coeffs, cov = best.poly
    return BackgroundModel(
        coeffs=coeffs,
        cov=cov,
        t_ref=t_ref,
        scale=scale,
        intervals=iv,
        source=(float(src[0]), float(src[1])),
        order_tests=tests,
        flags=tuple(flags),
        tail_tau=best.tail_tau,
        tail_start=best.tail_start,
        tail_amplitude=float(best.params[-1]) if best.has_tail else 0.0,
        tail_cov=best.cov if best.has_tail else None,
        config=cfg,
        search=search,
    )
