"""Noisy, dead and intermittent pixels from the count-rate histories of a period.

The counts of pixel ``p`` in time bin ``t`` are modelled as Poisson with mean
``A[t] * g[p]``: ``A[t]`` is common to the plane (live time times the orbit modulation,
measured as the median over pixels of the counts relative to each pixel's mean rate) and
``g[p]`` the pixel's level. A pixel is judged against two references:

* **its neighbours**: the level predicted from the pixels around it,
  ``S[p] * median_ring(g / S)`` (``S`` the flat-illumination model of
  :func:`svomflow.tasks.eic.uniformity.flat_illumination`, the ring a square window without
  its centre), with the plane's robust pixel-to-pixel scatter ``sigma_e`` (efficiency
  differences) added to the Poisson error;
* **its own history**: the best single change of level over the period (maximum Poisson
  likelihood over the change time, all pixels at once from cumulative sums), tested by the
  chi-square gain of one change (photons plus a constant noise rate fitted on each side,
  with a Bonferroni factor for the change times tried), and whether one level before and
  one after describe the bins (Pearson chi-square of each segment).

Classes (``significance`` is the configured threshold in Gaussian sigma, used for every test):

* **dead**: after a significant change (or over the whole period) the level is below
  ``dead_level`` times the level before (or the neighbours'): it records nothing where it
  should; ``onset`` is the first bin after the change (NaN when dead all period);
* **noisy**: a significant rise of its own level, or a whole-period level above its
  neighbours' beyond the significance;
* **intermittent**: the bins are not described by one change (chi-square p-value below
  ``fit_p_value``) and at least ``min_bad_bins`` bins are abnormal; or a pixel noisy at the
  start that recovered. Its duty cycle is the share of the observed live time spent in
  abnormal bins (each bin tested against the pixel's normal level: Poisson tail probability
  beyond the significance, above or below).

Bins with less than ``min_live_fraction`` of live time (SAA passages) are not judged. The
statistics are vectorised over pixels (NumPy cumulative sums, ``scipy.ndimage``,
``scipy.stats``); only the final decision table loops over pixels, on scalars. No numba
kernel is needed: two days in 10-minute bins of the 6400 pixels take about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from scipy import ndimage, stats
from svomflow.config.base import StepConfig
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.eic_pixel_files import (
    BadPixel,
    BadPixelTable,
    PixelCountHistory,
    badpix_hdus,
)
from svomflow.tasks.eic.gate import QCFigure
from svomflow.tasks.step import step

__all__ = [
    "PixelHealthConfig",
    "PixelHealthResult",
    "assess_pixels",
    "neighbour_level",
    "pixel_health",
    "pixel_health_figures",
]

NORMAL, HOT, OFF = 0, 1, -1


class PixelHealthConfig(StepConfig):
    """Noisy, dead and intermittent pixels from a period's count histories."""

    significance: float = Field(
        5.0,
        gt=0,
        description="Significance (Gaussian sigma) of every test: bins, changes, neighbours",
    )
    neighbour_window: int = Field(
        5, ge=3, description="Side of the square window of neighbours (pixels, odd)"
    )
    dead_level: float = Field(
        0.2, gt=0, lt=1, description="A level below this fraction of the normal one is dead"
    )
    fit_p_value: float = Field(
        1e-6,
        gt=0,
        lt=1,
        description="Chi-square p-value below which one change does not "
        "describe a pixel's bins (intermittent)",
    )
    min_bad_bins: int = Field(2, ge=1, description="Abnormal bins an intermittent pixel needs")
    min_live_fraction: float = Field(
        0.5, gt=0, le=1, description="Bins with a smaller live fraction are not judged"
    )


@dataclass(frozen=True)
class PixelHealthResult:
    """The flagged pixels, the per-bin states and the BADPIX candidate.

    Attributes
    ----------
    table
        Flagged pixels with class, onset, duty cycle and significance.
    state
        Per bin and pixel ``(t, y, z)``: 0 normal, 1 hot, -1 off (low); 0 in unjudged bins.
    good_bins
        ``(t, y, z)``: the pixel was good and the bin judged (what the uniformity map uses).
    sigma_e
        Robust pixel-to-pixel scatter of levels relative to the neighbours' prediction.
    figures
        QC figures of the candidate (the promotion gate judges them).
    """

    table: BadPixelTable
    state: NDArray[np.int8]
    good_bins: NDArray[np.bool_]
    sigma_e: float
    figures: tuple[QCFigure, ...]
    products: list[Product] = field(default_factory=list)


