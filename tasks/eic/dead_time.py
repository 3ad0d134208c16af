"""Dead-time correction parameters of the ECLAIRs modules, fitted from count rates.

Each module (``detector_plane.module_shape`` pixels read by one chain) is dead for ``tau``
after every recorded event. Two models are fitted: non-paralyzable (the model of
:class:`svomflow.instruments.dead_time.DeadTime`), where a true rate ``R`` is recorded as
``m = R / (1 + R tau)``, and paralyzable (each arrival, recorded or not, extends the dead
time), ``m = R exp(-R tau)``. The data are recorded counts ``n_i`` in ``T_i`` seconds at
several incident rates known up to a factor, ``R_i = R0 * f_i`` (``f_i`` the dead-time-free
reference: an assumption of this flow, see ``docs/eic_pixels.md``). Per module and model,
``R0`` and ``tau`` are fitted by Poisson maximum likelihood (Gauss-Newton from the
linearised start ``T/n = 1/(R0 f) + tau``); their errors come from the Fisher matrix.

The two models agree to first order in ``R tau`` and differ in the curvature, so one
module's chi-square cannot tell them apart at ``R tau <= 0.25`` (a paralyzable chain fitted
as non-paralyzable gives ``tau`` 15 % too long with an acceptable chi-square). The choice is
made for the plane, whose 200 chains are one design: the summed deviance difference (the
likelihood-ratio statistic of two models with as many parameters) picks the model beyond
``min_delta_deviance`` and flags the choice undecided below it.

The plane-level number the analyses use (``DEADDEF``, for ``DeadTime.of("ECLAIRS")``) is
the mean module dead time divided by the number of modules: the plane's dead fraction under
an evenly spread rate (:attr:`svomflow.products.eic_pixel_files.DeadTimeFit.plane_equivalent`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
    "choose_model",
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
    model: Literal["auto", "nonparalyzable", "paralyzable"] = Field(
        "auto",
        description="Dead-time model: auto = the one the likelihood ratio of the plane prefers",
    )
    min_delta_deviance: float = Field(
        9.0,
        ge=0.0,
        description="auto: summed deviance difference needed to choose a model (else "
        "non-paralyzable, flagged undecided)",
    )


@dataclass(frozen=True)
class ModuleFit:
    """One module's fit: dead time, true rate at reference 1, errors and chi-square."""

    tau: float
    tau_err: float
    rate0: float
    rate0_err: float
    chi2: float
    ndof: int
    deviance: float = float("nan")


Model = Literal["nonparalyzable", "paralyzable"]
MODELS: tuple[Model, ...] = ("nonparalyzable", "paralyzable")


def _model(
    r0: float, tau: float, f: NDArray[np.float64], t: NDArray[np.float64], model: Model
) -> NDArray[np.float64]:
    rate = r0 * f
    if model == "paralyzable":
        return np.asarray(t * rate * np.exp(-rate * tau))
    return np.asarray(t * rate / (1.0 + rate * tau))


def _jacobian(
    r0: float, tau: float, f: NDArray[np.float64], t: NDArray[np.float64], model: Model
) -> NDArray[np.float64]:
    """Return the derivatives of the expected counts with respect to (R0, tau)."""
    x = r0 * f * tau
    if model == "paralyzable":
        e = np.exp(-x)
        return np.column_stack([t * f * e * (1.0 - x), -t * (r0 * f) ** 2 * e])
    d = 1.0 + x
    return np.column_stack([t * f / d**2, -t * (r0 * f) ** 2 / d**2])


def _deviance(
    n: NDArray[np.float64],
    r0: float,
    tau: float,
    f: NDArray[np.float64],
    t: NDArray[np.float64],
    model: Model = "nonparalyzable",
) -> float:
    """Poisson deviance of the counts under the model."""
    mu = _model(r0, tau, f, t, model)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(n > 0, n * np.log(n / mu), 0.0) - (n - mu)
    return float(2.0 * np.sum(term))


