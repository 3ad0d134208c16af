"""Photon spectral models with the GBM spectral catalog's parameter names and conventions.

Every model gives the photon flux density N(E) in photons/cm2/s/keV; ``K`` is N at ``pivot``
(keV, default 100 keV; settable, e.g. 1 keV for X-ray work where XSPEC's ``powerlaw`` norm
is N at 1 keV). Photon indices are signed exponents: N(E) = K (E/pivot)^index, so a typical
GRB index is negative (XSPEC's ``PhoIndex`` Gamma is ``-index``).

Models integrate N(E) over energy bins: analytically for the power law, otherwise by
Simpson's rule in ln(E) (N(E) E is smooth in ln E for all these shapes) with
``2 * n_sub`` intervals per bin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.tasks.spectral import _kernels as kern

#: Parameter values of a model: by name, or a vector in the model's parameter order.
ParamValues = Mapping[str, float] | Sequence[float] | NDArray[np.float64]

__all__ = [
    "MODEL_ALIASES",
    "MODEL_NAMES",
    "Band",
    "Blackbody",
    "CutoffPowerLaw",
    "EnergyGrid",
    "ParamValues",
    "ParameterSpec",
    "PowerLaw",
    "SmoothlyBrokenPowerLaw",
    "SpectralModel",
    "SumModel",
    "canonical_model_name",
    "make_model",
]


@dataclass(frozen=True)
class ParameterSpec:
    """Name, default, bounds, unit and whether the fitter works in log of the parameter."""

    name: str
    default: float
    lower: float
    upper: float
    unit: str = ""
    log: bool = False


class EnergyGrid:
    """Integration nodes and weights for a set of energy bins (Simpson in ln E).

    ``integrate(f)`` returns the integral of ``f`` over each bin, where ``f`` are the model
    values at :attr:`nodes` (flattened, ``n_bins * (2 n_sub + 1)``).
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray, n_sub: int = 1) -> None:
        lo = np.asarray(lo, dtype=float)
        hi = np.asarray(hi, dtype=float)
        self.lo = lo
        self.hi = hi
        m = 2 * n_sub + 1
        coef = np.ones(m)
        coef[1:-1:2] = 4.0
        coef[2:-1:2] = 2.0
        t = np.linspace(0.0, 1.0, m)
        safe_lo = np.where(lo > 0, lo, hi * 1e-6)
        ln_lo = np.log(np.maximum(safe_lo, 1e-300))
        ln_hi = np.log(np.maximum(hi, 1e-300))
        nodes = np.exp(ln_lo[:, None] + (ln_hi - ln_lo)[:, None] * t[None, :])
        h = (ln_hi - ln_lo) / (m - 1)
        weights = coef[None, :] * (h / 3.0)[:, None] * nodes
        # Bins starting at 0 keV (e.g. Swift XRT) use Simpson in E: ln E is undefined there.
        zero = lo <= 0
        if np.any(zero):
            lin_nodes = lo[zero, None] + (hi - lo)[zero, None] * t[None, :]
            lin_nodes[:, 0] = np.maximum(lin_nodes[:, 0], 1e-6 * hi[zero])
            nodes[zero] = lin_nodes
            weights[zero] = coef[None, :] * ((hi - lo)[zero] / (m - 1) / 3.0)[:, None]
        self.nodes = nodes.ravel()
        self.weights = weights
        self.shape = nodes.shape

    def integrate(self, values: np.ndarray) -> np.ndarray:
        """Integral over each bin of the function sampled at :attr:`nodes`."""
        v = values.reshape(self.shape)
        out = np.einsum("ij,ij->i", self.weights, v)
        # An integrable singularity at 0 keV must not poison the fold with inf * 0.
        out[~np.isfinite(out)] = 0.0
        return out


