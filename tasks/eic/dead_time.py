"""Dead-time correction parameters of the ECLAIRs modules, fitted from count rates.

Each module (``detector_plane.module_shape`` pixels read by one chain) is dead for ``tau``
after every recorded event: the non-paralyzable model of
:class:`svomflow.instruments.dead_time.DeadTime`, where a true rate ``R`` is recorded as
``m = R / (1 + R tau)``. The data are recorded counts ``n_i`` in ``T_i`` seconds at several
incident rates known up to a factor, ``R_i = R0 * f_i`` (``f_i`` the dead-time-free
reference: an assumption of this flow, see ``docs/eic_pixels.md``). Per module, ``R0`` and
``tau`` are fitted by Poisson maximum likelihood (Gauss-Newton on Pearson residuals from the
linearised start ``T/n = 1/(R0 f) + tau``); their errors come from the Fisher matrix. The
Pearson chi-square of each fit checks the data against the model: a module whose dead time
is paralyzable (``m = R exp(-R tau)``) departs from it at high rates and shows there.

The plane-level number the analyses use (``DEADDEF``, for ``DeadTime.of("ECLAIRS")``) is
the mean module dead time divided by the number of modules: the plane's dead fraction under
an evenly spread rate (:attr:`svomflow.products.eic_pixel_files.DeadTimeFit.plane_equivalent`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from scipy import stats
from svomflow.config.base import StepConfig
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.eic_pixel_files import DeadTimeFit, DeadTimeRates, dead_time_hdus
from svomflow.tasks.eic.gate import QCFigure
from svomflow.tasks.step import step

__all__ = [
    "DeadTimeConfig",
    "DeadTimeResult",
    "dead_time_figures",
    "fit_dead_time",
    "fit_module",
    "module_dead_time",
]


class DeadTimeConfig(StepConfig):
    """Dead-time fit of the modules from count rates."""

    n_modules: int | None = Field(
        None,
        ge=1,
        description="Modules of the plane (plane-equivalent dead time); default: the "
        "instrument's detector_plane.n_modules",
    )

    iterations: int = Field(30, ge=1, description="Gauss-Newton iterations at most per module")


@dataclass(frozen=True)
class ModuleFit:
    """One module's fit: dead time, true rate at reference 1, errors and chi-square."""

    tau: float
    tau_err: float
    rate0: float
    rate0_err: float
    chi2: float
    ndof: int


def _model(
    r0: float, tau: float, f: NDArray[np.float64], t: NDArray[np.float64]
) -> NDArray[np.float64]:
    rate = r0 * f
    return np.asarray(t * rate / (1.0 + rate * tau))


