"""Forward-folding fit of one or several spectra: minimiser, covariance and profile errors.

The minimiser is a Levenberg-Marquardt (Fisher scoring) iteration on the statistic: each
step uses the per-bin derivative and expected curvature of the statistic with respect to the
predicted counts (numba kernels) and a finite-difference Jacobian of the predicted counts,
so its cost is a few model folds per step. Log-scaled parameters (amplitudes, energies) are
fitted in log space; bounds are enforced by projection. Convergence requires the expected
distance to the minimum (``g^T H^-1 g / 2``) below ``edm_tol``; a fit that does not converge
is polished with Nelder-Mead and iterated again, and reported as not converged if it still
fails.

Errors: :func:`errors` finds, for each free parameter, where the statistic profiled over the
other free parameters rises by ``delta`` (1 for 1 sigma on one parameter, 2.706 for 90 %).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special
from svomflow.errors import InputDataError
from svomflow.tasks.spectral.dataset import PreparedSpectrum, SpectrumDataset
from svomflow.tasks.spectral.models import SpectralModel, make_model
from svomflow.tasks.spectral.statistics import make_evaluator

__all__ = [
    "FitParameter",
    "FitProblem",
    "FitResult",
    "ParameterResult",
    "compare",
    "errors",
    "fisher_covariance",
    "fit",
]


@dataclass
class FitParameter:
    """A parameter of the fit: value, bounds, frozen flag, link (``= other``) and scale."""

    name: str
    value: float
    lower: float
    upper: float
    frozen: bool = False
    log: bool = False
    link: str | None = None
    unit: str = ""


@dataclass
class ParameterResult:
    """Best-fit value and errors of one parameter (``error_low`` is negative or ``None``)."""

    value: float
    error: float | None = None
    error_low: float | None = None
    error_high: float | None = None
    frozen: bool = False
    linked_to: str | None = None
    unit: str = ""
    at_bound: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary."""
        return {
            "value": self.value,
            "error_low": self.error_low,
            "error_high": self.error_high,
            "frozen": self.frozen,
        }


