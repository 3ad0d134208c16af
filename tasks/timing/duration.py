"""T90 and T50 (BATSE/Koshut definition) with start times and simulated errors.

Method, on one band of a binned light curve and its background model
(:func:`svomflow.tasks.timing.background.fit_background`):

1. Net counts per bin (counts minus the model's expected counts) are accumulated over a
   window that adds a plateau on each side of the source interval and its gaps: the
   post-burst plateau starts where the background fit's post-burst interval starts (the
   source end plus the gap of :class:`~svomflow.tasks.timing.background.BackgroundConfig`),
   i.e. where the emission, faint tail included, is over and the plateau established (or
   ``post_margin_fraction`` of the source length after its end, if later); it
   does not run further (``margin_fraction``, default 0), because every second of
   accumulation past the burst adds background error to the 95 % level. The cumulative curve
   is linear within each bin (the counts of a bin are spread evenly over it), so crossing
   times are interpolated inside bins rather than quantised to them.
2. The burst total ``F`` is the difference between the mean levels of the post-burst and
   pre-burst plateaus (Koshut et al. 1996), not the last value of the curve, so the
   background noise at the ends does not bias it. Optionally (``tail_completion``,
   :func:`_tail_completion`), when the background fit carried a tail term (the emission
   still arriving at the post-burst interval), the fitted tail's counts after the
   post-burst plateau start complete the total; otherwise they are lost and T90 is short,
   most on bursts whose detected extent, hence gap, is short.
3. Crossing rule: for each level ``pre + f F`` (``f`` = 0.05, 0.95, 0.25, 0.75) the time is
   the mean of the first and the last upward crossing of the curve, as in battblocks. GDT
   instead takes the last bin below 5 % and the last bin below 95 % of the maximum of the
   cumulative curve, which quantises T90 to the bin width and, by using the maximum,
   overestimates the total when the curve keeps rising with residual background; averaging
   the outer and inner crossings is less sensitive to one noise excursion near a level.
4. Errors (Poisson and background-model uncertainty, by simulation): ``n_sims``
   simulated light curves, each with Poisson counts drawn around the Bayesian-blocks rate
   of the window (``error_model="blocks"``; or around the observed counts, ``bootstrap``)
   and background coefficients refitted to the simulated counts of the fit intervals
   (``background_draws="refit"``, see :class:`_BackgroundRefit`; drawing them from the fit
   covariance independently counts the plateau noise twice), analysed in the same way;
   the error is half the 16-84 % range of the simulated values. Each simulation finds its
   own source interval and places its own plateaus (``extent_in_errors``,
   :class:`_Redetect`): where a faint tail stops being significant moves the window. A
   curve given with Gaussian errors (``BinnedCounts.variance``) gets Gaussian noise instead
   (and a fixed window).
5. Background-choice systematic (``background_systematic``): T90/T50 are measured again
   (a) with the background refitted on a post-burst interval starting halfway between the
   source end and the gap (half the change), and (b) with the other post-burst plateau
   choice of ``post_plateau`` (two analyses a specialist could defend: the change beyond
   the statistical error, :func:`_excess_change`); the larger, combined in quadrature with
   (c) the change when one standard deviation more of the emission tail still arriving
   after the post-burst plateau start (the tail term of the background fit) completes the
   total (:func:`_tail_systematic`), is added to the errors in quadrature. Real
   backgrounds drift by a per cent over tens of seconds in ways no low-order polynomial
   over hundreds of seconds follows (GRB 080916C, n3: 67 s with the plateau where the
   curve flattens, 82 s past the gap).

Post-burst plateau (``post_plateau``): ``gap`` (default) starts it where the automatic
background interval starts, the source end plus the gap of the background configuration,
so that a faint tail below the detection threshold stays burst; ``established`` starts it
where the cumulative curve is established flat after the emission (the net counts of every
plateau-long window from there on within ``plateau_sigma`` of zero, for two plateau
lengths, :func:`_plateau_start`) and refits the background from there (the GBM catalog
analyst's choice: Koshut et al. 1996, von Kienlin et al. 2020), which leaves a slow
background change after the burst out of it but, on simulated faint tails, accumulates
less of the tail (docs/durations.md gives both biases).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.timing.background import BackgroundModel
from svomflow.tasks.timing.binning import BinnedCounts

__all__ = ["DurationConfig", "Durations", "durations"]

_METHODS = {
    "rearranged": "Koshut plateaus; monotone-rearranged crossing; linear within bins",
    "mean": "Koshut plateaus; mean of first/last crossing; linear within bins",
    "first": "Koshut plateaus; first crossing; linear within bins",
    "last": "Koshut plateaus; last crossing; linear within bins",
    "gdt": "GDT-like: fraction of the curve maximum, last bin below the level",
}


class DurationConfig(StepConfig):
    """Configuration of the T90/T50 step."""

    plateau_s: float = Field(0.0, ge=0, description="minimum length of each background plateau (s)")
    plateau_fraction: float = Field(
        0.25, ge=0, description="plateau length as a fraction of the source interval"
    )
    margin_fraction: float = Field(
        0.0,
        ge=0,
        description="the plateaus start at least this fraction of the source length "
        "outside it, room permitting (the background gap already keeps a faint tail out "
        "of the plateau; a longer window only adds background error) (dimensionless)",
    )
    post_margin_fraction: float = Field(
        1.0,
        ge=0,
        description="'gap': the post-burst plateau starts at least this fraction of the "
        "source length after the source end (where the background interval starts if that "
        "is later): a faint tail still adds counts after the background gap (dimensionless)",
    )
    plateau_min_bins: int = Field(
        4, ge=1, description="minimum length of each background plateau (bins)"
    )
    error_model: Literal["blocks", "bootstrap"] = Field(
        "blocks",
        description="what the error simulations draw Poisson counts around: the Bayesian-"
        "blocks rate of the window (a smooth truth, noise added once) or the observed "
        "counts (bootstrap; under-covers at low counts)",
    )
    crossing: Literal["rearranged", "mean", "first", "last", "gdt"] = Field(
        "rearranged",
        description="how the time a level is reached is read off the noisy cumulative "
        "curve (none: see the module docstring)",
    )
    background_draws: Literal["refit", "independent"] = Field(
        "refit",
        description="how each simulation's background coefficients are drawn: refitted to "
        "the simulated counts of the fit intervals (linearised; the window's share of them "
        "is the simulation's own Poisson draw) or drawn from the fit covariance "
        "independently of the simulated counts (counts the noise of the plateaus twice)",
    )
    background_systematic: bool = Field(
        True,
        description="add to the errors half the change of T90/T50 when the background is "
        "refitted with the post-burst gap halved (real backgrounds are not polynomials "
        "over hundreds of seconds; none: switch)",
    )
    post_plateau: Literal["gap", "established"] = Field(
        "gap",
        description="where the post-burst plateau starts: where the cumulative curve is "
        "established flat after the emission (Koshut; the background is then refitted from "
        "there) or where the automatic background interval starts (source end plus the gap)",
    )
    plateau_sigma: float = Field(
        2.0,
        gt=0,
        description="the post-burst plateau is established once the net counts over one "
        "plateau length stay within this many sigma of zero (sigma)",
    )
    tail_completion: bool = Field(
        False,
        description="when the background fit carried a tail term, add the fitted tail's "
        "counts after the post-burst plateau start to the burst total (and take them out of "
        "the plateau): a faint tail still arriving after the plateau otherwise shortens T90, "
        "most on bursts whose detected extent, hence gap, is short; off by default, because "
        "a tail amplitude that is only noise (held at A > 0) then lengthens T90 on bursts "
        "without such a tail (docs/durations.md) (none: switch)",
    )
    tail_completion_sigma: float = Field(
        2.0,
        ge=0,
        description="'tail_completion': only a tail amplitude this many sigma above zero "
        "completes the total (the amplitude is held at A > 0, so noise alone would) (sigma)",
    )
    n_sims: int = Field(300, ge=0, description="simulations for the errors (count)")
    extent_in_errors: bool = Field(
        True,
        description="each error simulation finds its own source interval and places its "
        "own plateaus (automatic background, 'gap' plateau): where the faint tail stops "
        "being significant moves the accumulation window (none: switch)",
    )
    seed: int = Field(0, description="seed of the simulations")


@dataclass(frozen=True)
class Durations:
    """T90/T50 (s), their start times (s since t0) and 1-sigma errors.

    ``total_counts`` is the background-subtracted burst total ``F`` (counts);
    ``window`` the accumulation window; ``band_kev`` the band of the light curve.
    ``t90_err`` and ``t50_err`` combine the simulated (statistical) error and the
    background-interval systematic ``t90_sys``/``t50_sys`` in quadrature.
    ``background_intervals`` are the intervals of the background fit that was subtracted
    (s); ``post_plateau_start`` where the post-burst plateau starts (s), chosen as
    ``post_plateau`` says (:class:`DurationConfig`).
    """

    t90: float
    t90_err: float
    t90_start: float
    t90_start_err: float
    t50: float
    t50_err: float
    t50_start: float
    t50_start_err: float
    total_counts: float
    total_counts_err: float
    window: tuple[float, float]
    band_kev: tuple[float, float] | None
    method: str = "Koshut plateaus; monotone-rearranged crossing; linear within bins"
    flags: tuple[str, ...] = field(default_factory=tuple)
    t90_sys: float = 0.0
    t50_sys: float = 0.0
    background_intervals: tuple[tuple[float, float], ...] = ()
    post_plateau_start: float = float("nan")
    post_plateau: str = "gap"


def _crossing(edges: np.ndarray, s: np.ndarray, level: float) -> float:
    """Mean of the first and the last upward crossing of ``level`` by the piecewise-linear curve."""
    first = _crossing_at(edges, s, level, "first")
    last = _crossing_at(edges, s, level, "last")
    return 0.5 * (first + last)


def _crossing_at(edges: np.ndarray, s: np.ndarray, level: float, which: str) -> float:
    """First or last upward crossing of ``level`` (interpolated within the bin)."""
    up = np.flatnonzero((s[:-1] < level) & (s[1:] >= level))
    if up.size == 0:
        return np.nan
    i = up[0] if which == "first" else up[-1]
    frac = (level - s[i]) / (s[i + 1] - s[i])
    return float(edges[i] + frac * (edges[i + 1] - edges[i]))


def _rearranged(edges: np.ndarray, s: np.ndarray, level: float) -> float:
    """Time at which the monotone rearrangement of the curve reaches ``level``.

    The rearrangement of ``S`` over the window is the increasing curve with the same
    distribution of values; it reaches ``level`` at ``edges[0]`` plus the total time ``S``
    spends below ``level`` (exact for the piecewise-linear curve). For a monotone curve this
    is the crossing time; for a noisy one it is a continuous function of the data (no jump
    when a noise excursion adds or removes a crossing), and rearranging never increases the
    distance to the true monotone curve (Chernozhukov, Fernandez-Val & Galichon 2009).
    """
    return float(_rearranged_levels(edges, s, np.array([level]))[0])


def _rearranged_levels(edges: np.ndarray, s: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Return :func:`_rearranged` for each of ``levels`` in one pass (NaN where not reached).

    The error simulations ask four levels of each simulated curve: one pass instead of four
    (the same sums, row by row).
    """
    a = s[:-1]
    b = s[1:]
    w = np.diff(edges)
    lv = np.asarray(levels, dtype=float)[:, None]
    below = np.where((a < lv) & (b < lv), 1.0, 0.0)
    rising = (a < lv) & (b >= lv)
    falling = (a >= lv) & (b < lv)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = np.where(rising, (lv - a) / (b - a), below)
        below = np.where(falling, (a - lv) / (a - b), below)
    out = edges[0] + np.sum(below * w, axis=1)
    # the level is never reached from below or never left
    never = ~np.any((a < lv) | (b < lv), axis=1) | np.all(below == 1.0, axis=1)
    out[never] = np.nan
    return np.asarray(out, dtype=float)


