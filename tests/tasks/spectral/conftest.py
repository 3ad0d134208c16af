"""Synthetic responses and spectra for the spectral tests (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from svomflow.products.ogip_spectra import PhaSpectrum, Response
from svomflow.tasks.spectral.dataset import SpectrumDataset


def gaussian_response(
    n_e: int = 140, n_chan: int = 64, area: float = 100.0, lo: float = 8.0, hi: float = 2000.0
) -> Response:
    """A NaI-like response: Gaussian redistribution (resolution ~ 7 % at 662 keV scaled as sqrt E)."""
    e_edges = np.geomspace(lo * 0.8, hi * 1.5, n_e + 1)
    c_edges = np.geomspace(lo, hi, n_chan + 1)
    e_mid = np.sqrt(e_edges[:-1] * e_edges[1:])
    sigma = 0.07 / 2.355 * np.sqrt(662.0 * e_mid)
    from scipy.special import ndtr

    cdf = ndtr((c_edges[None, :] - e_mid[:, None]) / sigma[:, None])
    matrix = np.diff(cdf, axis=1) * area * np.exp(-e_mid / 5000.0)[:, None]
    return Response(
        energ_lo=e_edges[:-1],
        energ_hi=e_edges[1:],
        matrix=matrix,
        e_min=c_edges[:-1],
        e_max=c_edges[1:],
        first_channel=1,
        path=Path("<synthetic rsp>"),
        has_area=True,
    )


def memory_pha(
    counts: np.ndarray, exposure: float, stat_err: np.ndarray | None = None, name: str = "src"
) -> PhaSpectrum:
    n = counts.size
    return PhaSpectrum(
        path=Path(f"<{name}>"),
        row=None,
        channel=np.arange(1, n + 1),
        counts=np.asarray(counts, dtype=float),
        stat_err=stat_err,
        sys_err=np.zeros(n),
        quality=np.zeros(n, dtype=np.int64),
        grouping=np.ones(n, dtype=np.int64),
        exposure=exposure,
        backscal=np.ones(n),
        areascal=np.ones(n),
        poisserr=stat_err is None,
        tstart=0.0,
        tstop=exposure,
    )


def simulate(
    model_name: str,
    params: dict[str, float],
    rng: np.random.Generator,
    response: Response,
    exposure: float = 10.0,
    bkg_rate: float = 20.0,
    name: str = "sim",
) -> SpectrumDataset:
    """Fold a model through ``response``, add a flat-ish background, Poisson-sample both."""
    from svomflow.tasks.spectral.models import EnergyGrid, make_model

    model = make_model(model_name)
    grid = EnergyGrid(response.energ_lo, response.energ_hi, 3)
    mu = model.integrate(grid, params) @ response.matrix * exposure
    width = response.e_max - response.e_min
    bkg_mu = bkg_rate * exposure * width / width.sum() * 10
    # Background measured over 10x the exposure, treated as Poisson (W-stat) or Gaussian.
    bkg_long = rng.poisson(bkg_mu * 10.0).astype(float)
    counts = rng.poisson(mu + bkg_mu).astype(float)
    src = memory_pha(counts, exposure, name=name)
    bkg = memory_pha(bkg_long, exposure * 10.0, name=name + "_bkg")
    return SpectrumDataset(name=name, source=src, response=response, background=bkg)


@pytest.fixture(scope="session")
def synthetic_response() -> Response:
    return gaussian_response()


@pytest.fixture(scope="session")
def synth():
    """The helpers above, for tests (importlib mode cannot import conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        gaussian_response=gaussian_response, memory_pha=memory_pha, simulate=simulate
    )