def _allowed(r0: float, tau: float, f: NDArray[np.float64], model: Model) -> bool:
    """Whether the parameters keep the model on its physical branch at every rate."""
    x = r0 * f * tau
    if model == "paralyzable":
        # beyond R tau = 1 the recorded rate falls with the true rate: two solutions
        return bool(r0 > 0 and tau >= 0 and np.all(x < 1.0))
    return bool(r0 > 0 and np.all(1.0 + x > 0.05))


def fit_module(
    counts: NDArray[np.float64],
    exposure: NDArray[np.float64],
    reference: NDArray[np.float64],
    iterations: int = 30,
    model: Model = "nonparalyzable",
) -> ModuleFit:
    """Fit one module's counts with a dead-time model (Poisson, Gauss-Newton).

    ``nonparalyzable``: ``n = T R0 f / (1 + R0 f tau)``; ``paralyzable``:
    ``n = T R0 f exp(-R0 f tau)``.

    Parameters
    ----------
    counts, exposure, reference
        Recorded counts, interval lengths (s) and dead-time-free relative incident rates.
    iterations
        Maximum Gauss-Newton iterations.
    model
        The dead-time model fitted.

    Returns
    -------
    ModuleFit
        NaN values when the data cannot constrain two parameters (fewer than 3 intervals
        or a single reference level). ``deviance`` is the Poisson deviance at the best fit
        (the likelihood-ratio statistic between the two models is its difference).
    """
    n = np.asarray(counts, np.float64)
    t = np.asarray(exposure, np.float64)
    f = np.asarray(reference, np.float64)
    nan = float("nan")
    if n.size < 3 or np.ptp(f) <= 0 or np.any(n <= 0):
        return ModuleFit(nan, nan, nan, nan, nan, max(n.size - 2, 0), nan)
    # start (both models agree to first order in R tau): T/n = 1/(R0 f) + tau, linear in 1/f
    slope, icpt = np.polyfit(1.0 / f, t / n, 1, w=np.sqrt(n))
    r0 = 1.0 / slope if slope > 0 else float(n.sum() / (t * f).sum())
    tau = max(float(icpt), 0.0)
    if not _allowed(r0, tau, f, model):
        tau = 0.0
    dev = _deviance(n, r0, tau, f, t, model)
    for _ in range(iterations):
        mu = _model(r0, tau, f, t, model)
        j = _jacobian(r0, tau, f, t, model)
        wgt = 1.0 / mu
        fisher = j.T @ (j * wgt[:, None])
        grad = j.T @ ((n - mu) * wgt)
        try:
            delta = np.linalg.solve(fisher, grad)
        except np.linalg.LinAlgError:
            break
        # damped step: halve it until the deviance does not grow and the model stays physical
        step = 1.0
        while step > 1e-6:
            r0_new, tau_new = r0 + step * float(delta[0]), tau + step * float(delta[1])
            if _allowed(r0_new, tau_new, f, model):
                dev_new = _deviance(n, r0_new, tau_new, f, t, model)
                if dev_new <= dev + 1e-9:
                    break
            step *= 0.5
        else:
            break
        converged = abs(r0_new - r0) < 1e-10 * r0 and abs(tau_new - tau) < 1e-15 + 1e-9 * abs(tau)
        r0, tau, dev = r0_new, tau_new, dev_new
        if converged:
            break
    mu = _model(r0, tau, f, t, model)
    j = _jacobian(r0, tau, f, t, model)
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
        deviance=_deviance(n, r0, tau, f, t, model),
    )


def _fit_all(
    rates: DeadTimeRates, modules: NDArray[np.int64], iterations: int, model: Model
) -> list[ModuleFit]:
    return [
        fit_module(
            rates.counts[rates.module == mod].astype(np.float64),
            rates.exposure[rates.module == mod],
            rates.reference[rates.module == mod],
            iterations,
            model,
        )
        for mod in modules
    ]