def _deviance(
    n: NDArray[np.float64], r0: float, tau: float, f: NDArray[np.float64], t: NDArray[np.float64]
) -> float:
    """Poisson deviance of the counts under the model."""
    mu = _model(r0, tau, f, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(n > 0, n * np.log(n / mu), 0.0) - (n - mu)
    return float(2.0 * np.sum(term))


def fit_module(
    counts: NDArray[np.float64],
    exposure: NDArray[np.float64],
    reference: NDArray[np.float64],
    iterations: int = 30,
) -> ModuleFit:
    """Fit ``n = T R0 f / (1 + R0 f tau)`` to one module's counts (Poisson, Gauss-Newton).

    Parameters
    ----------
    counts, exposure, reference
        Recorded counts, interval lengths (s) and dead-time-free relative incident rates.
    iterations
        Maximum Gauss-Newton iterations.

    Returns
    -------
    ModuleFit
        NaN values when the data cannot constrain two parameters (fewer than 3 intervals
        or a single reference level).
    """
    n = np.asarray(counts, np.float64)
    t = np.asarray(exposure, np.float64)
    f = np.asarray(reference, np.float64)
    nan = float("nan")
    if n.size < 3 or np.ptp(f) <= 0 or np.any(n <= 0):
        return ModuleFit(nan, nan, nan, nan, nan, max(n.size - 2, 0))
    # start: T/n = 1/(R0 f) + tau is linear in 1/f
    slope, icpt = np.polyfit(1.0 / f, t / n, 1, w=np.sqrt(n))
    r0 = 1.0 / slope if slope > 0 else float(n.sum() / (t * f).sum())
    tau = max(float(icpt), 0.0)
    dev = _deviance(n, r0, tau, f, t)
    for _ in range(iterations):
        mu = _model(r0, tau, f, t)
        d = 1.0 + r0 * f * tau
        # derivatives of mu with respect to R0 and tau
        j = np.column_stack([t * f / d**2, -t * (r0 * f) ** 2 / d**2])
        wgt = 1.0 / mu
        fisher = j.T @ (j * wgt[:, None])
        grad = j.T @ ((n - mu) * wgt)
        try:
            delta = np.linalg.solve(fisher, grad)
        except np.linalg.LinAlgError:
            break
        # damped step: halve it until the deviance does not grow and 1 + R tau stays positive
        step = 1.0
        while step > 1e-6:
            r0_new, tau_new = r0 + step * float(delta[0]), tau + step * float(delta[1])
            if r0_new > 0 and np.all(1.0 + r0_new * f * tau_new > 0.05):
                dev_new = _deviance(n, r0_new, tau_new, f, t)
                if dev_new <= dev + 1e-9:
                    break
            step *= 0.5
        else:
            break
        converged = abs(r0_new - r0) < 1e-10 * r0 and abs(tau_new - tau) < 1e-15 + 1e-9 * abs(tau)
        r0, tau, dev = r0_new, tau_new, dev_new
        if converged:
            break
    mu = _model(r0, tau, f, t)
    d = 1.0 + r0 * f * tau
    j = np.column_stack([t * f / d**2, -t * (r0 * f) ** 2 / d**2])
    fisher = j.T @ (j / mu[:, None])
    try:
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        cov = np.full((2, 2), np.nan)
    chi2 = float(np.sum((n - mu) ** 2 / mu))
    return ModuleFit(
        tau=float(tau),
        tau_err=float(np.sqrt(max(cov[1, 1], 0.0))),
        rate0=float(r0),
        rate0_err=float(np.sqrt(max(cov[0, 0], 0.0))),
        chi2=chi2,
        ndof=int(n.size - 2),
    )


def fit_dead_time(rates: DeadTimeRates, n_modules: int, iterations: int = 30) -> DeadTimeFit:
    """Fit every module present in the rates; return the table of dead times."""
    modules = np.unique(rates.module)
    fits = [
        fit_module(
            rates.counts[rates.module == mod].astype(np.float64),
            rates.exposure[rates.module == mod],
            rates.reference[rates.module == mod],
            iterations,
        )
        for mod in modules
    ]
    return DeadTimeFit(
        modules=modules.astype(np.int64),
        tau=np.array([f.tau for f in fits]),
        tau_err=np.array([f.tau_err for f in fits]),
        rate0=np.array([f.rate0 for f in fits]),
        chi2=np.array([f.chi2 for f in fits]),
        ndof=np.array([f.ndof for f in fits], np.int64),
        n_modules=n_modules,
    )


def dead_time_figures(fit: DeadTimeFit) -> tuple[QCFigure, ...]:
    """Return the QC figures of a DEADTIME candidate.

    ``model_p_value`` is the chi-square p-value of all modules' fits together: small when the
    non-paralyzable model does not describe the rates.
    """
    ok = np.isfinite(fit.tau)
    chi, dof = float(np.sum(fit.chi2[ok])), int(np.sum(fit.ndof[ok]))
    return (
        QCFigure("fitted_fraction", float(ok.mean()) if ok.size else 0.0),
        QCFigure("median_tau", float(np.median(fit.tau[ok])) if ok.any() else float("nan"), "s"),
        QCFigure("tau_rms", float(np.std(fit.tau[ok])) if ok.any() else float("nan"), "s"),
        QCFigure(
            "median_tau_error", float(np.median(fit.tau_err[ok])) if ok.any() else float("nan"), "s"
        ),
        QCFigure("plane_dead_time", fit.plane_equivalent, "s"),
        QCFigure("chi2_per_dof", chi / dof if dof > 0 else float("nan")),
        QCFigure("model_p_value", float(stats.chi2.sf(chi, dof)) if dof > 0 else float("nan")),
    )


@dataclass(frozen=True)
class DeadTimeResult:
    """The module dead times, their QC figures and the DEADTIME candidate."""

    fit: DeadTimeFit
    figures: tuple[QCFigure, ...]
    products: list[Product] = field(default_factory=list)


@step(name="dead-time", config=DeadTimeConfig, outputs=("PIXDT",))
def module_dead_time(rates: DeadTimeRates, *, config: DeadTimeConfig) -> DeadTimeResult:
    """Fit the dead time of every module from its count rates; return the DEADTIME candidate."""
    n_modules = config.n_modules or (int(rates.module.max()) + 1 if rates.module.size else 1)
    fit = fit_dead_time(rates, n_modules, config.iterations)
    figs = dead_time_figures(fit)
    hdus = dead_time_hdus(fit, telescope=rates.telescope, instrument=rates.instrument)
    for i, f in enumerate(figs):
        hdus[0].header[f"QC_{i}"] = (f.value, f.name)
    return DeadTimeResult(fit, figs, [Product("PIXDT", "ECL", FitsModel.from_hdus(hdus))])