class SpectralModel:
    """Base class: a photon model with named parameters (see module docstring)."""

    name = "model"
    specs: tuple[ParameterSpec, ...] = ()

    def __init__(self, pivot: float = 100.0) -> None:
        if pivot <= 0:
            raise ValueError("pivot energy must be positive")
        self.pivot = float(pivot)

    @property
    def param_names(self) -> list[str]:
        """Parameter names in order."""
        return [s.name for s in self.specs]

    def defaults(self) -> dict[str, float]:
        """Default parameter values."""
        return {s.name: s.default for s in self.specs}

    def _eval(self, energy: np.ndarray, p: Sequence[float], out: np.ndarray) -> None:
        raise NotImplementedError

    def evaluate(self, energy: np.ndarray, params: ParamValues) -> np.ndarray:
        """Photon flux density N(E) (photons/cm2/s/keV) at ``energy`` (keV)."""
        e = np.ascontiguousarray(np.atleast_1d(energy), dtype=float)
        out = np.empty_like(e)
        self._eval(e, self._vector(params), out)
        return out

    def _vector(self, params: ParamValues) -> list[float]:
        if isinstance(params, Mapping):
            return [float(params[n]) for n in self.param_names]
        return [float(v) for v in params]

    def integrate(self, grid: EnergyGrid, params: ParamValues) -> np.ndarray:
        """Photon flux (photons/cm2/s) in each bin of ``grid``."""
        out = np.empty(grid.nodes.size)
        self._eval(grid.nodes, self._vector(params), out)
        return grid.integrate(out)

    def flux(
        self,
        params: ParamValues,
        band: tuple[float, float],
        kind: str = "energy",
        n_nodes: int = 2049,
    ) -> float:
        """Photon (ph/cm2/s) or energy (erg/cm2/s) flux in ``band`` (keV) by Simpson in ln E."""
        lo, hi = float(band[0]), float(band[1])
        if not 0 < lo < hi:
            raise ValueError(f"invalid band {band}")
        n = n_nodes if n_nodes % 2 == 1 else n_nodes + 1
        e = np.exp(np.linspace(np.log(lo), np.log(hi), n))
        v = self.evaluate(e, params) * e
        if kind == "energy":
            v = v * e * KEV_TO_ERG
        elif kind != "photon":
            raise ValueError("kind must be 'photon' or 'energy'")
        h = (np.log(hi) - np.log(lo)) / (n - 1)
        coef = np.ones(n)
        coef[1:-1:2] = 4.0
        coef[2:-1:2] = 2.0
        return float(h / 3.0 * np.dot(coef, v))


KEV_TO_ERG = 1.602176634e-9


class PowerLaw(SpectralModel):
    """``N(E) = K (E/pivot)^index``."""

    name = "pl"
    specs = (
        ParameterSpec("K", 0.01, 1e-12, 1e6, "ph/cm2/s/keV", log=True),
        ParameterSpec("index", -1.5, -10.0, 5.0),
    )

    def _eval(self, energy: np.ndarray, p: Sequence[float], out: np.ndarray) -> None:
        kern.pl_eval(energy, p[0], p[1], self.pivot, out)

    def integrate(self, grid: EnergyGrid, params: ParamValues) -> np.ndarray:
        """Analytic integral of the power law over each bin (as XSPEC's ``powerlaw``)."""
        k, index = self._vector(params)
        lo = np.maximum(grid.lo, 0.0) / self.pivot
        hi = grid.hi / self.pivot
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if abs(index + 1.0) < 1e-10:
                out = k * self.pivot * np.log(hi / lo)
            else:
                g = index + 1.0
                out = k * self.pivot * (hi**g - lo**g) / g
        out[~np.isfinite(out)] = 0.0
        return out


class CutoffPowerLaw(SpectralModel):
    """``N(E) = K (E/pivot)^index exp(-(2+index) E/epeak)`` (GBM "Comptonized")."""

    name = "cpl"
    specs = (
        ParameterSpec("K", 0.01, 1e-12, 1e6, "ph/cm2/s/keV", log=True),
        ParameterSpec("index", -1.0, -1.999, 3.0),
        ParameterSpec("epeak", 300.0, 1.0, 1e5, "keV", log=True),
    )

    def _eval(self, energy: np.ndarray, p: Sequence[float], out: np.ndarray) -> None:
        kern.cpl_eval(energy, p[0], p[1], p[2], self.pivot, out)


class Band(SpectralModel):
    """Band et al. (1993) in the GBM catalog's Epeak form (needs ``alpha > -2`` and ``beta < alpha``)."""

    name = "band"
    specs = (
        ParameterSpec("K", 0.01, 1e-12, 1e6, "ph/cm2/s/keV", log=True),
        ParameterSpec("alpha", -1.0, -1.999, 3.0),
        ParameterSpec("beta", -2.5, -10.0, -1.001),
        ParameterSpec("epeak", 300.0, 1.0, 1e5, "keV", log=True),
    )

    def _eval(self, energy: np.ndarray, p: Sequence[float], out: np.ndarray) -> None:
        kern.band_eval(energy, p[0], p[1], p[2], p[3], self.pivot, out)


class SmoothlyBrokenPowerLaw(SpectralModel):
    """GBM catalog smoothly broken power law (break scale ``delta`` decades, default 0.3)."""

    name = "sbpl"
    specs = (
        ParameterSpec("K", 0.01, 1e-12, 1e6, "ph/cm2/s/keV", log=True),
        ParameterSpec("alpha", -1.0, -5.0, 3.0),
        ParameterSpec("beta", -2.5, -10.0, 1.0),
        ParameterSpec("ebreak", 200.0, 1.0, 1e5, "keV", log=True),
    )

    def __init__(self, pivot: float = 100.0, delta: float = 0.3) -> None:
        super().__init__(pivot)
        self.delta = float(delta)

    def _eval(self, energy: np.ndarray, p: Sequence[float], out: np.ndarray) -> None:
        kern.sbpl_eval(energy, p[0], p[1], p[2], p[3], self.delta, self.pivot, out)