def choose_model(delta_deviance: float, min_delta: float) -> tuple[Model, bool]:
    """Return the dead-time model the likelihood ratio picks, and whether it decided.

    ``delta_deviance`` is the summed deviance of the non-paralyzable fits minus that of the
    paralyzable ones (both two-parameter models: the log likelihood ratio is half of it).
    Beyond ``min_delta`` either way the better model is chosen; within it the data cannot
    tell and the non-paralyzable model (the analyses' one) is kept, flagged undecided.
    """
    if not np.isfinite(delta_deviance) or abs(delta_deviance) < min_delta:
        return "nonparalyzable", False
    return ("paralyzable" if delta_deviance > 0 else "nonparalyzable"), True


def fit_dead_time(
    rates: DeadTimeRates,
    n_modules: int,
    iterations: int = 30,
    *,
    model: Model | Literal["auto"] = "auto",
    min_delta_deviance: float = 9.0,
) -> DeadTimeFit:
    """Fit every module with both dead-time models; keep the one the plane's data prefer.

    The chain is the same design in every module, so the choice is made once for the plane
    from the summed deviances (:func:`choose_model`); ``model`` forces one. The table holds
    the chosen model's dead times, and both models' for the record.
    """
    modules = np.unique(rates.module).astype(np.int64)
    fits = {m: _fit_all(rates, modules, iterations, m) for m in MODELS}
    dev = {m: np.array([f.deviance for f in fits[m]]) for m in MODELS}
    ok = np.isfinite(dev["nonparalyzable"]) & np.isfinite(dev["paralyzable"])
    delta = (
        float(np.sum(dev["nonparalyzable"][ok] - dev["paralyzable"][ok]))
        if ok.any()
        else float("nan")
    )
    if model == "auto":
        chosen, decided = choose_model(delta, min_delta_deviance)
    else:
        chosen, decided = model, True
    best = fits[chosen]
    return DeadTimeFit(
        modules=modules,
        tau=np.array([f.tau for f in best]),
        tau_err=np.array([f.tau_err for f in best]),
        rate0=np.array([f.rate0 for f in best]),
        chi2=np.array([f.chi2 for f in best]),
        ndof=np.array([f.ndof for f in best], np.int64),
        n_modules=n_modules,
        model=chosen.upper(),
        delta_deviance=delta,
        model_decided=decided,
        tau_by_model={m.upper(): np.array([f.tau for f in fits[m]]) for m in MODELS},
    )


def dead_time_figures(fit: DeadTimeFit) -> tuple[QCFigure, ...]:
    """Return the QC figures of a DEADTIME candidate.

    ``model_p_value`` is the chi-square p-value of all modules' fits of the chosen model:
    small when it does not describe the rates. ``delta_deviance`` (non-paralyzable minus
    paralyzable deviance, summed over the modules) is the likelihood-ratio test between the
    two models, ``paralyzable`` (1/0) the model chosen and ``model_decided`` (1/0) whether the
    test decided (NaN for a file that does not say).
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
        QCFigure("delta_deviance", fit.delta_deviance),
        QCFigure("paralyzable", 1.0 if fit.model == "PARALYZABLE" else 0.0),
        QCFigure(
            "model_decided",
            float("nan") if fit.model_decided is None else float(fit.model_decided),
        ),
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
    fit = fit_dead_time(
        rates,
        n_modules,
        config.iterations,
        model=config.model,
        min_delta_deviance=config.min_delta_deviance,
    )
    figs = dead_time_figures(fit)
    hdus = dead_time_hdus(fit, telescope=rates.telescope, instrument=rates.instrument)
    for i, f in enumerate(figs):
        hdus[0].header[f"QC_{i}"] = (f.value, f.name)
    return DeadTimeResult(fit, figs, [Product("PIXDT", "ECL", FitsModel.from_hdus(hdus))])