def _level_time(edges: np.ndarray, s: np.ndarray, level: float, rule: str) -> float:
    """Time the cumulative curve reaches ``level`` under a crossing rule (see the module doc)."""
    if rule == "rearranged":
        return _rearranged(edges, s, level)
    if rule == "mean":
        return _crossing(edges, s, level)
    if rule == "gdt":
        # the edge after the last bin whose cumulative value is below the level: quantised
        below = np.flatnonzero(s[:-1] < level)
        return float(edges[below[-1] + 1]) if below.size else np.nan
    return _crossing_at(edges, s, level, rule)


def _analyse(
    edges: np.ndarray,
    net: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    rule: str = "rearranged",
) -> tuple[float, float, float, float, float]:
    """Return (F, t05, t95, t25, t75) for one net-count series."""
    s = np.concatenate([[0.0], np.cumsum(net)])
    lo = float(np.mean(s[pre]))
    hi = float(np.mean(s[post]))
    if rule == "gdt":  # GDT normalises to the maximum of the curve from the window start
        lo = float(s[0])
        hi = float(np.max(s))
    total = hi - lo
    if not total > 0:
        return total, np.nan, np.nan, np.nan, np.nan
    if rule == "rearranged":
        t05, t95, t25, t75 = _rearranged_levels(
            edges, s, lo + np.array([0.05, 0.95, 0.25, 0.75]) * total
        )
        return total, float(t05), float(t95), float(t25), float(t75)
    return (
        total,
        _level_time(edges, s, lo + 0.05 * total, rule),
        _level_time(edges, s, lo + 0.95 * total, rule),
        _level_time(edges, s, lo + 0.25 * total, rule),
        _level_time(edges, s, lo + 0.75 * total, rule),
    )