class Blackbody(SpectralModel):
    """Blackbody photon spectrum normalised to ``K`` at ``pivot``."""

    name = "bb"
    specs = (
        ParameterSpec("K", 0.01, 1e-12, 1e6, "ph/cm2/s/keV", log=True),
        ParameterSpec("kt", 30.0, 0.1, 1e4, "keV", log=True),
    )

    def _eval(self, energy: np.ndarray, p: Sequence[float], out: np.ndarray) -> None:
        kern.bb_eval(energy, p[0], p[1], self.pivot, out)


class SumModel(SpectralModel):
    """Sum of components; parameter names get the component's 1-based index (``K_1``, ``kt_2``)."""

    name = "sum"

    def __init__(self, components: Sequence[SpectralModel]) -> None:
        if len(components) < 2:
            raise ValueError("a sum needs at least two components")
        self.components = list(components)
        self.pivot = self.components[0].pivot
        specs = []
        for i, c in enumerate(self.components, start=1):
            for s in c.specs:
                specs.append(
                    ParameterSpec(f"{s.name}_{i}", s.default, s.lower, s.upper, s.unit, s.log)
                )
        self.specs = tuple(specs)
        self.name = "+".join(c.name for c in self.components)

    def _split(self, p: Sequence[float]) -> list[list[float]]:
        out, pos = [], 0
        for c in self.components:
            n = len(c.specs)
            out.append(list(p[pos : pos + n]))
            pos += n
        return out

    def _eval(self, energy: np.ndarray, p: Sequence[float], out: np.ndarray) -> None:
        out[:] = 0.0
        tmp = np.empty_like(out)
        for c, pc in zip(self.components, self._split(p), strict=True):
            c._eval(energy, pc, tmp)
            out += tmp

    def integrate(self, grid: EnergyGrid, params: ParamValues) -> np.ndarray:
        """Sum of the components' bin integrals."""
        p = self._vector(params)
        total = np.zeros(grid.lo.size)
        for c, pc in zip(self.components, self._split(p), strict=True):
            total += c.integrate(grid, pc)
        return total

    def __add__(self, other: SpectralModel) -> SumModel:
        return SumModel([*self.components, other])


def _add(self: SpectralModel, other: SpectralModel) -> SumModel:
    return SumModel([self, other])


setattr(SpectralModel, "__add__", _add)  # noqa: B010 - SumModel is defined after the base

MODEL_NAMES: dict[str, Callable[..., SpectralModel]] = {
    "pl": PowerLaw,
    "cpl": CutoffPowerLaw,
    "band": Band,
    "sbpl": SmoothlyBrokenPowerLaw,
    "bb": Blackbody,
}


#: Names people type for our models: XSPEC's and the GBM spectral catalog's. Same shapes,
#: our parametrisation (docs/spectral.md): XSPEC's ``cutoffpl`` HighECut is ``epeak /
#: (2 + index)``, ``grbm``'s tem is ``epeak / (2 + alpha)``, photon indices are signed
#: exponents (``PhoIndex`` = ``-index``) and ``bbody``/``bbodyrad`` norms become ``K`` at the
#: pivot.
MODEL_ALIASES: dict[str, str] = {
    "powerlaw": "pl",
    "po": "pl",
    "pow": "pl",
    "plaw": "pl",
    "cutoffpl": "cpl",
    "comp": "cpl",
    "compt": "cpl",
    "comptonized": "cpl",
    "grbm": "band",
    "bbody": "bb",
    "bbodyrad": "bb",
    "bbrad": "bb",
    "blackbody": "bb",
}


def canonical_model_name(name: str) -> str:
    """Return our model name for ``name`` (ours, or an XSPEC/GBM-catalog alias).

    Raises
    ------
    InputDataError
        An unknown name (the message lists names and aliases).
    """
    key = name.strip().lower()
    key = MODEL_ALIASES.get(key, key)
    if key not in MODEL_NAMES:
        raise InputDataError(
            f"unknown model {name.strip()!r}; choose from {', '.join(MODEL_NAMES)} "
            f"or the aliases {', '.join(MODEL_ALIASES)}"
        )
    return key


def make_model(spec: str | SpectralModel, pivot: float = 100.0) -> SpectralModel:
    """Build a model from a name or a sum of names (``band``, ``po``, ``cutoffpl+bbody``).

    Names are ours (``pl``, ``cpl``, ``band``, ``sbpl``, ``bb``) or the XSPEC and GBM-catalog
    names of :data:`MODEL_ALIASES`.
    """
    if isinstance(spec, SpectralModel):
        return spec
    parts = [canonical_model_name(s) for s in str(spec).split("+")]
    comps = [MODEL_NAMES[s](pivot=pivot) for s in parts]
    return comps[0] if len(comps) == 1 else SumModel(comps)