def neighbour_level(
    level: NDArray[np.float64], illumination: NDArray[np.float64], window: int
) -> NDArray[np.float64]:
    """Return the level each pixel's neighbours predict for it (median over a ring).

    ``level / illumination`` is the pixel's efficiency up to a constant; the median over the
    ``window x window`` square without its centre, times the pixel's illumination, is the
    level a normal pixel there has (edges: mirrored).
    """
    w = window if window % 2 else window + 1
    ring = np.ones((w, w), dtype=bool)
    ring[w // 2, w // 2] = False
    ratio = level / illumination
    return np.asarray(ndimage.median_filter(ratio, footprint=ring, mode="mirror") * illumination)


def _xlogx_over(c: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    """Poisson log-likelihood of a segment at its best level: ``C ln(C / W) - C`` (0 for C = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(
            c > 0, c * np.log(np.where(c > 0, c, 1.0) / np.where(w > 0, w, 1.0)) - c, 0.0
        )
    return np.asarray(out)


def _bin_states(c: NDArray[np.float64], mu: NDArray[np.float64], p: float) -> NDArray[np.int8]:
    """Return +1 where counts are improbably high, -1 improbably low, else 0 (Poisson tails)."""
    hi = stats.poisson.sf(c - 1.0, mu) < p
    lo = stats.poisson.cdf(c, mu) < p
    return np.asarray(np.where(hi, HOT, np.where(lo, OFF, NORMAL)), dtype=np.int8)


class _Sums:
    """Cumulative sums over the observed bins for fits of segments, all pixels at once.

    A segment ``[i, j)`` of a pixel is fitted with photons plus a constant noise rate,
    ``mu_t = g * A_t + r * e_t`` (``e_t`` the live time: electronic noise does not follow the
    orbit modulation), by least squares weighted with ``1 / A_t`` (the Poisson variance of a
    photon-only pixel up to a constant), so every sum it needs is a cumulative one. The
    Pearson chi-square uses the photon-only level ``lambda * A_t`` as variance (within 15 %
    of the fitted mean for a pixel dominated by noise).
    """

    def __init__(
        self, c: NDArray[np.float64], a: NDArray[np.float64], e: NDArray[np.float64]
    ) -> None:
        npx = c.shape[1]
        zero = np.zeros((1, npx))

        def cum(x: NDArray[np.float64]) -> NDArray[np.float64]:
            x2 = x if x.ndim == 2 else x[:, None] * np.ones((1, npx))
            return np.concatenate([zero, np.cumsum(x2, axis=0)])

        ia = 1.0 / a
        self.c = cum(c)
        self.w = cum(a)
        self.e = cum(e)
        self.q = cum(c * c * ia[:, None])
        self.x = cum(c * (e * ia)[:, None])
        self.v = cum(e * e * ia)
        self.n = cum(np.ones_like(a))
        self.cols = np.arange(npx)

    def _seg(
        self, arr: NDArray[np.float64], i: NDArray[np.int64], j: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        return np.asarray(arr[j, self.cols] - arr[i, self.cols])

    def level(self, i: NDArray[np.int64], j: NDArray[np.int64]) -> NDArray[np.float64]:
        """Photon-only level ``C / W`` of each pixel's segment (0 for an empty one)."""
        c, w = self._seg(self.c, i, j), self._seg(self.w, i, j)
        return np.asarray(np.where(w > 0, c / np.where(w > 0, w, 1.0), 0.0))

    def fit_p_value(self, i: NDArray[np.int64], j: NDArray[np.int64]) -> NDArray[np.float64]:
        """Chi-square p-value of photons plus constant noise over each pixel's segment."""
        chi, dof = self.fit_chi2(i, j)
        return np.asarray(stats.chi2.sf(chi, dof))

    def fit_chi2(
        self, i: NDArray[np.int64], j: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Chi-square and degrees of freedom of photons plus constant noise over each segment."""
        c, w, e = self._seg(self.c, i, j), self._seg(self.w, i, j), self._seg(self.e, i, j)
        q, x, v = self._seg(self.q, i, j), self._seg(self.x, i, j), self._seg(self.v, i, j)
        n = self._seg(self.n, i, j)
        det = w * v - e * e
        ok = (det > 1e-9 * np.maximum(w * v, 1e-30)) & (n >= 3)
        safe = np.where(ok, det, 1.0)
        g = np.where(ok, (v * c - e * x) / safe, 0.0)
        r = np.where(ok, (w * x - e * c) / safe, 0.0)
        lam = np.where(w > 0, c / np.where(w > 0, w, 1.0), 0.0)
        s = q - 2.0 * (g * c + r * x) + g * g * w + 2.0 * g * r * e + r * r * v
        chi = np.where(lam > 0, s / np.where(lam > 0, lam, 1.0), 0.0)
        dof = np.maximum(n - 2.0, 1.0)
        return np.asarray(np.where(ok, np.clip(chi, 0.0, None), 0.0)), np.asarray(dof)


def assess_pixels(
    history: PixelCountHistory,
    illumination: NDArray[np.float64],
    config: PixelHealthConfig,
) -> tuple[BadPixelTable, NDArray[np.int8], NDArray[np.bool_], float]:
    """Classify every pixel of a period; return the table, per-bin states, good bins and sigma_e."""
    n, ny, nz = history.counts.shape
    npx = ny * nz
    width = history.stop - history.start
    obs = (history.exposure >= config.min_live_fraction * width) & (history.exposure > 0)
    state_full = np.zeros((n, ny, nz), np.int8)
    good_full = np.zeros((n, ny, nz), bool)
    if obs.sum() < 2:
        return BadPixelTable((ny, nz), ()), state_full, good_full, float("nan")
    idx = np.flatnonzero(obs)
    c = history.counts[idx].reshape(idx.size, npx).astype(np.float64)
    expo = history.exposure[idx]
    m = idx.size
    p_tail = float(stats.norm.sf(config.significance))
    z = config.significance

    # plane factor A[t] (live time x modulation), from each pixel's mean rate
    g0 = c.sum(axis=0) / expo.sum()
    use = g0 > 0
    a = np.median(c[:, use] / g0[use], axis=1) if use.any() else expo.copy()
    a = np.where(a > 0, a, 1e-12)
    # robust own level, neighbours' prediction and the plane's scatter about it
    g_med = np.median(c / a[:, None], axis=0)
    illum = illumination.ravel()
    g_nb = neighbour_level(g_med.reshape(ny, nz), illumination, config.neighbour_window).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(g_nb > 0, g_med / g_nb - 1.0, np.nan)
    finite = np.isfinite(rel)
    med = float(np.median(rel[finite])) if finite.any() else 0.0
    sigma_e = float(1.4826 * np.median(np.abs(rel[finite] - med))) if finite.any() else 0.0
    del illum

    # pass 1: bins against the neighbours' level (tolerance with the plane's scatter)
    mu_nb = a[:, None] * g_nb[None, :]
    tol = z * np.sqrt(mu_nb + (sigma_e * mu_nb) ** 2)
    normal1 = np.abs(c - mu_nb) <= tol
    w_norm = (a[:, None] * normal1).sum(axis=0)
    g_own = np.where(
        w_norm > 0, (c * normal1).sum(axis=0) / np.where(w_norm > 0, w_norm, 1.0), g_nb
    )

    # one change of level: cumulative sums over the observed bins
    sums = _Sums(c, a, expo)
    first = np.zeros(npx, np.int64)
    last = np.full(npx, m, np.int64)
    ll1 = _xlogx_over(sums.c[-1], sums.w[-1])
    ks = np.arange(1, m)
    pre_c, pre_w = sums.c[ks], sums.w[ks]
    ll2 = _xlogx_over(pre_c, pre_w) + _xlogx_over(sums.c[-1] - pre_c, sums.w[-1] - pre_w)
    kbest = np.argmax(ll2, axis=0)  # index into ks
    k_star = ks[kbest]
    # significance of the change with noise allowed in each segment (a pixel noisy all
    # period departs from photons-only everywhere, which is no change)
    chi_all, _ = sums.fit_chi2(first, last)
    chi_pre, _ = sums.fit_chi2(first, k_star)
    chi_post, _ = sums.fit_chi2(k_star, last)
    # the change time is the best of m - 1: its chi-square gain (2 parameters) is judged
    # with a Bonferroni factor over the positions tried (the look-elsewhere effect)
    gain = np.clip(chi_all - chi_pre - chi_post, 0.0, None)
    p_step = np.minimum(1.0, (m - 1) * stats.chi2.sf(gain, 2))
    step_sig = np.clip(stats.norm.isf(np.maximum(p_step, 1e-300)), 0.0, 40.0)
    del ll1
    lam1 = sums.level(first, k_star)
    lam2 = sums.level(k_star, last)
    # adequacy of one level (all period) and of one change; the bins on either side of the
    # change are left out (a pixel changing inside a bin has an intermediate count there)
    p_all = sums.fit_p_value(first, last)
    p_pre = sums.fit_p_value(first, np.maximum(k_star - 1, 0))
    p_post = sums.fit_p_value(np.minimum(k_star + 1, m), last)
    one_level = p_all >= config.fit_p_value
    one_change = (p_pre >= config.fit_p_value) & (p_post >= config.fit_p_value)
    lam_all = sums.level(first, last)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_static = (lam_all - g_nb) / (
            g_nb * np.sqrt(sigma_e**2 + 1.0 / np.maximum(g_nb * sums.w[-1], 1e-12))
        )
    a_per_s = float(a.sum() / expo.sum())  # counts per unit level -> counts/s
    w_tot = sums.w[-1]

    pixels: list[BadPixel] = []
    normal_level = g_own.copy()
    bad_from = np.full(npx, m + 1)  # first observed bin the pixel is bad from (m+1: never)
    intermittent = np.zeros(npx, bool)
    for p in range(npx):
        y, zz = divmod(p, nz)
        if step_sig[p] < z:
            # one level all period (noise included): compare it with the neighbours
            if lam_all[p] < config.dead_level * g_nb[p]:
                bad_from[p] = 0
                pixels.append(
                    BadPixel(
                        y,
                        zz,
                        "DEAD",
                        float("nan"),
                        1.0,
                        float(abs(z_static[p])),
                        float((lam_all[p] - g_nb[p]) * a_per_s),
                    )
                )
            elif z_static[p] >= z:
                bad_from[p] = 0
                normal_level[p] = g_nb[p]
                pixels.append(
                    BadPixel(
                        y,
                        zz,
                        "NOISY",
                        float("nan"),
                        1.0,
                        float(z_static[p]),
                        float((lam_all[p] - g_nb[p]) * a_per_s),
                    )
                )
            elif not one_level[p]:
                intermittent[p] = True
            continue
        if not one_change[p]:
            intermittent[p] = True
            continue
        k = int(k_star[p])
        onset = float(history.start[idx[k]])
        after = float((w_tot[p] - sums.w[k, p]) / w_tot[p])
        if lam2[p] < config.dead_level * lam1[p]:
            bad_from[p] = k
            normal_level[p] = lam1[p]
            pixels.append(
                BadPixel(
                    y,
                    zz,
                    "DEAD",
                    onset,
                    after,
                    float(step_sig[p]),
                    float((lam2[p] - lam1[p]) * a_per_s),
                )
            )
        elif lam2[p] > lam1[p]:
            # noisy from the change; already noisy before it when above the neighbours then
            pre_hot = (lam1[p] - g_nb[p]) > z * g_nb[p] * np.hypot(
                sigma_e, 1.0 / np.sqrt(max(g_nb[p] * sums.w[k, p], 1e-12))
            )
            bad_from[p] = 0 if pre_hot else k
            normal_level[p] = g_nb[p] if pre_hot else lam1[p]
            pixels.append(
                BadPixel(
                    y,
                    zz,
                    "NOISY",
                    float("nan") if pre_hot else onset,
                    1.0 if pre_hot else after,
                    float(step_sig[p]),
                    float((lam2[p] - normal_level[p]) * a_per_s),
                )
            )
        elif lam1[p] >= config.dead_level * g_nb[p]:
            # a significant fall that is not dead: noisy at the start, then recovered
            normal_level[p] = lam2[p]
            intermittent[p] = True
        # else dead at first, then recording: not a bad pixel now

    # per-bin states against each pixel's normal level
    mu = a[:, None] * np.where(normal_level > 0, normal_level, g_nb)[None, :]
    state = _bin_states(c, mu, p_tail)
    tindex = np.arange(m)[:, None]
    bad_bin = (state != NORMAL) | (tindex >= bad_from[None, :])
    for q in np.flatnonzero(intermittent):
        pi = int(q)
        abn = state[:, pi] != NORMAL
        if abn.sum() < config.min_bad_bins:
            continue
        y, zz = divmod(pi, nz)
        bad_live = float((expo * abn).sum())
        duty = bad_live / float(expo.sum())
        t_first = float(history.start[idx[int(np.argmax(abn))]])
        # significance: the departure from one level (chi-square), or the change itself
        sig = max(float(stats.norm.isf(max(float(p_all[pi]), 1e-300))), float(step_sig[pi]))
        excess = float(((c[:, pi] - mu[:, pi]) * abn).sum() / max(bad_live, 1e-9))
        pixels.append(BadPixel(y, zz, "INTERMIT", t_first, duty, sig, excess))
    pixels.sort(key=lambda q: (q.y, q.z))
    state_full[idx] = state.reshape(m, ny, nz)
    good_full[idx] = (~bad_bin).reshape(m, ny, nz)
    return BadPixelTable((ny, nz), tuple(pixels)), state_full, good_full, sigma_e


def pixel_health_figures(table: BadPixelTable) -> tuple[QCFigure, ...]:
    """Return the QC figures of a BADPIX candidate (counts and the bad fraction of the plane)."""
    n_pix = table.shape[0] * table.shape[1]
    n_dead = len(table.of_kind("DEAD"))
    n_noisy = len(table.of_kind("NOISY"))
    n_int = len(table.of_kind("INTERMIT"))
    return (
        QCFigure("n_dead", float(n_dead)),
        QCFigure("n_noisy", float(n_noisy)),
        QCFigure("n_intermittent", float(n_int)),
        QCFigure("bad_fraction", (n_dead + n_noisy + n_int) / n_pix),
    )


@step(name="pixel-health", config=PixelHealthConfig, outputs=("PIXBAD",))
def pixel_health(
    history: PixelCountHistory,
    illumination: NDArray[np.float64],
    *,
    config: PixelHealthConfig,
) -> PixelHealthResult:
    """Flag the noisy, dead and intermittent pixels of a period; return the BADPIX candidate.

    ``illumination`` is the flat-illumination model (relative rate per pixel for efficiency
    1, :func:`svomflow.tasks.eic.uniformity.flat_illumination`).
    """
    if illumination.shape != history.shape:
        raise ValueError(f"illumination {illumination.shape} and plane {history.shape} differ")
    table, state, good, sigma_e = assess_pixels(history, illumination, config)
    figs = pixel_health_figures(table)
    hdus = badpix_hdus(table, telescope=history.telescope, instrument=history.instrument)
    hdus[0].header["TSTART"] = (history.t_start, "[s] start of the period")
    hdus[0].header["TSTOP"] = (history.t_stop, "[s] end of the period")
    hdus[0].header["SIGMAE"] = (sigma_e, "pixel-to-pixel scatter about the neighbours")
    hdus[0].header["SIGNIFIC"] = (config.significance, "significance of every test (sigma)")
    product = Product("PIXBAD", "ECL", FitsModel.from_hdus(hdus))
    return PixelHealthResult(table, state, good, sigma_e, figs, [product])
