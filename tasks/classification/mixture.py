"""Two-lognormal mixture of burst durations, fitted to the GBM and BAT catalogs.

``log10 T90`` of a catalog is modelled as ``w_s N(mu_s, sigma_s) + (1 - w_s) N(mu_l, sigma_l)``
and fitted by expectation-maximisation. The fitted parameters are stored in the packaged file
``svomflow/config/pipelines/classification.yaml`` (the catalogs themselves stay outside the
repository); ``tests/tasks/classification`` refits from the shared catalogs when they are
present and checks the stored numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from svomflow.errors import ConfigError, InputDataError

__all__ = [
    "LognormalMixture",
    "fit_lognormal_mixture",
    "load_catalog_t90",
    "packaged_mixture",
]


@dataclass(frozen=True)
class LognormalMixture:
    """Short and long lognormal components of T90 (log10 seconds) with the short weight."""

    w_short: float
    mu_short: float
    sigma_short: float
    mu_long: float
    sigma_long: float

    def densities(self, t90: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Weighted densities of log10 T90 under the short and long components."""
        x = np.log10(np.asarray(t90, dtype=float))
        ds = self.w_short * _normal(x, self.mu_short, self.sigma_short)
        dl = (1.0 - self.w_short) * _normal(x, self.mu_long, self.sigma_long)
        return ds, dl

    def p_short(self, t90: np.ndarray | float) -> np.ndarray:
        """Posterior probability of the short class given T90 (s)."""
        ds, dl = self.densities(t90)
        with np.errstate(invalid="ignore"):
            return ds / (ds + dl)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` (T90, is_short) pairs from the mixture."""
        short = rng.uniform(size=n) < self.w_short
        x = np.where(
            short,
            rng.normal(self.mu_short, self.sigma_short, n),
            rng.normal(self.mu_long, self.sigma_long, n),
        )
        return 10.0**x, short


def _normal(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def fit_lognormal_mixture(
    t90: np.ndarray, *, n_iter: int = 2000, tol: float = 1e-10
) -> LognormalMixture:
    """Fit the two-lognormal mixture to T90 values (s) by expectation-maximisation.

    Started from a split at 2 s; the component with the smaller mean is the short one.
    """
    t = np.asarray(t90, dtype=float)
    x = np.log10(t[np.isfinite(t) & (t > 0)])
    if x.size < 20:
        raise InputDataError("need at least 20 positive T90 values to fit the mixture")
    s = x < np.log10(2.0)
    w = np.array([s.mean(), 1 - s.mean()])
    mu = np.array([x[s].mean(), x[~s].mean()])
    sig = np.array([x[s].std() + 0.05, x[~s].std() + 0.05])
    last = -np.inf
    for _ in range(n_iter):
        dens = np.vstack([w[k] * _normal(x, mu[k], sig[k]) for k in range(2)])
        tot = dens.sum(axis=0)
        ll = float(np.sum(np.log(tot)))
        r = dens / tot
        nk = r.sum(axis=1)
        w = nk / x.size
        mu = (r @ x) / nk
        sig = np.sqrt(np.array([np.sum(r[k] * (x - mu[k]) ** 2) for k in range(2)]) / nk)
        if abs(ll - last) < tol * abs(ll):
            break
        last = ll
    i_s, i_l = (0, 1) if mu[0] < mu[1] else (1, 0)
    return LognormalMixture(
        w_short=float(w[i_s]),
        mu_short=float(mu[i_s]),
        sigma_short=float(sig[i_s]),
        mu_long=float(mu[i_l]),
        sigma_long=float(sig[i_l]),
    )


def load_catalog_t90(path: str | Path) -> np.ndarray:
    """Read the T90 column (s) of ``fermi_gbm_t90.csv`` or ``swift_bat_grb_summary.txt``.

    Rows without a T90 (``N/A``) are skipped.
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"{p}: no such catalog")
    out: list[float] = []
    if p.suffix == ".csv":
        lines = p.read_text().splitlines()
        header = [h.strip().lower() for h in lines[0].split(",")]
        col = header.index("t90")
        for line in lines[1:]:
            parts = line.split(",")
            if len(parts) > col:
                try:
                    out.append(float(parts[col]))
                except ValueError:
                    continue
    else:
        for line in p.read_text().splitlines():
            if line.startswith("#") or "|" not in line:
                continue
            parts = line.split("|")
            try:
                out.append(float(parts[8]))
            except (ValueError, IndexError):
                continue
    t = np.array(out)
    return t[np.isfinite(t) & (t > 0)]


def packaged_mixture(catalog: str = "fermi_gbm") -> LognormalMixture:
    """Return the mixture stored in ``config/pipelines/classification.yaml`` for a catalog."""
    data = _packaged()
    try:
        m = data["t90_mixture"][catalog]
    except KeyError:
        have = sorted(data.get("t90_mixture", {}))
        raise ConfigError(f"no stored T90 mixture for catalog {catalog!r}; have {have}") from None
    return LognormalMixture(
        w_short=float(m["w_short"]),
        mu_short=float(m["mu_log10_short"]),
        sigma_short=float(m["sigma_log10_short"]),
        mu_long=float(m["mu_log10_long"]),
        sigma_long=float(m["sigma_log10_long"]),
    )


def _packaged() -> dict[str, Any]:
    path = resources.files("svomflow.config") / "pipelines" / "classification.yaml"
    return dict(yaml.safe_load(path.read_text()))
