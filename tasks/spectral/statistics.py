"""Fit statistics with XSPEC's conventions, over a :class:`PreparedSpectrum`.

Names: ``chi2`` (data variance, as XSPEC's ``weight standard``), ``chi2-gehrels`` (variance
(1 + sqrt(N + 0.75))^2, XSPEC ``weight gehrels``, sherpa ``chi2gehrels``), ``cstat``
(Cash with XSPEC's data term), ``wstat`` (Poisson background profiled out), ``pgstat``
(Gaussian background profiled out). As in XSPEC, ``cstat`` with a background becomes
``wstat`` when the background is Poisson and ``pgstat`` when it carries Gaussian errors;
``wstat``/``pgstat`` without a background are ``cstat``. A spectrum of non-integer counts
with Gaussian errors (``STAT_ERR`` and ``POISSERR = F``, e.g. mask-weighted) only takes
``chi2``/``chi2-gehrels``, its variance being the file's ``STAT_ERR`` squared; integer
counts with ``STAT_ERR`` and ``POISSERR = F`` (as CIAO writes them) take the Poisson
statistics too, their ``STAT_ERR`` being ignored there as XSPEC and sherpa do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from svomflow.errors import InputDataError
from svomflow.tasks.spectral import _kernels as kern
from svomflow.tasks.spectral.dataset import PreparedSpectrum

__all__ = ["STATISTICS", "StatisticEvaluator", "effective_statistic", "make_evaluator"]

STATISTICS = ("chi2", "chi2-gehrels", "cstat", "wstat", "pgstat")


def effective_statistic(name: str, prep: PreparedSpectrum) -> str:
    """Return the statistic XSPEC would apply to this dataset when ``name`` is requested."""
    name = name.lower().replace("_", "-")
    if name in {"chi2gehrels", "chi2-gehrels", "gehrels"}:
        return "chi2-gehrels"
    if name in {"chi2", "chi", "chisq", "chi2-data", "chi2datavar"}:
        return "chi2"
    if name not in STATISTICS:
        raise InputDataError(f"unknown statistic {name!r}; choose from {', '.join(STATISTICS)}")
    if name in {"cstat", "wstat", "pgstat"}:
        if prep.bkg is None:
            return "cstat"
        if name == "cstat":
            return "wstat" if prep.bkg_poisson else "pgstat"
    return name


@dataclass
class StatisticEvaluator:
    """Evaluates one statistic on one dataset: ``__call__(mu, grad, curv) -> value``."""

    name: str
    func: Callable[[np.ndarray, np.ndarray, np.ndarray], float]

    def __call__(self, mu: np.ndarray, grad: np.ndarray, curv: np.ndarray) -> float:
        """Return the statistic for the model counts ``mu`` (filling gradient and curvature)."""
        return self.func(mu, grad, curv)


def _integer(counts: np.ndarray) -> bool:
    """Whether every bin holds a whole number of counts (within rounding of RATE x EXPOSURE)."""
    return bool(np.all(np.abs(counts - np.round(counts)) <= 1e-6 * np.maximum(1.0, np.abs(counts))))


def _gehrels(n: np.ndarray) -> np.ndarray:
    return (1.0 + np.sqrt(n + 0.75)) ** 2


def make_evaluator(name: str, prep: PreparedSpectrum, label: str = "") -> StatisticEvaluator:
    """Build the evaluator of statistic ``name`` for ``prep`` (arrays captured once)."""
    stat = effective_statistic(name, prep)
    s = np.ascontiguousarray(prep.counts, dtype=float)
    where = label or prep.name
    if stat in {"cstat", "wstat", "pgstat"} and prep.src_var is not None and not _integer(s):
        # Non-integer counts with STAT_ERR (e.g. a mask-weighted, background-subtracted
        # spectrum) are not Poisson: a Poisson likelihood of them is meaningless. Integer
        # counts with STAT_ERR and POISSERR = F (CIAO writes these) are Poisson: XSPEC and
        # sherpa ignore STAT_ERR for C-stat, and so do we.
        raise InputDataError(
            f"{where}: the spectrum has non-integer counts with Gaussian errors (STAT_ERR, "
            f"POISSERR = F; e.g. a mask-weighted spectrum): fit it with chi2, not {stat}"
        )
    if stat in {"cstat", "wstat", "pgstat"} and np.any(s < 0):
        raise InputDataError(f"{where}: negative counts cannot use a Poisson statistic")
    if stat == "cstat":
        return StatisticEvaluator(stat, lambda mu, g, c: kern.cstat_kernel(s, mu, g, c))
    if stat == "wstat":
        b = np.ascontiguousarray(prep.bkg, dtype=float)
        r = np.ascontiguousarray(prep.r, dtype=float)
        return StatisticEvaluator(stat, lambda mu, g, c: kern.wstat_kernel(s, b, mu, r, g, c))
    if stat == "pgstat":
        b = np.ascontiguousarray(prep.bkg, dtype=float)
        v = np.ascontiguousarray(prep.bkg_var, dtype=float)
        r = np.ascontiguousarray(prep.r, dtype=float)
        return StatisticEvaluator(stat, lambda mu, g, c: kern.pgstat_kernel(s, b, v, mu, r, g, c))
    # Chi-square: the variance comes from the data (and background), never from the model.
    if prep.src_var is not None:
        var = prep.src_var.copy()
    elif stat == "chi2-gehrels":
        var = _gehrels(s)
    else:
        var = s.copy()
    bkg_sub = np.zeros_like(s)
    if prep.bkg is not None:
        bkg_sub = prep.bkg / prep.r
        if prep.bkg_poisson:
            bvar = _gehrels(prep.bkg) if stat == "chi2-gehrels" else prep.bkg
        else:
            if prep.bkg_var is None:  # a non-Poisson background always carries its errors
                raise ValueError("background without Poisson counts needs its variance")
            bvar = prep.bkg_var
        var = var + bvar / prep.r**2
    var = np.ascontiguousarray(var + prep.sys_var, dtype=float)
    if np.any(var <= 0):
        n = int(np.sum(var <= 0))
        raise InputDataError(
            f"{where}: {n} bin(s) with zero counts give zero chi-square variance; group the "
            f"spectrum, or use chi2-gehrels or a Poisson statistic (cstat/wstat/pgstat)"
        )
    bkg_sub = np.ascontiguousarray(bkg_sub, dtype=float)
    return StatisticEvaluator(stat, lambda mu, g, c: kern.chi2_kernel(s, bkg_sub, var, mu, g, c))