class FitProblem:
    """Datasets, a model, a statistic and the parameter table: evaluates the statistic."""

    def __init__(
        self,
        datasets: Sequence[SpectrumDataset],
        model: SpectralModel,
        stat: str | Sequence[str],
        *,
        cross_norm: bool | Sequence[bool] = True,
        n_sub: int = 1,
    ) -> None:
        if not datasets:
            raise InputDataError("no dataset to fit")
        self.datasets = list(datasets)
        self.model = model
        self.preps: list[PreparedSpectrum] = [d.prepare(n_sub) for d in self.datasets]
        # one statistic for all datasets, or one per dataset (XSPEC's "statistic chi 1")
        per = [stat] * len(self.datasets) if isinstance(stat, str) else list(stat)
        if len(per) != len(self.datasets):
            raise InputDataError(
                f"{len(per)} statistics given for {len(self.datasets)} datasets: give one, "
                "or one per dataset"
            )
        self.evaluators = [
            make_evaluator(st, p, d.label)
            for st, p, d in zip(per, self.preps, self.datasets, strict=True)
        ]
        self.requested_stat = stat
        self.params: list[FitParameter] = [
            FitParameter(s.name, s.default, s.lower, s.upper, log=s.log, unit=s.unit)
            for s in model.specs
        ]
        self.n_model = len(self.params)
        self.norm_names: list[str | None] = [None]
        n_norm = len(self.datasets) - 1
        free_norm = [cross_norm] * n_norm if isinstance(cross_norm, bool) else list(cross_norm)
        if len(free_norm) != n_norm:
            raise InputDataError(
                f"cross_norm gives {len(free_norm)} flags for {n_norm} datasets after the first"
            )
        for d, free in zip(self.datasets[1:], free_norm, strict=True):
            pname = f"norm_{d.name}"
            self.params.append(FitParameter(pname, 1.0, 0.01, 100.0, frozen=not free))
            self.norm_names.append(pname)
        self.index = {p.name: i for i, p in enumerate(self.params)}
        # Several datasets can share one response grid (same file): integrate once per grid.
        self._grid_keys = []
        for p in self.preps:
            self._grid_keys.append((p.grid.lo.tobytes(), p.grid.hi.tobytes(), p.grid.shape))

    @property
    def statistic_name(self) -> str:
        """Statistic actually used (several datasets may differ: names joined by '+')."""
        names = sorted({e.name for e in self.evaluators})
        return "+".join(names)

    @property
    def n_bins(self) -> int:
        """Total number of grouped bins in the fit."""
        return int(sum(p.n_bins for p in self.preps))

    def param(self, name: str) -> FitParameter:
        """Parameter by name (clear error listing the names otherwise)."""
        if name not in self.index:
            raise InputDataError(f"unknown parameter {name!r}; parameters: {', '.join(self.index)}")
        return self.params[self.index[name]]

    def free_indices(self) -> list[int]:
        """Return the indices of parameters that are neither frozen nor linked."""
        return [i for i, p in enumerate(self.params) if not p.frozen and p.link is None]

    def values(self) -> np.ndarray:
        """Return the current values of all parameters (links resolved)."""
        v = np.array([p.value for p in self.params])
        for i, p in enumerate(self.params):
            if p.link is not None:
                v[i] = v[self.index[p.link]]
        return v

    # -- internal coordinates ---------------------------------------------------------
    def to_internal(self, idx: Sequence[int], values: np.ndarray) -> np.ndarray:
        """External values of parameters ``idx`` to fitter coordinates (log for log params)."""
        return np.array(
            [np.log(values[k]) if self.params[i].log else values[k] for k, i in enumerate(idx)]
        )

    def to_external(self, idx: Sequence[int], x: np.ndarray) -> np.ndarray:
        """Fitter coordinates to external values, clipped to the bounds."""
        out = np.empty(len(idx))
        for k, i in enumerate(idx):
            p = self.params[i]
            v = np.exp(x[k]) if p.log else x[k]
            out[k] = min(max(v, p.lower), p.upper)
        return out

    def internal_bounds(self, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Bounds in fitter coordinates."""
        lo = np.array(
            [
                np.log(self.params[i].lower) if self.params[i].log else self.params[i].lower
                for i in idx
            ]
        )
        hi = np.array(
            [
                np.log(self.params[i].upper) if self.params[i].log else self.params[i].upper
                for i in idx
            ]
        )
        return lo, hi

    def full_values(self, base: np.ndarray, idx: Sequence[int], ext: np.ndarray) -> np.ndarray:
        """All parameter values with ``idx`` replaced by ``ext`` and links resolved."""
        v = base.copy()
        v[list(idx)] = ext
        for i, p in enumerate(self.params):
            if p.link is not None:
                v[i] = v[self.index[p.link]]
        return v

    # -- evaluation ---------------------------------------------------------------------
    def predicted(self, values: np.ndarray) -> list[np.ndarray]:
        """Predicted source counts per dataset for full parameter values."""
        mp = values[: self.n_model]
        cache: dict[Any, np.ndarray] = {}
        mus = []
        for k, prep in enumerate(self.preps):
            key = self._grid_keys[k]
            if key not in cache:
                cache[key] = self.model.integrate(prep.grid, mp)
            norm = 1.0 if self.norm_names[k] is None else values[self.index[self.norm_names[k]]]  # type: ignore[index]
            mus.append(norm * (cache[key] @ prep.fold))
        return mus

    def statistic(self, values: np.ndarray) -> float:
        """Total statistic at full parameter values."""
        total = 0.0
        for ev, mu in zip(self.evaluators, self.predicted(values), strict=True):
            g = np.empty_like(mu)
            c = np.empty_like(mu)
            total += ev(mu, g, c)
        return total

    def per_dataset(self, values: np.ndarray) -> list[float]:
        """Statistic of each dataset."""
        out = []
        for ev, mu in zip(self.evaluators, self.predicted(values), strict=True):
            out.append(ev(mu, np.empty_like(mu), np.empty_like(mu)))
        return out

    def _stat_grad(self, mus: list[np.ndarray]) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        total = 0.0
        gs, cs = [], []
        for ev, mu in zip(self.evaluators, mus, strict=True):
            g = np.empty_like(mu)
            c = np.empty_like(mu)
            total += ev(mu, g, c)
            gs.append(g)
            cs.append(c)
        return total, gs, cs

    # -- minimisation -------------------------------------------------------------------
    def minimize(
        self,
        base: np.ndarray,
        idx: Sequence[int],
        x0: np.ndarray,
        max_iter: int = 200,
        edm_tol: float = 1e-6,
    ) -> tuple[np.ndarray, float, np.ndarray, bool, int]:
        """Levenberg-Marquardt in fitter coordinates; returns (x, stat, H, converged, iters)."""
        idx = list(idx)
        lo, hi = self.internal_bounds(idx)
        x = np.clip(np.asarray(x0, dtype=float), lo, hi)
        n = len(idx)
        if n == 0:
            return x, self.statistic(base), np.zeros((0, 0)), True, 0

        def mus_at(xx: np.ndarray) -> list[np.ndarray]:
            return self.predicted(self.full_values(base, idx, self.to_external(idx, xx)))

        mus = mus_at(x)
        stat, gs, cs = self._stat_grad(mus)
        lam = 1e-3
        converged = False
        hess = np.eye(n)
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007
            jac = []
            for k in range(n):
                h = 1e-6 * max(1.0, abs(x[k]))
                xk = x.copy()
                xk[k] += h
                if xk[k] > hi[k]:
                    xk[k] = x[k] - h
                    h = -h
                mk = mus_at(xk)
                jac.append([(a - b) / h for a, b in zip(mk, mus, strict=True)])
            grad = np.zeros(n)
            hess = np.zeros((n, n))
            for d in range(len(mus)):
                jd = np.array([jac[k][d] for k in range(n)])  # (n, bins)
                grad += jd @ gs[d]
                hess += (jd * cs[d][None, :]) @ jd.T
            diag = np.maximum(np.diag(hess), 1e-12)
            # Parameters pinned at a bound with the gradient pushing outwards are held there.
            active = np.ones(n, dtype=bool)
            active &= ~((x <= lo + 1e-12) & (grad > 0))
            active &= ~((x >= hi - 1e-12) & (grad < 0))
            ha = hess[np.ix_(active, active)]
            ga = grad[active]
            try:
                edm = (
                    0.5 * float(ga @ np.linalg.solve(ha + 1e-12 * np.eye(ga.size), ga))
                    if ga.size
                    else 0.0
                )
            except np.linalg.LinAlgError:
                edm = np.inf
            if edm < edm_tol:
                converged = True
                break
            improved = False
            for _ in range(30):
                a = hess + lam * np.diag(diag)
                step = np.zeros(n)
                try:
                    step[active] = np.linalg.solve(a[np.ix_(active, active)], -ga)
                except np.linalg.LinAlgError:
                    lam *= 10.0
                    continue
                xn = np.clip(x + step, lo, hi)
                mn = mus_at(xn)
                sn, gn, cn = self._stat_grad(mn)
                if np.isfinite(sn) and sn <= stat:
                    dec = stat - sn
                    x, mus, stat, gs, cs = xn, mn, sn, gn, cn
                    lam = max(lam / 10.0, 1e-9)
                    improved = True
                    if dec < 1e-10 * max(1.0, abs(stat)) and edm < 1e3 * edm_tol:
                        converged = True
                    break
                lam *= 10.0
            if not improved or converged:
                converged = converged or (not improved and edm < 1e2 * edm_tol)
                break
        return x, stat, hess, converged, it

    def numeric_hessian(
        self, base: np.ndarray, idx: Sequence[int], x: np.ndarray, scale: np.ndarray
    ) -> np.ndarray:
        """Central-difference Hessian of the statistic in fitter coordinates."""
        n = len(idx)
        hmat = np.zeros((n, n))

        def f(xx: np.ndarray) -> float:
            return self.statistic(self.full_values(base, idx, self.to_external(idx, xx)))

        f0 = f(x)
        steps = np.maximum(scale * 0.1, 1e-6 * np.maximum(1.0, np.abs(x)))
        for i in range(n):
            ei = np.zeros(n)
            ei[i] = steps[i]
            fp, fm = f(x + ei), f(x - ei)
            hmat[i, i] = (fp - 2 * f0 + fm) / steps[i] ** 2
            for j in range(i):
                ej = np.zeros(n)
                ej[j] = steps[j]
                fpp, fpm = f(x + ei + ej), f(x + ei - ej)
                fmp, fmm = f(x - ei + ej), f(x - ei - ej)
                hmat[i, j] = hmat[j, i] = (fpp - fpm - fmp + fmm) / (4 * steps[i] * steps[j])
        return hmat


@dataclass
class FitResult:
    """Outcome of :func:`fit`: statistic, degrees of freedom, parameters, covariance."""

    statistic: str
    stat: float
    dof: int
    n_bins: int
    parameters: dict[str, ParameterResult]
    free: list[str]
    covariance: np.ndarray
    converged: bool
    iterations: int
    model: SpectralModel
    problem: FitProblem
    per_dataset_stat: list[float] = field(default_factory=list)
    message: str = ""

    @property
    def values(self) -> dict[str, float]:
        """Best-fit values by name."""
        return {k: v.value for k, v in self.parameters.items()}

    def model_values(self) -> dict[str, float]:
        """Values of the spectral model's own parameters (no cross-normalisations)."""
        return {n: self.parameters[n].value for n in self.model.param_names}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the CLI's ``--json`` shape without fluxes)."""
        return {
            "statistic": self.statistic,
            "stat": self.stat,
            "dof": self.dof,
            "parameters": {k: v.to_dict() for k, v in self.parameters.items()},
            "converged": self.converged,
        }


def _start_values(problem: FitProblem) -> None:
    """Scale ``K`` so the model predicts the net counts, and pick the best Epeak/kT of a few."""
    model_names = problem.model.param_names
    net = sum(float(np.sum(p.counts - p.scaled_background)) for p in problem.preps)
    net = max(net, 1.0)
    kname = [n for n in model_names if n.startswith("K")]
    for kn in kname:
        if problem.param(kn).frozen:
            return
    energy_names = [n for n in model_names if n.split("_")[0] in {"epeak", "ebreak", "kt"}]
    candidates: list[dict[str, float]] = [{}]
    for en in energy_names:
        if not problem.param(en).frozen:
            candidates = [dict(c, **{en: e}) for c in candidates for e in (50.0, 200.0, 800.0)]
    best = None
    for cand in candidates:
        for name, val in cand.items():
            problem.param(name).value = val
        v = problem.values()
        pred = sum(float(np.sum(mu)) for mu in problem.predicted(v))
        if pred <= 0 or not np.isfinite(pred):
            continue
        scale = net / pred
        for kn in kname:
            p = problem.param(kn)
            p.value = float(np.clip(p.value * scale, p.lower, p.upper))
        s = problem.statistic(problem.values())
        if best is None or s < best[0]:
            best = (s, {n: problem.param(n).value for n in [*kname, *cand]})
        for kn in kname:
            p = problem.param(kn)
            p.value = float(np.clip(p.value / scale, p.lower, p.upper))
    if best is not None:
        for name, val in best[1].items():
            problem.param(name).value = val


def fit(
    datasets: SpectrumDataset | Sequence[SpectrumDataset],
    model: str | SpectralModel = "cpl",
    stat: str | Sequence[str] = "cstat",
    *,
    pivot: float = 100.0,
    freeze: Mapping[str, float] | None = None,
    start: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    link: Mapping[str, str] | None = None,
    cross_norm: bool | Sequence[bool] = True,
    n_sub: int = 1,
    edm_tol: float = 1e-6,
    compute_errors: bool = False,
    delta: float = 1.0,
) -> FitResult:
    """Fit ``model`` to one or several datasets by minimising ``stat``.

    Parameters
    ----------
    datasets : one dataset or a list (a joint fit shares the model; datasets after the first
        get a cross-normalisation ``norm_<name>``, free unless ``cross_norm=False``; a
        sequence of one flag per dataset after the first frees some only, see
        :func:`~svomflow.tasks.spectral.selection.default_cross_norm`).
    model : name (``pl``, ``cpl``, ``band``, ``sbpl``, ``bb``, sums like ``cpl+bb``) or model.
    stat : ``chi2``, ``chi2-gehrels``, ``cstat``, ``wstat``, ``pgstat`` (XSPEC conventions);
        one name for all datasets or a sequence of one per dataset (e.g. chi2 for a
        mask-weighted spectrum, wstat for the others in a joint fit).
    pivot : pivot energy (keV) of the amplitude ``K`` when ``model`` is a name.
    freeze : parameters held at the given values.
    start : start values (otherwise derived from the data).
    bounds : ``{name: (lower, upper)}`` overrides.
    link : ``{name: other}`` ties a parameter to another's value.
    n_sub : Simpson sub-intervals per response energy bin.
    compute_errors : also run :func:`errors` (profile, ``delta``).
    """
    ds = [datasets] if isinstance(datasets, SpectrumDataset) else list(datasets)
    mdl = make_model(model, pivot=pivot)
    problem = FitProblem(ds, mdl, stat, cross_norm=cross_norm, n_sub=n_sub)
    for name, (lo, hi) in (bounds or {}).items():
        p = problem.param(name)
        if not lo < hi:
            raise InputDataError(f"bounds of {name}: lower must be below upper")
        p.lower, p.upper = float(lo), float(hi)
    for name, target in (link or {}).items():
        problem.param(target)
        problem.param(name).link = target
    if not start:
        _start_values(problem)
    for name, val in (start or {}).items():
        problem.param(name).value = float(val)
    for name, val in (freeze or {}).items():
        p = problem.param(name)
        p.value = float(val)
        p.frozen = True
    for p in problem.params:
        if not p.lower <= p.value <= p.upper:
            if p.frozen:
                p.lower, p.upper = min(p.lower, p.value), max(p.upper, p.value)
            else:
                p.value = float(np.clip(p.value, p.lower, p.upper))
    result = _run(problem, edm_tol)
    if compute_errors:
        result = errors(result, delta=delta)
    return result


def _run(problem: FitProblem, edm_tol: float) -> FitResult:
    idx = problem.free_indices()
    base = problem.values()
    x0 = problem.to_internal(idx, base[idx]) if idx else np.zeros(0)
    x, stat, _, converged, iters = problem.minimize(base, idx, x0, edm_tol=edm_tol)
    message = ""
    if not converged and idx:
        # Polish with a derivative-free simplex, then let LM check the minimum again.
        lo, hi = problem.internal_bounds(idx)

        def f(xx: np.ndarray) -> float:
            return problem.statistic(
                problem.full_values(base, idx, problem.to_external(idx, np.clip(xx, lo, hi)))
            )

        res = optimize.minimize(
            f, x, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-8, "maxiter": 4000}
        )
        x2, stat2, _, converged, it2 = problem.minimize(
            base, idx, np.clip(res.x, lo, hi), edm_tol=edm_tol
        )
        iters += it2
        if stat2 <= stat:
            x, stat = x2, stat2
        message = "polished with Nelder-Mead"
        if not converged:
            message = "did not converge (expected distance to minimum above tolerance)"
    ext = problem.to_external(idx, x) if idx else np.zeros(0)
    values = problem.full_values(base, idx, ext)
    for i, p in enumerate(problem.params):
        p.value = float(values[i])
    cov = np.zeros((len(idx), len(idx)))
    if idx:
        hess_lm = problem.minimize(base, idx, x, max_iter=1, edm_tol=np.inf)[2]
        try:
            scale = np.sqrt(np.clip(np.diag(np.linalg.inv(0.5 * hess_lm)), 1e-30, None))
        except np.linalg.LinAlgError:
            scale = np.full(len(idx), 1e-3)
        hmat = problem.numeric_hessian(base, idx, x, scale)
        try:
            cov_int = np.linalg.inv(0.5 * hmat)
        except np.linalg.LinAlgError:
            cov_int = np.linalg.pinv(0.5 * hmat)
        jac = np.array([ext[k] if problem.params[i].log else 1.0 for k, i in enumerate(idx)])
        cov = cov_int * jac[:, None] * jac[None, :]
    params: dict[str, ParameterResult] = {}
    free_names = [problem.params[i].name for i in idx]
    for p in problem.params:
        err = None
        at_bound = False
        if p.name in free_names:
            k = free_names.index(p.name)
            err = float(np.sqrt(cov[k, k])) if cov[k, k] > 0 else float("nan")
            at_bound = bool(np.isclose(p.value, p.lower) or np.isclose(p.value, p.upper))
        params[p.name] = ParameterResult(
            value=p.value,
            error=err,
            frozen=p.frozen,
            linked_to=p.link,
            unit=p.unit,
            at_bound=at_bound,
        )
    return FitResult(
        statistic=problem.statistic_name,
        stat=float(stat),
        dof=problem.n_bins - len(idx),
        n_bins=problem.n_bins,
        parameters=params,
        free=free_names,
        covariance=cov,
        converged=bool(converged),
        iterations=iters,
        model=problem.model,
        problem=problem,
        per_dataset_stat=problem.per_dataset(values),
        message=message,
    )