def _blocks_template(edges: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return the expected counts per bin from the Bayesian-blocks rate of the window (noise removed).

    The error simulations draw Poisson counts around this piecewise-constant light curve,
    so each simulated curve carries the Poisson noise once, like the data; resampling the
    observed counts (bootstrap) doubles the noise of the template and, at low counts,
    gives errors that cover the truth in fewer than 68 % of cases.
    """
    from svomflow.tasks.timing.blocks import bayesian_blocks_binned

    c = np.rint(np.maximum(counts, 0.0))
    be = bayesian_blocks_binned(edges, c, p0=0.05)
    idx = np.searchsorted(edges, be)
    out = np.empty(c.size)
    for a, b in itertools.pairwise(idx):
        out[a:b] = c[a:b].sum() * np.diff(edges[a : b + 1]) / (edges[b] - edges[a])
    return out


class _BackgroundRefit:
    """Background coefficients refitted to a simulated light curve, to first order.

    The background fit is a Poisson maximum-likelihood fit over the off-source intervals,
    which include the T90 plateaus; its error is correlated with the noise of the plateau
    counts (an upward fluctuation there raises the fitted background and lowers the net
    plateau). Drawing coefficients from the covariance independently of the simulated counts
    loses that correlation and adds the plateau noise twice, once as counts and once as
    background, which inflates the errors of the plateau levels, of the total ``F`` and of
    T95 (most for a long, low tail). Refitting restores it; to first order (one Fisher-scoring
    step from the fitted coefficients ``c``, exact for the Gaussian approximation the
    covariance rests on) the refitted coefficients are ``c + Cov A^T (y - m) / mu`` over the
    fit bins, with ``y - m`` the simulated counts minus their expectation. Inside the window
    that deviation is the simulation's own Poisson draw around its template; outside it the
    bins enter only through the sum, drawn as a Gaussian with covariance ``A_o^T A_o / mu_o``.
    """

    def __init__(
        self,
        bins: BinnedCounts,
        background: BackgroundModel,
        window: np.ndarray,
        template: np.ndarray,
    ) -> None:
        iv = np.asarray(background.intervals, dtype=float).reshape(-1, 2)
        fit = np.zeros(bins.lo.size, dtype=bool)
        for lo, hi in iv:  # the bins the background fit used (as fit_background selects them)
            fit |= (bins.lo >= lo - 1e-9) & (bins.hi <= hi + 1e-9)
        fit &= bins.exposure > 0
        # the fitted model's design: with a tail term its amplitude is refitted too, and
        # only the polynomial part (the background) is returned
        c, cov = background.fit_params()
        a = background.fit_design(bins.lo, bins.hi) * bins.exposure[:, None]
        mu = np.maximum(a @ c, 1e-12)
        inside = np.zeros(bins.lo.size, dtype=bool)
        inside[window] = True
        out = fit & ~inside
        self._fisher_out = a[out].T @ (a[out] / mu[out, None])
        w = fit[window]
        self._w = w
        self._score = a[window][w] / mu[window][w, None]  # rows: d lnL / d c per unit residual
        self._template = template[w]
        self._c = c
        self._cov = cov
        self._k = int(np.size(background.coeffs))

    def outside_scores(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw the score contributions of the fit bins outside the window (``n`` rows)."""
        if not np.any(self._fisher_out):
            return np.zeros((n, self._c.size))
        return rng.multivariate_normal(
            np.zeros(self._c.size), self._fisher_out, size=n, check_valid="ignore"
        )

    def coeffs(self, counts: np.ndarray, outside: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Refitted polynomial coefficients and tail amplitude (None without a tail term)."""
        g = self._score.T @ (counts[self._w] - self._template) + outside
        theta = self._c + self._cov @ g
        k = self._k
        if theta.size == k:
            return theta, None
        if theta[k] < 0:
            # the tail amplitude's bound (emission is not negative): the fit with the
            # amplitude held at 0, to first order the polynomial conditional on it
            return theta[:k] - self._cov[:k, k] * (theta[k] / self._cov[k, k]), 0.0
        return theta[:k], float(theta[k])


def _tail_completion(
    sub: BinnedCounts,
    p1: float,
    background: BackgroundModel | None,
    z: float = 0.0,
    amplitude: float | None = None,
) -> np.ndarray:
    """Return the net-count correction that completes the burst with its fitted tail (per bin).

    The tail term of the background fit (:func:`svomflow.tasks.timing.background.fit_background`)
    is the emission still arriving at the post-burst interval; only the polynomial is
    subtracted, so that tail stays burst, but its counts after the post-burst plateau start
    ``p1`` would make the plateau slope and the rest of it, past the window, would be lost
    (the 95 % level too low, T90 short). The correction takes the model tail out of every
    bin from ``p1`` on and puts all its counts after ``p1`` into the first of them: the
    post-burst plateau is then flat at the completed total. Zeros without a tail term,
    without a model (``tail_completion`` off) or when the amplitude is less than ``z``
    sigma above zero.
    """
    adj = np.zeros(sub.lo.size)
    after = np.flatnonzero(sub.lo >= p1 - 1e-9)
    if background is None or not background.has_tail or after.size == 0:
        return adj
    amp = background.tail_amplitude if amplitude is None else amplitude
    if background.tail_cov is None or amp <= z * np.sqrt(max(background.tail_cov[-1, -1], 0.0)):
        return adj
    adj[after] = -background.tail_rate(sub.lo[after], sub.hi[after], amp) * sub.exposure[after]
    adj[after[0]] += background.tail_after(float(sub.lo[after[0]]), amp)
    return adj


def _plateau_start(
    bins: BinnedCounts, background: BackgroundModel, t_from: float, length: float, z: float
) -> float | None:
    """Return the first time after ``t_from`` from which the cumulative curve stays flat.

    Flat means: the net counts (counts minus the background model) over every window of
    ``length`` seconds starting in the next ``length`` seconds (the curve flat over two
    lengths) are at most ``z`` sigma above zero (Poisson variance of the model counts, or
    the curve's own variance when it has errors, plus the model's per-bin variance summed,
    its correlation neglected: it is small next to the Poisson term). This is where an analyst sees the cumulative curve reach its
    post-burst plateau (Koshut et al. 1996). Searched in the contiguous data from
    ``t_from``; None when no such time exists before a gap or the data end.
    """
    mu, var = background.counts(bins)
    if bins.variance is not None:  # a curve with errors: their variance, not the model's
        var = var + np.asarray(bins.variance, dtype=float) - mu
    run = np.flatnonzero(~bins.contiguous[1:] & (bins.lo[1:] > t_from))
    last = int(run[0]) if run.size else bins.lo.size - 1  # the contiguous run from t_from
    first = int(np.searchsorted(bins.lo, t_from - 1e-9))
    if first >= last:
        return None
    edges = np.concatenate([bins.lo[first : last + 1], bins.hi[last : last + 1]])
    net = np.concatenate(
        [[0.0], np.cumsum(np.asarray(bins.counts, float)[first : last + 1] - mu[first : last + 1])]
    )
    v = np.concatenate([[0.0], np.cumsum(mu[first : last + 1] + var[first : last + 1])])
    j = np.searchsorted(edges, edges + length - 1e-9)
    ok = j < edges.size
    k = np.flatnonzero(ok)
    if k.size == 0:
        return None
    hot = (net[j[k]] - net[k]) > z * np.sqrt(np.maximum(v[j[k]] - v[k], 1e-12))
    # quiet for one more plateau length of starts: the curve stays flat over 2 lengths
    span = max(int(j[0]), 1)
    quiet = np.convolve(hot.astype(float), np.ones(span), mode="full")[span - 1 :] == 0
    good = np.flatnonzero(quiet[: max(k.size - span + 1, 1)])
    return float(edges[k[good[0]]]) if good.size else None


def _established_background(
    bins: BinnedCounts, background: BackgroundModel, plateau: float, z: float
) -> tuple[BackgroundModel, float]:
    """Return the background refitted from where the post-burst plateau is established, and that time.

    The plateau start is searched (:func:`_plateau_start`) with the gap background, between
    the source end and the start of its post-burst interval; the background is then refitted
    on the pre-burst intervals and the data from there on (same order rules), and the search
    repeated once with it. Unchanged when the plateau is only established at the gap.
    """
    from svomflow.tasks.timing.background import BackgroundConfig, fit_background

    iv = np.asarray(background.intervals, dtype=float).reshape(-1, 2)
    s1 = background.source[1]
    after = iv[:, 0] >= s1 - 1e-9
    pa = float(iv[after, 0].min())
    model, start = background, pa
    for _ in range(2):
        t_p = _plateau_start(bins, model, s1, plateau, z)
        if t_p is None or t_p >= start - 1e-9:
            break
        new_iv = [(float(a), float(b)) for a, b in iv[~after]]
        new_iv.append((t_p, float(iv[after, 1].max())))
        try:
            # the refit keeps the first fit's choice of a tail term (so --set
            # background.tail_term=false holds here too)
            model = fit_background(
                bins,
                BackgroundConfig(intervals=new_iv, tail_term=background.has_tail),
                source=background.source,
            )
        except InputDataError:
            break
        model = dataclasses.replace(model, flags=background.flags + model.flags)
        start = t_p
    return model, start


def _other_plateau(
    bins: BinnedCounts, background: BackgroundModel, cfg: DurationConfig
) -> tuple[float, float] | None:
    """Return T90 and T50 measured with the other post-burst plateau choice (no errors).

    ``gap`` and ``established`` are the two choices a specialist could defend: the
    background from past a fixed gap (a faint tail below the detection stays burst) or from
    where the cumulative curve flattens (a few per cent of slow background change stays
    background). The full difference is a 1-sigma systematic; None when the other choice
    finds no duration.
    """
    other = "gap" if cfg.post_plateau == "established" else "established"
    alt = cfg.model_copy(
        update={"post_plateau": other, "n_sims": 0, "background_systematic": False}
    )
    try:
        d = durations(bins, background, alt)
    except InputDataError:
        return None
    return d.t90, d.t50


def _with_other_plateau(
    bins: BinnedCounts,
    background: BackgroundModel,
    cfg: DurationConfig,
    values: tuple[float, float],
    sys: tuple[float, float],
    errs: dict[str, float],
) -> tuple[float, float]:
    """Return the T90/T50 systematics raised to the other plateau choice's excess change."""
    other = _other_plateau(bins, background, cfg)
    if other is None:
        return sys
    # beyond what the noise alone moves between two analyses of the same counts
    return (
        max(sys[0], _excess_change(other[0] - values[0], errs["t90"])),
        max(sys[1], _excess_change(other[1] - values[1], errs["t50"])),
    )


def _excess_change(change: float, stat: float) -> float:
    """Return the part of a change between two analyses not explained by the statistical error.

    ``sqrt(change^2 - stat^2)`` (0 when the change is within the error; the whole change when
    the error is unknown): on a clean burst the two plateau choices differ by noise only, and
    counting that noise again as a systematic makes the errors over-cover.
    """
    if not np.isfinite(stat):
        return abs(change)
    return float(np.sqrt(max(change * change - stat * stat, 0.0)))


def _tail_systematic(
    win: _Window, cfg: DurationConfig, values: tuple[float, float]
) -> tuple[float, float]:
    """Return the change of T90/T50 if the emission left after the post-burst plateau were 1 sigma more.

    The post-burst plateau takes the emission as over where it starts; the tail term of
    the background fit measures what is still arriving there, ``A +- sigma_A`` (counts/s at
    the fit interval's start; the counts after the plateau start are ``A tau exp(-(p1 -
    t_a) / tau)``). The estimate completes the total with ``A`` (``tail_completion``) or
    with nothing; one ``sigma_A`` more of tail completed moves T90 by this much. On faint
    tails that still arrive at a few counts/s past the plateau it is the error the fixed
    window cannot see (docs/durations.md); on a bright burst it is negligible. Zero without
    a tail term.
    """
    bk = win.background
    if not bk.has_tail or bk.tail_cov is None:
        return 0.0, 0.0
    sigma = float(np.sqrt(max(bk.tail_cov[-1, -1], 0.0)))
    used = 0.0
    if cfg.tail_completion and bk.tail_amplitude > cfg.tail_completion_sigma * sigma:
        used = bk.tail_amplitude
    more = _tail_completion(win.sub, win.p1, bk, 0.0, used + sigma)
    net = win.sub.counts - win.a @ bk.coeffs + more
    r = _analyse(win.edges, net, win.pre, win.post, cfg.crossing)
    if not (np.all(np.isfinite(r)) and r[0] > 0):
        return 0.0, 0.0
    return abs(r[2] - r[1] - values[0]), abs(r[4] - r[3] - values[1])


def _closer_background(bins: BinnedCounts, background: BackgroundModel) -> BackgroundModel | None:
    """Return the background refitted with the post-burst interval starting halfway to the burst.

    Same order-selection rules (defaults) on the same pre-burst interval; None when the fit
    fails or there is no post-burst interval.
    """
    from svomflow.tasks.timing.background import BackgroundConfig, fit_background

    iv = np.asarray(background.intervals, dtype=float).reshape(-1, 2).copy()
    s1 = background.source[1]
    after = np.flatnonzero(iv[:, 0] >= s1 - 1e-9)
    if after.size == 0:
        return None
    k = int(after[np.argmin(iv[after, 0])])
    iv[k, 0] = s1 + 0.5 * (iv[k, 0] - s1)
    cfg = BackgroundConfig(
        intervals=[(float(a), float(b)) for a, b in iv], tail_term=background.has_tail
    )
    try:
        alt = fit_background(bins, cfg, source=background.source)
    except InputDataError:
        return None
    return alt


def _simulated_errors(
    bins: BinnedCounts, win: _Window, cfg: DurationConfig, flags: list[str]
) -> dict[str, float]:
    """Half the 16-84 % range of T90, T05, T50, T25 and F over simulated light curves (step 4).

    Poisson counts are drawn around the template of ``error_model`` with the background
    refitted or drawn (``background_draws``); a curve with Gaussian errors (``variance``)
    gets Gaussian noise around the observed counts and coefficients drawn from the fit
    covariance (no Poisson template exists for negative, mask-weighted counts). With
    ``tail_completion`` each simulation completes the total with its own refitted tail
    amplitude (:func:`_tail_completion`; the fitted one when not refitted). With
    ``extent_in_errors`` each simulation also finds its own source interval and places its
    own plateaus (:class:`_Redetect`).
    """
    background, idx, edges, a = win.background, win.idx, win.edges, win.a
    pre, post = win.pre, win.post
    tail_model = background if cfg.tail_completion else None
    completion = functools.partial(
        _tail_completion, win.sub, win.p1, tail_model, cfg.tail_completion_sigma
    )
    rule = cfg.crossing
    errs = dict.fromkeys(("t90", "t05", "t50", "t25", "f"), np.nan)
    if cfg.n_sims <= 0:
        return errs
    gaussian = bins.variance is not None
    rng = np.random.default_rng(cfg.seed)
    redetect = None if gaussian else _Redetect.of(bins, win, cfg)
    span = idx if redetect is None else redetect.span
    counts = np.asarray(bins.counts, dtype=float)[span]
    template = np.maximum(counts, 0.0)
    sigma = np.zeros(counts.size)
    if gaussian:
        template = counts
        sigma = np.sqrt(np.asarray(bins.variance, dtype=float)[idx])
    elif cfg.error_model == "blocks":
        template = _blocks_template(edges, counts) if redetect is None else redetect.template
    refit = None
    if cfg.background_draws == "refit" and not gaussian:
        refit = _BackgroundRefit(bins, background, span, template)
        outside = refit.outside_scores(rng, cfg.n_sims)
    else:
        coeffs = background.sample(rng, cfg.n_sims)
    sims = np.empty((cfg.n_sims, 5))
    for k in range(cfg.n_sims):
        if gaussian:
            c = template + sigma * rng.standard_normal(template.size)
        else:
            c = rng.poisson(template).astype(float)
        amp = None
        if refit is not None:
            ck, amp = refit.coeffs(c, outside[k])
        else:
            ck = coeffs[k]
        if redetect is not None:
            r = redetect.analyse(c, ck, amp)
        else:
            r = _analyse(edges, c - a @ ck + completion(amp), pre, post, rule)
        sims[k] = [r[2] - r[1], r[1], r[4] - r[3], r[3], r[0]]
    ok = np.all(np.isfinite(sims), axis=1)
    if ok.mean() < 0.9:
        flags.append(f"{100 * (1 - ok.mean()):.0f}% of error simulations found no crossing")
    if ok.sum() >= 10:
        q = np.percentile(sims[ok], [16, 84], axis=0)
        half = 0.5 * (q[1] - q[0])
        errs = dict(zip(("t90", "t05", "t50", "t25", "f"), half, strict=True))
    return errs


@dataclass(frozen=True)
class _Redetect:
    """Each error simulation's own source interval, background intervals and plateaus.

    The source interval found on the data (:func:`~svomflow.tasks.timing.background.
    source_interval_auto`) ends where the faint tail stops being significant, and the
    post-burst plateau starts one gap after it: where a noise draw puts that end moves the
    plateau and with it how much of the tail is accumulated. Holding the window fixed in
    the simulations leaves that spread out of the errors (on the simulated faint tails of
    docs/durations.md, T90 fell by 12 % where the source was found ending early and rose by
    3 % where late). Here each simulated light curve, drawn over ``span`` (the window and
    one window length on either side; outside the window around the fitted background and
    emission tail), is cut into Bayesian blocks, the source is the run of blocks above the
    polynomial the data's search compared its blocks with (``BackgroundModel.search``;
    :func:`~svomflow.tasks.timing.background.significant_run`, as the search does), and the
    background intervals, plateaus and accumulation window follow from it by the rules
    applied to the data (:func:`_window`), with the background refitted to the simulated
    counts to first order (:class:`_BackgroundRefit`: the order and the tail term's e-fold
    are the data's). A full search and fit per simulation costs 20-60 ms
    (docs/durations.md).
    """

    bins: BinnedCounts
    span: np.ndarray
    template: np.ndarray
    background: BackgroundModel
    cfg: DurationConfig
    design: np.ndarray
    data: tuple[float, float]

    @classmethod
    def of(cls, bins: BinnedCounts, win: _Window, cfg: DurationConfig) -> _Redetect | None:
        """Return the re-detection of an analysis, or None when it does not apply.

        It applies to Poisson curves whose source was searched automatically (``auto``
        background, no intervals given) with the ``gap`` plateau, when ``extent_in_errors``.
        """
        bk = win.background
        bcfg = bk.config
        if (
            not cfg.extent_in_errors
            or cfg.post_plateau != "gap"
            or bcfg is None
            or bcfg.method != "auto"
            or bcfg.intervals
            or bk.search is None
        ):
            return None
        length = float(win.edges[-1] - win.edges[0])
        lo, hi = float(win.edges[0]) - length, float(win.edges[-1]) + length
        span = np.flatnonzero((bins.lo >= lo) & (bins.hi <= hi))
        # the contiguous run of data around the window (a gap ends the simulated span)
        cont = bins.contiguous[span]
        run = np.cumsum(~cont | (np.arange(span.size) == 0))
        span = span[run == run[np.searchsorted(span, win.idx[0])]]
        sub = BinnedCounts(
            bins.lo[span], bins.hi[span], np.asarray(bins.counts, float)[span], bins.exposure[span]
        )
        mu = (bk.design(sub.lo, sub.hi) @ bk.coeffs + bk.tail_rate(sub.lo, sub.hi)) * sub.exposure
        inside = np.searchsorted(span, win.idx)
        mu[inside] = _blocks_template(win.edges, np.asarray(bins.counts, float)[win.idx])
        design = bk.search.design(sub.lo, sub.hi) * sub.exposure[:, None]
        return cls(sub, span, mu, bk, cfg, design, (float(bins.lo[0]), float(bins.hi[-1])))

    def analyse(
        self, counts: np.ndarray, coeffs: np.ndarray, amplitude: float | None
    ) -> tuple[float, float, float, float, float]:
        """Return (F, t05, t95, t25, t75) of one simulated span (NaN when it has no duration)."""
        from svomflow.tasks.timing.background import padded_intervals, significant_run
        from svomflow.tasks.timing.blocks import bayesian_blocks_binned

        nan = (np.nan,) * 5
        bk, bcfg, sub = self.background, self.background.config, self.bins
        assert bcfg is not None
        x = np.concatenate([[0.0], np.cumsum(sub.exposure)])
        be = bayesian_blocks_binned(x, np.rint(np.maximum(counts, 0.0)), ncp_prior=bcfg.ncp_prior)
        idx = np.searchsorted(x, be)
        b_n = np.add.reduceat(counts, idx[:-1])
        blocks = (sub.lo[idx[:-1]], sub.hi[idx[1:] - 1])
        sp = bk.search
        assert sp is not None
        level = sp.coeffs
        if sp.order == bk.order and (sp.t_ref, sp.scale) == (bk.t_ref, bk.scale):
            # moved with this simulation's refitted background (a lower background makes a
            # faint tail more significant, the source longer and the accumulated tail more)
            level = sp.coeffs + (coeffs - bk.coeffs)
        src = significant_run(
            b_n, self.design, idx, (level, sp.cov), blocks, bk.source, bcfg.clip_sigma
        )
        if src is None:
            return nan
        # the background intervals as the data's fit placed them: from the data's ends
        iv = padded_intervals(src, *self.data, bcfg)
        model = dataclasses.replace(
            bk,
            coeffs=coeffs,
            source=src,
            intervals=iv,
            tail_amplitude=bk.tail_amplitude if amplitude is None else amplitude,
        )
        sim = dataclasses.replace(sub, counts=counts)
        try:
            w = _window(sim, model, self.cfg)
        except InputDataError:
            return nan
        return _analyse(w.edges, w.net(self.cfg), w.pre, w.post, self.cfg.crossing)


def _plateau_starts(
    bins: BinnedCounts,
    source: tuple[float, float],
    fit_edges: tuple[float, float],
    plateau: float,
    cfg: DurationConfig,
) -> tuple[float, float]:
    """Return where the pre-burst plateau ends and the post-burst plateau starts (s).

    At the background intervals' inner edges ``fit_edges``, moved out by the margins
    (``margin_fraction``; after the burst, in ``gap`` mode, at least ``post_margin_fraction``
    of the source length) as long as a plateau still fits inside the data.
    """
    s0, s1 = source
    pb, pa = fit_edges
    margin = cfg.margin_fraction * (s1 - s0)
    after = margin
    if cfg.post_plateau == "gap":
        after = max(margin, cfg.post_margin_fraction * (s1 - s0))
    p0 = max(min(pb, s0 - margin), min(pb, float(bins.lo[0]) + plateau))
    p1 = min(max(pa, s1 + after), max(pa, float(bins.hi[-1]) - plateau))
    return p0, p1


@dataclass(frozen=True)
class _Window:
    """The accumulation window of one analysis (step 1 of the module docstring).

    ``idx`` are the window's bins in the light curve, ``sub`` the window's light curve,
    ``edges`` its bin edges, ``pre``/``post`` the indices of ``edges`` in the pre- and
    post-burst plateaus, ``p1`` where the post-burst plateau starts (s), ``background``
    the model subtracted (refitted from the plateau start with ``established``) and ``a``
    its design times exposure over the window.
    """

    idx: np.ndarray
    sub: BinnedCounts
    edges: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    p1: float
    background: BackgroundModel
    a: np.ndarray
    short_plateau: bool

    def net(self, cfg: DurationConfig, counts: np.ndarray | None = None) -> np.ndarray:
        """Return the net counts per bin of the window (``counts``: the window's, else the data's)."""
        c = self.sub.counts if counts is None else counts
        tail = self.background if cfg.tail_completion else None
        adj = _tail_completion(self.sub, self.p1, tail, cfg.tail_completion_sigma)
        return np.asarray(c, float) - self.a @ self.background.coeffs + adj


def _window(bins: BinnedCounts, background: BackgroundModel, cfg: DurationConfig) -> _Window:
    """Place the plateaus and the accumulation window around the background's source interval.

    Raises
    ------
    InputDataError
        When a plateau falls outside the data or the window holds a gap or too few bins.
    """
    counts = np.asarray(bins.counts, dtype=float)
    s0, s1 = background.source
    # the plateaus start where the background fit starts: past the padded source interval,
    # so that the pulse tails are inside the accumulation and not in the plateau levels
    iv = np.asarray(background.intervals, dtype=float).reshape(-1, 2)
    before = iv[iv[:, 1] <= s0 + 1e-9]
    after = iv[iv[:, 0] >= s1 - 1e-9]
    if before.size == 0 or after.size == 0:
        raise InputDataError(
            "no background plateau before or after the burst inside the data "
            "(the burst touches the edge of the light curve)"
        )
    width = float(np.median(bins.width))
    plateau = max(cfg.plateau_s, cfg.plateau_fraction * (s1 - s0), cfg.plateau_min_bins * width)
    pb = float(before[:, 1].max())
    pa = float(after[:, 0].min())
    if cfg.post_plateau == "established":
        background, pa = _established_background(bins, background, plateau, cfg.plateau_sigma)
    p0, p1 = _plateau_starts(bins, (s0, s1), (pb, pa), plateau, cfg)
    w0 = max(float(bins.lo[0]), p0 - plateau)
    w1 = min(float(bins.hi[-1]), p1 + plateau)
    idx = np.flatnonzero((bins.lo >= w0) & (bins.hi <= w1))
    if idx.size < 4:
        raise InputDataError("accumulation window holds fewer than 4 bins")
    sub = BinnedCounts(bins.lo[idx], bins.hi[idx], counts[idx], bins.exposure[idx])
    if not np.all(sub.contiguous):
        raise InputDataError("the T90 accumulation window contains a data gap")
    edges = np.concatenate([sub.lo, sub.hi[-1:]])
    pre = np.flatnonzero(edges <= p0 + 1e-9)
    post = np.flatnonzero(edges >= p1 - 1e-9)
    if pre.size == 0 or post.size == 0:
        raise InputDataError(
            "no background plateau before or after the burst inside the data "
            "(the burst touches the edge of the light curve)"
        )
    short = bool(
        edges[pre[-1]] - edges[pre[0]] < 0.5 * plateau
        or edges[post[-1]] - edges[post[0]] < 0.5 * plateau
    )
    a = background.design(sub.lo, sub.hi) * sub.exposure[:, None]
    return _Window(idx, sub, edges, pre, post, p1, background, a, short)


def durations(
    bins: BinnedCounts,
    background: BackgroundModel,
    config: DurationConfig | None = None,
    *,
    band_kev: tuple[float, float] | None = None,
) -> Durations:
    """Measure T90 and T50 with start times and errors on one band.

    Parameters
    ----------
    bins : BinnedCounts
        Light curve of the band (1-D counts), gap-free over the accumulation window.
    background : BackgroundModel
        Background fit of the same light curve; its ``source`` interval sets the window.
    config : DurationConfig, optional
    band_kev : tuple, optional
        Band of the light curve (recorded in the result).

    Returns
    -------
    Durations

    Raises
    ------
    InputDataError
        When the window has a data gap, the net total is not positive (no burst) or the
        levels are never crossed.
    """
    cfg = config or DurationConfig()
    if np.ndim(bins.counts) != 1:
        raise ValueError("durations takes one band (1-D counts)")
    win = _window(bins, background, cfg)
    sub, edges, pre, post, p1 = win.sub, win.edges, win.pre, win.post, win.p1
    flags: list[str] = []
    if win.short_plateau:
        flags.append("short background plateau: T90 total less certain")
    rule = cfg.crossing
    f, t05, t95, t25, t75 = _analyse(edges, win.net(cfg), pre, post, rule)
    if not f > 0:
        raise InputDataError("background-subtracted counts are not positive: no burst")
    if not np.all(np.isfinite([t05, t95, t25, t75])):
        raise InputDataError("the cumulative curve never crosses the 5/25/75/95 % levels")
    t90 = t95 - t05
    t50 = t75 - t25
    errs = _simulated_errors(bins, win, cfg, flags)
    sys90 = sys50 = 0.0
    if cfg.background_systematic:
        closer = _closer_background(bins, win.background)
        if closer is not None:
            a_alt = closer.design(sub.lo, sub.hi) * sub.exposure[:, None]
            tail_alt = closer if cfg.tail_completion else None
            net_alt = (
                sub.counts
                - a_alt @ closer.coeffs
                + _tail_completion(sub, p1, tail_alt, cfg.tail_completion_sigma)
            )
            r = _analyse(edges, net_alt, pre, post, rule)
            if np.all(np.isfinite(r)) and r[0] > 0:
                sys90 = 0.5 * abs(r[2] - r[1] - t90)
                sys50 = 0.5 * abs(r[4] - r[3] - t50)
        sys90, sys50 = _with_other_plateau(bins, background, cfg, (t90, t50), (sys90, sys50), errs)
        tail90, tail50 = _tail_systematic(win, cfg, (t90, t50))
        sys90, sys50 = float(np.hypot(sys90, tail90)), float(np.hypot(sys50, tail50))
        if sys90 > errs["t90"]:
            flags.append(
                f"T90 depends on the background intervals: {sys90:.3g} s systematic "
                "exceeds the statistical error"
            )
    return Durations(
        t90=float(t90),
        t90_err=float(np.hypot(errs["t90"], sys90)),
        t90_sys=float(sys90),
        t50_sys=float(sys50),
        t90_start=float(t05),
        t90_start_err=float(errs["t05"]),
        t50=float(t50),
        t50_err=float(np.hypot(errs["t50"], sys50)),
        t50_start=float(t25),
        t50_start_err=float(errs["t25"]),
        total_counts=float(f),
        total_counts_err=float(errs["f"]),
        window=(float(edges[0]), float(edges[-1])),
        band_kev=band_kev,
        flags=tuple(flags),
        method=_METHODS[rule],
        background_intervals=tuple(
            (float(lo), float(hi)) for lo, hi in np.reshape(win.background.intervals, (-1, 2))
        ),
        post_plateau_start=float(p1),
        post_plateau=cfg.post_plateau,
    )
