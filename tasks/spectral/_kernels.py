"""numba kernels of the spectral fit: photon models on an energy grid and fit statistics.

Statistics follow XSPEC's "Statistics in XSPEC" appendix exactly (twice the negative log
likelihood with XSPEC's data-dependent terms, so that the value is a goodness of fit), written
in counts: ``mu`` is the predicted source counts in a bin (XSPEC's t_s m_i) and ``r`` the
ratio of background to source exposure-area (XSPEC's t_b / t_s, BACKSCAL/AREASCAL included).
Each statistic kernel returns the total and, per bin, the derivative of the statistic with
respect to ``mu`` and a non-negative curvature (the Fisher expectation of the second
derivative) used by the Levenberg-Marquardt steps.
"""

from __future__ import annotations

import math

import numpy as np
from svomflow.numba_policy import kernel

__all__ = [
    "band_eval",
    "bb_eval",
    "chi2_kernel",
    "cpl_eval",
    "cstat_kernel",
    "pgstat_kernel",
    "pl_eval",
    "sbpl_eval",
    "wstat_kernel",
]

# Smallest predicted count used inside logarithms: a model predicting no counts where
# counts were seen gets a large, finite statistic instead of inf/nan.
_TINY = 1e-300


@kernel
def pl_eval(energy: np.ndarray, k: float, index: float, pivot: float, out: np.ndarray) -> None:
    """Power law ``K (E/pivot)^index`` at each energy."""
    for i in range(energy.size):
        out[i] = k * (energy[i] / pivot) ** index


@kernel
def cpl_eval(
    energy: np.ndarray, k: float, index: float, epeak: float, pivot: float, out: np.ndarray
) -> None:
    """Cutoff power law, Epeak form: ``K (E/pivot)^index exp(-(2+index) E / epeak)``."""
    fold = (2.0 + index) / epeak
    for i in range(energy.size):
        e = energy[i]
        out[i] = k * (e / pivot) ** index * math.exp(-fold * e)


@kernel
def band_eval(
    energy: np.ndarray,
    k: float,
    alpha: float,
    beta: float,
    epeak: float,
    pivot: float,
    out: np.ndarray,
) -> None:
    """Band function in the GBM catalog form (Epeak parametrisation, amplitude at ``pivot``)."""
    e0 = epeak / (2.0 + alpha)
    ebreak = (alpha - beta) * e0
    # High-energy normalisation makes the function continuous at the break.
    high_norm = (ebreak / pivot) ** (alpha - beta) * math.exp(beta - alpha)
    for i in range(energy.size):
        e = energy[i]
        if e < ebreak:
            out[i] = k * (e / pivot) ** alpha * math.exp(-e / e0)
        else:
            out[i] = k * high_norm * (e / pivot) ** beta


@kernel
def sbpl_eval(
    energy: np.ndarray,
    k: float,
    alpha: float,
    beta: float,
    ebreak: float,
    delta: float,
    pivot: float,
    out: np.ndarray,
) -> None:
    """Smoothly broken power law of the GBM catalog (Kaneko et al. 2006), break scale ``delta``."""
    m = 0.5 * (beta - alpha)
    b = 0.5 * (alpha + beta)
    qpiv = math.log10(pivot / ebreak) / delta
    apiv = m * delta * _log_cosh(qpiv)
    for i in range(energy.size):
        q = math.log10(energy[i] / ebreak) / delta
        a = m * delta * _log_cosh(q)
        out[i] = k * (energy[i] / pivot) ** b * 10.0 ** (a - apiv)


@kernel
def _log_cosh(x: float) -> float:
    # ln(cosh x) without overflow for large |x|.
    ax = abs(x)
    return ax + math.log1p(math.exp(-2.0 * ax)) - math.log(2.0)


@kernel
def bb_eval(energy: np.ndarray, k: float, kt: float, pivot: float, out: np.ndarray) -> None:
    """Blackbody photon spectrum ``K (E/pivot)^2 (exp(pivot/kT)-1) / (exp(E/kT)-1)``."""
    ref = math.expm1(pivot / kt)
    for i in range(energy.size):
        x = energy[i] / kt
        if x > 700.0:
            out[i] = 0.0
        else:
            out[i] = k * (energy[i] / pivot) ** 2 * ref / math.expm1(x)


@kernel
def cstat_kernel(s: np.ndarray, mu: np.ndarray, grad: np.ndarray, curv: np.ndarray) -> float:
    """XSPEC cstat: ``2 sum(mu - S + S (ln S - ln mu))`` (the S=0 term is ``2 mu``)."""
    total = 0.0
    for i in range(s.size):
        m = max(mu[i], _TINY)
        if s[i] > 0.0:
            total += 2.0 * (m - s[i] + s[i] * (math.log(s[i]) - math.log(m)))
            grad[i] = 2.0 * (1.0 - s[i] / m)
        else:
            total += 2.0 * m
            grad[i] = 2.0
        curv[i] = 2.0 / m
    return total