def fisher_covariance(result: FitResult) -> np.ndarray:
    """Covariance of the free parameters from the expected (Fisher) curvature at the best fit.

    ``J^T W J`` with the statistic's expected per-bin curvature ``W``: positive
    semi-definite by construction, unlike the finite-difference Hessian of
    ``result.covariance`` (which includes the data's fluctuations and can come out
    indefinite near a bound). Order and units as ``result.covariance``.
    """
    problem = result.problem
    idx = problem.free_indices()
    if not idx:
        return np.zeros((0, 0))
    base = np.array([result.parameters[p.name].value for p in problem.params])
    x = problem.to_internal(idx, base[idx])
    hess = problem.minimize(base, idx, x, max_iter=1, edm_tol=np.inf)[2]
    cov_int = np.linalg.pinv(0.5 * hess, hermitian=True)
    jac = np.array([base[i] if problem.params[i].log else 1.0 for i in idx])
    return cov_int * jac[:, None] * jac[None, :]


class _Profile:
    """Statistic minimised over the other free parameters with one parameter held fixed.

    Each evaluation starts from the nuisance parameters of the closest point evaluated so
    far (warm start), which keeps the Levenberg-Marquardt refits to a few steps, and also
    from the best fit's: with a multimodal nuisance (Band's beta, flat towards steep values)
    a warm start can stay in a local minimum whose statistic is too high, which would make
    the error too small, so the lower of the two refits is the profile. ``starts`` adds
    starting points (full external parameter vectors): a nuisance parameter at a flat bound
    (Band's beta at -10) has no gradient there, and a refit must also start inside.
    """

    def __init__(
        self,
        problem: FitProblem,
        best: np.ndarray,
        idx: list[int],
        which: int,
        starts: Sequence[np.ndarray] = (),
    ) -> None:
        self.problem = problem
        self.best = best
        self.which = which
        self.others = [i for i in idx if i != which]
        self.memory: list[tuple[float, np.ndarray]] = []
        self.extra = [problem.to_internal(self.others, np.asarray(v)[self.others]) for v in starts]

    def __call__(self, value: float) -> float:
        problem = self.problem
        base = self.best.copy()
        base[self.which] = value
        if not self.others:
            return problem.statistic(problem.full_values(base, [], np.zeros(0)))
        starts = [problem.to_internal(self.others, self.best[self.others])]
        if self.memory:
            starts.append(min(self.memory, key=lambda m: abs(m[0] - value))[1])
        starts += self.extra
        best_x, best_stat = starts[0], np.inf
        for x0 in starts:
            x, stat, _, _, _ = problem.minimize(base, self.others, x0, max_iter=100, edm_tol=1e-5)
            if stat < best_stat:
                best_x, best_stat = x, stat
        self.memory.append((value, best_x))
        return best_stat