@kernel
def wstat_kernel(
    s: np.ndarray,
    b: np.ndarray,
    mu: np.ndarray,
    r: np.ndarray,
    grad: np.ndarray,
    curv: np.ndarray,
) -> float:
    """XSPEC W-stat (Poisson source and Poisson background, background profiled out).

    In XSPEC's notation with ``t_s = 1`` (counts) and ``t_b = r``: ``f`` is the profiled
    background counts expected in the source spectrum. Zero-count bins use XSPEC's special
    cases (S=0; B=0 with the two branches around ``mu = S/(1+r)``).
    """
    total = 0.0
    for i in range(s.size):
        si = s[i]
        bi = b[i]
        ri = r[i]
        m = max(mu[i], 0.0)
        tt = 1.0 + ri
        if si == 0.0:
            total += 2.0 * (m - bi * math.log(ri / tt))
            grad[i] = 2.0
            curv[i] = 2.0 / max(m, _TINY)
        elif bi == 0.0:
            if m < si / tt:
                total += 2.0 * (-ri * m - si * math.log(1.0 / tt))
                grad[i] = -2.0 * ri
                curv[i] = 2.0 * tt * tt / si
            else:
                mm = max(m, _TINY)
                total += 2.0 * (m + si * (math.log(si) - math.log(mm) - 1.0))
                grad[i] = 2.0 * (1.0 - si / mm)
                curv[i] = 2.0 / mm
        else:
            lin = si + bi - tt * m
            d = math.sqrt(lin * lin + 4.0 * tt * bi * m)
            # Positive root of tt f^2 - lin f - B m = 0, in the form free of cancellation.
            if lin >= 0.0:
                f = (lin + d) / (2.0 * tt)
            else:
                f = 2.0 * bi * m / (d - lin)
            f = max(f, _TINY)
            sm = max(m + f, _TINY)
            total += 2.0 * (
                m
                + tt * f
                - si * math.log(sm)
                - bi * math.log(ri * f)
                - si * (1.0 - math.log(si))
                - bi * (1.0 - math.log(bi))
            )
            # f minimises the likelihood, so dW/dmu is the partial derivative at fixed f.
            grad[i] = 2.0 * (1.0 - si / sm)
            curv[i] = 2.0 / sm
    return total


@kernel
def pgstat_kernel(
    s: np.ndarray,
    b: np.ndarray,
    var_b: np.ndarray,
    mu: np.ndarray,
    r: np.ndarray,
    grad: np.ndarray,
    curv: np.ndarray,
) -> float:
    """XSPEC PG-stat (Poisson source, Gaussian background of variance ``var_b``, profiled).

    ``b`` and ``var_b`` are the background spectrum's counts and variance; the expected
    background in the source spectrum is ``f`` (profiled), ``r f`` in the background spectrum.
    S=0 uses XSPEC's closed form ``mu + B/r - var_b/(2 r^2)``. A bin with zero background
    variance has a known background ``B/r``.
    """
    total = 0.0
    for i in range(s.size):
        si = s[i]
        bi = b[i]
        vi = var_b[i]
        ri = r[i]
        m = max(mu[i], 0.0)
        if vi <= 0.0:
            lam = max(m + bi / ri, _TINY)
            if si > 0.0:
                total += 2.0 * (lam - si + si * (math.log(si) - math.log(lam)))
                grad[i] = 2.0 * (1.0 - si / lam)
            else:
                total += 2.0 * lam
                grad[i] = 2.0
            curv[i] = 2.0 / lam
            continue
        if si == 0.0:
            total += 2.0 * (m + bi / ri - vi / (2.0 * ri * ri))
            grad[i] = 2.0
            curv[i] = 2.0 / max(m + max(bi / ri, 0.0), _TINY)
            continue
        # r^2 f^2 + (v - r B + r^2 m) f + (v m - S v - r B m) = 0, positive root.
        qb = vi - ri * bi + ri * ri * m
        qc = vi * m - si * vi - ri * bi * m
        disc = math.sqrt(max(qb * qb - 4.0 * ri * ri * qc, 0.0))
        if qb > 0.0:
            f = -2.0 * qc / (qb + disc)
        else:
            f = (-qb + disc) / (2.0 * ri * ri)
        sm = max(m + f, _TINY)
        total += 2.0 * (
            m + f - si * math.log(sm) + (bi - ri * f) ** 2 / (2.0 * vi) - si * (1.0 - math.log(si))
        )
        grad[i] = 2.0 * (1.0 - si / sm)
        curv[i] = 2.0 / sm
    return total


@kernel
def chi2_kernel(
    s: np.ndarray,
    bkg: np.ndarray,
    var: np.ndarray,
    mu: np.ndarray,
    grad: np.ndarray,
    curv: np.ndarray,
) -> float:
    """Chi-square ``sum((S - bkg - mu)^2 / var)`` with a fixed (data-derived) variance."""
    total = 0.0
    for i in range(s.size):
        resid = s[i] - bkg[i] - mu[i]
        total += resid * resid / var[i]
        grad[i] = -2.0 * resid / var[i]
        curv[i] = 2.0 / var[i]
    return total