def _quadratic_search(g: Any, best: float, step: float, limit: float, delta: float) -> float | None:
    """Root of ``g`` (profile rise minus delta) assuming a near-quadratic profile.

    Rescales the offset by sqrt(delta / rise) a few times (exact for a parabola); returns
    ``None`` when that does not settle (the caller then brackets and uses brentq).
    """
    offset = step
    for _ in range(6):
        v = best + offset
        if (step < 0 and v <= limit) or (step > 0 and v >= limit):
            return None
        rise = g(v) + delta
        if not np.isfinite(rise) or rise <= 0:
            return None
        if abs(rise - delta) < 1e-3 * delta:
            return v
        offset *= float(np.sqrt(delta / rise))
    return None


def errors(
    result: FitResult,
    params: Sequence[str] | None = None,
    delta: float = 1.0,
    starts: Sequence[Mapping[str, float]] = (),
) -> FitResult:
    """Asymmetric errors where the profiled statistic rises by ``delta`` (1 = 1 sigma).

    Fills ``error_low`` (negative) and ``error_high`` of each free parameter; an error that
    reaches a bound before the statistic rises enough stops at the bound (``at_bound``).
    ``starts``: more starting points of the profile refits (parameter values by name, the
    others at the best fit), e.g. a parameter at a flat bound moved inside.
    """
    problem = result.problem
    idx = problem.free_indices()
    best = problem.values()
    stat0 = result.stat
    names = list(params) if params is not None else result.free
    for name in names:
        if name not in result.free:
            continue
        i = problem.index[name]
        p = problem.params[i]
        k = result.free.index(name)
        sigma = (
            float(np.sqrt(result.covariance[k, k]))
            if result.covariance[k, k] > 0
            else abs(best[i]) * 0.1 + 1e-6
        )
        out: dict[int, float] = {}
        hit_bound = False
        extra = []
        for st in starts:
            v = best.copy()
            for n, x in st.items():
                v[problem.index[n]] = x
            extra.append(v)
        prof = _Profile(problem, best, idx, i, extra)
        for side in (-1, 1):
            limit = p.lower if side < 0 else p.upper

            def g(v: float, prof: _Profile = prof) -> float:
                return prof(v) - stat0 - delta

            root = _quadratic_search(g, best[i], side * sigma, limit, delta)
            if root is not None:
                out[side] = root - best[i]
                continue
            step = sigma
            inner, g_inner = best[i], -delta
            found, g_found = None, 0.0
            for _ in range(40):
                trial = best[i] + side * step
                if (side < 0 and trial <= limit) or (side > 0 and trial >= limit):
                    trial = limit
                gv = g(trial)
                if gv > 0:
                    found, g_found = trial, gv
                    break
                inner, g_inner = trial, gv
                if trial == limit:
                    break
                step *= 1.6
            if found is None:
                out[side] = limit - best[i]
                hit_bound = True
                continue
            # The bracket's ends keep the values found above: a profile refit from another
            # warm start can land a little differently (a multimodal nuisance, e.g. Band's
            # beta), and re-evaluating an end must not undo the sign change brentq needs.
            ends = {inner: g_inner, found: g_found}

            def g_bracket(v: float, g: Any = g, ends: dict[float, float] = ends) -> float:
                return ends[v] if v in ends else g(v)

            root = optimize.brentq(
                g_bracket, inner, found, xtol=1e-4 * sigma, rtol=1e-8, maxiter=60
            )
            out[side] = root - best[i]
        pr = result.parameters[name]
        pr.error_low = float(out[-1])
        pr.error_high = float(out[1])
        pr.at_bound = pr.at_bound or hit_bound
    return result


def compare(*results: FitResult) -> list[dict[str, float | str | None]]:
    """Compare fits of the same data: statistic, dof, AIC, BIC and the likelihood-ratio test.

    The likelihood-ratio p-value is given for each fit against the first one when it has more
    free parameters (nested models, Wilks' theorem); AIC = stat + 2k, BIC = stat + k ln n.
    """
    if not results:
        return []
    ref = results[0]
    rows: list[dict[str, float | str | None]] = []
    for r in results:
        k = len(r.free)
        n = r.n_bins
        row: dict[str, float | str | None] = {
            "model": r.model.name,
            "statistic": r.statistic,
            "stat": r.stat,
            "dof": r.dof,
            "n_free": k,
            "aic": r.stat + 2 * k,
            "bic": r.stat + k * np.log(n),
            "delta_stat": ref.stat - r.stat,
            "lrt_p_value": None,
        }
        extra = k - len(ref.free)
        if r is not ref and extra > 0:
            # the chi2 survival function (scipy.stats.chi2.sf computes exactly this; importing
            # scipy.stats costs every process about 0.3 s of CPU)
            row["lrt_p_value"] = float(special.chdtrc(extra, max(ref.stat - r.stat, 0.0)))
        rows.append(row)
    return rows
